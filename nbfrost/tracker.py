"""`Tracker`: the handle a user holds for one job.

`Tracker` is the API; the object `Dispatcher.queue` returns is the job's
record itself (`nbfrost.job.Job` subclasses Tracker), so a tracker keeps
working after the registry has expired the job and costs nothing extra.
It holds no state of its own: every answer comes from the record, under
the registry's rules.  A subclass may also wrap a record (``_job``) of a
dispatcher (``_dispatcher``) to change how it displays.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import threading
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

from .errors import JobCancelled, JobFailed, ResultReleased, WaitInterrupted
from .states import CANCELLED, FAILED, SUCCEEDED, TERMINAL, JobState, state_badge_html

if TYPE_CHECKING:
    from .dispatcher import Dispatcher
    from .job import Job, JobStatus

__all__ = ["Tracker", "wait_interrupted"]

_future_lock = threading.Lock()  # guards creation of a job's future view


class _Released:
    """The type of `RELEASED`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<nbfrost: result released>"


#: What a succeeded job's ``value`` becomes once `Job.release_result` ran.
RELEASED = _Released()


class _JobFuture(concurrent.futures.Future):
    """A `Future` view of a job; cancelling it cancels the job."""

    def __init__(self, tracker: Tracker) -> None:
        super().__init__()
        self._tracker = tracker

    def cancel(self) -> bool:
        self._tracker.cancel()
        return super().cancel() if self._tracker._job.state is CANCELLED else False

    def _job_started(self) -> None:
        """Called by the registry when the job starts; a view settles only
        when the job ends."""


