"""One job lifecycle, proven equal on every path: the scenario table.

A job's life is written out more than once for speed (``Registry.start`` /
``finish`` and ``run_chunk``; the thread worker's inlined loop and its chunk
runners; ``Job.__init__`` and ``bulk_jobs``), and each backend drives it its
own way.  This module runs the same `SCENARIOS` through every way in and
checks that each ends with the same `Outcome`: final state, attempts, which
times are set, output, result, error type, callbacks and waiters.

* A `Scenario` is a job and what happens to it, written once against a
  `Run` (which starts jobs through the path under test), with the one
  `Outcome` every path must give.
* A `Path` is a way in: how to make its dispatcher and how to start a job
  (with a blocker before it when the scenario needs the job to wait).
  `in_process_paths` gives the ones on this process's threads
  (``queue()``, ``submit()``, ``map()``, ``map()`` with ``max_queue``),
  `process_path` the process pool (``queue(..., process=True)``), and
  ``tests/cluster`` adds the Dask backend.  Another way in (a new backend)
  is one more `Path`: a name, the ``queue()`` options it can express
  (`Path.supports`), a dispatcher factory and a launcher; a scenario that
  needs an option a path cannot express is skipped for it, with the reason.
* Synchronisation goes through a `Sync` (events and queues): `threading`
  ones for threads, files (`FileSync`) for worker processes, `distributed`
  ones on a cluster, so the job functions below run unchanged anywhere.
  They are module-level so that cloudpickle can ship them by value.
"""

from __future__ import annotations

import asyncio
import os
import queue as queue_mod
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import nbfrost
from nbfrost import JobCancelled, JobFailed, JobState, Tracker

#: Generous bound for anything that should happen soon (a loaded machine).
WAIT = 30.0


# --------------------------------------------------------------- the jobs
def answer() -> int:
    return 42


def inner_failure() -> None:
    raise ValueError("boom")


def fails() -> None:
    inner_failure()


def silent() -> str:
    return "ran"


def hold(gate: Any) -> str:
    """Block until *gate* is set (a blocker, or a job someone waits on)."""
    assert gate.wait(WAIT)
    return "held"


def until_cancelled(q: Any, gate: Any) -> str:
    """Say it started, then loop until nbfrost.cancelled() (or the gate)."""
    q.put("started")
    while not nbfrost.cancelled():
        if gate.wait(0.01):
            return "gate"
    return "stopped"


def chatty() -> str:
    print("to stdout")
    print("to stderr", file=sys.stderr)
    return "printed"


async def coroutine_job() -> str:
    await asyncio.sleep(0)
    return "async"


# -------------------------------------------------------- what is compared
@dataclass(frozen=True)
class Outcome:
    """What every path must agree on, for one scenario."""

    state: str
    attempts: int
    #: Which of queued_at, started_at, finished_at are set.
    times: tuple[str, ...]
    output: str
    #: ``repr`` of the value, or the type name of the error ``result()`` gives.
    result: str
    error_type: str | None
    #: Done callback and ``on_finish`` listener calls for this job, in order.
    callbacks: tuple[str, ...] = ()
    #: Whether a thread waiting on the job woke up (None: nobody waited).
    waiter: bool | None = None


BOTH = ("queued_at", "started_at", "finished_at")
NEVER_STARTED = ("queued_at", "finished_at")


def observe(t: Tracker, run: Run) -> Outcome:
    """The `Outcome` of finished job *t*, read through its tracker."""
    # Polled, not waited on: a waiter would give the job the details that
    # send it down the general path, and the fast paths must be seen too.
    _eventually(t.done, f"job {t.id} to end")
    # Done callbacks and listeners run after waiters are woken.
    deadline = time.monotonic() + WAIT
    while len(run.callbacks_of(t)) < run.expected_callbacks and time.monotonic() < deadline:
        time.sleep(0.001)
    s = t.status()
    times = tuple(name for name in BOTH if getattr(s, name) is not None)
    if s.started_at is not None:
        assert s.queued_at <= s.started_at <= s.finished_at, s
    try:
        result = repr(t.result(WAIT))
    except JobFailed as exc:
        result = type(exc.__cause__).__name__
    except JobCancelled:
        result = "JobCancelled"
    return Outcome(state=s.state.value, attempts=s.attempts, times=times, output=t.output,
                   result=result, error_type=s.error_type, callbacks=run.callbacks_of(t),
                   waiter=run.waiter)


