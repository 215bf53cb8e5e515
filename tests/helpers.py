"""Helpers shared by the test files: plain classes and functions, no
fixtures (the fixtures in ``conftest.py`` are built from these).

* a clock that moves only when told to (``FakeClock``);
* threads: ``live_threads``, ``wait_for_threads``, ``assert_no_leaked_threads``;
* waiting for what nothing signals: ``eventually``, ``running``;
* ``fill_pool``: keep *n* workers busy until a gate opens;
* ``concurrency_probe``: how many jobs a dispatcher really runs at once;
* ``Kernel``: a real Jupyter kernel with every iopub message collected;
  ``kernel_with``: one that has run some setup, checked for leaked threads after.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbfrost
from nbfrost import JobState, Tracker

REPO = Path(__file__).resolve().parent.parent
WAIT = 10.0  # generous bound for anything that should happen "at once"


# ------------------------------------------------------------------ clock
class FakeClock:
    """An injectable clock: epoch seconds that move only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


# ---------------------------------------------------------------- threads
def live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def wait_for_threads(baseline: set[threading.Thread], timeout: float = 10.0) -> set[threading.Thread]:
    """Threads alive now that were not in *baseline*, after letting exiting
    threads finish (join, not sleep)."""
    deadline = time.monotonic() + timeout
    extra = live_threads() - baseline
    for t in list(extra):
        t.join(max(0.0, deadline - time.monotonic()))
    return {t for t in live_threads() - baseline}


def assert_no_leaked_threads(baseline: set[threading.Thread]) -> None:
    """Fails naming every thread started since *baseline* that does not end."""
    leaked = wait_for_threads(baseline)
    assert not leaked, f"leaked threads: {sorted(t.name for t in leaked)}"


# ---------------------------------------------------------------- waiting
def eventually(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    """Poll *predicate* until it holds; for states nothing signals directly."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        time.sleep(0.001)


def running(tracker: Tracker, timeout: float = WAIT) -> None:
    """Block until *tracker*'s job has left the queued state."""
    eventually(lambda: tracker.state is not JobState.QUEUED, timeout, f"job {tracker.id} to start")


def fill_pool(d: nbfrost.Dispatcher, n: int) -> tuple[threading.Event, list[Tracker]]:
    """Queue *n* jobs that hold a worker each until the returned gate is set,
    and wait until all of them run: (gate, their trackers)."""
    gate = threading.Event()
    blockers = [d.queue(gate.wait, WAIT) for _ in range(n)]
    for b in blockers:
        running(b)
    return gate, blockers


def concurrency_probe(d: nbfrost.Dispatcher, n_jobs: int, expect: int) -> int:
    """Queue *n_jobs* jobs that overlap as much as the pool lets them and
    return the highest number seen running at once.

    The first *expect* jobs hold a gate until all of them are running and a
    short window has passed in which no extra job started (so a pool with
    more capacity than *expect* fails here); then every job runs through.
    """
    lock = threading.Lock()
    current = peak = 0
    started = threading.Semaphore(0)
    gate = threading.Event()

    def job() -> None:
        nonlocal current, peak
        with lock:
            current += 1
            peak = max(peak, current)
        started.release()
        gate.wait(WAIT)
        with lock:
            current -= 1

    ts = [d.queue(job, quiet=True) for _ in range(n_jobs)]
    for i in range(expect):
        assert started.acquire(timeout=WAIT), f"only {i} of {expect} jobs started"
    assert not started.acquire(timeout=0.1), "more jobs ran at once than there are workers"
    assert d.stats()["counts"]["running"] == expect
    gate.set()
    assert d.wait(ts, timeout=WAIT)
    return peak


# ----------------------------------------------------------------- kernel
class Kernel:
    """A real kernel and a thread that collects every iopub message (used by
    the kernel, Dask and history tests)."""

    def __init__(self, cwd: str | os.PathLike | None = None) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(REPO if cwd is None else cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.messages: list[dict] = []
        self._cond = threading.Condition()  # guards messages
        self._stop = threading.Event()
        self._pump = threading.Thread(target=self._collect, name="test-iopub", daemon=True)
        self._pump.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            with self._cond:
                self.messages.append(msg)
                self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0) -> dict:
        """The first message matching *predicate*, waiting up to *timeout* s."""
        def find():
            return next((m for m in self.messages if predicate(m)), None)

        with self._cond:
            assert self._cond.wait_for(find, timeout), "no matching iopub message"
            return find()

    def submit(self, code: str) -> str:
        return self.kc.execute(code)

    def reply(self, msg_id: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                break
        # Its own output is complete once the kernel went idle for it.
        self.wait_for(lambda m: parent(m) == msg_id and m["msg_type"] == "status"
                      and m["content"]["execution_state"] == "idle")
        return msg["content"]

    def run(self, code: str) -> str:
        msg_id = self.submit(code)
        content = self.reply(msg_id)
        assert content["status"] == "ok", content
        return msg_id

    def streams(self, text: str) -> list[dict]:
        with self._cond:
            return [m for m in self.messages
                    if m["msg_type"] == "stream" and text in m["content"]["text"]]

    def stdout(self, msg_id: str) -> str:
        """Everything the cell *msg_id* wrote to stdout, in order."""
        with self._cond:
            return "".join(m["content"]["text"] for m in self.messages
                           if parent(m) == msg_id and m["msg_type"] == "stream"
                           and m["content"]["name"] == "stdout")

    def close(self) -> None:
        self._stop.set()
        self._pump.join()
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


@contextlib.contextmanager
def kernel_with(setup: str) -> Iterator[Kernel]:
    """A `Kernel` that has run *setup*; closed after the block, and no thread
    of this process may outlive it (for a module-scoped ``kernel`` fixture)."""
    baseline = live_threads()
    k = Kernel()
    k.run(setup)
    yield k
    k.close()
    assert_no_leaked_threads(baseline)


def parent(msg: dict) -> str | None:
    return msg["parent_header"].get("msg_id")


# -------------------------------------------------------------- processes
def child_pids(pid: int | None = None) -> set[int]:
    """Live (not zombie) child processes of *pid* (default: this process),
    read from /proc."""
    me = os.getpid() if pid is None else pid
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == me and fields[0] != "Z":
            out.add(int(entry))
    return out


def process_alive(pid: int) -> bool:
    """True while *pid* exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"
