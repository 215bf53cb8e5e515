"""The worker side of the Dask backend: what runs inside a worker process.

`run_job` is the task nbfrost submits, one per attempt.  It runs the job
with per-job output capture and a `JobContext` whose ``cancelled()`` and
``report()`` talk to the client, and it never raises: it returns an
`AttemptResult`.  While it runs, it sends `Started` and `Progress` messages
as worker events on a topic private to the submitting backend.

Dask ships functions by reference (module path), so everything a worker
runs lives here, at module level, importable on the worker; nothing here
imports the client side.
"""

from __future__ import annotations

import logging
import threading
import time
import types
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from ...capture import CURRENT, JobContext, ensure_installed
from ..remote import WorkerJob, format_remote_tb, portable_error, run_coroutine_watched

__all__ = ["AttemptResult", "AttemptSpec", "POLL_INTERVAL", "Progress", "START_REPORT_DELAY",
           "Started", "forget_cancelled", "mark_cancelled", "parse_event", "run_job"]

log = logging.getLogger("nbfrost")

#: Seconds between two looks at a job's cancel flag on the worker, and
#: between two progress messages sent from one job.
POLL_INTERVAL = 0.1

#: A job is reported running once it has run this long on a worker (or at
#: its first progress report).  Shorter jobs are reported started and
#: finished together, when their result arrives: one message less per job.
START_REPORT_DELAY = 0.02


# ------------------------------------------------------------------ messages
class AttemptSpec(NamedTuple):
    """What `run_job` needs besides the job's callable and arguments."""

    topic: str       # the submitting backend's event topic
    job_id: int
    attempt: int     # 1 for the first run, +1 per retry
    output_cap: int  # characters of output kept
    flag_name: str   # name of the job's cancel `distributed.Event`


class Started(NamedTuple):
    """Worker → client: an attempt runs on *worker* (sent as a worker event)."""

    job_id: int
    attempt: int
    worker: str      # the worker's address
    seconds: float   # how long it had run when sent (the worker's clock)


class Progress(NamedTuple):
    """Worker → client: a job's latest progress report (sent as a worker event)."""

    job_id: int
    fraction: float | None
    message: str | None


# Worker events must be msgpack-serializable, so they travel as plain lists
# tagged by kind and become named tuples again on the client (`parse_event`).
_KIND: dict[type, str] = {Started: "s", Progress: "p"}
_BY_KIND: dict[str, type[Started] | type[Progress]] = {"s": Started, "p": Progress}


def _event(msg: Started | Progress) -> list[Any]:
    return [_KIND[type(msg)], *msg]


def parse_event(payload: Any) -> Started | Progress | None:
    """The message a worker event carries, or None if it is not one of ours."""
    try:
        return _BY_KIND[payload[0]](*payload[1:])
    except (KeyError, IndexError, TypeError):
        return None


class AttemptResult(NamedTuple):
    """What `run_job` returns to the client: the outcome of one attempt."""

    ok: bool                 # True: *value* is the result; False: the error
    value: Any               # the job's return value or its (picklable) exception
    traceback: str | None    # the worker's formatted traceback, when it failed
    output: str              # captured stdout/stderr, truncated at the cap
    progress: float | None   # the last progress report
    message: str | None
    worker: str              # the worker's address
    seconds: float           # how long the attempt ran (the worker's clock)


# ----------------------------------------------------------- job stand-ins
# The worker-side job record is `remote.WorkerJob`, shared with the process pool.
_WorkerJob = WorkerJob


class _WorkerContext(JobContext):
    """The `JobContext` of one attempt running on a Dask worker.

    It tells the client that the attempt started once it has run for
    `START_REPORT_DELAY` seconds (a shorter attempt is reported started and
    finished together, by its result), or at its first progress report.
    ``cancelled()`` polls the job's distributed Event at most every
    `POLL_INTERVAL` seconds; ``report()`` sends progress as a worker event,
    at most one per interval (the last one is sent when the interval ends,
    and it also comes back with the result).
    """

    __slots__ = ("worker", "topic", "flag_name", "started", "start_msg", "next_poll",
                 "last_sent", "flush_due", "active", "lock")

    job: _WorkerJob

    def __init__(self, spec: AttemptSpec, worker: Any) -> None:
        super().__init__(spec.output_cap)
        self.job = _WorkerJob(spec.job_id)
        self.worker = worker
        self.topic = spec.topic
        self.flag_name = spec.flag_name
        self.started = time.monotonic()
        # (job id, attempt, address) until the start is reported, then None.
        self.start_msg: tuple[int, int, str] | None = (spec.job_id, spec.attempt,
                                                       worker.address)
        self.next_poll = 0.0
        self.last_sent = 0.0
        self.flush_due = False
        self.active = True
        self.lock = threading.Lock()  # guards start_msg, last_sent, flush_due, active
        _StartReporter.of(worker).watch(self)

    def _take_start(self, unless_finished: bool = False) -> Started | None:
        """The start message if it is still to be sent; it is taken once.
        With *unless_finished*, None once the attempt has finished (its
        result then reports the start)."""
        with self.lock:
            start, self.start_msg = self.start_msg, None
            if unless_finished and not self.active:
                return None
        if start is None:
            return None
        return Started(*start, seconds=time.monotonic() - self.started)

    def _report_start(self) -> None:
        start = self._take_start(unless_finished=True)
        if start is not None:
            self.worker.log_event(self.topic, _event(start))

    def cancelled(self) -> bool:
        job = self.job
        if job._cancel_requested:
            return True
        skip = _CANCELLED.get(self.topic)
        if skip and job.id in skip:  # cancelled before the client saw it start
            job._cancel_requested = True
            return True
        now = time.monotonic()
        if now < self.next_poll:
            return False
        self.next_poll = now + POLL_INTERVAL
        from distributed import Event
        try:
            flag = Event(self.flag_name).is_set()
        except Exception:  # the scheduler is gone: nothing can ask us to stop
            log.debug("nbfrost: could not read the cancel flag %s", self.flag_name, exc_info=True)
            return False
        if flag:
            job._cancel_requested = True
        return bool(flag)

    def report(self, fraction: float | None, message: str | None) -> None:
        super().report(fraction, message)
        now = time.monotonic()
        with self.lock:
            if now - self.last_sent >= POLL_INTERVAL:
                self.last_sent = now
                send = True
            else:
                send = False
                if not self.flush_due:
                    self.flush_due = True
                    delay = self.last_sent + POLL_INTERVAL - now
                    loop = self.worker.loop
                    loop.add_callback(loop.call_later, delay, self._flush)
        if send:
            self._send()

    def _flush(self) -> None:
        with self.lock:
            self.flush_due = False
            if not self.active:
                return  # the result carries the last values
            self.last_sent = time.monotonic()
        self._send()

    def _send(self) -> None:
        job = self.job
        start = self._take_start()
        if start is not None:  # progress implies it started: say so first
            self.worker.log_event(self.topic, _event(start))
        self.worker.log_event(self.topic, _event(Progress(job.id, job.progress, job.message)))

    def close(self) -> None:
        with self.lock:
            self.active = False
        _StartReporter.of(self.worker).unwatch(self)


