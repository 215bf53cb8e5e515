"""`Tracker`: the handle a user holds for one job.

`Tracker` is the API; the object `Dispatcher.queue` returns is the job's
record itself (`nbfrost.job.Job` subclasses Tracker), so a tracker keeps
working after the registry has expired the job and costs nothing extra.
It holds no state of its own: every answer comes from the record, under
the registry's rules, and what it cannot answer from the record it asks
the job's owner (the dispatcher, through the `JobOwner` protocol).  A
subclass may also wrap a record (``_job``) to change how it displays.

A user sees the API and nothing else: ``dir()`` (and so tab completion)
lists it alone, the record's fields have private names, and the API's
properties refuse to be set with a message that says what to do instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import threading
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

from .errors import JobCancelled, JobFailed, ResultReleased, WaitInterrupted, WaitTimeout
from .states import CANCELLED, FAILED, SUCCEEDED, TERMINAL, JobState, state_badge_html

if TYPE_CHECKING:
    from .dispatcher import Dispatcher
    from .job import Job, JobStatus

__all__ = ["Tracker", "wait_interrupted", "read_only"]

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
        return super().cancel() if self._tracker._job._state is CANCELLED else False

    def _job_started(self) -> None:
        """Called by the registry when the job starts; a view settles only
        when the job ends."""


def read_only(prop: property, hint: str) -> property:
    """*prop*, with a setter that raises `AttributeError` saying *hint*
    (the getter is the same function: reading costs nothing more)."""
    name = prop.fget.__name__  # type: ignore[union-attr]

    def refuse(self: Tracker, value: object) -> None:
        raise AttributeError(f"tracker.{name} is read-only: {hint}")

    return property(prop.fget, refuse, None, prop.__doc__)


#: What a user who reaches for a job's callable or arguments is told.
_FIXED = ("what a job runs is fixed when it is queued; to run it again, "
          "tracker.dispatcher.retry(tracker)")


class _NotAField:
    """A name a user may reach for on a tracker that is not its API (a field
    of the record behind it): reading or setting it raises `AttributeError`
    saying what to use instead.  The record's own fields have private names,
    so the engine never goes through this."""

    __slots__ = ("name", "hint")

    def __init__(self, hint: str) -> None:
        self.name = ""
        self.hint = hint

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        raise AttributeError(f"a tracker has no {self.name!r}: {self.hint}")

    def __set__(self, obj: object, value: object) -> None:
        raise AttributeError(f"tracker.{self.name} cannot be set: a tracker is read-only; "
                             f"{self.hint}")


def _api_names(cls: type) -> tuple[str, ...]:
    """The public names of *cls*'s API: those of the classes in its MRO,
    except classes that hold a record's internals (``_internal = True``,
    see `nbfrost.job.Job`).  Worked out once per class."""
    names = _API_NAMES.get(cls)
    if names is None:
        found: set[str] = set()
        for klass in cls.__mro__:
            if klass is object or klass.__dict__.get("_internal", False):
                continue
            found.update(n for n, v in klass.__dict__.items()
                         if not n.startswith("_") and not isinstance(v, _NotAField))
        names = _API_NAMES[cls] = tuple(sorted(found))
    return names


_API_NAMES: dict[type, tuple[str, ...]] = {}  # a cache; a race only computes twice


class _TrackerType(type):
    """The type of trackers: ``dir()`` of a tracker *class* lists its API
    too (IPython's plain completer reads the class's ``dir()`` as well as
    the instance's)."""

    def __dir__(cls) -> list[str]:
        return list(_api_names(cls))


class Tracker(metaclass=_TrackerType):
    """The handle to one queued job: status, waiting, result, cancel.

    Returned by `Dispatcher.queue` and by ``%%frost``.  Not created by
    users: the job's record is its own tracker, and a subclass provides
    ``_job``.  Its properties are read-only.
    """

    __slots__ = ()
    _job: Job

    # ------------------------------------------------------------ identity
    @property
    def id(self) -> int:
        """The job's id: an int, increasing, never reused in a dispatcher."""
        return self._job._id

    @property
    def name(self) -> str:
        """The job's name (``name=`` or the callable's name)."""
        return self._job.display_name

    @property
    def tags(self) -> tuple[str, ...]:
        """The job's tags (``tags=``)."""
        return self._job._tags

    @property
    def state(self) -> JobState:
        """The current `JobState` (a cheaper ``status().state``)."""
        return self._job._state

    @property
    def dispatcher(self) -> Dispatcher:
        """The `Dispatcher` that queued the job."""
        return self._job._owner  # type: ignore[return-value]  # every owner is a Dispatcher

    # -------------------------------------------------------------- status
    def status(self) -> JobStatus:
        """An immutable `JobStatus` snapshot of the job, taken now."""
        return self._job.snapshot(self._job._owner.clock())

    def done(self) -> bool:
        """True once the job is in a terminal state."""
        return self._job._state in TERMINAL

    def running(self) -> bool:
        return self._job._state is JobState.RUNNING

    def cancelled(self) -> bool:
        return self._job._state is CANCELLED

    @property
    def output(self) -> str:
        """Everything the job wrote to stdout and stderr so far, in order."""
        details = self._job._details
        return details.out.getvalue() if details is not None and details.out is not None else ""

    # ------------------------------------------------------------- waiting
    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends or *timeout* seconds pass.

        Returns True if the job is done.  May be called many times and from
        many threads.

        Raises:
            WaitInterrupted: the wait was interrupted (the Stop button); the
                job keeps running.  A `KeyboardInterrupt`.
        """
        if self._job._state in TERMINAL:
            return True
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, got {timeout}")
        try:
            return self._job._owner.wait_for_job(self._job, timeout)
        except KeyboardInterrupt:
            # from None: the user sees which job keeps running, not our frames.
            raise wait_interrupted([self._job]) from None

    def result(self, timeout: float | None = None) -> Any:
        """The job's return value, waiting up to *timeout* seconds for it.

        Raises:
            WaitTimeout: the job is not done after *timeout* seconds (a
                `TimeoutError` and a `concurrent.futures.TimeoutError`).
            JobFailed: the job raised (or timed out); the original exception
                is chained as ``__cause__``.  IPython shows the job's own
                traceback for it.
            JobCancelled: the job was cancelled.
            WaitInterrupted: the wait was interrupted; the job keeps running.
            ResultReleased: the job succeeded and its value was released
                (see `Dispatcher.map`).
        """
        try:
            self._wait_or_raise(timeout)
        except WaitInterrupted as exc:
            # The traceback starts here: the caller's line and this one, not
            # nbfrost's waiting frames below it.
            raise exc.with_traceback(None) from None
        job = self._job
        if job._state is SUCCEEDED:
            value = job._value
            if value is RELEASED:
                raise ResultReleased(
                    f"job {job._id} ({job.display_name}) succeeded, but its result was "
                    "handed to the iterator of Dispatcher.map() and then released; keep "
                    "the values map() yields, or use queue()/submit() to keep results")
            return value
        if job._state is FAILED:
            raise JobFailed(
                f"job {job._id} ({job.display_name}) failed: "
                f"{type(job._error).__name__}: {job.error_text}",
                job_id=job._id, original=job._error, job_traceback=job.traceback,
            ) from job._error
        raise JobCancelled(job.error_text or f"job {job._id} was cancelled")

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception the job raised, or None if it succeeded.

        Raises `WaitTimeout` (a `TimeoutError`) if it is not done in time and `JobCancelled`
        if it was cancelled, like `concurrent.futures.Future.exception`.
        """
        try:
            self._wait_or_raise(timeout)
        except WaitInterrupted as exc:
            raise exc.with_traceback(None) from None  # as in result()
        job = self._job
        if job._state is CANCELLED:
            raise JobCancelled(job.error_text or f"job {job._id} was cancelled")
        return job._error if job._state is FAILED else None

    def _wait_or_raise(self, timeout: float | None) -> None:
        if not self.wait(timeout):
            job = self._job
            raise WaitTimeout(
                f"job {job._id} ({job.display_name}) is still {job._state.value} after "
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
        return self._job._owner.cancel_job(self._job, interrupt)

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
        if not self._job._owner.add_job_callback(self._job, call):
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

    # ----------------------------------------------------------- the API only
    def __dir__(self) -> list[str]:
        """The tracker's API, and nothing of the record behind it (this is
        what ``dir()`` and tab completion show)."""
        return list(_api_names(type(self)))

    if not TYPE_CHECKING:
        # At run time the properties refuse to be set with a message that
        # says what to do instead; for type checkers they stay read-only
        # properties, so that an assignment is flagged before it runs.
        id = read_only(id, "a job's id is given when it is queued")
        name = read_only(name, "name a job when you queue it: d.queue(fn, name=...)")
        tags = read_only(tags, "tag a job when you queue it: d.queue(fn, tags=...)")
        state = read_only(state, "a job's state follows the job; use tracker.cancel() "
                                  "to stop it, or Dispatcher.retry() to run it again")
        dispatcher = read_only(dispatcher, "a job stays with the dispatcher that queued it")
        output = read_only(output, "it is what the job printed")
        future = read_only(future, "it is made on first use")

        # The record's fields by the names a user may try (they are private).
        value = _NotAField("its return value is tracker.result()")
        error = _NotAField("its exception is tracker.exception()")
        fn = _NotAField(_FIXED)
        args = _NotAField(_FIXED)
        kwargs = _NotAField(_FIXED)
        label = _NotAField("its name is tracker.name")
        queued_at = _NotAField("read it from tracker.status()")
        started_at = _NotAField("read it from tracker.status()")
        finished_at = _NotAField("read it from tracker.status()")
        worker = _NotAField("read it from tracker.status()")
        attempts = _NotAField("read it from tracker.status()")
        cancel_requested = _NotAField("cancel the job with tracker.cancel()")
        details = _NotAField("read tracker.status()")

    # ------------------------------------------------------------- display
    def __repr__(self) -> str:
        job = self._job
        return f"<Tracker job {job._id} {job.display_name!r} {job._state.value}>"

    def _repr_html_(self) -> str:
        job = self._job
        status = self.status()
        dur = "" if status.duration is None else f" · {status.duration:.2f} s"
        prog = ""
        if status.progress is not None and not status.complete:
            prog = f" · {status.progress:.0%}"
        err = ""
        if status.error and job._state is not SUCCEEDED:
            err = f' · <span style="color:#dc2626">{html.escape(status.error)}</span>'
        return (f'<span class="nbfrost-tracker">job {job._id} '
                f'<b>{html.escape(status.name)}</b> {state_badge_html(status.state)}'
                f'{dur}{prog}{err}</span>')


def wait_interrupted(jobs: Iterable[Job]) -> WaitInterrupted:
    """The `WaitInterrupted` for a wait on *jobs* that was interrupted:
    it names those not done yet."""
    return WaitInterrupted.for_jobs(
        (j._id, j.display_name, j._state.value) for j in jobs if j._state not in TERMINAL)


def _settle_future(tracker: Tracker) -> None:
    job = tracker._job
    details = job._details  # made before the future, so never None here
    fut = None if details is None else details.future
    if fut is None or fut.done():
        return
    if job._state is CANCELLED:
        concurrent.futures.Future.cancel(fut)
        fut.set_running_or_notify_cancel()
        return
    if fut.set_running_or_notify_cancel():
        if job._state is SUCCEEDED:
            fut.set_result(job._value)
        else:
            fut.set_exception(job._error)


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