# -------------------------------------------------------------- the paths
class Sync(Protocol):
    """Events and queues that work where the path runs its jobs."""

    def event(self) -> Any: ...

    def queue(self) -> Any: ...


class ThreadSync:
    """`threading` events and queues, for jobs that run in this process."""

    def event(self) -> threading.Event:
        return threading.Event()

    def queue(self) -> queue_mod.Queue:
        return queue_mod.Queue()


class FileEvent:
    """An event in a folder, for jobs in other processes: set() makes a
    file, wait() polls for it (there is nothing else to wait on)."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, f"event-{uuid.uuid4().hex}")

    def set(self) -> None:
        with open(self.path, "w"):
            pass

    def is_set(self) -> bool:
        return os.path.exists(self.path)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (WAIT if timeout is None else timeout)
        while not self.is_set():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True


class FileQueue:
    """A queue of short texts in a folder, one file each, for jobs in other
    processes; get() takes the oldest."""

    def __init__(self, folder: str) -> None:
        self.folder = os.path.join(folder, f"queue-{uuid.uuid4().hex}")
        os.mkdir(self.folder)

    def put(self, text: str) -> None:
        name = f"{time.monotonic_ns():020d}-{uuid.uuid4().hex}"
        tmp = os.path.join(self.folder, "." + name)
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.folder, name))  # whole, or not there

    def get(self, timeout: float | None = None) -> str:
        deadline = time.monotonic() + (WAIT if timeout is None else timeout)
        while True:
            names = sorted(n for n in os.listdir(self.folder) if not n.startswith("."))
            if names:
                path = os.path.join(self.folder, names[0])
                with open(path) as f:
                    text = f.read()
                os.remove(path)
                return text
            if time.monotonic() >= deadline:
                raise queue_mod.Empty
            time.sleep(0.002)


class FileSync:
    """Events and queues in *folder*, for jobs in worker processes."""

    def __init__(self, folder: str) -> None:
        self.folder = str(folder)

    def event(self) -> FileEvent:
        return FileEvent(self.folder)

    def queue(self) -> FileQueue:
        return FileQueue(self.folder)


#: What keeps every worker busy so that a job waits: (fn, args, how many).
Blocker = tuple[Callable[..., Any], tuple, int]
#: Launch a job: (dispatcher, fn, args, queue() options, blocker) -> its
#: tracker.  The blocker, when given, is started first.
Launcher = Callable[[nbfrost.Dispatcher, Callable[..., Any], tuple, dict, "Blocker | None"],
                    Tracker]


@dataclass
class Path:
    """One way into the lifecycle."""

    name: str
    make_dispatcher: Callable[[], nbfrost.Dispatcher]
    launch: Launcher
    #: The ``queue()`` options this path can express (retries, timeout, after).
    supports: frozenset[str] = frozenset()
    #: How many blockers keep every worker busy (a cluster's workers, say).
    blockers: int = 1
    #: Called after a scenario, to let go of what the launcher kept (map iterators).
    cleanup: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        return self.name


def queue_launch(d: nbfrost.Dispatcher, fn: Callable[..., Any], args: tuple, options: dict,
                 blocker: Blocker | None) -> Tracker:
    """``d.queue(fn, *args, **options)``, behind the blocker's jobs."""
    if blocker is not None:
        block, block_args, count = blocker
        for _ in range(count):
            d.queue(block, *block_args)
    return d.queue(fn, *args, **options)


def _submit_launch(d: nbfrost.Dispatcher, fn: Callable[..., Any], args: tuple, options: dict,
                   blocker: Blocker | None) -> Tracker:
    assert not options, options
    if blocker is not None:
        block, block_args, count = blocker
        for _ in range(count):
            d.submit(block, *block_args)
    future = d.submit(fn, *args)
    return d.tracker(future.job_id)


