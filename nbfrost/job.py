"""The job model: states, the internal job record, and the `JobStatus` snapshot.

`Job` is the one mutable record per job.  The registry's lock guards every
transition of it; readers outside the lock only look at fields in the order
the writers publish them (see `Job.snapshot`).  `JobStatus` is the immutable
copy that users, JSON, frames and the dashboard see.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import html
import json
import os
import threading
import types
from _thread import LockType
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .capture import OutputBuffer

# The states live in their own module (see there); they are re-exported here
# because this is where the rest of nbfrost has always imported them from.
from .states import (
    _ALLOWED,
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    STATE_COLOURS,
    SUCCEEDED,
    TERMINAL,
    JobState,
    state_badge_html,
)
from .tracebacks import format_traceback
from .tracker import Tracker, read_only

if TYPE_CHECKING:
    from .protocols import JobOwner

__all__ = ["JobState", "TERMINAL", "Job", "JobStatus", "StatusList",
           "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED",
           "STATE_COLOURS", "state_badge_html"]

_UTC = timezone.utc
_FunctionType = types.FunctionType
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _ts(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, _UTC)


def describe_callable(fn: Any) -> str:
    """A short human name for a callable or a JobRunner object."""
    if type(fn) is _FunctionType:  # the common case, on every queue(): kept cheap
        return fn.__qualname__
    self_obj = getattr(fn, "__self__", None)
    if getattr(fn, "__name__", None) == "run" and self_obj is not None:
        return type(self_obj).__name__
    for attr in ("__qualname__", "__name__"):
        name = getattr(fn, attr, None)
        if isinstance(name, str):
            return name
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None and inner is not fn:
        return describe_callable(inner)
    return type(fn).__name__


#: Guards only the creation of a job's `_JobDetails` (rare, never nested).
_DETAILS_LOCK = threading.Lock()


class _JobDetails:
    """The rarely used part of a job record, made on first use.

    Most jobs never need any of this, so it costs them one ``None`` slot
    (`Job.details`).  Fields that a job's own thread and the registry share
    are guarded by the registry's lock, like the record's.
    """

    __slots__ = ("waiters", "callbacks", "dependents", "pending_deps",
                 "future", "out", "quiet", "interrupted",
                 "traceback", "timeout", "deadline", "retries", "progress", "message",
                 "schedule")

    def __init__(self) -> None:
        #: Locks of threads waiting for the job to end (released when it does).
        self.waiters: list[LockType] | None = None
        #: Done callbacks, ``f(job)``, run after the job ends.
        self.callbacks: list[Callable[[Job], None]] | None = None
        #: Jobs that wait for this one to succeed.
        self.dependents: list[Job] | None = None
        #: How many of this job's dependencies have not succeeded yet.
        self.pending_deps = 0
        #: The `Tracker.future` view, once asked for.
        self.future: concurrent.futures.Future[Any] | None = None
        #: Captured output, kept up to the job's cap.
        self.out: OutputBuffer | None = None
        #: Output is captured but not echoed to the notebook.
        self.quiet = False
        #: An asynchronous exception was sent to the job's thread.
        self.interrupted = False
        #: (the error, its formatted traceback), cached for that error.
        self.traceback: tuple[BaseException | None, str] | None = None
        #: Seconds the job may run (retries included), or None.
        self.timeout: float | None = None
        #: When the timeout runs out (``time.monotonic()``), set when the job
        #: starts: checked again when an attempt ends, so that a late timer
        #: thread cannot let a job that overran end succeeded.
        self.deadline: float | None = None
        #: How many more times a job that raised is run.
        self.retries = 0
        #: Last reported fraction done and message, or None.
        self.progress: float | None = None
        self.message: str | None = None
        #: The id of the schedule this job is a run of, or None.
        self.schedule: int | None = None


class Job(Tracker):
    """The mutable record of one job, which is also its `Tracker`.

    `Dispatcher.queue` returns the record itself, typed and documented as a
    `Tracker`.  One object per job instead of a record plus a handle: every
    kept object is rescanned by the garbage collector, so a separate handle
    per job would add to every collection on the hot path (the figure is
    in ``docs/performance.md``).

    The user sees only the Tracker's API: the record's fields are slots
    with private names (``_state``, ``_value``, ...), `Tracker.__dir__`
    lists the API alone (so ``dir()`` and tab completion show nothing
    else), and the API's properties cannot be set.  The fields belong to
    the engine: the registry writes them under its lock (every transition),
    backends and the history writer read them, as CPython's
    ``concurrent.futures`` reads ``future._state``.  The few methods and
    read-only properties the engine calls (`snapshot`, `ensure_details`,
    `write_output`, `set_progress`, ``display_name``, ...) cannot be set
    either, and are not listed.

    What nobody needs any more is let go: a job that succeeds drops
    ``_fn``, ``_args`` and ``_kwargs`` (a failed or cancelled one keeps
    them for `Dispatcher.retry`), and `Registry.release` drops the value
    once its only consumer has it (``map()``).  So ``_label`` is set when
    the job is made, from ``name=`` or the callable, and never read from
    ``_fn`` later.

    Memory and the hot path matter here (a registry may hold 100k finished
    jobs), so the record has ``__slots__`` for what every job uses and one
    slot, ``_details``, for a `_JobDetails` that holds what few jobs use
    (waiters, callbacks, dependents, captured output, timeout, retries,
    progress, ...).  Nothing per job is allocated on the hot path unless a
    feature asks for it.  Every slot counts: the collector visits each slot
    of each kept record on every collection it survives.
    """

    __slots__ = (
        "_id", "_fn", "_args", "_kwargs", "_label", "_tags", "_state",
        "_queued_at", "_started_at", "_finished_at", "_value", "_error",
        "_worker", "_attempts", "_caller_context", "_cancel_requested", "_details",
        "_owner",  # the dispatcher (a `JobOwner`)
        # The cached JobStatus of a finished job.  A slot of the record, not
        # of `_details`: a status(id) lookup then reads one object fewer,
        # which on 100k records is one cache miss fewer.
        "_final_status",
        "__weakref__",  # trackers could always be weakly referenced
    )
    #: Its members are the engine's, not the user's API: `Tracker.__dir__`
    #: leaves them out.
    _internal = True

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 label: str | None, tags: tuple[str, ...], timeout: float | None,
                 retries: int, caller_context: contextvars.Context | None, queued_at: float,
                 owner: JobOwner) -> None:
        self._id = -1
        # Typed as always set: only the worker calls it, and only before the
        # job succeeds, when the registry sets it to None (retry() checks).
        self._fn: Callable[..., Any] = fn
        self._args = args
        self._kwargs = kwargs
        # Named now: the callable is dropped once the job succeeds.
        # (describe_callable's common case inlined: a call per queue() shows.)
        self._label: str = (label if label is not None
                            else fn.__qualname__ if fn.__class__ is _FunctionType
                            else describe_callable(fn))
        self._tags = tags
        self._state = QUEUED
        self._queued_at = queued_at
        self._started_at: float | None = None
        self._finished_at: float | None = None
        self._value: Any = None  # the user's return value
        self._error: BaseException | None = None
        self._worker: str | None = None
        self._attempts = 0
        # The queuing code's `contextvars.Context` (a copy, possibly shared
        # with other jobs; see Dispatcher._caller_context), which the job runs
        # in.  Not a `capture.JobContext`: that is the worker's side.
        self._caller_context = caller_context
        self._cancel_requested = False
        self._final_status: JobStatus | None = None
        self._details: _JobDetails | None = None
        if timeout is not None or retries:
            # Not shared with any thread yet: no need for ensure_details()'s lock.
            details = self._details = _JobDetails()
            details.timeout = timeout
            details.retries = retries
        self._owner = owner

    @property
    def _job(self) -> Job:  # type: ignore[override]  # Tracker's wrappers set _job; here it is self
        # Tracker's methods reach the record through ``_job``; here it is
        # the object itself (a property, not a slot: a slot holding self
        # would be a reference cycle in every job).
        return self

    def ensure_details(self) -> _JobDetails:
        """The `_JobDetails` part, created on first use.

        Created under a lock: the worker (first output) and another thread
        (first wait, callback, snapshot) may both get here first, and the
        loser's fields, say a waiter's lock, must not be dropped.
        """
        details = self._details
        if details is None:
            with _DETAILS_LOCK:
                details = self._details
                if details is None:
                    details = self._details = _JobDetails()
        return details

    # Fields of `_details`, read through the record (read-only: the
    # registry and backends write them in `_details` itself).
    @property
    def timeout(self) -> float | None:
        """Seconds the job may run, or None."""
        details = self._details
        return None if details is None else details.timeout

    @property
    def interrupted(self) -> bool:
        """Whether an asynchronous exception was sent to the job's thread."""
        details = self._details
        return False if details is None else details.interrupted

    @property
    def progress(self) -> float | None:
        """Last reported fraction done, or None."""
        details = self._details
        return None if details is None else details.progress

    @property
    def message(self) -> str | None:
        """Last reported message, or None."""
        details = self._details
        return None if details is None else details.message

    def set_progress(self, fraction: float | None, message: str | None) -> None:
        """Record a progress report; None leaves that part as it was."""
        details = self.ensure_details()
        if fraction is not None:
            details.progress = fraction
        if message is not None:
            details.message = message

    @property
    def schedule_id(self) -> int | None:
        """The id of the schedule this job is a run of, or None."""
        details = self._details
        return None if details is None else details.schedule

    @property
    def retries(self) -> int:
        """How many more times a job that raised is run."""
        details = self._details
        return 0 if details is None else details.retries

    @property
    def echo(self) -> bool:
        """Whether the job's output is echoed to the notebook (not ``quiet``)."""
        details = self._details
        return details is None or not details.quiet

    # -- helpers used by the registry (always under its lock) ---------------
    def check_transition(self, new: JobState) -> None:
        if new not in _ALLOWED.get(self._state, ()):
            raise RuntimeError(
                f"nbfrost bug: illegal transition {self._state.value} -> "
                f"{new.value} for job {self._id} ({self.display_name})")

    @property
    def display_name(self) -> str:
        return self._label

    @property
    def error_text(self) -> str | None:
        error = self._error
        if error is None:
            return None
        text = str(error)
        return text if text else type(error).__name__

    @property
    def traceback(self) -> str | None:
        """The formatted traceback of the job's error, from the user's code down.

        Formatted on first use and cached (failures are rare; formatting is not).
        """
        error = self._error
        if error is None:
            return None
        details = self.ensure_details()
        if details.traceback is None or details.traceback[0] is not error:
            details.traceback = (error, format_job_traceback(error))
        return details.traceback[1]

    # -- output capture ------------------------------------------------------
    def write_output(self, text: str, cap: int) -> bool:
        """Append captured output, keeping at most *cap* characters.

        Returns whether the text should also be echoed to the notebook.
        """
        details = self._details
        if details is None:
            details = self.ensure_details()
        out = details.out
        if out is None:
            out = details.out = OutputBuffer()
        out.write(text, cap)
        return not details.quiet

    # -- snapshot ------------------------------------------------------------
    def snapshot(self, now: float) -> JobStatus:
        """Build a `JobStatus`.  Terminal snapshots are cached: they never change.

        Safe without the registry lock: writers set the times and results
        *before* they publish the new state, so a terminal state read here
        implies its fields are complete.
        """
        cached = self._final_status
        if cached is not None:
            return cached
        state = self._state
        # A queued job has not started: ignore what a concurrent start()
        # writes after `state` was read (it publishes the state last).
        queued = state is QUEUED
        started = None if queued else self._started_at
        complete = state in TERMINAL
        finished = self._finished_at if complete else None
        if started is None:
            duration = None
        elif finished is not None:
            duration = finished - started
        else:
            duration = max(0.0, now - started)
        error = None if queued else self._error
        status = JobStatus(
            id=self._id,
            name=self.display_name,
            state=state,
            complete=complete,
            success=(state is SUCCEEDED) if complete else None,
            error=None if queued else self.error_text,
            error_type=type(error).__name__ if error is not None else None,
            traceback=self.traceback if error is not None else None,
            queued_at=_ts(self._queued_at),
            started_at=_ts(started),
            finished_at=_ts(finished),
            duration=duration,
            worker=None if queued else self._worker,
            progress=self.progress,
            message=self.message,
            tags=self._tags,
            attempts=0 if queued else self._attempts,
            schedule=self.schedule_id,
        )
        if complete:
            self._final_status = status
        return status