class _StartReporter:
    """Per worker: sends the "started" message of attempts that have run
    for `START_REPORT_DELAY` seconds.

    One timer on the worker's event loop serves all of them, armed only
    while an attempt is being watched, so a stream of short jobs costs no
    message and almost no wake-up of the loop.
    """

    _lock = threading.Lock()  # guards _by_worker
    _by_worker: ClassVar[dict[int, _StartReporter]] = {}

    @classmethod
    def of(cls, worker: Any) -> _StartReporter:
        reporter = cls._by_worker.get(id(worker))
        if reporter is None or reporter.worker is not worker:
            with cls._lock:
                reporter = cls._by_worker.get(id(worker))
                if reporter is None or reporter.worker is not worker:
                    reporter = cls._by_worker[id(worker)] = cls(worker)
        return reporter

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.lock = threading.Lock()  # guards watched, armed
        self.watched: dict[_WorkerContext, float] = {}  # context -> when it is due
        self.armed = False

    def watch(self, attempt: _WorkerContext) -> None:
        with self.lock:
            self.watched[attempt] = time.monotonic() + START_REPORT_DELAY
            if self.armed:
                return
            self.armed = True
        loop = self.worker.loop
        loop.add_callback(loop.call_later, START_REPORT_DELAY, self._tick)

    def unwatch(self, attempt: _WorkerContext) -> None:
        with self.lock:
            self.watched.pop(attempt, None)

    def _tick(self) -> None:
        """On the worker's event loop: report the attempts now due."""
        now = time.monotonic()
        with self.lock:
            due = [c for c, t in self.watched.items() if t <= now]
            for c in due:
                del self.watched[c]
            later = min(self.watched.values(), default=None)
            self.armed = later is not None
        for c in due:
            c._report_start()
        if later is not None:
            self.worker.loop.call_later(max(0.0, later - now), self._tick)


# ------------------------------------------------------------- the task
_portable_error = portable_error


def _format_tb(exc: BaseException) -> str:
    # Skip this wrapper's own frame: the traceback starts at the user's code.
    return format_remote_tb(exc, run_job.__code__)


#: In a worker process: per backend topic, the ids of jobs cancelled before
#: they started, pushed by the client (`mark_cancelled`) so that a task the
#: worker had already taken is skipped rather than run.
_CANCELLED: dict[str, set[int]] = {}


def mark_cancelled(topic: str, ids: list[int]) -> None:
    """Run on every worker (``client.run``): never start these jobs."""
    _CANCELLED.setdefault(topic, set()).update(ids)


def forget_cancelled(topic: str) -> None:
    """Run on every worker (``client.run``) when the backend stops."""
    _CANCELLED.pop(topic, None)


def run_job(spec: AttemptSpec, fn: Callable[..., Any], args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> AttemptResult | None:
    """Run one attempt of a job on a Dask worker (the task nbfrost submits).

    Returns the attempt's `AttemptResult`, or None for a job cancelled
    before it started.  It never raises, so every outcome goes through the
    registry's rules on the client.
    """
    from distributed import get_worker

    skip = _CANCELLED.get(spec.topic)
    if skip and spec.job_id in skip:
        skip.discard(spec.job_id)
        return None  # cancelled while queued
    worker = get_worker()
    address = worker.address
    ensure_installed()
    context = _WorkerContext(spec, worker)
    previous = getattr(CURRENT, "ctx", None)
    CURRENT.ctx = context
    tb: str | None
    try:
        value = fn(*args, **kwargs)
        if value.__class__ is types.CoroutineType:  # an async def job
            # The cancel flag is polled in the loop's executor: reading it is
            # a blocking call to the scheduler.  A cancel, with or without
            # interrupt, or a timeout raises CancelledError at its ``await``.
            value = run_coroutine_watched(value, context.cancelled, POLL_INTERVAL, blocking=True)
        ok, tb = True, None
    except BaseException as exc:  # a job never kills the worker's thread
        ok, value, tb = False, _portable_error(exc), _format_tb(exc)
        exc.__traceback__ = None  # drop the frames (and what they hold) now
    finally:
        CURRENT.ctx = previous
        context.close()
    job = context.job
    ran = time.monotonic() - context.started
    return AttemptResult(ok, value, tb, job.output, job.progress, job.message, address, ran)
