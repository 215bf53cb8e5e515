"""Shared fixtures.  Slow tests (real kernel, browser, cluster) carry the
``slow`` marker; ``make test`` runs everything."""

from __future__ import annotations

import threading
import time

import pytest

import nbfrost


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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


@pytest.fixture
def thread_baseline():
    """Asserts that a test leaves no thread behind."""
    baseline = live_threads()
    yield baseline
    leaked = wait_for_threads(baseline)
    assert not leaked, f"leaked threads: {sorted(t.name for t in leaked)}"


@pytest.fixture
def dispatcher(clock, thread_baseline):
    d = nbfrost.Dispatcher(workers=4, expiry=60.0, clock=clock)
    yield d
    d.shutdown(wait=True, cancel_pending=True, timeout=10)