if not TYPE_CHECKING:
    # The record's read-only helpers refuse to be set with a message, as the
    # tracker's API does (same getters: reading them costs nothing more).
    for _name in ("timeout", "interrupted", "progress", "message", "retries", "echo",
                  "display_name", "error_text", "traceback", "schedule_id"):
        setattr(Job, _name, read_only(Job.__dict__[_name], "read the job's status with "
                                      "tracker.status()"))
    del _name


def bulk_jobs(fn: Callable[..., Any], arg_tuples: Iterable[tuple[Any, ...]],
              kwargs: dict[str, Any], label: str, first_id: int, queued_at: float,
              caller_context: contextvars.Context | None, owner: JobOwner) -> list[Job]:
    """Records for ``fn(*args)`` per tuple of *arg_tuples*, with ids from
    *first_id* on (reserved with `Registry.reserve_ids`): the bulk path.

    What `Job.__init__` does, for many plain jobs at once (no timeout, no
    retries, no tags; *fn*, *kwargs* and *label* already checked, and
    shared by every record): one allocation and the slot stores, no call
    per record.  A copy kept because it pays: calling `Job` per record
    instead made the ``map()`` path 17-20% slower per item, wall-clock
    (benchmarks/ab.py, same run, 9 interleaved rounds on a loaded 2-core
    machine: medians 8.14 against 6.80 µs, +17% paired by round; its CPU
    time +1 to +6%).  ``tests/unit/test_lifecycle_paths.py`` checks, slot by slot, that
    both fill every field.
    """
    new = object.__new__
    out: list[Job] = []
    append = out.append
    job_id = first_id
    for args in arg_tuples:
        job = new(Job)
        job._id = job_id
        job._fn = fn
        job._args = args
        job._kwargs = kwargs
        job._label = label
        job._tags = ()
        job._state = QUEUED
        job._queued_at = queued_at
        job._started_at = None
        job._finished_at = None
        job._value = None
        job._error = None
        job._worker = None
        job._attempts = 0
        job._caller_context = caller_context
        job._cancel_requested = False
        job._final_status = None
        job._details = None
        job._owner = owner
        append(job)
        job_id += 1
    return out


