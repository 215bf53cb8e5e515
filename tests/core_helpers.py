"""Helpers shared by the core test files (not fixtures: plain functions)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import nbfrost
from nbfrost import JobState, Tracker

WAIT = 10.0  # generous bound for anything that should happen "at once"


def eventually(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    """Poll *predicate* until it holds; for states nothing signals directly."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        time.sleep(0.001)


def running(tracker: Tracker, timeout: float = WAIT) -> None:
    """Block until *tracker*'s job has left the queued state."""
    eventually(lambda: tracker.state is not JobState.QUEUED, timeout, f"job {tracker.id} to start")


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
