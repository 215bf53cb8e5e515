"""A job that waits for a queued job of its own pool while no worker is
left to start it gets `WaitDeadlock` at once, not a wait until its timeout."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import eventually

import nbfrost
from nbfrost import JobState, WaitDeadlock

WAIT = 10.0


@pytest.fixture
def one(thread_baseline):
    d = nbfrost.Dispatcher(workers=1)
    yield d
    d.shutdown(wait=True, cancel_pending=True, timeout=10)


def test_a_one_worker_pool_raises_in_the_waiting_job(one):
    d = one
    holder: dict = {}

    def outer():
        holder["inner"] = inner = d.queue(lambda: "inner ran", name="inner")
        return inner.result(timeout=60)

    started = time.monotonic()
    t = d.queue(outer, name="outer")
    assert t.wait(WAIT)
    assert time.monotonic() - started < 5           # not the 60 s timeout
    assert t.state is JobState.FAILED
    err = t.exception()
    assert isinstance(err, WaitDeadlock) and isinstance(err, RuntimeError)
    inner = holder["inner"]
    assert (err.waiter, err.awaited) == (t.id, inner.id)
    assert str(err).startswith(f"job {t.id} (outer) waits for job {inner.id} (inner), which "
                               f"is queued, but the pool's only worker runs job {t.id}")
    assert "d.resize(n)" in str(err) and "after=[...]" in str(err)
    # The waiting job failed, its worker is free: the awaited job runs.
    assert inner.result(timeout=WAIT) == "inner ran"
    assert nbfrost.WaitDeadlock is WaitDeadlock and "WaitDeadlock" in nbfrost.__all__


def test_d_wait_inside_a_job_is_checked_too(one):
    d = one

    def outer():
        inner = d.queue(int, name="inner")
        return d.wait([inner], timeout=60)

    t = d.queue(outer, name="outer")
    assert t.wait(WAIT) and isinstance(t.exception(), WaitDeadlock)


def test_waiting_while_another_worker_will_come_free_is_fine(thread_baseline):
    d = nbfrost.Dispatcher(workers=2)
    gate = threading.Event()
    try:
        busy = d.queue(gate.wait, WAIT, name="busy")   # a plain job on the other worker

        def outer():
            inner = d.queue(lambda: "inner ran", name="inner")
            gate.set()                                 # busy ends; its worker takes inner
            return inner.result(timeout=WAIT)

        t = d.queue(outer, name="outer")
        assert t.result(timeout=WAIT) == "inner ran"
        assert busy.result(timeout=WAIT) is True
    finally:
        gate.set()
        d.shutdown(wait=True, cancel_pending=True, timeout=10)


def test_the_wait_that_takes_the_last_worker_raises(thread_baseline):
    d = nbfrost.Dispatcher(workers=2)
    try:
        barrier = threading.Barrier(2)

        def waits(name):
            barrier.wait(WAIT)                         # both workers are in a job
            inner = d.queue(int, name=f"inner-{name}")
            if name == "y":                            # x waits first (no sleep: its count)
                eventually(lambda: d._blocked == 1, what="x to wait")
            return inner.result(timeout=60)

        x = d.queue(waits, "x", name="x")
        y = d.queue(waits, "y", name="y")
        assert y.wait(WAIT)
        assert isinstance(y.exception(), WaitDeadlock)
        assert "all 2 workers run jobs that wait like this" in str(y.exception())
        assert x.result(timeout=WAIT) == 0             # y's worker came free: x's inner ran
        assert d._blocked == 0
    finally:
        d.shutdown(wait=True, cancel_pending=True, timeout=10)
