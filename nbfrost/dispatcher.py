"""`Dispatcher`: the user-facing facade over a registry and a backend.

It validates everything *before* a job exists (bad input raises and queues
nothing), then hands the job to the registry, which owns the lifecycle, and
to the backend, which runs it.

What it holds: every public entry point of the pool (`queue`, the
`concurrent.futures.Executor` methods `submit`/`map`/`shutdown`, queries,
frames, budgets, timeouts, shutdown), each a short validation in front of
the same registry and backend calls.  The pieces with a job of their own
live next to it: the argument checks in `arguments.py`, the bulk path
behind `map` in `bulk.py`, the futures and the map iterator in
`executor.py`, the notebook's failure notices in `notices.py`, the
lifecycle in `registry.py`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import logging
import numbers
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import bulk, capture, defaults, exits, forward, notices, published
from . import executor as _executor
from .arguments import NO_KWARGS, check_tags, runner_of
from .backends import Backend, make_backend
from .checks import check_count as _check_count  # shared with the dashboard
from .checks import check_number as _check_number
from .errors import JobNotFound, WaitDeadlock
from .job import QUEUED, RUNNING, TERMINAL, Job, JobState, JobStatus, StatusList, describe_callable
from .publisher import Publication
from .publisher import attach as attach_publication
from .publisher import settings_from_env as publish_settings_from_env
from .registry import Registry
from .schedules import OVERLAPS, Schedule, Scheduler
from .states import StateFilter
from .timeouts import Timers
from .tracker import Tracker, wait_interrupted

if TYPE_CHECKING:
    import pandas as pd

    from .protocols import JobOwner

__all__ = ["Dispatcher"]


def _check_workers(value: int) -> int:
    value = _check_count("workers", value, minimum=1)
    if value > defaults.MAX_WORKERS:
        raise ValueError(f"workers must be at most {defaults.MAX_WORKERS} "
                         f"(nbfrost.defaults.MAX_WORKERS), got {value}; for many jobs that "
                         "mostly wait, use async def jobs or the Dask backend")
    return value


def _check_process_workers(value: int | None) -> int:
    if value is None:
        return defaults.PROCESS_WORKERS
    value = _check_count("process_workers", value, minimum=1)
    if value > defaults.MAX_PROCESS_WORKERS:
        raise ValueError(f"process_workers must be at most {defaults.MAX_PROCESS_WORKERS} "
                         f"(defaults.MAX_PROCESS_WORKERS), got {value}")
    return value

log = logging.getLogger("nbfrost")

#: The shortest sleep of the expiry timer (seconds): jobs are purged at most
#: this late, and a clock that does not move (tests) costs few wake-ups.
_EXPIRY_TICK = 0.05

#: Every dispatcher started in this process, for `_after_fork_in_child`.
_LIVE: weakref.WeakSet[Dispatcher] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """In a child made by ``os.fork()``: the dispatchers it inherited have no
    worker threads there (only the forking thread survives a fork), so jobs
    queued to them would wait forever.  Close them, so that queueing says so
    at once (`Dispatcher._refusal`); a new ``Dispatcher()`` works as usual."""
    for d in list(_LIVE):
        d._forked_from = d._pid
        d._lock = threading.Lock()  # may have been held by another thread at the fork
        d._closed = True
        d._stopped = True  # shutdown() in the child has no threads to stop or wait for
    _LIVE.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)

_P = ParamSpec("_P")
_T = TypeVar("_T")
#: What capture.ensure_installed() puts on sys.stdout/stderr (a class check in queue()).
_ROUTER = capture.StreamRouter


def _when(t: float) -> str:
    """Epoch seconds as a local date and time, for messages."""
    from datetime import datetime
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


class Dispatcher(concurrent.futures.Executor):
    """A bounded pool that runs jobs in the background and remembers them.

    It is a `concurrent.futures.Executor` too: `submit`, `map` and
    ``shutdown(wait, cancel_futures=...)`` work as they do for
    `ThreadPoolExecutor`, and each call is a job like any other.

    Args:
        workers: how many jobs run at once (an int from 1 to
            ``defaults.MAX_WORKERS``, 1024).  The workers start now.
        expiry: seconds a *finished* job stays in the registry (``None``:
            forever).  Queued and running jobs never expire.
        max_queue: how many jobs may wait at once; 0 means unbounded.  When
            full, `queue` blocks (or raises `QueueFull`, see there).
        backend: ``"threads"`` (default), ``"processes"`` (every job runs in
            a worker process: see *process_workers*), ``"dask"``, or an object
            that has what `nbfrost.backends.Backend` lists.
        output_cap: characters of stdout/stderr kept per job.
        output_budget: characters of output kept by all *finished* jobs
            together (default 64 MiB; ``None``: no limit).  Past it, the
            oldest finished jobs' output is replaced by a note saying so.
            Queued and running jobs are never cut below ``output_cap``.
        grace: seconds an interrupted or timed-out job gets to stop before
            its worker thread is abandoned and replaced.
        clock: returns epoch seconds; injectable so tests drive expiry.
        history: a file path to record every transition in (SQLite, WAL),
            readable later with ``nbfrost.history(path)``; None (default)
            keeps no history.  Opened and checked here: a corrupt file
            raises ValueError, an unwritable one OSError.
        forward_budget: characters of one job's output shown in the
            notebook (256 KiB); past it one marker line says how much was
            left out.  Capture (``output_cap``) is separate and unchanged.
        forward_rate: characters per second all jobs of this dispatcher
            together send to the notebook, on average (256 KiB/s; bursts up
            to twice that).
        failure_notices: write a one-line notice under the queuing cell
            when a job queued with `queue` fails for good (not ``quiet``
            ones; ``%%frost`` cells show their traceback instead).  None
            (default): on when an IPython shell runs this process, off in
            plain scripts.
        publish: show this dispatcher's jobs to the Jupyter server of this
            user (files in the Jupyter runtime dir, no port; see
            `nbfrost.publisher`).  None (default): on unless
            ``$NBFROST_PUBLISH=0``.
        process_workers: how many worker processes run ``process=True``
            jobs and ``%%frost --process`` cells (with
            ``backend="processes"``: every job); default one per core, at
            most ``defaults.MAX_PROCESS_WORKERS``.  They start on the first
            process job and are reused.
        wait_at_exit: in a plain interpreter (not a Jupyter kernel), the
            exit waits for this dispatcher's queued and running jobs, as
            `concurrent.futures.ThreadPoolExecutor` does, and says so on
            stderr if that takes over a second; ``False``: unfinished jobs
            are dropped at exit.  A kernel restart never waits.
        **backend_options: for ``backend="dask"``: ``address=`` or
            ``client=``, and LocalCluster options.

    Raises:
        TypeError, ValueError: a bad argument (nothing is started).

    A dispatcher is a context manager: leaving the block calls
    ``shutdown(wait=True)``.
    """

    def __init__(self, workers: int = defaults.WORKERS, expiry: float | None = defaults.EXPIRY,
                 max_queue: int = defaults.MAX_QUEUE, *,
                 backend: str | Backend = "threads", output_cap: int = defaults.OUTPUT_CAP,
                 output_budget: int | None = defaults.OUTPUT_BUDGET,
                 grace: float = defaults.GRACE, clock: Callable[[], float] | None = None,
                 history: str | os.PathLike | None = None,
                 forward_budget: int = defaults.FORWARD_BUDGET,
                 forward_rate: float = defaults.FORWARD_RATE,
                 failure_notices: bool | None = None, publish: bool | None = None,
                 process_workers: int | None = None, wait_at_exit: bool = True,
                 **backend_options: Any) -> None:
        workers = _check_workers(workers)
        process_workers = _check_process_workers(process_workers)
        _check_number("expiry", expiry, allow_none=True, positive=False)
        max_queue = _check_count("max_queue", max_queue, minimum=0)
        output_cap = _check_count("output_cap", output_cap, minimum=0)
        if output_budget is not None:
            output_budget = _check_count("output_budget", output_budget, minimum=0)
        _check_number("grace", grace, allow_none=False, positive=False)
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be callable, got {clock!r}")
        if not isinstance(wait_at_exit, bool):
            raise TypeError(f"wait_at_exit must be True or False, got {wait_at_exit!r}")
        self.forward_budget = _check_count("forward_budget", forward_budget, minimum=0)
        _check_number("forward_rate", forward_rate, allow_none=False, positive=True)
        #: What all jobs of this dispatcher may send to the notebook (see `nbfrost.forward`).
        self.forward_bucket = forward.Bucket(forward_rate, 2 * forward_rate)
        if failure_notices is None:
            failure_notices = notices.in_ipython()
        if publish is None:
            publish = published.enabled_by_env()
        elif not isinstance(publish, bool):
            raise TypeError(f"publish must be True, False or None, got {publish!r}")
        # A bad $NBFROST_PUBLISH_JOBS/_KEEP raises here, before anything starts.
        publish_settings = publish_settings_from_env() if publish else None
        self._history_writer = None
        if history is not None:
            # Opened (and checked) before anything starts, so a bad file
            # fails here and never inside a job.
            from .history.writer import HistoryWriter
            self._history_writer = HistoryWriter(history)
        self.registry = Registry(expiry=expiry, max_queue=max_queue, output_budget=output_budget,
                                 clock=clock or time.time)
        try:
            if backend == "processes":
                backend_options["process_workers"] = process_workers
            self._backend: Backend = make_backend(backend, workers, output_cap, backend_options)
        except BaseException:
            if self._history_writer is not None:
                self._history_writer.close()
            raise
        self._timers = Timers()
        self._publication: Publication | None = None
        self._closed = False
        self._stopped = False
        self._streams_acquired = False
        self._exit_registered = False
        self._pid = os.getpid()
        #: The pid of the process this dispatcher was started in, once this
        #: process is a fork of it (see `_after_fork_in_child`).
        self._forked_from: int | None = None
        try:
            self._start(workers, grace, max_queue, output_cap, process_workers, failure_notices,
                        publish_settings, wait_at_exit)
        except BaseException:
            # Half started (a worker thread that could not start, ...): undo
            # it all, so that nothing runs, writes or routes output after the
            # error; then say it.
            self._roll_back_start()
            raise
        _LIVE.add(self)

    def _start(self, workers: int, grace: float, max_queue: int, output_cap: int,
               process_workers: int, failure_notices: bool,
               publish_settings: tuple[int, float] | None, wait_at_exit: bool) -> None:
        """The part of ``__init__`` that starts things (undone on error by
        `_roll_back_start`)."""
        if self._history_writer is not None:
            self._history_writer.attach(self.registry)
        self.grace = float(grace)
        self.max_queue = max_queue
        self._lock = threading.Lock()  # guards _closed and _blocked
        self._blocked = 0  # jobs of this pool waiting for a queued job (see _wait_in_a_job)
        if wait_at_exit:
            exits.register(self)
            self._exit_registered = True
        self._last_context: contextvars.Context | None = None  # see _caller_context
        #: The backend's submit, bound once (for the thread backend, its
        #: queue's put: see ThreadBackend.__init__).
        self._submit = self.registry.on_ready = self._backend.submit
        if failure_notices and hasattr(self._backend, "on_failure"):
            self._backend.on_failure = notices.failure_notice
        self.registry.on_start_timed = self._arm_timeout
        # Expiry is active: from the first finish on, a timer purges each
        # finished job when it expires (its result is freed then, not at the
        # next lookup); see _expire.
        self._expiry_plan = 0
        self.registry.on_first_finish = self._start_expiry
        self._scheduler: Scheduler | None = None  # made by the first schedule (see _schedule)
        # The process pool: the backend itself with backend="processes",
        # else made on the first process=True job (see _process_pool).
        self._output_cap = output_cap
        self._process_workers = process_workers
        self._failure_notices = failure_notices
        self._processes: Any = self._backend if self._backend.name == "processes" else None
        self._process_waiting: weakref.WeakSet[Job] = weakref.WeakSet()  # see _ready
        capture.acquire()
        self._streams_acquired = True
        self._backend.start(self.registry)
        # Publishing (see publisher.py): one file per dispatcher, written by
        # one thread per process; closed in _finish_shutdown.
        if publish_settings is not None:
            self._publication = attach_publication(self, jobs=publish_settings[0],
                                                   keep=publish_settings[1])

    def _refusal(self, text: str = "this dispatcher is shut down; create a new "
                 "nbfrost.Dispatcher()") -> RuntimeError:
        """The error for a job offered to a closed dispatcher: *text*, or,
        in a forked child, why it cannot run jobs there."""
        if self._forked_from is not None:
            text = (f"this dispatcher was started in process {self._forked_from}, and this "
                    f"process ({os.getpid()}) is a fork of it: its worker threads do not exist "
                    "here, so it cannot run jobs; create a new nbfrost.Dispatcher() in this "
                    "process (or use process=True / multiprocessing with the spawn method)")
        return RuntimeError(text)

    def _roll_back_start(self) -> None:
        """Stop whatever a failed ``__init__`` started: worker threads, the
        timer, the history writer, publishing, and the stream routers
        (``sys.stdout`` goes back to what it was).  Errors here are logged,
        so that the start's own error is the one raised."""
        self._closed = self._stopped = True
        steps: list[Callable[[], Any]] = [lambda: self._backend.stop(True), self._timers.close]
        if self._history_writer is not None:
            steps.append(self._history_writer.close)
        if self._publication is not None:
            steps.append(self._publication.close)
        if self._streams_acquired:
            steps.append(capture.uninstall)
        if self._exit_registered:
            steps.append(lambda: exits.unregister(self))
        for step in steps:
            try:
                step()
            except Exception:
                log.exception("nbfrost: undoing a failed Dispatcher() start")

    # ------------------------------------------------------------- queueing
    def queue(self, fn: Any, /, *args: Any, name: str | None = None,
              tags: Iterable[str] | str = (), timeout: float | None = None,
              retries: int = 0, after: Any = (), block: bool = True,
              queue_timeout: float | None = None, quiet: bool = False,
              process: bool = False, **kwargs: Any) -> Tracker:
        """Queue ``fn(*args, **kwargs)`` (or ``fn.run()``) and return its `Tracker`.

        Args:
            fn: a callable, or an object with a ``run()`` method.
            name: shown in status, frames and the dashboard (default: the
                callable's name).
            tags: a string or strings to filter on.
            timeout: seconds the job may run (retries included) before it
                is failed with `JobTimeout` and interrupted.
            retries: how many more times to run a job that raised.
            after: trackers or ids (one or many) that must all succeed
                first; if one fails or is cancelled, so is this job.
            block, queue_timeout: what to do when ``max_queue`` jobs wait:
                block (up to *queue_timeout* s) or, with ``block=False``,
                raise `QueueFull` at once.
            quiet: capture the job's output without echoing it.
            process: run it in a worker process of this dispatcher's
                process pool (see *process_workers*): beyond the GIL, and
                killed for real by ``cancel(interrupt=True)`` and timeouts.
                *fn* and its arguments are pickled now with cloudpickle (a
                job that does not pickle fails, naming what could not be
                sent); its output and progress come back while it runs.

        Keyword arguments with the names above belong to ``queue``; to pass
        them to *fn*, wrap it with `functools.partial`.

        Raises:
            TypeError, ValueError: bad arguments; nothing is queued.
            QueueFull: no room (see *block*).
            RuntimeError: the dispatcher was shut down.
        """
        if self._closed:
            raise self._refusal()
        run = fn if callable(fn) else runner_of(fn)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__} {name!r}")
        tag_tuple = () if tags == () else check_tags(tags)
        if timeout is not None:
            _check_number("timeout", timeout, allow_none=True, positive=True)
            timeout = float(timeout)
        if retries:
            retries = _check_count("retries", retries, minimum=0)
        # Not `if after`: job id 0 is falsy and is a real dependency.
        deps = () if after is None or after == () else self._resolve_after(after)
        if queue_timeout is not None:
            _check_number("queue_timeout", queue_timeout, allow_none=True, positive=False)
        registry = self.registry
        if self.max_queue:  # an int test, not a property call, for the common unbounded pool
            registry.reserve(block, queue_timeout)
        # capture.ensure_installed(), its common case inlined (as are
        # _caller_context's below and the backend's submit): a Python call
        # per queue() is measurable in the throughput benchmark.
        if sys.stdout.__class__ is not _ROUTER or sys.stderr.__class__ is not _ROUTER:
            capture.ensure_installed()
        context = contextvars.copy_context()
        last = self._last_context  # read once: other threads may replace it
        try:
            if last is not None and context == last:
                context = last
            else:
                self._last_context = context
        except Exception:  # see _caller_context
            self._last_context = context
        # An empty **kwargs dict is replaced by one shared, never-mutated
        # dict (NO_KWARGS).
        job = Job(run, args, kwargs or NO_KWARGS, name, tag_tuple, timeout, retries,
                  context, 0.0, self)
        if quiet:
            job.ensure_details().quiet = True
        if process:
            self._queue_process(job, deps)
        elif registry.add(job, deps):
            self._submit(job)
        return job  # the record is its own Tracker: no second object per job

    # ---------------------------------------------------------- process pool
    def _process_pool(self) -> Any:
        """The process pool, made (not yet started: that is on its first
        job) when first asked for."""
        procs = self._processes
        if procs is None:
            with self._lock:
                procs = self._processes
                if procs is None:
                    from .backends.processes import ProcessBackend
                    procs = ProcessBackend(self._process_workers, output_cap=self._output_cap)
                    if self._failure_notices:
                        procs.on_failure = notices.failure_notice
                    procs.start(self.registry)
                    self._processes = procs
        return procs

    def _queue_process(self, job: Job, deps: Any) -> None:
        procs = self._process_pool()
        if deps:
            # It may become ready on another thread as soon as it is added.
            self._process_waiting.add(job)
            self.registry.on_ready = self._ready
        if self.registry.add(job, deps):
            self._process_waiting.discard(job)
            procs.submit(job)

    def _ready(self, job: Job) -> None:
        """The registry's ``on_ready`` once process jobs wait for others:
        each goes to the pool it was queued for."""
        if job in self._process_waiting:
            self._process_waiting.discard(job)
            self._processes.submit(job)
        else:
            self._backend.submit(job)

    def _runner_of(self, job: Job) -> Backend:
        """The backend that runs *job*: the process pool or the main one."""
        procs = self._processes
        if procs is not None and procs is not self._backend and procs.owns(job):
            return procs
        return self._backend

    @property
    def process_pool(self) -> Any:
        """The `ProcessBackend` that runs process jobs, or None before the
        first one (with ``backend="processes"``: the backend itself)."""
        return self._processes

    @property
    def process_workers(self) -> int:
        """How many worker processes the process pool runs (setting it
        resizes the pool; extra processes leave after their job)."""
        procs = self._processes
        return procs.workers if procs is not None else self._process_workers

    @process_workers.setter
    def process_workers(self, value: int) -> None:
        value = _check_process_workers(value)
        procs = self._processes
        if procs is not None:
            procs.resize(value)
        self._process_workers = value

    # ------------------------------------------- concurrent.futures.Executor
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args,
               **kwargs: _P.kwargs) -> _executor.ExecutorFuture[_T]:
        """Run ``fn(*args, **kwargs)`` as a job; return its `concurrent.futures.Future`.

        `Executor.submit`: every keyword argument goes to *fn* (use
        `queue` for names, tags, timeouts).  The future turns running when
        the job starts; ``result()`` returns its value or raises the job's
        own exception (not `JobFailed`); ``cancel()`` cancels the job while
        it is queued.  ``d.status(future.job_id)`` is the job's status, and
        ``d.tracker(future.job_id).future is future``.

        Raises:
            RuntimeError: the dispatcher was shut down.
            QueueFull: never; with ``max_queue`` it blocks until there is room.
        """
        if self._closed:
            raise self._refusal("cannot schedule new futures after shutdown; "
                                "create a new nbfrost.Dispatcher()")
        run = fn if callable(fn) else runner_of(fn)
        # The name is fixed now: a succeeded job forgets its callable.
        job = Job(run, args, kwargs or NO_KWARGS, describe_callable(fn), (),
                  None, 0, self._caller_context(), 0.0, self)
        return _executor.enqueue(job, self.registry, self.max_queue)

    def map(self, fn: Callable[..., _T], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int = 1) -> Iterator[_T]:
        """`Executor.map`: ``fn(*items)`` for the items of *iterables*, as jobs.

        Every call is queued now (one job each, with its own id and
        status); the returned iterator yields their results in order, as
        they are ready.  The first exception a job raised is raised at its
        position, a `WaitTimeout` (a `TimeoutError`, also on 3.10) once
        *timeout* seconds (from this call) have passed.  Closing the iterator early cancels the jobs still
        queued.  A yielded result is handed over: the registry keeps the
        job's status but not its result.

        The jobs reach the workers in chunks (see `nbfrost.bulk`): with the
        default ``chunksize=1`` nbfrost picks the size (`auto_chunksize`:
        at least four chunks per worker, at most 256 jobs each, so a few
        items still go one per chunk); another value is used as given.
        Every item is still its own job.

        Raises:
            RuntimeError: the dispatcher was shut down.
            TypeError, ValueError: a bad *timeout* or *chunksize*.
        """
        _check_number("timeout", timeout, allow_none=True, positive=False)
        chunksize = _check_count("chunksize", chunksize, minimum=1)
        jobs, chunksize = self._queue_chunks(fn, zip(*iterables),
                                             None if chunksize == 1 else chunksize,
                                             label=describe_callable(fn))
        return _executor.map_results(jobs, self.registry, timeout, chunksize)

    def _queue_many(self, fn: Any, arg_tuples: Iterable[tuple], chunksize: int | None = None,
                    *, label: str | None = None) -> list[Job]:
        """`_queue_chunks`, returning only the jobs."""
        return self._queue_chunks(fn, arg_tuples, chunksize, label=label)[0]

    def _queue_chunks(self, fn: Any, arg_tuples: Iterable[tuple], chunksize: int | None = None,
                      *, label: str | None = None) -> tuple[list[Job], int]:
        """Queue ``fn(*args)`` for every tuple of *arg_tuples*, a chunk at a
        time (`nbfrost.bulk.queue_chunks`): the bulk path behind `map`.
        Returns the jobs and the chunk size used.  The iterable is read to
        the end first, as ``Executor.map`` does; *label* names the jobs.

        Raises:
            TypeError, ValueError: bad *fn* or *chunksize*; nothing is queued.
            RuntimeError: the dispatcher was (or got) shut down; the jobs
                queued so far are cancelled if they have not started.
        """
        if self._closed:
            raise self._refusal("cannot schedule new futures after shutdown; "
                                "create a new nbfrost.Dispatcher()")
        run = fn if callable(fn) else runner_of(fn)
        items = list(arg_tuples)
        return bulk.queue_chunks(self, run, items, chunksize, label or describe_callable(run),
                                 self._caller_context)

    def _caller_context(self) -> contextvars.Context:
        """The queuing thread's context, for the job to run in (a copy of it).

        Jobs queued in a loop all see the same context, so the snapshot of
        the previous queue() is reused when it equals this one, and the
        fresh copy is freed at once.  That keeps one Context per *change*
        of context alive instead of one per waiting job: kept until the
        job runs, each would be scanned by the garbage collector on every
        collection.  Comparing is O(1) when nothing
        changed (both snapshots share the same variables); after a change
        it compares the values once, and if that raises the fresh copy is
        used.  The test is equality, as ``Context.__eq__`` defines it: a
        variable set again to an *equal* but distinct object between two
        queue() calls leaves the later job seeing the earlier object.
        (Comparing identities instead, in Python, costs most of what
        sharing saves.)  Backends never enter the shared snapshot itself:
        they run each job in ``caller_context.copy()``, so jobs neither
        collide (a Context can be entered by one thread at a time) nor see
        each other's ``ContextVar.set``.
        """
        context = contextvars.copy_context()
        last = self._last_context  # read once: other threads may replace it
        try:
            if last is not None and context == last:
                return last
        except Exception:  # a context value whose == raises (a NumPy array, ...)
            pass
        self._last_context = context
        return context

    def _resolve_after(self, after: Any) -> list[Job]:
        items = after if isinstance(after, (list, tuple, set, frozenset)) else (after,)
        deps = []
        for item in items:
            if isinstance(item, Tracker):
                if item._job._owner is not self:
                    raise ValueError(f"after= got a tracker of another dispatcher (job {item.id})")
                deps.append(item._job)
            elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
                try:
                    deps.append(self.registry.get(int(item)))
                except JobNotFound as exc:
                    raise ValueError(f"after={item!r}: {exc}; pass the Tracker to depend "
                                     "on an expired job") from None
            else:
                raise TypeError(f"after= takes trackers or job ids, got {type(item).__name__} {item!r}")
        return deps

    def retry(self, job_id: int | Tracker) -> Tracker:
        """Queue a failed or cancelled job again with the same callable,
        arguments and options.  Returns the new job's `Tracker`.

        Raises:
            ValueError: the job is still queued or running, or it succeeded
                (a succeeded job's callable and arguments are dropped when
                it succeeds, so that they do not stay in memory until it
                expires; queue it again yourself).
            JobNotFound: no such job (any more).
        """
        job = job_id._job if isinstance(job_id, Tracker) else self.registry.get(job_id)
        if job._state not in TERMINAL:
            raise ValueError(f"job {job._id} is still {job._state.value}; only finished jobs can be retried")
        fn = job._fn
        if fn is None:
            raise ValueError(
                f"job {job._id} ({job.display_name}) {job._state.value} and has no callable "
                "any more: a succeeded job lets go of its callable and arguments, so only "
                "failed or cancelled jobs can be retried; queue it again (or re-run its "
                "%%frost cell)")
        # A job that ran in (or was refused by) the process pool runs there again.
        worker = job._worker
        process = isinstance(worker, str) and (worker.startswith("process-") or worker == "-")
        return self.queue(fn, *job._args, name=job._label, tags=job._tags,
                          timeout=job.timeout, retries=job.retries, quiet=not job.echo,
                          process=process and self._backend is not self._processes,
                          **job._kwargs)

    # -------------------------------------------------------------- schedules
    # Keywords shared by every/cron/at (and passed on to each run's job):
    # name, tags, timeout, retries, quiet as for queue(); the rest belong to
    # the schedule.  See docs/guide/schedules.md for the semantics.
    def every(self, interval: Any, fn: Any, /, *args: Any, name: str | None = None,
              tags: Iterable[str] | str = (), timeout: float | None = None, retries: int = 0,
              start: Any = None, end: Any = None, max_runs: int | None = None,
              jitter: float = 0.0, overlap: str = "skip", stop_on_failure: bool = False,
              quiet: bool = False, process: bool = False, **kwargs: Any) -> Schedule:
        """Run ``fn(*args, **kwargs)`` every *interval* and return its `Schedule`.

        Args:
            interval: seconds, a `datetime.timedelta`, or ``"30s"``, ``"5m"``,
                ``"1h"``, ``"1d"``.
            start: the first run (a datetime, naive = local time); default
                one interval from now.  Later runs keep its phase.
            end: no run comes due after it.
            max_runs: the schedule ends after this many runs.
            jitter: each run starts up to this many seconds late (a random
                delay per run; the due times do not drift).
            overlap: a run due while the previous one still runs is
                ``"skip"``-ped and counted in ``missed`` (default), waits
                for it (``"queue"``, at most one waiting), or starts anyway
                (``"allow"``).
            stop_on_failure: end the schedule when a run fails (after its
                retries); by default failures do not stop it.
            name, tags, timeout, retries, quiet, process: as for `queue`,
                per run (``process=True``: each run in a worker process).

        Runs that came due while the process could not start them (busy,
        asleep) coalesce into one run; the others count in ``missed``.

        Raises:
            TypeError, ValueError: a bad argument, naming the fix; nothing
                is scheduled.
            RuntimeError: the dispatcher was shut down.
        """
        from .rules import IntervalRule, parse_interval

        try:
            seconds = parse_interval(interval)
        except ValueError as exc:
            raise ValueError(f"every(): {exc}") from None
        return self._schedule(IntervalRule(seconds), fn, args, kwargs, name, tags, timeout,
                              retries, start, end, max_runs, jitter, overlap, stop_on_failure, quiet,
                              process)

    def cron(self, expression: str, fn: Any, /, *args: Any, tz: Any = None, name: str | None = None,
             tags: Iterable[str] | str = (), timeout: float | None = None, retries: int = 0,
             start: Any = None, end: Any = None, max_runs: int | None = None,
             jitter: float = 0.0, overlap: str = "skip", stop_on_failure: bool = False,
             quiet: bool = False, process: bool = False, **kwargs: Any) -> Schedule:
        """Run ``fn(*args, **kwargs)`` whenever the cron *expression* matches.

        *expression* has 5 fields (``minute hour day month weekday``, e.g.
        ``"0 * * * *"``) or 6 with seconds first (``"*/10 * * * * *"``),
        evaluated by croniter.  *tz* is a ``zoneinfo`` name
        (``"Europe/Berlin"``) or tzinfo the fields are read in (default:
        local time); daylight-saving changes are handled as croniter does.
        The other keywords are `every`'s.

        Raises:
            TypeError, ValueError: a malformed expression or bad argument,
                naming the fix; nothing is scheduled.
        """
        from .rules import CronRule, zone

        try:
            rule = CronRule(expression, zone(tz))
        except ValueError as exc:
            raise ValueError(f"cron(): {exc}") from None
        return self._schedule(rule, fn, args, kwargs, name, tags, timeout, retries, start, end,
                              max_runs, jitter, overlap, stop_on_failure, quiet, process)

    def at(self, when: Any, fn: Any, /, *args: Any, name: str | None = None,
           tags: Iterable[str] | str = (), timeout: float | None = None, retries: int = 0,
           jitter: float = 0.0, quiet: bool = False, process: bool = False,
           **kwargs: Any) -> Schedule:
        """Run ``fn(*args, **kwargs)`` once, at *when* (a datetime, naive =
        local time, or an ISO 8601 string).  The other keywords are `every`'s.

        Raises:
            ValueError: *when* is in the past (use `queue` to run now);
                nothing is scheduled.
        """
        from .rules import OnceRule, parse_time

        at = parse_time(when, "at()")
        now = self.registry.clock()
        if at < now:
            raise ValueError(f"at(): {_when(at)} is in the past (now is {_when(now)}); pass a "
                             "future time, or use d.queue() to run it now")
        return self._schedule(OnceRule(at), fn, args, kwargs, name, tags, timeout, retries,
                              None, None, None, jitter, "allow", False, quiet, process)

    def schedules(self) -> list[Schedule]:
        """Every schedule of this dispatcher, by id: active, paused, and the
        most recently ended ones (``defaults.SCHEDULES_ENDED_KEPT``)."""
        return [] if self._scheduler is None else self._scheduler.all()

    def schedule(self, schedule_id: int) -> Schedule:
        """The `Schedule` with this id (KeyError naming the known ids if none)."""
        if self._scheduler is None:
            raise KeyError(f"no schedule {schedule_id!r}: this dispatcher has none yet "
                           "(d.every, d.cron and d.at make them)")
        return self._scheduler.get(schedule_id)

    def _schedule(self, rule: Any, fn: Any, args: tuple, kwargs: dict, name: str | None,
                  tags: Any, timeout: float | None, retries: int, start: Any, end: Any,
                  max_runs: int | None, jitter: float, overlap: str, stop_on_failure: bool,
                  quiet: bool, process: bool) -> Schedule:
        from .rules import parse_time

        if self._closed:
            raise self._refusal()
        run = fn if callable(fn) else runner_of(fn)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__} {name!r}")
        tag_tuple = check_tags(tags)
        if timeout is not None:
            _check_number("timeout", timeout, allow_none=True, positive=True)
            timeout = float(timeout)
        retries = _check_count("retries", retries, minimum=0)
        begin = None if start is None else parse_time(start, "start")
        stop = None if end is None else parse_time(end, "end")
        if begin is not None and stop is not None and stop < begin:
            raise ValueError(f"end ({_when(stop)}) is before start ({_when(begin)}); pass an "
                             "end after the start, or no end")
        if max_runs is not None:
            max_runs = _check_count("max_runs", max_runs, minimum=1)
        _check_number("jitter", jitter, allow_none=False, positive=False)
        if overlap not in OVERLAPS:
            raise ValueError(f"overlap must be one of {', '.join(map(repr, OVERLAPS))}, got "
                             f"{overlap!r}: 'skip' drops a run that comes due while the previous "
                             "one runs, 'queue' runs it after, 'allow' runs both")
        if not isinstance(process, bool):
            raise TypeError(f"process must be True or False, got {process!r}")
        label = name if name is not None else describe_callable(run)
        capture.ensure_installed()
        # Every run goes under the cell (context) that made the schedule.
        spec = (run, args, kwargs or NO_KWARGS, label, tag_tuple, timeout, retries, quiet,
                contextvars.copy_context(), process)
        schedule = Schedule(rule, spec, label, tag_tuple, begin, stop, max_runs, float(jitter),
                            overlap, bool(stop_on_failure))
        with self._lock:
            if self._closed:
                raise self._refusal()
            if self._scheduler is None:
                self._scheduler = Scheduler(self.registry.clock, self._queue_run, self._find_runs,
                                            self.registry.bump)
                writer = self._history_writer
                if writer is not None:
                    self._scheduler.on_record = lambda s, now: writer.note_schedule(
                        s._id, s._label, s._rule.describe(), s._rule.expression, s._created,
                        None if s._reason is None else now, s._reason)
            scheduler = self._scheduler
        return scheduler.add(schedule)

    def _queue_run(self, schedule: Schedule) -> Tracker:
        """Queue one run of *schedule* (the scheduler's launch; never blocks)."""
        if self._closed:
            raise self._refusal()
        run, args, kwargs, label, tags, timeout, retries, quiet, context, process = schedule._call
        job = Job(run, args, kwargs, label, tags, timeout, retries, context, 0.0, self)
        details = job.ensure_details()
        details.schedule = schedule.id
        if quiet:
            details.quiet = True
        if self.max_queue:
            self.registry.reserve(False, None)  # QueueFull: the scheduler counts it missed
        capture.ensure_installed()
        if process:
            self._queue_process(job, ())
        elif self.registry.add(job):
            self._submit(job)
        return job

    def _find_runs(self, ids: list[int]) -> list[Tracker]:
        out: list[Tracker] = []
        for job_id in ids:
            with contextlib.suppress(JobNotFound):  # expired or cleared: runs() lists what the registry holds
                out.append(self.registry.get(job_id))
        return out

    # --------------------------------------------------------------- timeouts
    def _arm_timeout(self, job: Job) -> None:
        timeout = job.timeout
        if timeout is not None:  # always: the registry calls this only for timed jobs
            self._timers.call_later(timeout, lambda: self._deadline(job))

    def _start_expiry(self) -> None:
        """Start the expiry timer (the registry calls this at the first
        finish, under its lock: it must not raise into a finishing job)."""
        try:
            self._timers.call_later(0.0, lambda: self._expire(self._expiry_plan))
        except RuntimeError:
            # No thread can start (the interpreter is exiting): expiry stays
            # lazy, as lookups and queue() still sweep.
            log.debug("nbfrost: the expiry timer could not start", exc_info=True)

    def _expire(self, plan: int) -> None:
        """The expiry timer (on the timer thread): purge what has expired,
        then sleep until the oldest finished job expires, or for ``expiry``
        seconds when none is finished.  A new *plan* (``expiry`` changed)
        replaces this chain."""
        if self._closed or plan != self._expiry_plan:
            return
        registry = self.registry
        registry.sweep()
        delay = registry.next_expiry()
        if delay is not None:
            self._timers.call_later(max(delay, _EXPIRY_TICK), lambda: self._expire(plan))

    def _deadline(self, job: Job) -> None:
        backend = self._runner_of(job)
        if self.registry.time_out(job, backend.interrupt):
            self._timers.call_later(self.grace, lambda: backend.grace_expired(job))

    # ------------------------------------------- the jobs' side (JobOwner)
    # What the jobs this dispatcher owns ask of it: their trackers, their
    # futures and their output forwarding call these (see
    # `nbfrost.protocols.JobOwner`).  Users call `cancel`, `wait` and
    # `status` instead.

    def clock(self) -> float:
        """Now, in epoch seconds, on this dispatcher's clock (``clock=``)."""
        return self.registry.clock()

    def wait_for_job(self, job: Job, timeout: float | None) -> bool:
        """Block until *job* ends or *timeout* seconds pass; True if it ended.

        Raises `WaitDeadlock` when a job of this dispatcher waits for a
        queued one while every worker waits the same way."""
        if job._state is not QUEUED or getattr(capture.CURRENT, "ctx", None) is None:
            return self.registry.wait_for(job, timeout)
        return self._wait_in_a_job(job, timeout)

    # -- A job that waits for another job of the same pool: the waits are
    # counted (`_blocked`, under `_lock`), and the one that would leave no
    # worker to run the queued jobs they wait for raises WaitDeadlock.
    def _wait_in_a_job(self, job: Job, timeout: float | None) -> bool:
        ctx = getattr(capture.CURRENT, "ctx", None)
        waiter = None if ctx is None else ctx.job
        backend = self._backend
        if (waiter is None or waiter._owner is not self or backend.name != "threads"
                or self._runner_of(job) is not backend):
            return self.registry.wait_for(job, timeout)
        with self._lock:
            blocked = self._blocked + 1
            if blocked >= backend.workers and job._state is QUEUED:
                workers = backend.workers
                raise WaitDeadlock(
                    f"job {waiter._id} ({waiter.display_name}) waits for job {job._id} "
                    f"({job.display_name}), which is queued, but "
                    + ("the pool's only worker runs job " + str(waiter._id) if workers == 1 else
                       f"all {workers} workers run jobs that wait like this")
                    + f": job {job._id} could never start.  Give the pool more workers "
                    "(Dispatcher(workers=...) or d.resize(n)), or queue what comes next "
                    "with after=[...] instead of waiting inside a job",
                    waiter=waiter._id, awaited=job._id)
            self._blocked = blocked
        try:
            return self.registry.wait_for(job, timeout)
        finally:
            with self._lock:
                self._blocked -= 1

    def add_job_callback(self, job: Job, fn: Callable[[Job], None]) -> bool:
        """Call ``fn(job)`` when *job* ends; False if it already has."""
        return self.registry.add_callback(job, fn)

    def release_result(self, job: Job, *, forget: bool) -> Any:
        """A succeeded *job*'s result; with *forget* the registry lets it go."""
        return self.registry.release(job, value=forget)

    def cancel_job(self, job: Job, interrupt: bool = False, *, queued_only: bool = False) -> bool:
        """Cancel *job* (see `Tracker.cancel`); with *queued_only* only while
        it is queued.  True if it is, or will end, cancelled."""
        backend = self._runner_of(job)
        ok = self.registry.cancel(job, interrupt=interrupt, on_running=backend.interrupt,
                                  queued_only=queued_only)
        if ok and job.interrupted:
            self._timers.call_later(self.grace, lambda: backend.grace_expired(job))
        elif ok and job._state is RUNNING:
            # A backend whose jobs cannot read job._cancel_requested (Dask
            # workers, worker processes) is told, so that
            # nbfrost.cancelled() turns true there.
            backend.request_cancel(job)
        return ok

    # ---------------------------------------------------------------- queries
    def status(self, job_id: int) -> JobStatus:
        """The `JobStatus` of a job still in the registry.

        Raises `JobNotFound` (a `KeyError`) saying whether the id never
        existed or expired, and when.
        """
        job = self.registry.get(job_id)
        snap = job._final_status
        if snap is not None:  # finished: cached, immutable
            return snap
        return job.snapshot(self.registry.clock())

    def tracker(self, job_id: int) -> Tracker:
        """A `Tracker` for a job still in the registry (raises `JobNotFound`)."""
        return self.registry.get(job_id)  # the record is its own Tracker

    def jobs(self, state: StateFilter = None, name: str | None = None,
             tag: str | None = None) -> StatusList:
        """Snapshots of every job the registry holds, oldest first.

        *state* is a state or several; *name* an exact name or a glob
        (``"load*"``); *tag* one tag the job must carry.
        """
        now = self.registry.clock()
        return StatusList(j.snapshot(now) for j in self.registry.select(state, name, tag))

    def to_frame(self, state: StateFilter = None, name: str | None = None,
                 tag: str | None = None, newest: int | None = None) -> pd.DataFrame:
        """The registry as a pandas DataFrame, one row per job, indexed by id.

        With *newest*, only the newest that many matching jobs, newest first
        (its cost depends on *newest*, not on the registry's size).
        """
        if newest is not None:
            newest = _check_count("newest", newest, minimum=0)
        from .frames import jobs_to_frame
        jobs = self.registry.select(state, name, tag, newest)
        return jobs_to_frame(jobs, self.registry.clock())

    def cancel(self, job_id: int | Tracker, interrupt: bool = False) -> bool:
        """Cancel a job by id (see `Tracker.cancel`)."""
        job = job_id._job if isinstance(job_id, Tracker) else self.registry.get(job_id)
        return self.cancel_job(job, interrupt)

    def wait(self, ids: Iterable[int | Tracker] | None = None,
             timeout: float | None = None) -> bool:
        """Wait until the given jobs (default: all queued or running now) end.

        Returns True if they all ended within *timeout* seconds.

        Raises:
            WaitInterrupted: the wait was interrupted (the Stop button); the
                jobs keep running, and the error names them.  A
                `KeyboardInterrupt`.
        """
        _check_number("timeout", timeout, allow_none=True, positive=False)
        if ids is None:
            jobs = self.registry.active_jobs()
        else:
            jobs = [i._job if isinstance(i, Tracker) else self.registry.get(i) for i in ids]
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for job in jobs:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not self.wait_for_job(job, left):
                    return False
        except KeyboardInterrupt:
            raise wait_interrupted(jobs) from None
        return True

    def stats(self) -> dict[str, Any]:
        """Counts per state (held now), totals finished, submitted, throughput
        (jobs per second over the last minute), workers and busy workers;
        ``process_workers`` and ``process_busy`` (None until the process
        pool has been used) for the worker processes; ``history_error`` says
        why the history file stopped recording (None while it records, or
        without one).

        ``throughput`` counts the jobs that finished in the last
        ``throughput_window`` seconds (60, or the registry's age while it
        is younger), read from their finish times: right on the first
        call, however long after the jobs finished."""
        out = self.registry.stats()
        out["workers"] = self._backend.workers
        out["busy"] = self._backend.busy()
        out["backend"] = self._backend.name
        procs = self._processes
        out["process_workers"] = self.process_workers
        out["process_busy"] = None if procs is None else procs.busy()  # None: not started
        out["expiry"] = self.registry.expiry
        out["output_budget"] = self.registry.output_budget
        out["output_kept"] = self.registry.output_kept
        writer = self._history_writer
        # Why the history file stopped recording (deleted under the writer), or None.
        out["history_error"] = None if writer is None or writer.gone is None else str(writer.gone)
        return out

    def on_finish(self, callback: Callable[[Tracker], Any]) -> Callable[[], None]:
        """Call ``callback(tracker)`` whenever any job ends.  Returns an
        ``unsubscribe()`` function.  Errors in the callback are logged."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")

        def listener(job: Job) -> None:
            # A closure per subscription, so that unsubscribe() removes this
            # one even if the same callback was subscribed twice.
            callback(job)  # the record is its own Tracker

        with self._lock:
            self.registry.listeners = (*self.registry.listeners, listener)

        def unsubscribe() -> None:
            with self._lock:
                self.registry.listeners = tuple(
                    x for x in self.registry.listeners if x is not listener)
        return unsubscribe

    def clear(self, states: Iterable[JobState | str] = TERMINAL) -> int:
        """Remove finished jobs from the registry now.  Returns how many."""
        return self.registry.clear(states)

    def sweep(self) -> int:
        """Purge expired jobs now (queries do this too).  Returns how many."""
        return self.registry.sweep()

    # ------------------------------------------------------------- settings
    @property
    def workers(self) -> int:
        return self._backend.workers

    def resize(self, workers: int) -> None:
        """Change the number of workers now.  Shrinking lets running jobs finish."""
        workers = _check_workers(workers)
        self._backend.resize(workers)

    @property
    def expiry(self) -> float | None:
        return self.registry.expiry

    @expiry.setter
    def expiry(self, value: float | None) -> None:
        _check_number("expiry", value, allow_none=True, positive=False)
        self.registry.expiry = value
        if self.registry.on_first_finish is None and not self._closed:
            # The expiry timer runs (a job finished): plan it again now.
            self._expiry_plan += 1
            plan = self._expiry_plan
            self._timers.call_later(0.0, lambda: self._expire(plan))

    @property
    def output_budget(self) -> int | None:
        """Characters of output all finished jobs keep together (None: no
        limit).  Setting it applies at once: output over the new budget is
        dropped, oldest first."""
        return self.registry.output_budget

    @output_budget.setter
    def output_budget(self, value: int | None) -> None:
        if value is not None:
            value = _check_count("output_budget", value, minimum=0)
        self.registry.output_budget = value

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def closed(self) -> bool:
        return self._closed

    # -------------------------------------------------------------- shutdown
    def shutdown(self, wait: bool = True, cancel_pending: bool = False,
                 timeout: float | None = None, *, cancel_futures: bool = False) -> None:
        """Stop accepting jobs, then stop the workers.

        Args:
            wait: block until every queued and running job has ended and
                the workers have stopped.
            cancel_pending: cancel queued jobs (they end ``cancelled``)
                instead of running them.
            timeout: with *wait*, give running jobs this many seconds, then
                cancel them with an interrupt.
            cancel_futures: `Executor.shutdown`'s *cancel_pending*, except
                that workers that are free take the jobs they can start
                first (briefly; CPython's pool runs what its threads took).

        Safe to call twice.  No job is left without a terminal state.
        Called from inside one of this dispatcher's own jobs, it cannot wait
        for itself, so it behaves as ``wait=False``.
        """
        # The `JobContext` of the job this thread runs, if it runs one.
        running = getattr(capture.CURRENT, "ctx", None)
        if wait and running is not None and getattr(running, "registry", None) is self.registry:
            wait = False
        with self._lock:
            if self._closed:
                return
            self._closed = True
            scheduler = self._scheduler
        if scheduler is not None:
            scheduler.close()  # schedules end first: no run comes due during the shutdown
        registry = self.registry
        if cancel_futures:
            self._let_free_workers_start()
        if cancel_pending or cancel_futures:
            for job in registry.active_jobs():
                if job._state is QUEUED:
                    registry.cancel(job, reason=f"job {job._id} was cancelled by shutdown()")
        if not wait:
            self._stop_when_idle()
            return
        if not registry.wait_idle(timeout):
            for job in registry.active_jobs():
                self.cancel_job(job, interrupt=True)
        self._finish_shutdown(wait=True)

    def _let_free_workers_start(self, limit: float = 0.1) -> None:
        """Before queued jobs are cancelled, let free workers take theirs.

        A job handed to a free worker is as good as started (CPython's pool
        runs what its threads took before ``cancel_futures`` drains the
        queue), but the workers may not have been scheduled yet when
        ``shutdown`` follows a burst of ``submit`` calls at once.  Bounded
        by *limit* seconds (jobs waiting on dependencies never start).
        """
        procs = self._processes
        if procs is not None:
            # Processes still starting are free workers too: a job they
            # take once ready is as good as started.
            procs.wait_ready(defaults.PROCESS_STOP_TIMEOUT)
        deadline = time.monotonic() + limit
        backend, registry = self._backend, self.registry
        while (registry.counts()["queued"] and backend.busy() < backend.workers
               and time.monotonic() < deadline):
            time.sleep(0.001)

    def _stop_when_idle(self) -> None:
        def listener(job: Job) -> None:
            if self.registry.active == 0:
                self._finish_shutdown(wait=False)

        with self._lock:
            self.registry.listeners = (*self.registry.listeners, listener)
        if self.registry.active == 0:
            self._finish_shutdown(wait=False)

    def _finish_shutdown(self, wait: bool) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        exits.unregister(self)
        self._backend.stop(wait)
        procs = self._processes
        if procs is not None and procs is not self._backend:
            procs.stop(wait)
        self._timers.close()
        # Anything that slipped in during shutdown must still end somewhere.
        for job in self.registry.active_jobs():
            self.registry.cancel(job, interrupt=True,
                                 reason=f"job {job._id} was cancelled: the dispatcher shut down")
        if self._history_writer is not None:
            self._history_writer.close()  # commits the last changes, then detaches
        if self._publication is not None:
            self._publication.close()  # last words written, live entry removed
        capture.uninstall()

    @property
    def history_path(self) -> str | None:
        """The job history file given as ``history=``, or None."""
        return None if self._history_writer is None else self._history_writer.path

    def flush_history(self, timeout: float | None = None) -> bool:
        """Wait until every transition so far is committed to the history file.

        The writer commits on its own within milliseconds; call this when
        you must be sure (before handing the file to another process).
        Returns False if *timeout* seconds passed first; True without a
        history.  Raises `FileNotFoundError` if the file was deleted or
        replaced while this dispatcher wrote to it (``stats()["history_error"]``
        says so too).
        """
        return True if self._history_writer is None else self._history_writer.flush(timeout)

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        c = self.registry.counts()
        state = "closed" if self._closed else "open"
        return (f"<nbfrost.Dispatcher {state} backend={self._backend.name} workers={self.workers} "
                f"queued={c['queued']} running={c['running']} held={len(self.registry)}>")


if TYPE_CHECKING:
    # mypy checks that a Dispatcher gives its jobs what they need.
    _: type[JobOwner] = Dispatcher
