"""The issue's numbers: 2,000 jobs that each run 300 ms with timeout=0.005 on
8 workers (2 cores here): none ends succeeded (1,755 did before the deadline
was checked when an attempt ends)."""

from __future__ import annotations

import time
from collections import Counter

import nbfrost
from nbfrost import JobState


def _sleep() -> None:
    time.sleep(0.3)


def test_two_thousand_overrunning_jobs_on_a_busy_pool_all_time_out():
    with nbfrost.Dispatcher(workers=8) as d:
        ts = [d.queue(_sleep, timeout=0.005, quiet=True) for _ in range(2000)]
        assert d.wait(ts, timeout=600)
        states = Counter(t.status().state for t in ts)
        assert states == {JobState.FAILED: 2000}, states
        assert {t.status().error_type for t in ts} == {"JobTimeout"}
