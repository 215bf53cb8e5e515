"""``stats()["throughput"]`` counts the jobs that finished in its window,
read from their finish times: right on the first call, however late, and
the same on every call (the injectable clock moves time)."""

from __future__ import annotations

import pytest

import nbfrost
from nbfrost import defaults
from nbfrost.notebook.dashboard import Dashboard

WAIT = 10.0


@pytest.fixture
def d(clock, thread_baseline):
    d = nbfrost.Dispatcher(workers=2, expiry=None, clock=clock)
    yield d
    d.shutdown(wait=True, cancel_pending=True, timeout=10)


def test_first_call_after_the_jobs_finished_counts_them(d, clock):
    clock.advance(120.0)                      # an old registry: the window is a full minute
    d.wait([d.queue(abs, -i) for i in range(30)], timeout=WAIT)
    clock.advance(4.0)
    first = d.stats()
    assert first["throughput_window"] == defaults.THROUGHPUT_WINDOW == 60
    assert first["throughput"] == pytest.approx(30 / 60)
    # Reading it again (a dashboard reads it twice a second) changes nothing.
    assert d.stats()["throughput"] == pytest.approx(30 / 60)
    clock.advance(30.0)
    assert d.stats()["throughput"] == pytest.approx(30 / 60)
    clock.advance(30.0)                       # 64 s after they finished: out of the window
    assert d.stats()["throughput"] == 0.0


def test_a_young_registry_counts_since_it_was_made(d, clock):
    d.wait([d.queue(abs, -i) for i in range(5)], timeout=WAIT)
    clock.advance(10.0)
    s = d.stats()
    assert s["throughput_window"] == 10.0
    assert s["throughput"] == pytest.approx(0.5)


def test_only_the_jobs_inside_the_window_count(d, clock):
    clock.advance(200.0)
    d.wait([d.queue(abs, -i) for i in range(100)], timeout=WAIT)   # old: out of the window
    clock.advance(50.0)
    d.wait([d.queue(abs, -i) for i in range(12)], timeout=WAIT)
    clock.advance(20.0)                        # the first 100 finished 70 s ago
    assert d.stats()["throughput"] == pytest.approx(12 / 60)
    clock.advance(1.0)
    d.wait([d.queue(abs, -i) for i in range(6)], timeout=WAIT)
    assert d.stats()["throughput"] == pytest.approx(18 / 60)


def test_marks_stay_bounded(d, clock):
    for _ in range(300):                       # one finish a second for five minutes
        d.queue(abs, -1).wait(WAIT)
        clock.advance(1.0)
    assert len(d.registry._marks) <= defaults.THROUGHPUT_WINDOW + 2
    assert d.stats()["throughput"] == pytest.approx(60 / 60, abs=1 / 60)


def test_dashboard_header_names_the_window(d, clock):
    clock.advance(120.0)
    d.wait([d.queue(abs, -i) for i in range(30)], timeout=WAIT)
    clock.advance(4.0)
    dash = Dashboard(d, refresh=None)
    try:
        dash.refresh_now()
        assert "throughput <b>30/min</b> (last 60 s)" in dash.header.value
    finally:
        dash.close()
