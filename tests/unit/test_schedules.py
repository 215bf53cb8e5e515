"""Schedules (d.every / d.cron / d.at) driven by an injected clock: no sleeping.

The scheduler's `tick()` starts what is due by the clock now, on the test's
thread; the timer thread waits on real time meanwhile and finds nothing to
do, because only the test moves the clock.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from helpers import FakeClock, assert_no_leaked_threads, eventually, live_threads

import nbfrost
from nbfrost import defaults
from nbfrost.rules import CronRule, IntervalRule, describe_cron, describe_interval, parse_interval
from nbfrost.schedules import Schedule, ScheduleState

WAIT = 10.0
T0 = 1_700_000_000.0  # a whole minute: 2023-11-14 22:13:20 UTC is not; see `clock`


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_040.0)  # 22:14:00 UTC, on a minute


@pytest.fixture
def d(clock: FakeClock):
    dispatcher = nbfrost.Dispatcher(workers=4, clock=clock, expiry=None)
    yield dispatcher
    dispatcher.shutdown(wait=True, cancel_pending=True, timeout=5)


def step(d: nbfrost.Dispatcher, clock: FakeClock, seconds: float = 0.0,
         to: float | None = None, settled: bool = True) -> int:
    """Move the clock by *seconds* (or *to* a time) and start what is due;
    returns how many runs started, here or, having woken first, on the
    timer thread.  With *settled*, the runs so far end first (else a run
    due now would overlap the one before)."""
    scheduler = d._scheduler
    assert scheduler is not None
    if settled:
        for s in d.schedules():
            settle(s)
    before = sum(s.run_count for s in d.schedules())
    if to is not None:
        clock.now = to
    else:
        clock.advance(seconds)
    scheduler.tick()
    return sum(s.run_count for s in d.schedules()) - before


def settle(s: Schedule) -> None:
    """Every run so far ended, and the schedule heard of it (its done
    callbacks run just after waiters wake)."""
    for run in s.runs():
        assert run.wait(WAIT)
    eventually(lambda: not s._active, what=f"schedule {s.id} to see its runs end")


# ---------------------------------------------------------------- intervals
def test_every_runs_one_interval_apart_and_never_early(d, clock):
    calls: list[str] = []
    s = d.every("5m", calls.append, "x", name="poll")
    assert s.state is ScheduleState.ACTIVE
    assert s.next_run == datetime.fromtimestamp(clock() + 300, timezone.utc)
    assert step(d, clock, 299) == 0
    assert step(d, clock, 1) == 1
    settle(s)
    assert calls == ["x"] and s.run_count == 1 and s.missed == 0
    for _ in range(3):
        assert step(d, clock, 300) == 1
    settle(s)
    assert len(calls) == 4 and [r.status().schedule for r in s.runs()] == [s.id] * 4
    assert s.last is s.runs()[-1]


def test_a_before_run_hook_runs_before_each_run_is_queued_and_cannot_stop_it(d, clock):
    from nbfrost.schedules import before_each_run

    calls: list[str] = []
    s = d.every("1m", calls.append, "run")
    before_each_run(s, lambda: calls.append(f"before {len(s.runs())}"))
    assert "before_each_run" not in dir(s) and "_before_run" not in dir(s)
    assert step(d, clock, 60) == 1
    assert step(d, clock, 60) == 1
    settle(s)
    assert calls == ["before 0", "run", "before 1", "run"]

    def broken() -> None:
        raise RuntimeError("a front end's hook failed")

    before_each_run(s, broken)
    assert step(d, clock, 60) == 1  # logged; the run still comes
    before_each_run(s, None)
    assert step(d, clock, 60) == 1
    settle(s)
    assert calls.count("run") == 4


@pytest.mark.parametrize("value, seconds", [(30, 30.0), (0.5, 0.5), ("30s", 30.0), ("5m", 300.0),
                                             ("1h", 3600.0), ("2d", 172800.0),
                                             (timedelta(minutes=2), 120.0)])
def test_intervals_are_read_from_numbers_strings_and_timedeltas(value, seconds):
    assert parse_interval(value) == seconds


def test_start_is_the_first_run_and_sets_the_phase(d, clock):
    start = clock() + 1000
    s = d.every(60, lambda: None, start=start)
    assert step(d, clock, 999) == 0
    assert step(d, clock, 1) == 1
    assert s.next_run == datetime.fromtimestamp(start + 60, timezone.utc)


def test_end_and_max_runs_end_the_schedule(d, clock):
    s = d.every(10, lambda: None, end=clock() + 25)
    m = d.every(10, lambda: None, max_runs=2)
    for _ in range(3):
        step(d, clock, 10)
    settle(s)
    settle(m)
    assert s.run_count == 2 and s.state is ScheduleState.ENDED and "end" in s.reason
    assert m.run_count == 2 and m.state is ScheduleState.ENDED and "max_runs=2" in m.reason
    assert s.next_run is None


# -------------------------------------------------------------------- cron
def test_cron_follows_the_expression(d, clock):
    s = d.cron("*/15 * * * *", lambda: None, tz="UTC")
    assert s.next_run == datetime(2023, 11, 14, 22, 15, tzinfo=timezone.utc)
    assert step(d, clock, 60) == 1
    assert s.next_run == datetime(2023, 11, 14, 22, 30, tzinfo=timezone.utc)
    assert s.rule == "every 15 min (UTC)"


def test_cron_with_seconds_first():
    rule = CronRule("*/10 * * * * *", ZoneInfo("UTC"))
    assert rule.after(T0) == T0 + 10
    assert describe_cron("*/10 * * * * *") == "every 10 s"


def _utc(when: float) -> datetime:
    return datetime.fromtimestamp(when, timezone.utc)


def test_cron_across_daylight_saving_changes_in_a_time_zone():
    berlin = ZoneInfo("Europe/Berlin")
    hourly = CronRule("0 * * * *", berlin)
    # Clocks go back at 03:00 CEST on 2026-10-25: every real hour still runs once.
    t = datetime(2026, 10, 25, 0, 30, tzinfo=berlin).timestamp()
    times = []
    for _ in range(4):
        t = hourly.after(t)
        times.append(t)
    assert [b - a for a, b in itertools.pairwise(times)] == [3600.0] * 3
    assert [_utc(x).hour for x in times] == [23, 0, 1, 2]  # 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET
    # Clocks go forward at 02:00 CET on 2026-03-29: 02:30 does not exist that day.
    daily = CronRule("30 2 * * *", berlin)
    t = daily.after(datetime(2026, 3, 28, 12, 0, tzinfo=berlin).timestamp())
    assert datetime.fromtimestamp(t, berlin).strftime("%H:%M %Z") == "03:00 CEST"
    t = daily.after(t)
    assert datetime.fromtimestamp(t, berlin).strftime("%d %H:%M") == "30 02:30"


def test_a_cron_schedule_runs_through_a_daylight_saving_change(clock):
    berlin = ZoneInfo("Europe/Berlin")
    clock.now = datetime(2026, 3, 29, 1, 0, tzinfo=berlin).timestamp()
    with nbfrost.Dispatcher(clock=clock) as d:
        s = d.cron("0 * * * *", lambda: None, tz="Europe/Berlin")
        seen = []
        for _ in range(3):
            assert s.next_run is not None
            seen.append(s.next_run.astimezone(berlin).strftime("%H:%M %Z"))
            assert step(d, clock, to=s.next_run.timestamp()) == 1
        assert seen == ["02:00 CET", "04:00 CEST", "05:00 CEST"] or seen == ["03:00 CEST", "04:00 CEST",
                                                                             "05:00 CEST"]
        assert s.missed == 0 and s.run_count == 3


# ------------------------------------------------------------------ jitter
def test_jitter_delays_each_run_within_its_bound_without_drift(d, clock):
    s = d.every(100, lambda: None, jitter=7)
    d._scheduler.random = random.Random(1)
    due = clock() + 100
    delays = []
    for _ in range(30):
        assert s.next_run is not None
        fire = s.next_run.timestamp()
        delays.append(fire - due)
        assert step(d, clock, to=fire - 0.001) == 0
        assert step(d, clock, to=fire + 1e-5) == 1  # next_run is to the microsecond
        due += 100
    assert all(0 <= x <= 7 for x in delays)
    assert len({round(x, 3) for x in delays}) > 20  # a fresh delay per run
    assert s.missed == 0


# ----------------------------------------------------------------- overlap
def _blocking(release: threading.Event, started: threading.Semaphore):
    def job() -> None:
        started.release()
        assert release.wait(WAIT)
    return job


@pytest.mark.parametrize("overlap, runs_while_busy, missed", [
    ("skip", 0, 3), ("queue", 0, 2), ("allow", 3, 0)])
def test_overlap_policies(d, clock, overlap, runs_while_busy, missed):
    release, started = threading.Event(), threading.Semaphore(0)
    s = d.every(10, _blocking(release, started), overlap=overlap)
    step(d, clock, 10, settled=False)
    assert started.acquire(timeout=WAIT)
    for _ in range(3):  # three more due times while the first run runs
        step(d, clock, 10, settled=False)
    assert len(s.runs()) == 1 + runs_while_busy
    assert s.missed == missed
    release.set()
    if overlap == "queue":  # the one waiting run starts when the first ends
        assert started.acquire(timeout=WAIT)
        s.runs()[0].wait(WAIT)
    settle(s)
    assert len(s.runs()) == {"skip": 1, "queue": 2, "allow": 4}[overlap]
    assert all(r.state.value == "succeeded" for r in s.runs())


def test_missed_runs_coalesce_into_one_after_a_stall(d, clock):
    s = d.every(60, lambda: None)
    assert step(d, clock, 60 * 10 + 30) == 1  # ten due times passed while nothing ran
    settle(s)
    assert s.run_count == 1 and s.missed == 9
    # The next due time is on the old phase, after now.
    assert s.next_run == datetime.fromtimestamp(1_700_000_040.0 + 660, timezone.utc)


def test_coalescing_a_cron_rule(d, clock):
    s = d.cron("* * * * *", lambda: None, tz="UTC")
    assert step(d, clock, 5 * 60 + 1) == 1
    assert s.missed == 4


# ------------------------------------------------------- pause and cancel
def test_pause_and_resume(d, clock):
    s = d.every(60, lambda: None)
    assert s.pause() and not s.pause()
    assert s.state is ScheduleState.PAUSED and s.next_run is None
    assert step(d, clock, 60 * 5) == 0
    assert s.resume() and not s.resume()
    assert s.missed == 0  # what came due while paused is not missed
    assert s.next_run == datetime.fromtimestamp(1_700_000_040.0 + 360, timezone.utc)
    assert step(d, clock, 60) == 1


def test_cancel_leaves_a_running_run_alone_unless_asked(d, clock):
    release, started = threading.Event(), threading.Semaphore(0)
    a = d.every(10, _blocking(release, started))
    step(d, clock, 10, settled=False)
    assert started.acquire(timeout=WAIT)
    assert a.cancel() and not a.cancel()
    assert a.state is ScheduleState.ENDED and a.reason == "cancelled"
    assert step(d, clock, 10, settled=False) == 0
    assert a.last is not None and a.last.running()
    release.set()
    assert a.last.result(WAIT) is None

    def cooperative() -> str:
        started.release()
        while not nbfrost.cancelled():
            release.wait(0.01)
        return "stopped"

    b = d.every(10, cooperative)
    step(d, clock, 10, settled=False)
    assert started.acquire(timeout=WAIT)
    assert b.cancel(running=True)
    assert b.last is not None and b.last.wait(WAIT)
    assert b.last.state.value == "cancelled"


# ---------------------------------------------------------------- failures
def test_a_failing_run_stops_the_schedule_only_with_stop_on_failure(d, clock):
    def boom() -> None:
        raise RuntimeError("boom")

    keep = d.every(10, boom, quiet=True)
    stop = d.every(10, boom, stop_on_failure=True, quiet=True)
    for _ in range(2):
        step(d, clock, 10)
        settle(keep)
        settle(stop)
    assert keep.state is ScheduleState.ACTIVE and keep.run_count == 2
    assert stop.state is ScheduleState.ENDED and stop.run_count == 1
    assert "stop_on_failure" in stop.reason


# ------------------------------------------------------------------ at()
def test_at_runs_once(d, clock):
    s = d.at(datetime.fromtimestamp(clock() + 90, timezone.utc), lambda: 7)
    assert step(d, clock, 90) == 1
    assert s.last is not None and s.last.result(WAIT) == 7
    assert s.state is ScheduleState.ENDED and s.rule.startswith("once at")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, fix", [
    (lambda d, now: d.cron("61 * * * *", print), "5 fields"),
    (lambda d, now: d.cron("* * *", print), "5 fields"),
    (lambda d, now: d.cron("* * * * *", print, tz="Mars/Olympus"), "IANA name"),
    (lambda d, now: d.every(0, print), "more than 0"),
    (lambda d, now: d.every(-5, print), "more than 0"),
    (lambda d, now: d.every("5 parsecs", print), "'5m'"),
    (lambda d, now: d.at(datetime.fromtimestamp(now - 1, timezone.utc), print), "in the past"),
    (lambda d, now: d.every(10, print, start=now + 100, end=now + 50), "before start"),
    (lambda d, now: d.every(10, print, overlap="sometimes"), "'skip'"),
    (lambda d, now: d.every(10, print, end=now + 5), "never run"),
    (lambda d, now: d.every(10, print, max_runs=0), "max_runs"),
    (lambda d, now: d.every(10, print, jitter=-1), "jitter"),
])
def test_bad_input_is_a_value_error_naming_the_fix_and_schedules_nothing(d, clock, make, fix):
    with pytest.raises(ValueError, match=fix):
        make(d, clock())
    assert d.schedules() == []
    assert len(d.registry) == 0


def test_schedules_lists_and_finds(d):
    a = d.every(10, print, name="a")
    b = d.cron("0 * * * *", print, name="b")
    assert d.schedules() == [a, b] and d.schedule(b.id) is b
    with pytest.raises(KeyError, match="no schedule 99"):
        d.schedule(99)


def test_a_schedule_shows_its_api_not_its_record(d):
    s = d.every(10, print)
    assert "pause" in dir(s) and not [n for n in dir(s) if n.startswith("_")]
    with pytest.raises(AttributeError):
        s.foo = 1


# --------------------------------------------------- status, frame, schema
def test_each_runs_status_and_frame_row_carry_its_schedule(d, clock):
    schema = json.loads((Path(nbfrost.__file__).parent / "schema" / "status.schema.json").read_text())
    s = d.every(10, lambda: None)
    plain = d.queue(lambda: None)
    step(d, clock, 10)
    settle(s)
    assert plain.wait(WAIT)
    run = s.last
    assert run is not None
    doc = json.loads(run.status().to_json())
    jsonschema.validate(doc, schema)
    assert doc["schedule"] == s.id and plain.status().to_dict()["schedule"] is None
    frame = d.to_frame()
    assert str(frame["schedule"].dtype) == "Int64"
    assert frame.loc[run.id, "schedule"] == s.id
    assert frame["schedule"].isna()[plain.id]
    snap = s.status().to_dict()
    assert snap["last"] == run.id and snap["last_state"] == "succeeded" and snap["runs"] == 1


# --------------------------------------------------------- threads, limits
def test_one_timer_thread_serves_every_schedule_and_shutdown_joins_it(clock):
    baseline = live_threads()
    d = nbfrost.Dispatcher(workers=1, clock=clock)
    for i in range(defaults.SCHEDULES_ENDED_KEPT + 50):  # more than shutdown keeps listing
        d.every(10 + i, print)
    names = [t.name for t in live_threads() - baseline]
    assert names.count("nbfrost-schedules") == 1
    d.shutdown(wait=True)
    assert all(s.state is ScheduleState.ENDED for s in d.schedules())
    assert len(d.schedules()) == defaults.SCHEDULES_ENDED_KEPT
    assert_no_leaked_threads(baseline)
    with pytest.raises(RuntimeError, match="shut down"):
        d.every(10, print)


def test_ended_schedules_kept_are_bounded(d, monkeypatch):
    monkeypatch.setattr(defaults, "SCHEDULES_ENDED_KEPT", 3)
    schedules = [d.every(10, print) for _ in range(6)]
    for s in schedules:
        s.cancel()
    assert [s.id for s in d.schedules()] == [s.id for s in schedules[-3:]]


def test_run_ids_remembered_are_bounded():
    assert defaults.SCHEDULE_RUNS_KEPT >= 100
    s = Schedule(IntervalRule(1), None, "x", (), None, None, None, 0.0, "skip", False)
    assert s._run_ids.maxlen == defaults.SCHEDULE_RUNS_KEPT


# -------------------------------------------------------------- in words
@pytest.mark.parametrize("expr, words", [
    ("* * * * *", "every minute"),
    ("*/5 * * * *", "every 5 min"),
    ("0 * * * *", "at minute 0 of every hour"),
    ("15 */2 * * *", "at minute 15 of every 2 hours"),
    ("30 9 * * *", "every day at 09:30"),
    ("0 9 * * 1-5", "Monday to Friday at 09:00"),
    ("0 18 * * sat,sun", "Saturday, Sunday at 18:00"),
    ("0 0 1 * *", "on day 1 of every month at 00:00"),
    ("0 0 * * * *", "at minute 0 of every hour"),
    ("0 0 1 1 *", "cron '0 0 1 1 *'"),
])
def test_cron_in_words(expr, words):
    assert describe_cron(expr) == words


@pytest.mark.parametrize("seconds, words", [(30, "every 30 s"), (300, "every 5 min"),
                                            (3600, "every 1 h"), (5400, "every 1 h 30 min"),
                                            (86400, "every day"), (0.5, "every 0.5 s")])
def test_intervals_in_words(seconds, words):
    assert describe_interval(seconds) == words


def test_process_runs_each_run_in_a_worker_process(d, clock):
    import os

    s = d.every(10, os.getpid, process=True, name="pid")
    assert step(d, clock, 10) == 1
    assert s.last is not None and s.last.result(60) != os.getpid()
    assert s.last.status().schedule == s.id
    with pytest.raises(TypeError, match="process"):
        d.every(10, print, process="yes")
