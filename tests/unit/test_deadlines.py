"""A job's timeout holds even when the timer thread that enforces it is late
(a busy machine): an attempt that ends after the deadline fails the job with
`JobTimeout`, whatever it returned."""

from __future__ import annotations

import threading
import time
from collections import Counter

import nbfrost
from nbfrost import JobState

WAIT = 30


def _sleep(seconds: float) -> str:
    time.sleep(seconds)  # a C call: no interrupt reaches it
    return "done"


def test_a_job_that_overran_fails_even_when_the_timer_thread_is_late(thread_baseline):
    with nbfrost.Dispatcher(workers=1) as d:
        held = threading.Event()
        release = threading.Event()

        def hold_the_timer_thread() -> None:
            held.set()
            release.wait(WAIT)

        d._timers.call_later(0, hold_the_timer_thread)  # the timer thread is busy
        assert held.wait(WAIT)
        try:
            t = d.queue(_sleep, 0.05, timeout=0.005)
            assert t.wait(WAIT)  # ended by the worker, not by the timer
            status = t.status()
            assert status.state is JobState.FAILED
            assert status.error_type == "JobTimeout"
            assert "exceeded its timeout of 0.005 s" in status.error
        finally:
            release.set()
        # A job that ends in time still succeeds.
        assert d.queue(_sleep, 0, timeout=10).result(WAIT) == "done"


def test_short_timeouts_on_a_busy_pool_never_end_succeeded(thread_baseline):
    # More workers than cores, every job far past its deadline: the timer
    # thread competes with them for the GIL and fires late.
    with nbfrost.Dispatcher(workers=8) as d:
        ts = [d.queue(_sleep, 0.03, timeout=0.005, quiet=True) for _ in range(200)]
        assert d.wait(ts, timeout=WAIT * 4)
        states = Counter(t.status().state for t in ts)
        assert states == {JobState.FAILED: 200}, states