def format_job_traceback(error: BaseException) -> str:
    """Format *error*'s traceback, starting at the user's code rather than
    at nbfrost's worker loop.  Plain text; frames of notebook cells read
    ``Cell In[N], line L`` as in IPython's own tracebacks."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return format_traceback(error, tb)


_JSON_TIME_FIELDS = ("queued_at", "started_at", "finished_at")


@dataclass(frozen=True, slots=True)
class JobStatus:
    """An immutable snapshot of one job, like Bifröst's ``JobStatus``.

    Times are timezone-aware UTC datetimes (or ``None``); ``duration`` is in
    seconds (for a running job, so far).  ``success`` is ``None`` until the
    job is complete.  ``to_dict()``/``to_json()`` follow Bifröst's rule and
    leave ``success`` and ``finished_at`` out until they are set.
    """

    id: int
    name: str
    state: JobState
    complete: bool
    success: bool | None
    error: str | None
    error_type: str | None
    traceback: str | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None
    worker: str | None
    progress: float | None
    message: str | None
    tags: tuple[str, ...]
    attempts: int
    #: The id of the schedule this job is a run of (`Dispatcher.every`, ...), or None.
    schedule: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ISO 8601 times, state as its string value.

        ``success`` and ``finished_at`` are left out until they are set.
        """
        d: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state.value,
            "complete": self.complete,
        }
        if self.success is not None:
            d["success"] = self.success
        d["error"] = self.error
        d["error_type"] = self.error_type
        d["traceback"] = self.traceback
        for key in _JSON_TIME_FIELDS:
            value = getattr(self, key)
            if value is None and key == "finished_at":
                continue
            d[key] = value.isoformat() if value is not None else None
        d["duration"] = self.duration
        d["worker"] = self.worker
        d["progress"] = self.progress
        d["message"] = self.message
        d["tags"] = list(self.tags)
        d["attempts"] = self.attempts
        d["schedule"] = self.schedule
        return d

    def to_json(self, **kwargs: Any) -> str:
        """``json.dumps(self.to_dict(), **kwargs)``."""
        return json.dumps(self.to_dict(), **kwargs)

    # -- notebook display ----------------------------------------------------
    def _repr_html_(self) -> str:
        return _status_table_html([self])

    def __repr__(self) -> str:
        bits = [f"id={self.id}", f"name={self.name!r}", f"state={self.state.value}"]
        if self.duration is not None:
            bits.append(f"duration={self.duration:.3g}s")
        if self.progress is not None and not self.complete:
            bits.append(f"progress={self.progress:.0%}")
        if self.error is not None:
            bits.append(f"error={self.error!r}")
        return f"JobStatus({', '.join(bits)})"


class StatusList(list):
    """A plain list of `JobStatus` that renders as a table in notebooks."""

    def _repr_html_(self) -> str:
        return _status_table_html(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps([s.to_dict() for s in self], **kwargs)


def _status_table_html(statuses: Iterable[JobStatus]) -> str:
    esc = html.escape
    rows = []
    for s in statuses:
        dur = "" if s.duration is None else f"{s.duration:.3f} s"
        prog = "" if s.progress is None else f"{s.progress:.0%}"
        rows.append(
            "<tr>"
            f"<td>{s.id}</td><td>{esc(s.name)}</td><td>{state_badge_html(s.state)}</td>"
            f"<td>{esc(', '.join(s.tags))}</td><td>{dur}</td><td>{prog}</td>"
            f"<td>{esc(s.message or '')}</td><td>{esc(s.error or '')}</td>"
            "</tr>")
    head = ("<tr><th>id</th><th>name</th><th>state</th><th>tags</th>"
            "<th>duration</th><th>progress</th><th>message</th><th>error</th></tr>")
    return f'<table class="nbfrost-status">{head}{"".join(rows)}</table>'