class _MapLauncher:
    """``map()`` over three items, the job in the middle of one chunk: the
    blocker (or a no-op) before it, a no-op after it."""

    def __init__(self) -> None:
        self.iterators: list[Iterator[Any]] = []

    def __call__(self, d: nbfrost.Dispatcher, fn: Callable[..., Any], args: tuple,
                 options: dict, blocker: Blocker | None) -> Tracker:
        assert not options, options
        assert blocker is None or blocker[2] == 1, "one worker: one blocker"

        def item(i: int) -> Any:
            if i == 1:
                return fn(*args)
            if i == 0 and blocker is not None:
                return blocker[0](*blocker[1])
            return None

        first = d.stats()["submitted"]  # the next id: map's jobs take consecutive ones
        # Kept until cleanup: closing a map iterator cancels its queued jobs.
        self.iterators.append(d.map(item, range(3), chunksize=3))
        return d.tracker(first + 1)

    def cleanup(self) -> None:
        for it in self.iterators:
            for _ in range(3):
                try:
                    next(it)
                except StopIteration:
                    break
                except BaseException:  # the job's own error, already observed
                    continue
        self.iterators.clear()


def in_process_paths() -> list[Path]:
    """The ways in that run jobs on this process's threads."""
    plain, bounded = _MapLauncher(), _MapLauncher()
    return [
        Path("queue", lambda: nbfrost.Dispatcher(workers=1), queue_launch,
             frozenset({"retries", "timeout", "after"})),
        Path("submit", lambda: nbfrost.Dispatcher(workers=1), _submit_launch),
        Path("map", lambda: nbfrost.Dispatcher(workers=1), plain, cleanup=plain.cleanup),
        Path("map-max_queue", lambda: nbfrost.Dispatcher(workers=1, max_queue=4), bounded,
             cleanup=bounded.cleanup),
    ]


def _process_launch(d: nbfrost.Dispatcher, fn: Callable[..., Any], args: tuple,
                    options: dict, blocker: Blocker | None) -> Tracker:
    if blocker is not None:
        block, block_args, count = blocker
        for _ in range(count):
            d.queue(block, *block_args, process=True)
    return d.queue(fn, *args, process=True, **options)