class Tracker:
    """The handle to one queued job: status, waiting, result, cancel.

    Returned by `Dispatcher.queue` and by ``%%frost``.  Not created by
    users: the job's record is its own tracker, and a subclass provides
    ``_job`` and ``_dispatcher``.
    """

    __slots__ = ()
    _job: Job
    _dispatcher: Dispatcher

    # ------------------------------------------------------------ identity
    @property
    def id(self) -> int:
        """The job's id: an int, increasing, never reused in a dispatcher."""
        return self._job.id

    @property
    def name(self) -> str:
        """The job's name (``name=`` or the callable's name)."""
        return self._job.display_name

    @property
    def tags(self) -> tuple[str, ...]:
        return self._job.tags

    @property
    def state(self) -> JobState:
        """The current `JobState` (a cheaper ``status().state``)."""
        return self._job.state

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    # -------------------------------------------------------------- status
    def status(self) -> JobStatus:
        """An immutable `JobStatus` snapshot of the job, taken now."""
        return self._job.snapshot(self._dispatcher.registry.clock())

    def done(self) -> bool:
        """True once the job is in a terminal state."""
        return self._job.state in TERMINAL

    def running(self) -> bool:
        return self._job.state is JobState.RUNNING

    def cancelled(self) -> bool:
        return self._job.state is CANCELLED

    @property
    def output(self) -> str:
        """Everything the job wrote to stdout and stderr so far, in order."""
        return self._job.output

    # ------------------------------------------------------------- waiting
    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends or *timeout* seconds pass.

        Returns True if the job is done.  May be called many times and from
        many threads.

        Raises:
            WaitInterrupted: the wait was interrupted (the Stop button); the
                job keeps running.  A `KeyboardInterrupt`.
        """
        if self._job.state in TERMINAL:
            return True
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, got {timeout}")
        try:
            return self._dispatcher.registry.wait_for(self._job, timeout)
        except KeyboardInterrupt:
            # from None: the user sees which job keeps running, not our frames.
            raise wait_interrupted([self._job]) from None

    def result(self, timeout: float | None = None) -> Any:
        """The job's return value, waiting up to *timeout* seconds for it.

        Raises:
            TimeoutError: the job is not done after *timeout* seconds.
            JobFailed: the job raised (or timed out); the original exception
                is chained as ``__cause__``.  IPython shows the job's own
                traceback for it.
            JobCancelled: the job was cancelled.
            WaitInterrupted: the wait was interrupted; the job keeps running.
            ResultReleased: the job succeeded and its value was released
                (see `Dispatcher.map`).
        """
        self._wait_or_raise(timeout)
        job = self._job
        if job.state is SUCCEEDED:
            value = job.value
            if value is RELEASED:
                raise ResultReleased(
                    f"job {job.id} ({job.display_name}) succeeded, but its result was "
                    "handed to the iterator of Dispatcher.map() and then released; keep "
                    "the values map() yields, or use queue()/submit() to keep results")
            return value
        if job.state is FAILED:
            raise JobFailed(
                f"job {job.id} ({job.display_name}) failed: "
                f"{type(job.error).__name__}: {job.error_text}",
                job_id=job.id, original=job.error, job_traceback=job.traceback,
            ) from job.error
        raise JobCancelled(job.error_text or f"job {job.id} was cancelled")

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception the job raised, or None if it succeeded.

        Raises `TimeoutError` if it is not done in time and `JobCancelled`
        if it was cancelled, like `concurrent.futures.Future.exception`.
        """
        self._wait_or_raise(timeout)
        job = self._job
        if job.state is CANCELLED:
            raise JobCancelled(job.error_text or f"job {job.id} was cancelled")
        return job.error if job.state is FAILED else None

    def _wait_or_raise(self, timeout: float | None) -> None:
        if not self.wait(timeout):
            job = self._job
            raise TimeoutError(
                f"job {job.id} ({job.display_name}) is still {job.state.value} after "
                f"{timeout:g} s; wait longer, or cancel it with tracker.cancel()")

    # -------------------------------------------------------------- cancel
    def cancel(self, interrupt: bool = False) -> bool:
        """Cancel the job.  Returns True if it is, or will end, cancelled.

        A queued job is cancelled at once.  A running job is asked to stop
        (``nbfrost.cancelled()`` turns true inside it, ``nbfrost.progress()``
        raises `JobCancelled`); it ends cancelled when it returns.  With
        *interrupt*, it is marked cancelled at once and `JobCancelled` is
        raised inside its thread; that cannot break a blocking C call.
        False if the job had already finished.
        """
        return self._dispatcher._cancel_job(self._job, interrupt)

    # ----------------------------------------------------------- callbacks
    def add_done_callback(self, fn: Callable[[Tracker], Any]) -> None:
        """Call ``fn(tracker)`` when the job ends (at once if it has).

        Callbacks run in the thread that finished the job, after every lock
        is released.  One that raises is logged on the ``nbfrost`` logger.
        """
        if not callable(fn):
            raise TypeError(f"callback must be callable, got {type(fn).__name__}")
        tracker = self

        def call(_job: Job) -> None:
            fn(tracker)

        call.__qualname__ = getattr(fn, "__qualname__", repr(fn))
        if not self._dispatcher.registry.add_callback(self._job, call):
            try:
                fn(self)
            except Exception:
                import logging
                logging.getLogger("nbfrost").exception(
                    "nbfrost: done callback %r of job %s raised", fn, self.id)

    @property
    def future(self) -> concurrent.futures.Future:
        """A `concurrent.futures.Future` view, made on first use.

        Works with `concurrent.futures.wait` and `as_completed`.  A failed
        job's future holds the original exception; cancelling the future
        cancels the job.
        """
        details = self._job.ensure_details()
        with _future_lock:
            fut = details.future
            if fut is not None:
                return fut
            fut = details.future = _JobFuture(self)
        self.add_done_callback(_settle_future)
        return fut

    def __await__(self) -> Generator[Any, None, Any]:
        """``await tracker`` waits without blocking the event loop, then
        returns ``result()`` (or raises what it raises)."""
        if not self.done():
            yield from _await_done(self).__await__()
        return self.result()

    # ------------------------------------------------------------- display
    def __repr__(self) -> str:
        job = self._job
        return f"<Tracker job {job.id} {job.display_name!r} {job.state.value}>"

    def _repr_html_(self) -> str:
        job = self._job
        status = self.status()
        dur = "" if status.duration is None else f" · {status.duration:.2f} s"
        prog = ""
        if status.progress is not None and not status.complete:
            prog = f" · {status.progress:.0%}"
        err = ""
        if status.error and job.state is not SUCCEEDED:
            err = f' · <span style="color:#dc2626">{html.escape(status.error)}</span>'
        return (f'<span class="nbfrost-tracker">job {job.id} '
                f'<b>{html.escape(status.name)}</b> {state_badge_html(status.state)}'
                f'{dur}{prog}{err}</span>')


def wait_interrupted(jobs: Iterable[Job]) -> WaitInterrupted:
    """The `WaitInterrupted` for a wait on *jobs* that was interrupted:
    it names those not done yet."""
    return WaitInterrupted.for_jobs(
        (j.id, j.display_name, j.state.value) for j in jobs if j.state not in TERMINAL)


def _settle_future(tracker: Tracker) -> None:
    job = tracker._job
    details = job.details  # made before the future, so never None here
    fut = None if details is None else details.future
    if fut is None or fut.done():
        return
    if job.state is CANCELLED:
        concurrent.futures.Future.cancel(fut)
        fut.set_running_or_notify_cancel()
        return
    if fut.set_running_or_notify_cancel():
        if job.state is SUCCEEDED:
            fut.set_result(job.value)
        else:
            fut.set_exception(job.error)


async def _await_done(tracker: Tracker) -> None:
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def settle() -> None:
        if not waiter.done():
            waiter.set_result(None)

    def wake(_t: Tracker) -> None:
        loop.call_soon_threadsafe(settle)

    tracker.add_done_callback(wake)
    await waiter

