"""The registry: the single source of truth for every job's state.

It owns the id → job map and *all* lifecycle rules (legal transitions, times,
retries, dependencies, expiry, waiters, callbacks).  Backends only call
`start`, `finish` and `restart`; the dispatcher calls `add`, `cancel` and
`time_out`.  So a new backend cannot change how a job behaves.

Why one module: every section (adding, running single jobs
and map() chunks, cancelling, waiting, lookups, counts, expiry) reads and
writes the same few fields under the same lock, and the hot sections inline
what elsewhere would be a call.  Lookups sweep expired jobs and `not_found`
reads what the sweep remembers; the counters that `stats` reports are kept
by the transitions.  Split along any of those lines, the lock rules would
span two files.  What does not touch the lock's fields lives elsewhere: the
listing filters in `filters.py`, the output budget's accounting in
`budget.py`.  The module reads in the order of a job's life: add,
start/finish, cancel, completion, waiting, lookups, expiry.

Lock discipline: ``_lock`` guards ``_jobs``, every job's ``state`` and the
fields written with it, the counters and ``_version``.  It is held only for a
few attribute writes; user code, callbacks, events and I/O always run after
it is released.

The hot sections (`add`, `start`, `finish`) also make no function call while
they hold the lock: the clock is read before, the expiry queue is appended
to after.  CPython switches threads only at calls and loop jumps, so a
thread is never switched out while holding the lock, and the pool's workers
never convoy behind it.  (A call inside would let a thread be switched out
while it holds the lock, and the other workers would block and wake one by
one behind it; the figure is in ``docs/performance.md``.)
"""

from __future__ import annotations

import logging
import threading
import time
import types
from _thread import allocate_lock as _allocate_lock
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from . import defaults
from .budget import OutputBudget
from .errors import JobCancelled, JobNotFound, JobTimeout, QueueFull
from .filters import matcher, normalize_states, take
from .job import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, TERMINAL, Job, JobState
from .states import StateFilter
from .tracker import RELEASED

if TYPE_CHECKING:
    from .protocols import WorkerSlot

__all__ = ["Registry"]

log = logging.getLogger("nbfrost")

#: How many purged ids (at least; at most twice as many) remember their
#: finish time, for precise `JobNotFound` messages.  Bounded, so memory
#: stays flat under any load.
_RECENT_PURGES = 4096
_THROUGHPUT_WINDOW = defaults.THROUGHPUT_WINDOW  # seconds
_NO_KWARGS: dict[str, Any] = {}  # shared by released jobs; never mutated
_CORO = types.CoroutineType  # what an async def function returns


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.3g} s"


