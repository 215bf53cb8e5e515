"""Every exception nbfrost raises, in one place.

Messages say what happened *and* what to do next, because in a notebook the
message is usually all the user reads.
"""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import Iterable

__all__ = [
    "NbfrostError",
    "JobNotFound",
    "JobFailed",
    "JobCancelled",
    "JobTimeout",
    "WaitTimeout",
    "QueueFull",
    "RemoteJobError",
    "WaitInterrupted",
    "WaitDeadlock",
    "ResultReleased",
    "WorkerDied",
]


class NbfrostError(Exception):
    """Base class of nbfrost's own errors (except `JobCancelled`, see there)."""


class JobNotFound(NbfrostError, KeyError):
    """No job with this id is in the registry.

    The message says whether the id was never issued or whether the job
    finished and expired, and how long ago when that is known.
    """

    def __init__(self, job_id: object, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class JobFailed(NbfrostError):
    """Raised by `Tracker.result()` when the job raised.

    The original exception is chained as ``__cause__`` and kept as
    `original`; the job's formatted traceback is in `job_traceback`.
    """

    def __init__(self, message: str, *, job_id: int | None = None,
                 original: BaseException | None = None,
                 job_traceback: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.original = original
        self.job_traceback = job_traceback

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it: the job's own traceback (its frames
        in cells read ``Cell In[N], line L``), then this error's line,
        without nbfrost's frames between the two."""
        lines = self.job_traceback.rstrip("\n").splitlines() if self.job_traceback else []
        if lines:
            lines.append("")
        lines.append(f"{type(self).__name__}: {self}")
        return lines


class JobCancelled(concurrent.futures.CancelledError):
    """The job was cancelled.

    Raised by `Tracker.result()` for a cancelled job, by `nbfrost.progress()`
    inside a job once a cancel was requested, and asynchronously inside the
    worker thread by ``cancel(interrupt=True)``.  It subclasses
    `concurrent.futures.CancelledError`, so code written for futures catches
    it too.
    """


class JobTimeout(NbfrostError, TimeoutError):
    """The job ran longer than its ``timeout=`` and was failed.

    It is the recorded error of a timed-out job (so ``result()`` raises
    `JobFailed` chained from it), and it is raised asynchronously inside the
    job's thread to stop it.
    """


if sys.version_info >= (3, 11):
    _Timeout = TimeoutError  # concurrent.futures.TimeoutError is the builtin one
else:
    class _Timeout(TimeoutError, concurrent.futures.TimeoutError):
        """On Python 3.10 the builtin `TimeoutError` and
        `concurrent.futures.TimeoutError` are two classes: this is both."""


class WaitTimeout(NbfrostError, _Timeout):
    """A wait ran out of time: ``Tracker.result(timeout=)``,
    ``Tracker.exception(timeout=)`` or the iterator of ``map(timeout=)``.

    It is a `TimeoutError` and a `concurrent.futures.TimeoutError` on every
    Python nbfrost supports (they are one class from 3.11 on; on 3.10 this
    subclasses both), so ``except TimeoutError`` and
    ``except concurrent.futures.TimeoutError`` both catch it.  The job keeps
    running (``map()`` cancels the jobs still queued).
    """


class QueueFull(NbfrostError):
    """``queue()`` could not add a job: ``max_queue`` jobs are already waiting.

    Raised with ``block=False``, or when ``queue_timeout`` runs out.
    """


class RemoteJobError(NbfrostError):
    """Stands in for a job's exception that could not be pickled back from a
    Dask worker; its message names the original type and repeats its text.
    """


class WorkerDied(NbfrostError):
    """A job's worker process died while running it (``os._exit``, a
    segfault, the OOM killer, a signal from outside).  The message says
    which process and how it ended; the pool replaces the process.

    Attributes:
        exitcode: the process's exit code, or ``-N`` for signal N.
    """

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.exitcode))


class WaitInterrupted(KeyboardInterrupt):
    """A wait for jobs was interrupted (Ctrl-C, or the notebook's Stop button).

    Raised by `Tracker.wait`, `Tracker.result`, `Dispatcher.wait`,
    ``%frost wait`` and ``%frost result`` instead of a bare
    `KeyboardInterrupt`, which it subclasses: ``except KeyboardInterrupt``
    still catches it.  Only the wait stopped: the jobs keep running.  Its
    message names them (at most `SHOWN` of them) and says how to cancel
    them; in IPython that message is all that is shown, with no traceback.
    `pending` holds ``(id, name, state)`` of every job still not done.
    """

    #: How many unfinished jobs the message names; the rest are counted.
    SHOWN = 5

    def __init__(self, message: str = "stopped waiting",
                 pending: Iterable[tuple[int, str, str]] = ()) -> None:
        super().__init__(message)
        self.pending = tuple(pending)

    @classmethod
    def for_jobs(cls, pending: Iterable[tuple[int, str, str]]) -> WaitInterrupted:
        """The error for a wait interrupted while *pending* jobs
        (``(id, name, state)``) were not done."""
        pending = tuple(pending)
        if not pending:
            return cls("stopped waiting; every job had already ended", pending)
        n = len(pending)
        magics = _frost_magic_loaded()
        lines = [f"stopped waiting; {n} job{'s' if n != 1 else ''} "
                 f"keep{'s' if n == 1 else ''} running in the background:"]
        lines += [f"  job {i} {name!r} ({state})" for i, name, state in pending[:cls.SHOWN]]
        if n > cls.SHOWN:
            lister = "%frost jobs" if magics else "d.jobs()"
            lines.append(f"  ... and {n - cls.SHOWN} more ({lister} lists them)")
        first = pending[0][0]
        them = "them" if n != 1 else "it"
        if magics:
            lines.append(f"to stop {them}: %frost cancel {first}, or t.cancel() on its tracker")
        else:  # plain Python, or IPython without the magics: the API
            lines.append(f"to stop {them}: t.cancel() on its tracker t, "
                         f"or d.cancel({first}) on its dispatcher d")
        return cls("\n".join(lines), pending)

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it: the message alone, no traceback."""
        return f"{type(self).__name__}: {self}".splitlines()
class WaitDeadlock(NbfrostError, RuntimeError):
    """A job waited (``.result()``, ``.wait()``, ``d.wait()``) for a job of
    its own dispatcher that is still queued, while every worker of the pool
    runs a job that waits the same way: the awaited job could never start.

    Raised in the waiting job at once, instead of a wait that lasts until
    its timeout (or forever); that job fails with it, which frees its
    worker.  `waiter` and `awaited` are the two job ids.  Give the pool more
    workers, or queue the follow-up with ``after=[...]`` rather than
    waiting inside a job.
    """

    def __init__(self, message: str, *, waiter: int, awaited: int) -> None:
        super().__init__(message)
        self.waiter = waiter
        self.awaited = awaited


def _frost_magic_loaded() -> bool:
    """True where ``%frost`` works: in IPython with the magics loaded (read
    from ``sys.modules``: nothing is imported for it)."""
    import sys

    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    find = getattr(shell, "find_line_magic", None)
    return callable(find) and find("frost") is not None


class ResultReleased(NbfrostError):
    """Raised by `Tracker.result()` for a succeeded job whose value was
    handed to its only consumer and then dropped (the jobs of
    `Dispatcher.map` once their result was yielded).  The status stays.
    """
