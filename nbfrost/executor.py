"""`concurrent.futures` for a dispatcher: the futures `submit` returns and
the result iterator of `map`.

`Dispatcher` subclasses `concurrent.futures.Executor` and keeps the
protocol's pieces here, so that the pool (`dispatcher`), the lifecycle
(`registry`) and the protocol stay apart, as in CPython's
``concurrent.futures``.  A job made by ``submit`` or ``map`` is an ordinary
job: it has an id, a status, shows in the dashboard and the history.  What
the protocol adds:

* ``submit`` returns an `ExecutorFuture`: it turns *running* when the job
  starts (``set_running_or_notify_cancel`` is called then, by the registry),
  and *finished* when it ends, with the job's result or its **original**
  exception, as `ThreadPoolExecutor`'s futures do.  ``future.cancel()``
  cancels a job only while it is queued, and returns False once it runs.
* ``map`` submits every call at once, then yields results in order,
  lazily.  Each result is handed over: once yielded, neither the iterator
  nor the registry keeps it (the job keeps its status; its ``result()``
  is then None).
* Once an executor job has succeeded, its callable and arguments are
  dropped (nothing can ``retry()`` it), so that nothing is kept alive by a
  future the caller already discarded.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from . import capture
from .errors import WaitTimeout
from .states import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED

if TYPE_CHECKING:
    from .job import Job
    from .registry import Registry

__all__ = ["ExecutorFuture", "attach_future", "enqueue", "map_results"]

_PENDING = "PENDING"  # concurrent.futures._base's state names (plain strings)
_RUNNING = "RUNNING"


_T = TypeVar("_T")


class ExecutorFuture(concurrent.futures.Future[_T]):
    """The `concurrent.futures.Future` of a job made by `Dispatcher.submit`.

    Its state follows the job's: pending while queued, running while it
    runs, then done.  It is also the job's ``tracker.future``.
    """

    def __init__(self, job: Job) -> None:
        super().__init__()
        self._job = job

    @property
    def job_id(self) -> int:
        """The id of the job behind this future (for ``d.status(...)``)."""
        return self._job._id

    def cancel(self) -> bool:
        """Cancel the job if it is still queued.

        Returns True if the future is cancelled, False if the job already
        runs or has finished (as `concurrent.futures.Future.cancel`).
        """
        with self._condition:
            if self._state in (_RUNNING, "FINISHED"):
                return False
            if self._state in ("CANCELLED", "CANCELLED_AND_NOTIFIED"):
                return True
        job = self._job
        if job._owner.cancel_job(job, queued_only=True):
            return True  # the job's done callback has cancelled this future
        return self.cancelled()

    def _job_started(self) -> None:
        """The registry started the job: pending → running."""
        with self._condition:
            if self._state == _PENDING:
                self._state = _RUNNING

    def __repr__(self) -> str:
        return super().__repr__().replace(" at ", f" job {self._job._id} at ", 1)


def attach_future(job: Job) -> ExecutorFuture:
    """Give a job that is not queued yet its `ExecutorFuture`."""
    fut: ExecutorFuture[Any] = ExecutorFuture(job)
    details = job.ensure_details()  # not shared with any thread yet: no lock needed
    details.future = fut
    details.callbacks = [_settle]
    return fut


def enqueue(job: Job, registry: Registry, max_queue: int) -> ExecutorFuture:
    """`Dispatcher.submit`'s path: give *job* (made, not queued yet) its
    future and queue it, waiting for room when *max_queue* is set."""
    fut = attach_future(job)
    if max_queue:
        registry.reserve(True, None)
    capture.ensure_installed()
    if registry.add(job):
        registry.on_ready(job)  # the backend's submit
    return fut


def _settle(job: Job) -> None:
    """The done callback of an executor job: finish its future, then drop
    what a succeeded job no longer needs."""
    # Released first, so that whoever the future wakes finds it done.
    job._owner.release_result(job, forget=False)
    fut = job._details.future if job._details is not None else None
    if isinstance(fut, ExecutorFuture) and not fut.done():
        state = job._state
        if state is SUCCEEDED:
            fut.set_result(job._value)
        elif state is FAILED:
            fut.set_exception(job._error)
        elif state is CANCELLED:
            if fut.running():
                # Cancelled while it ran (cancel(interrupt=True), shutdown's
                # timeout): a running future cannot be cancelled, so it ends
                # with the `JobCancelled` (a `CancelledError`) instead.
                fut.set_exception(job._error)
            else:
                concurrent.futures.Future.cancel(fut)
                fut.set_running_or_notify_cancel()


def _take(job: Job, registry: Registry, deadline: float | None) -> Any:
    """Wait for *job*, hand its result over (the registry forgets it) and
    return it, or raise its exception; cancel it if it is not done in time."""
    try:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not registry.wait_for(job, timeout):
            raise WaitTimeout(
                f"map(): job {job._id} ({job.display_name}) did not finish within the "
                "timeout; pass a larger timeout=, or none")
        state = job._state
        if state is SUCCEEDED:
            return registry.release(job, value=True)
        error = job._error
        assert error is not None
        if state is CANCELLED and not isinstance(error, concurrent.futures.CancelledError):
            raise concurrent.futures.CancelledError(str(error)) from error
        try:
            raise error
        finally:
            error = None  # no cycle through the traceback's frame
    finally:
        registry.cancel(job, queued_only=True)


def map_results(jobs: list[Job], registry: Registry, timeout: float | None,
                chunksize: int = 1) -> Iterator[Any]:
    """Yield the results of *jobs* in order, as `Executor.map` does.

    The first exception is raised at its position; `WaitTimeout` (both
    `TimeoutError`s) once
    *timeout* seconds (from now) have passed.  Closing the iterator early,
    or an exception, cancels the jobs still queued.  The iterator keeps no
    reference to a result it has yielded, and neither does the registry.
    *jobs* went to the workers in chunks of *chunksize*: the iterator waits
    once per chunk (for its last job), and takes the results of finished
    jobs a run at a time.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    results = _results(jobs, registry, deadline, chunksize)
    next(results)  # into the try: closing it before the first result cancels too
    return results


def _results(jobs: list[Job], registry: Registry, deadline: float | None,
             chunksize: int) -> Iterator[Any]:
    jobs.reverse()  # taken from the end: each job is dropped as it is yielded
    total = len(jobs)
    try:
        yield None  # taken by map_results
        release_run = registry.release_run
        while jobs:
            job = jobs[-1]
            state = job._state
            if state is SUCCEEDED:  # the common case: no wait, nothing to cancel
                values = release_run(jobs)
                pop = values.pop
                while values:
                    yield pop()
                continue
            if state is QUEUED or state is RUNNING:
                # Wait for the last job of its chunk (the chunk runs in
                # order): one wait per chunk, not per job.
                at = total - len(jobs)  # its position in the map
                end = min(total, (at // chunksize + 1) * chunksize) - 1
                if end > at:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    registry.wait_for(jobs[total - 1 - end], left)
                    if job._state is SUCCEEDED:
                        continue
            jobs.pop()
            yield _take(job, registry, deadline)
    finally:
        for job in jobs:
            registry.cancel(job, queued_only=True)