def process_path() -> Path:
    """``queue(..., process=True)``: the job runs in a worker process of the
    dispatcher's process pool (one worker), synchronised through files
    (`FileSync`).  The scenarios' jobs travel by value."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return Path("queue-process", lambda: nbfrost.Dispatcher(workers=1, process_workers=1),
                _process_launch, frozenset({"retries", "timeout", "after"}))


# ---------------------------------------------------------- the scenarios
@dataclass
class Run:
    """One scenario on one path: starts its jobs, records what it sees."""

    d: nbfrost.Dispatcher
    path: Path
    sync: Sync
    events: list[tuple[str, int]] = field(default_factory=list)
    expected_callbacks: int = 0
    waiter: bool | None = None

    def start(self, fn: Callable[..., Any], *args: Any,
              blocker: tuple[Callable[..., Any], tuple] | None = None, **options: Any) -> Tracker:
        """Start ``fn(*args)`` through the path, behind *blocker* (fn, args)
        on every worker if given."""
        busy = None if blocker is None else (blocker[0], blocker[1], self.path.blockers)
        return self.path.launch(self.d, fn, args, options, busy)

    def record(self, kind: str) -> Callable[[Tracker], None]:
        def callback(t: Tracker) -> None:
            assert t.state in nbfrost.TERMINAL
            self.events.append((kind, t.id))
        return callback

    def callbacks_of(self, t: Tracker) -> tuple[str, ...]:
        return tuple(kind for kind, job_id in list(self.events) if job_id == t.id)


def _eventually(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def _success(r: Run) -> Tracker:
    return r.start(answer)


def _failure(r: Run) -> Tracker:
    return r.start(fails)


def _failure_with_retries(r: Run) -> Tracker:
    return r.start(fails, retries=2)


def _cancel_queued(r: Run) -> Tracker:
    gate = r.sync.event()
    t = r.start(silent, blocker=(hold, (gate,)))
    assert t.state is JobState.QUEUED
    assert t.cancel() is True
    assert t.state is JobState.CANCELLED  # at once
    gate.set()
    return t


def _cancel_running(interrupt: bool) -> Callable[[Run], Tracker]:
    def scenario(r: Run) -> Tracker:
        q, gate = r.sync.queue(), r.sync.event()
        t = r.start(until_cancelled, q, gate)
        assert q.get(timeout=WAIT) == "started"
        _eventually(lambda: t.state is JobState.RUNNING, f"job {t.id} to be running")
        assert t.cancel(interrupt=interrupt) is True
        if interrupt:
            assert t.state is JobState.CANCELLED  # at once
        try:
            return t
        finally:
            t.wait(WAIT)
            gate.set()  # a job that missed the cancel still ends
    return scenario


def _timeout(r: Run) -> Tracker:
    q, gate = r.sync.queue(), r.sync.event()
    t = r.start(until_cancelled, q, gate, timeout=0.3)
    assert q.get(timeout=WAIT) == "started"
    t.wait(WAIT)
    gate.set()
    return t


def _waiter(r: Run) -> Tracker:
    gate = r.sync.event()
    t = r.start(hold, gate)
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(t.wait(WAIT)), name="test-waiter")
    waiter.start()

    def parked() -> bool:
        details = t._job._details
        return details is not None and bool(details.waiters)

    _eventually(parked, "the waiter to park")
    gate.set()
    waiter.join(WAIT)
    r.waiter = woke == [True]
    return t


def _listeners(r: Run) -> Tracker:
    gate = r.sync.event()
    unsubscribe = r.d.on_finish(r.record("on_finish"))
    try:
        t = r.start(hold, gate)
        t.add_done_callback(r.record("done"))
        r.expected_callbacks = 2
        gate.set()
        t.wait(WAIT)
        _eventually(lambda: len(r.callbacks_of(t)) == 2, "both callbacks")
    finally:
        unsubscribe()
    return t


def _prints(r: Run) -> Tracker:
    return r.start(chatty)


def _coroutine(r: Run) -> Tracker:
    return r.start(coroutine_job)


def _dependency_fails(r: Run) -> Tracker:
    dep = r.start(fails)
    return r.start(answer, after=dep)


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Run], Tracker]
    expected: Outcome
    #: The ``queue()`` options it needs (a path that cannot express one skips it).
    needs: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return self.name


_CANCELLED_WHILE_RUNNING = Outcome("cancelled", 1, BOTH, "", "JobCancelled", "JobCancelled")

SCENARIOS: list[Scenario] = [
    Scenario("success", _success, Outcome("succeeded", 1, BOTH, "", "42", None)),
    Scenario("failure", _failure, Outcome("failed", 1, BOTH, "", "ValueError", "ValueError")),
    Scenario("failure with retries", _failure_with_retries,
             Outcome("failed", 3, BOTH, "", "ValueError", "ValueError"), frozenset({"retries"})),
    Scenario("cancel while queued", _cancel_queued,
             Outcome("cancelled", 0, NEVER_STARTED, "", "JobCancelled", "JobCancelled")),
    Scenario("cancel while running, cooperative", _cancel_running(False),
             _CANCELLED_WHILE_RUNNING),
    Scenario("cancel while running, interrupting", _cancel_running(True),
             _CANCELLED_WHILE_RUNNING),
    Scenario("timeout", _timeout, Outcome("failed", 1, BOTH, "", "JobTimeout", "JobTimeout"),
             frozenset({"timeout"})),
    Scenario("a waiter", _waiter, Outcome("succeeded", 1, BOTH, "", "'held'", None, waiter=True)),
    Scenario("an on_finish listener and a done callback", _listeners,
             Outcome("succeeded", 1, BOTH, "", "'held'", None, ("done", "on_finish"))),
    Scenario("a job that prints", _prints,
             Outcome("succeeded", 1, BOTH, "to stdout\nto stderr\n", "'printed'", None)),
    Scenario("a coroutine job", _coroutine, Outcome("succeeded", 1, BOTH, "", "'async'", None)),
    Scenario("a dependency that fails", _dependency_fails,
             Outcome("cancelled", 0, NEVER_STARTED, "", "JobCancelled", "JobCancelled"),
             frozenset({"after"})),
]


def play(scenario: Scenario, path: Path, sync: Sync) -> Outcome:
    """Run *scenario* through *path* on a dispatcher of its own; its `Outcome`."""
    missing = scenario.needs - path.supports
    if missing:
        import pytest

        pytest.skip(f"{path.name} cannot express {', '.join(sorted(missing))}=")
    d = path.make_dispatcher()
    try:
        run = Run(d, path, sync)
        t = scenario.run(run)
        return observe(t, run)
    finally:
        path.cleanup()
        d.shutdown(wait=True, cancel_pending=True, timeout=WAIT)