class Registry:
    """Thread-safe id → job map with lifecycle rules and expiry.

    Not usually used directly: `Dispatcher` wraps it.  *clock* returns epoch
    seconds and is injectable so that tests can drive expiry without sleeping.
    """

    def __init__(self, *, expiry: float | None = defaults.EXPIRY, max_queue: int = defaults.MAX_QUEUE,
                 output_budget: int | None = defaults.OUTPUT_BUDGET,
                 clock: Callable[[], float] = time.time) -> None:
        self.expiry = expiry
        self.clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._next_id = 0
        self._first_id = 0  # ids below it belonged to an earlier registry (see start_ids_at)
        # Finished jobs in finish order.  Appended to *after* the lock is
        # released (deque.append is atomic), popped only under the lock.
        self._expiring: deque[Job] = deque()
        self._recent_purges: dict[int, float] = {}  # id -> finished_at
        # Runs of ids that clear() removed: (first, last, when), newest last,
        # at most defaults.CLEARED_RUNS of them, so that a lookup can say
        # "cleared" rather than "expired".  A clear of thousands of jobs is
        # a few runs (the gaps are the jobs it kept).
        self._cleared: deque[tuple[int, int, float]] = deque(maxlen=defaults.CLEARED_RUNS)
        # Counters, all under _lock.  Plain ints on the hot path; the count
        # of finished jobs *held* per state is finished - dropped.
        self._queued = 0
        self._running = 0
        self._finished = dict.fromkeys(TERMINAL, 0)  # ever finished, per outcome
        self._dropped = dict.fromkeys(TERMINAL, 0)   # expired or cleared
        self._idle = threading.Condition(self._lock)
        self._idle_waiters = 0
        # The output budget (see budget.py), all under _lock.  Expired and
        # cleared jobs leave it (see _sweep, clear), so what is counted is
        # what the registry holds.
        self.budget = OutputBudget(output_budget)
        self._version = 0
        # Throughput comes from finish times: the first finish at least a
        # second after the last mark records (its time, the finished total
        # before it).  Every finish between two marks happened within a
        # second of the earlier one, so counting from the marks is exact to
        # a second, whenever stats() is first read; the hot path pays one
        # float comparison, and at most one window of marks is kept.
        self._marks: deque[tuple[float, int]] = deque()
        self._next_mark = float("-inf")
        self._created = clock()
        # A slot per waiting job when max_queue > 0; released when the job
        # leaves the queued state, whichever way it leaves.
        self._max_queue = max_queue
        self._space = threading.BoundedSemaphore(max_queue) if max_queue > 0 else None
        # Hooks set by the dispatcher.
        self.on_ready: Callable[[Job], None] = lambda job: None
        self.on_start_timed: Callable[[Job], None] = lambda job: None
        #: Called once, under the lock, when the first job finishes (from
        #: `_mark`, which the finish paths already call): the dispatcher
        #: starts its expiry timer there (see `next_expiry`).
        self.on_first_finish: Callable[[], None] | None = None
        # The history inbox (see nbfrost.history): on every transition,
        # under the lock, ``history_inbox[job] = event`` ("queued",
        # "running", "retry", "succeeded", ...).  A dict store, not a call:
        # any call here, even to C code, lets the GIL switch threads while
        # the lock is held (see above), and the workers then convoy behind
        # it.  The history writer takes the filled inbox with
        # `swap_history_inbox`.  None: no history is kept.
        self.history_inbox: dict[Job, str] | None = None
        # Replaced, never mutated, so completion can iterate without a lock.
        self.listeners: tuple[Callable[[Job], None], ...] = ()

    # ------------------------------------------------------------------ add
    def reserve(self, block: bool, timeout: float | None) -> None:
        """Take a queue slot (only with max_queue); raise `QueueFull` if none."""
        space = self._space
        if space is None:
            return
        if not space.acquire(block, timeout if block else None):
            raise QueueFull(
                f"the queue already holds max_queue={self._max_queue} waiting "
                "jobs; wait for some to start, pass block=True, or raise "
                "Dispatcher(max_queue=...)")

    def unreserve(self) -> None:
        if self._space is not None:
            self._space.release()

    def add(self, job: Job, deps: Iterable[Job] = ()) -> bool:
        """Insert *job*, give it an id.  Return True if it may run now.

        With dependencies it runs only once all of them have succeeded; if
        one already failed or was cancelled, the job is cancelled at once.
        """
        failed_dep = None
        pending = 0
        now = self.clock()
        with self._lock:
            job_id = job._id = self._next_id
            self._next_id = job_id + 1
            job._queued_at = now
            self._jobs[job_id] = job
            self._queued += 1
            self._version += 1
            if deps:
                pending, failed_dep = self._link(job, deps)
            if self.history_inbox is not None:
                self.history_inbox[job] = "queued"
            exp = self._expiring
            # Jobs in _expiring are finished: finished_at is a float (no
            # check for the type checker here, the lock is held).
            if (exp and self.expiry is not None
                    and exp[0]._finished_at <= now - self.expiry):  # type: ignore[operator]
                self._sweep(now)
        if failed_dep is not None:
            self._cancel_for_dependency(job, failed_dep)
            return False
        return pending == 0

    def start_ids_at(self, first: int) -> None:
        """Number this registry's jobs from *first*: a registry that takes
        over from another in the same process (``%reload_ext nbfrost``)
        so that an id never means two jobs.  Only before the first job."""
        with self._lock:
            if self._next_id != self._first_id:
                raise RuntimeError("start_ids_at() must come before the first job")
            self._next_id = self._first_id = first

    @property
    def next_id(self) -> int:
        """The id the next job will get."""
        return self._next_id

    def reserve_ids(self, n: int) -> int:
        """Set aside *n* consecutive ids for `add_many`; return the first."""
        with self._lock:
            first = self._next_id
            self._next_id = first + n
        return first

    def add_many(self, jobs: list[Job]) -> None:
        """Insert *jobs* (no dependencies; made by `nbfrost.job.bulk_jobs`, so
        they carry consecutive ids from `reserve_ids` and their queued time), all under
        one lock acquisition; they may run now.

        The inserts are C loops (``dict.update``): like the rest of this
        module's hot sections, no Python call while the lock is held.
        """
        if not jobs:
            return
        now = self.clock()
        first = jobs[0]._id
        with self._lock:
            self._jobs.update(zip(range(first, first + len(jobs)), jobs))
            if self.history_inbox is not None:
                self.history_inbox.update(dict.fromkeys(jobs, "queued"))
            self._queued += len(jobs)
            self._version += 1
            exp = self._expiring
            if (exp and self.expiry is not None
                    and exp[0]._finished_at <= now - self.expiry):  # type: ignore[operator]  # see add
                self._sweep(now)

    @staticmethod
    def _link(job: Job, deps: Iterable[Job]) -> tuple[int, Job | None]:
        """Register *job* with its unfinished dependencies.  Caller holds the lock.

        Returns (how many are pending, a dependency that already failed).
        """
        pending = 0
        for dep in deps:
            if dep._state is SUCCEEDED:
                continue
            if dep._state in TERMINAL:
                return pending, dep
            pending += 1
            details = dep.ensure_details()
            if details.dependents is None:
                details.dependents = []
            details.dependents.append(job)
        if pending:
            job.ensure_details().pending_deps = pending
        return pending, None

    # ------------------------------------------------------------- running
    def start(self, job: Job, worker: str, at: float | None = None) -> bool:
        """queued → running.  False if the job was cancelled meanwhile.

        *at* (this registry's clock) is when it started, for a backend that
        learns of a start after the fact (Dask); never before it was queued.
        """
        # Outside the lock: keep the critical section short.
        now = self.clock() if at is None else max(at, job._queued_at)
        with self._lock:
            if job._state is not QUEUED:
                return False
            job._started_at = now
            job._worker = worker
            job._attempts = 1
            job._state = RUNNING
            self._queued -= 1
            self._running += 1
            self._version += 1
            if self.history_inbox is not None:
                self.history_inbox[job] = "running"
        if self._space is not None:
            self._space.release()
        details = job._details  # the timeout lives there (a slot read, not a property call)
        if details is not None:
            if details.timeout is not None:
                details.deadline = time.monotonic() + details.timeout
                self.on_start_timed(job)
            future = details.future
            if future is not None:
                # A submit() future turns running.  Both kinds of job future
                # (tracker._JobFuture, executor.ExecutorFuture) define it.
                future._job_started()  # type: ignore[attr-defined]
        return True

    def restart(self, job: Job) -> bool:
        """Begin another attempt of a running job.  False if it ended meanwhile."""
        with self._lock:
            if job._state is not RUNNING:
                return False
            job._attempts += 1
            job._error = None
            self._version += 1
            if self.history_inbox is not None:
                self.history_inbox[job] = "retry"
            return True

    def finish(self, job: Job, result: Any, error: BaseException | None) -> bool:
        """End an attempt.  Return True if the backend should run it again.

        A job that was already ended elsewhere (a timeout, an interrupting
        cancel) keeps the state it was given; this attempt's outcome is
        dropped.

        An attempt that ends after the job's deadline fails it with
        `JobTimeout`, whatever it returned: the timer thread that enforces
        timeouts may be late on a busy machine, the deadline is not.
        """
        details = job._details
        if details is not None and details.deadline is not None \
                and time.monotonic() >= details.deadline:
            self.time_out(job)  # no interrupt: the attempt is over
            return False
        now = self.clock()
        with self._lock:
            if job._state is not RUNNING:
                return False
            if error is None and not job._cancel_requested:
                # The common case, written out rather than calling
                # _complete(): the critical section makes no call, so the
                # GIL cannot switch threads while the lock is held and
                # workers never queue up behind it (see the module doc).
                job._value = result
                job._finished_at = now
                job._caller_context = None
                # Nobody runs a succeeded job again (retry() refuses): let
                # its callable and arguments go now, not at expiry.
                job._fn = None  # type: ignore[assignment]  # see Job.__init__
                job._args = ()
                job._kwargs = _NO_KWARGS
                job._state = SUCCEEDED  # published last: see Job.snapshot
                self._running -= 1
                if now >= self._next_mark:
                    self._mark(now)
                self._finished[SUCCEEDED] += 1
                self._version += 1
                if self.history_inbox is not None:
                    self.history_inbox[job] = "succeeded"
                if self._idle_waiters and not (self._queued or self._running):
                    self._idle.notify_all()
            elif job._cancel_requested:
                job._error = (error if isinstance(error, JobCancelled)
                             else JobCancelled(f"job {job._id} was cancelled while running"))
                self._complete(job, CANCELLED, now)
            else:
                job._error = error
                if job._attempts <= job.retries:
                    self._version += 1  # the error shows until the next attempt
                    return True
                self._complete(job, FAILED, now)
        if job._details is not None or self.listeners:
            self._after_complete(job)
        else:
            self._expiring.append(job)
        return False

    def run_chunk(self, chunk: list[Job], worker: str, slot: WorkerSlot  # noqa: C901 - inlined for speed
                  ) -> tuple[Job, Any, BaseException | None] | None:
        """Start, call and finish the jobs of *chunk* (jobs left, last
        first) one after another, on the calling worker: the bulk path's
        loop, for `ThreadBackend`.

        Per job, one lock acquisition and one clock reading: the finish of
        a job and the start of the next are one critical section (so its
        finish time is the next one's start time), which sets
        ``slot.job`` (the worker's `JobContext`, where `interrupt` finds
        the job) at the start.  The call is ``job._fn(*args, **kwargs)`` in
        the current context: the caller runs a whole chunk, which is one
        ``map()`` call, in one copy of its context.

        A job that needs more than that goes through the general methods,
        here: one with details (a waiter, a callback, a timeout) or a
        cancel request, or any job while a listener is subscribed, is
        started with `start` and finished with `finish`.  A job whose call
        raised, returned a coroutine or printed (``slot.lane`` is set) is
        returned as ``(job, result, error)``, running and in ``slot.job``,
        for the caller to finish (retries, event loop, output); it then
        calls this again for the rest.
        Returns None once the chunk is empty.  ``list.pop`` is atomic, so
        a job is taken by exactly one thread (see `ThreadBackend.grace_expired`).

        A copy of `start` and `finish`'s common case, kept because it pays:
        folded onto them (a start and a finish per job, two lock
        acquisitions), the ``map()`` path cost 39% more CPU per item
        (benchmarks/ab.py, same run, medians of 9 interleaved rounds on a
        loaded 2-core machine: 2.90 against 2.09 µs; +49% wall-clock,
        paired by round).  The scenario table of
        ``tests/lifecycle.py`` checks that both give the same outcomes.
        """
        if self._space is not None:
            raise RuntimeError("nbfrost bug: run_chunk with max_queue")
        lock = self._lock
        clock = self.clock
        pop = chunk.pop
        finished = self._finished
        job: Job | None = None
        result: Any = None
        while True:
            nxt: Job | None = None
            started = False
            try:
                try:
                    nxt = pop()
                except IndexError:
                    nxt = None
                now = clock()
                with lock:
                    # No call in here (see the module doc).
                    inbox = self.history_inbox
                    plain = not self.listeners
                    done = False
                    if job is not None and plain and job._details is None \
                            and job._state is RUNNING and not job._cancel_requested:
                        job._value = result
                        job._finished_at = now
                        job._caller_context = None
                        job._fn = None  # type: ignore[assignment]  # as in finish
                        job._args = ()
                        job._kwargs = _NO_KWARGS
                        job._state = SUCCEEDED  # published last: see Job.snapshot
                        self._running -= 1
                        if now >= self._next_mark:
                            self._mark(now)
                        finished[SUCCEEDED] += 1
                        if inbox is not None:
                            inbox[job] = "succeeded"
                        done = True
                    # The next one starts here only after this one finished
                    # here (else after its general finish: times in order).
                    if nxt is not None and (done or job is None) and plain \
                            and nxt._details is None and nxt._state is QUEUED:
                        nxt._started_at = now
                        nxt._worker = worker
                        nxt._attempts = 1
                        nxt._state = RUNNING
                        slot.job = nxt
                        self._queued -= 1
                        self._running += 1
                        if inbox is not None:
                            inbox[nxt] = "running"
                        started = True
                    elif done:
                        slot.job = None
                    self._version += 1
                    if self._idle_waiters and not (self._queued or self._running):
                        self._idle.notify_all()
                if done:
                    self._expiring.append(job)  # type: ignore[arg-type]  # done: not None
                elif job is not None:
                    # Someone waits on it, a listener, a cancel: the general path.
                    slot.job = None
                    self.finish(job, result, None)
                    self.clear_pending_interrupt(job, slot.clear_interrupt)
                result = job = None
                if nxt is None:
                    return None
                if not started:
                    if nxt._state is not QUEUED or not self.start(nxt, worker):
                        nxt = None
                        continue  # cancelled while queued
                    slot.job = nxt
                    started = True
                job, nxt = nxt, None
            except BaseException:
                # An interrupt aimed at a job that has already ended
                # (cancelled or timed out: they are sent after that) landed
                # here, after its call returned.  A job taken but not
                # started goes back.
                slot.job = None
                if nxt is not None and not started:
                    chunk.append(nxt)
                result = job = None
                continue
            try:
                kwargs = job._kwargs
                result = job._fn(*job._args, **kwargs) if kwargs else job._fn(*job._args)
                if result.__class__ is _CORO or slot.lane is not None:
                    # An async def job (the caller runs it), or one that
                    # printed (its output goes out before it ends).
                    return job, result, None
            except BaseException as exc:  # a job never kills a worker
                return job, None, exc

    def chunks_in_bulk(self) -> bool:
        """Whether `run_chunk` may run chunks: no ``max_queue`` (with one,
        every start releases a slot, and a chunk's jobs start one by one)."""
        return self._space is None

    # ------------------------------------------------------------- cancel
    def cancel(self, job: Job, *, interrupt: bool = False,
               reason: str | None = None,
               on_running: Callable[[Job, type[BaseException]], None] | None = None,
               queued_only: bool = False) -> bool:
        """Cancel *job*.  Return True if it is, or will end, cancelled.

        Queued: cancelled at once.  Running: ``cancel_requested`` is set (the
        job sees it through ``nbfrost.cancelled()``); with *interrupt* it is
        marked cancelled at once and *on_running* is called, under the lock,
        to raise `JobCancelled` in its thread.  Finished: False.  With
        *queued_only* (``Future.cancel``'s rule) a running job is left alone
        and False returned.
        """
        released = False
        with self._lock:
            state = job._state
            if state in TERMINAL or (queued_only and state is not QUEUED):
                return False
            if state is QUEUED:
                job._error = JobCancelled(reason or f"job {job._id} was cancelled before it started")
                self._complete(job, CANCELLED, self.clock())
                released = True
            else:
                job._cancel_requested = True
                self._version += 1
                if not interrupt:
                    return True
                job._error = JobCancelled(reason or f"job {job._id} was cancelled and interrupted")
                self._complete(job, CANCELLED, self.clock())
                if on_running is not None:
                    job.ensure_details().interrupted = True
                    on_running(job, JobCancelled)
        if released:
            self.unreserve()
        self._after_complete(job)
        return True

    def release(self, job: Job, *, value: bool) -> Any:
        """Forget a *succeeded* job's result (with *value*); return it.

        For jobs of ``map()``: the iterator hands the result to its caller,
        so the registry keeps only the status, and the job's ``result()``
        raises `ResultReleased` afterwards.  (Its callable and arguments
        went when it succeeded, see `finish`.)  A job in any other state is
        left as it is and None returned.
        """
        with self._lock:
            if job._state is not SUCCEEDED:
                return None
            result = job._value
            if value:
                job._value = RELEASED
            return result if result is not RELEASED else None

    def release_run(self, jobs: list[Job], limit: int = 1024) -> list[Any]:
        """`release` (with the value) for the succeeded jobs at the end of
        *jobs*, up to *limit* of them, all under one lock acquisition:
        `map()`'s results, handed over a run at a time.

        Those jobs are removed from *jobs*; their results are returned in
        the same order, so that ``pop()`` hands them out as *jobs* would
        (from its end).
        """
        n = len(jobs)
        stop = max(0, n - limit)
        i = n
        while i > stop and jobs[i - 1]._state is SUCCEEDED:  # terminal: no lock needed to see it
            i -= 1
        k = n - i
        values: list[Any] = [None] * k
        with self._lock:  # no call in here (see the module doc)
            j = k
            while j:
                j -= 1
                job = jobs[i + j]
                result = job._value
                if result is not RELEASED:
                    values[j] = result
                    job._value = RELEASED
        del jobs[i:]
        return values

    def time_out(self, job: Job,
                 on_running: Callable[[Job, type[BaseException]], None] | None = None) -> bool:
        """Fail a running job with `JobTimeout`.  False if it already ended.

        The timeout bounds the job's whole running time, retries included.
        """
        with self._lock:
            if job._state is not RUNNING:
                return False
            job._error = (JobTimeout(
                f"job {job._id} exceeded its timeout of {job.timeout:g} s; "
                "raise timeout= or make the job check nbfrost.cancelled()"))
            self._complete(job, FAILED, self.clock())
            if on_running is not None:
                job.ensure_details().interrupted = True
                on_running(job, JobTimeout)
        self._after_complete(job)
        return True

    def swap_history_inbox(self, new: dict[Job, str] | None) -> dict[Job, str] | None:
        """Install *new* as the history inbox and return the previous one.

        Under the lock, so that no transition lands in a dict the history
        writer has already taken.
        """
        with self._lock:
            old, self.history_inbox = self.history_inbox, new
        return old

    def clear_pending_interrupt(self, job: Job, clear: Callable[[], None]) -> None:
        """Run *clear* under the lock if an interrupt was sent to *job*.

        Backends call this when a worker leaves an interrupted job, so that
        no interrupt meant for it can land in the next job.
        """
        details = job._details
        if details is not None and details.interrupted:
            with self._lock:
                clear()

    # --------------------------------------------------------- completion
    def _complete(self, job: Job, new: JobState, now: float) -> None:
        """Move *job* to terminal state *new*.  Caller holds ``_lock``.

        This is the hot path's second half: plain attribute and int updates
        only; everything that can wait runs in `_after_complete`.
        """
        old = job._state
        if old is RUNNING:
            self._running -= 1
        elif old is QUEUED:
            self._queued -= 1
        else:
            job.check_transition(new)  # raises: a terminal job cannot end twice
        job._finished_at = now
        job._caller_context = None  # drop the captured context (and what it references)
        job._state = new  # published last: see Job.snapshot
        if now >= self._next_mark:
            self._mark(now)
        self._finished[new] += 1
        self._version += 1
        if self.history_inbox is not None:
            self.history_inbox[job] = new.value
        if self._idle_waiters and not (self._queued or self._running):
            self._idle.notify_all()

    def _after_complete(self, job: Job) -> None:
        """Queue for expiry, count its output, wake waiters, run callbacks,
        release dependents.

        Runs after the lock is released.
        """
        self._expiring.append(job)
        details = job._details
        if details is not None:
            if details.out is not None and self.budget.limit is not None:
                self._count_output(job, details.out.chars())
            if details.waiters:
                with self._lock:  # no waiter can join a finished job
                    waiters, details.waiters = details.waiters, None
                for gate in waiters or ():
                    gate.release()
            if details.callbacks:
                for cb in details.callbacks:
                    try:
                        cb(job)
                    except Exception:
                        log.exception("nbfrost: done callback %r of job %s raised", cb, job._id)
        for listener in self.listeners:
            try:
                listener(job)
            except Exception:
                log.exception("nbfrost: finish listener %r raised for job %s", listener, job._id)
        if details is not None and details.dependents:
            dependents, details.dependents = details.dependents, None
            for dep in dependents:
                self._dependency_done(dep, job)

    # -------------------------------------------------------- output budget
    @property
    def output_budget(self) -> int | None:
        """Characters of output all finished jobs may keep together (None: no limit)."""
        return self.budget.limit

    @output_budget.setter
    def output_budget(self, limit: int | None) -> None:
        with self._lock:
            victims = self.budget.set_limit(limit, self._jobs)
            if victims:
                self._version += 1
        OutputBudget.drop(victims)

    @property
    def output_kept(self) -> int:
        """Characters of output that finished jobs keep now, notes included
        (0 without a budget: nothing is counted then)."""
        return self.budget.chars

    def _count_output(self, job: Job, chars: int) -> None:
        """Count a finished job's output; drop the oldest output over budget."""
        with self._lock:
            victims = self.budget.count(job, chars, self._jobs)
            if victims:
                self._version += 1
        OutputBudget.drop(victims)

    def _dependency_done(self, job: Job, dep: Job) -> None:
        if dep._state is not SUCCEEDED:
            self._cancel_for_dependency(job, dep)
            return
        with self._lock:
            details = job.ensure_details()
            details.pending_deps -= 1
            ready = details.pending_deps == 0 and job._state is QUEUED
        if ready:
            self.on_ready(job)

    def _cancel_for_dependency(self, job: Job, dep: Job) -> None:
        self.cancel(job, reason=(
            f"dependency job {dep._id} ({dep.display_name}) {dep._state.value}"
            + (f": {dep.error_text}" if dep._error is not None else "")))

    # ------------------------------------------------------------ waiting
    def wait_for(self, job: Job, timeout: float | None = None) -> bool:
        """Block until *job* ends or *timeout* seconds pass; True if it ended.

        Each waiter parks on a bare lock of its own, made here (far cheaper
        than an Event): only jobs someone waits on pay for waiting, and a
        waiter is woken by exactly the job it waits for.
        """
        with self._lock:
            if job._state in TERMINAL:
                return True
            gate = _allocate_lock()
            gate.acquire()
            details = job.ensure_details()
            if details.waiters is None:
                details.waiters = []
            details.waiters.append(gate)
        try:
            if _park(gate, timeout):
                return True
        except BaseException:
            # Interrupted (the Stop button): stop waiting, and leave no gate
            # behind for the job's end to release.
            with self._lock:
                if details.waiters is not None and gate in details.waiters:
                    details.waiters.remove(gate)
            raise
        with self._lock:
            if job._state in TERMINAL:
                return True
            details.waiters.remove(gate)
            return False

    def add_callback(self, job: Job, fn: Callable[[Job], None]) -> bool:
        """Register *fn* to run when the job ends.  False if it already has."""
        with self._lock:
            if job._state in TERMINAL:
                return False
            details = job.ensure_details()
            if details.callbacks is None:
                details.callbacks = []
            details.callbacks.append(fn)
            return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running.  False on timeout."""
        with self._lock:
            self._idle_waiters += 1
            try:
                return self._idle.wait_for(lambda: not (self._queued or self._running), timeout)
            finally:
                self._idle_waiters -= 1

    # ------------------------------------------------------------ lookups
    def get(self, job_id: int) -> Job:
        """The job with this id, or `JobNotFound` saying why not.

        A finished job past its expiry is not returned even before the
        sweep has purged it.
        """
        expiry = self.expiry
        limit = None if expiry is None else self.clock() - expiry
        with self._lock:
            try:
                job = self._jobs[job_id]  # a subscript, not a call: see the module doc
            except (KeyError, TypeError):
                job = None
            if job is not None:
                finished = job._finished_at
                # The negation of _sweep's test, so that a lookup and a
                # listing agree on the boundary (and on float rounding).
                if limit is None or finished is None or finished > limit:
                    return job
                self._sweep(self.clock())
        raise self.not_found(job_id)

    def not_found(self, job_id: object) -> JobNotFound:
        """The `JobNotFound` for an id that is not in the registry, saying why.

        Raises `TypeError` for an id that is not an int (``"3"`` is not an
        unknown id, it is the wrong type)."""
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            raise id_type_error(job_id)
        with self._lock:
            next_id = self._next_id
            finished = self._recent_purges.get(job_id)
            cleared = self._cleared_at(job_id) if self._cleared else None
            now = self.clock()
        first = self._first_id
        if 0 <= job_id < first:
            return JobNotFound(job_id, (
                f"job {job_id} belonged to an earlier dispatcher of this process (before "
                f"%reload_ext nbfrost); this one's jobs start at {first}"))
        if job_id < 0 or job_id >= next_id:
            last = f"the newest is {next_id - 1}" if next_id > first else "none were queued yet"
            return JobNotFound(job_id, f"job {job_id} never existed ({last})")
        if cleared is not None:
            return JobNotFound(job_id, (
                f"job {job_id} finished and was cleared from the registry "
                f"{_fmt_seconds(now - cleared)} ago (Dispatcher.clear() or the dashboard's "
                "'Clear finished')"))
        if self.expiry is None:
            return JobNotFound(job_id, (
                f"job {job_id} finished and was cleared from the registry "
                "(Dispatcher.clear() or the dashboard's 'Clear finished')"))
        expiry = f"expiry={self.expiry:g} s"
        hint = "; raise Dispatcher(expiry=...) to keep finished jobs longer"
        if finished is not None:
            return JobNotFound(job_id, (
                f"job {job_id} finished {_fmt_seconds(now - finished)} ago and expired "
                f"({expiry}){hint}"))
        return JobNotFound(job_id, (
            f"job {job_id} finished and has expired or was cleared ({expiry}){hint}"))

    @property
    def active(self) -> int:
        """How many jobs are queued or running."""
        return self._queued + self._running

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def version(self) -> int:
        """A counter that moves on every change; cheap to poll."""
        return self._version

    def bump(self) -> None:
        """Note a change made outside a transition (progress).

        Not locked on purpose: a lost increment under a race still changes
        the value, which is all that pollers need.
        """
        self._version += 1

    def select(self, state: StateFilter = None, name: str | None = None,
               tag: str | None = None, newest: int | None = None) -> list[Job]:
        """Jobs matching the filters, oldest first (newest first with *newest*).

        The lock is held only to sweep and copy references; filtering runs
        outside it.
        """
        with self._lock:
            if self._expiring:
                self._sweep(self.clock())
            if newest is None:
                jobs = list(self._jobs.values())
        states = normalize_states(state)
        match = matcher(states, name, tag)
        if newest is not None:
            return list(take(self._iter_newest(), match, newest))
        if match is None:
            return jobs
        return [j for j in jobs if match(j)]

    def count(self, state: Any = None, name: str | None = None, tag: str | None = None) -> int:
        """How many jobs match the filters of `select`, without listing them.

        One pass over the registry when a filter is given; the lock is held
        only to copy.
        """
        match = matcher(normalize_states(state), name, tag)
        jobs = self.select()
        return len(jobs) if match is None else sum(map(match, jobs))

    def _iter_newest(self) -> Iterator[Job]:
        # reversed() over a dict that other threads change may raise; copy the
        # keys in bounded chunks under the lock instead of the whole map.
        with self._lock:
            hi = self._next_id
        floor = self._first_id
        chunk = 256
        while hi > floor:
            lo = max(floor, hi - chunk)
            with self._lock:
                get = self._jobs.get
                batch = [get(i) for i in range(hi - 1, lo - 1, -1)]
            for job in batch:
                if job is not None:
                    yield job
            if lo == floor or len(self._jobs) == 0:
                return
            hi = lo
            chunk = min(chunk * 4, 65536)

    def _counts(self) -> dict[str, int]:
        """Jobs held per state.  Caller holds ``_lock``."""
        counts = {"queued": self._queued, "running": self._running}
        for state in (SUCCEEDED, FAILED, CANCELLED):
            counts[state.value] = self._finished[state] - self._dropped[state]
        return counts

    def counts(self) -> dict[str, int]:
        """How many jobs the registry holds in each state."""
        with self._lock:
            return self._counts()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            if self._expiring:
                self._sweep(now)
            counts = self._counts()
            totals = {s.value: n for s, n in self._finished.items()}
            submitted = self._next_id - self._first_id
            held = len(self._jobs)
            throughput, window = self._throughput(now, sum(totals.values()))
        return {
            "counts": counts,
            "finished": totals,
            "submitted": submitted,
            "held": held,
            "active": counts["queued"] + counts["running"],
            "throughput": throughput,
            "throughput_window": window,
        }

    def _mark(self, now: float) -> None:
        """Record a finish at *now* as a throughput mark (see ``__init__``).
        At most once a second; caller holds ``_lock``."""
        hook = self.on_first_finish
        if hook is not None:
            self.on_first_finish = None
            hook()
        marks = self._marks
        marks.append((now, sum(self._finished.values())))
        self._next_mark = now + 1.0
        while len(marks) > 1 and marks[1][0] <= now - _THROUGHPUT_WINDOW:
            marks.popleft()

    def _throughput(self, now: float, total: int) -> tuple[float, float]:
        """``(jobs finished per second, seconds)`` over the last
        ``_THROUGHPUT_WINDOW`` seconds, or since the registry was made if that
        is sooner.  Caller holds ``_lock``.

        The count is the jobs whose finish is at or after the first mark in
        the window, read from the marks the finishes left (see ``__init__``),
        so it does not depend on when, or how often, stats() is read.
        """
        span = min(float(_THROUGHPUT_WINDOW), now - self._created)
        if span <= 0:
            return 0.0, 0.0
        start = now - _THROUGHPUT_WINDOW
        for t, before in self._marks:
            if t >= start:
                return (total - before) / span, span
        return 0.0, span

    # ------------------------------------------------------------- expiry
    def next_expiry(self) -> float | None:
        """Seconds (of this registry's clock) until the oldest finished job
        expires; ``expiry`` when none is waiting to (a job finishing from now
        on expires no sooner); None without expiry."""
        with self._lock:
            expiry = self.expiry
            if expiry is None:
                return None
            exp = self._expiring
            if not exp:
                return expiry
            return exp[0]._finished_at + expiry - self.clock()  # type: ignore[operator]  # finished

    def sweep(self) -> int:
        """Purge finished jobs older than ``expiry``.  Returns how many."""
        with self._lock:
            return self._sweep(self.clock())

    def _sweep(self, now: float) -> int:
        if self.expiry is None:
            return 0
        limit = now - self.expiry
        exp = self._expiring
        jobs = self._jobs
        recent = self._recent_purges
        dropped = self._dropped
        n = 0
        while exp and exp[0]._finished_at <= limit:  # type: ignore[operator]  # all finished
            job = exp.popleft()
            if jobs.get(job._id) is job:
                del jobs[job._id]
                dropped[job._state] += 1
                recent[job._id] = limit if job._finished_at is None else job._finished_at
                n += 1
        if n:
            if self.budget.chars:
                self.budget.forget_expired(jobs)
            if len(recent) > 2 * _RECENT_PURGES:
                # Keep the newest.  Rebuilding now and then costs O(1) per
                # purge; deleting the oldest key one at a time rescans the
                # dict's deleted slots on every delete.
                self._recent_purges = dict(islice(
                    recent.items(), len(recent) - _RECENT_PURGES, None))
            self._version += 1
        return n

    def clear(self, states: Iterable[JobState | str] = TERMINAL) -> int:
        """Remove finished jobs in *states* now, whatever their age."""
        wanted = frozenset(JobState(s) for s in states) & TERMINAL
        with self._lock:
            drop = [j for j in self._jobs.values() if j._state in wanted]
            for job in drop:
                del self._jobs[job._id]
                self._dropped[job._state] += 1
            if drop:
                self._remember_cleared(sorted(j._id for j in drop), self.clock())
                self._version += 1
                self._forget_cleared()
                if self.budget.chars:
                    self.budget.forget_cleared(self._jobs)
        return len(drop)

    def _remember_cleared(self, ids: list[int], now: float) -> None:
        """Record sorted *ids* as cleared at *now*, as runs of consecutive
        ids.  Caller holds ``_lock``."""
        first = last = ids[0]
        for i in ids[1:]:
            if i != last + 1:
                self._cleared.append((first, last, now))
                first = i
            last = i
        self._cleared.append((first, last, now))

    def _cleared_at(self, job_id: int) -> float | None:
        """When clear() removed *job_id*, if that is still remembered.
        Caller holds ``_lock``."""
        for first, last, at in reversed(self._cleared):
            if first <= job_id <= last:
                return at
        return None

    def _forget_cleared(self) -> None:
        """Drop records no longer in the map from the expiry queue, so that
        clear() frees them now (with expiry=None the queue is never swept).
        Caller holds ``_lock``.

        `_after_complete` appends without the lock, so the queue is not
        rebuilt: the entries present now are popped from the front and the
        kept ones put back in front of anything appended meanwhile.
        """
        exp = self._expiring
        jobs = self._jobs
        keep = [j for j in (exp.popleft() for _ in range(len(exp))) if jobs.get(j._id) is j]
        exp.extendleft(reversed(keep))

    def active_jobs(self) -> list[Job]:
        with self._lock:
            if not (self._queued or self._running):
                return []
            return [j for j in self._jobs.values() if j._state not in TERMINAL]


#: How long the main thread blocks at a time while it waits for a job.
_INTERRUPT_SLICE = 0.25


def id_type_error(job_id: object) -> TypeError:
    """The `TypeError` for a job id that is not an int, showing the int to
    pass when the id is a numeric string (``d.status("3")``)."""
    kind = type(job_id).__name__
    if isinstance(job_id, str) and job_id.strip().isdigit():
        n = int(job_id)
        return TypeError(f"job ids are ints, got the str {job_id!r}: pass {n}, as in "
                         f"d.status({n})")
    return TypeError(f"job ids are ints, got {kind} {job_id!r:.60}")


def _park(gate: Any, timeout: float | None) -> bool:
    """``gate.acquire(True, timeout)``, but in the main thread in slices of
    `_INTERRUPT_SLICE` seconds.

    A SIGINT (the Stop button) that lands after the interpreter last looked
    for signals and before the thread blocks in the lock is only marked
    pending: one long acquire would sleep on with it, and the first Stop
    would be lost (seen about once in 40 interrupts under load).  Waking now
    and then lets the pending signal raise its KeyboardInterrupt.
    """
    if threading.current_thread() is not threading.main_thread():
        return gate.acquire(True, -1 if timeout is None else max(0.0, timeout))
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    while True:
        left = _INTERRUPT_SLICE if deadline is None else deadline - time.monotonic()
        if gate.acquire(True, max(0.0, min(left, _INTERRUPT_SLICE))):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
