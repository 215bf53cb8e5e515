"""Scheduled cells and the schedule subcommands in a real IPython InteractiveShell,
plus the dashboard's Schedules tab; the dispatcher runs on an injected clock."""

from __future__ import annotations

import html
import threading
from datetime import datetime

import pytest
from helpers import FakeClock, assert_no_leaked_threads, live_threads
from IPython.core.completer import provisionalcompleter
from IPython.core.error import UsageError

import nbfrost
from nbfrost.notebook.dashboard import Dashboard
from nbfrost.notebook.magics import FrostMagics
from nbfrost.notebook.schedule_cell import LiveSchedule, parse_at

WAIT = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_040.0)


@pytest.fixture
def shell(ip, clock, thread_baseline):
    """The shell with nbfrost loaded and its dispatcher on *clock*."""
    ip.run_line_magic("load_ext", "nbfrost")
    magics: FrostMagics = ip.magics_manager.registry["FrostMagics"]
    magics._dispatcher = nbfrost.Dispatcher(workers=2, clock=clock, expiry=None)
    ip.user_ns["hits"] = []
    yield ip
    ip.run_line_magic("unload_ext", "nbfrost")
    for key in ("hits", "s_"):
        ip.user_ns.pop(key, None)


def dispatcher(ip) -> nbfrost.Dispatcher:
    return ip.magics_manager.registry["FrostMagics"].get_dispatcher()


def step(ip, clock: FakeClock, seconds: float) -> None:
    """Move the clock and start what is due; wait for the runs to end."""
    d = dispatcher(ip)
    clock.advance(seconds)
    assert d._scheduler is not None
    d._scheduler.tick()
    for s in d.schedules():
        for run in s.runs():
            assert run.wait(WAIT)


def ok(ip, source: str):
    result = ip.run_cell(source, store_history=True)
    assert result.success, (result.error_before_exec, result.error_in_exec)
    return result.result


def test_an_every_cell_is_one_schedule_whose_runs_run_the_body(shell, clock):
    live = ok(shell, "%%frost --every 5m -n refresh -t poll\nhits.append(len(hits))\nlen(hits)")
    assert isinstance(live, LiveSchedule)
    d = dispatcher(shell)
    (s,) = d.schedules()
    assert live.schedule is s and s.name == "refresh" and s.tags == ("poll",)
    assert s.rule == "every 5 min" and shell.user_ns["hits"] == []
    for _ in range(3):
        step(shell, clock, 300)
    assert shell.user_ns["hits"] == [0, 1, 2]
    assert [r.result(WAIT) for r in s.runs()] == [1, 2, 3]
    assert all(r.status().schedule == s.id for r in s.runs())


def test_cron_and_at_cells(shell, clock):
    ok(shell, '%%frost --cron "*/10 * * * *" --tz UTC\nhits.append("cron")')
    ok(shell, "%%frost --at 2099-01-01T00:00\nhits.append('at')")
    cron, at = dispatcher(shell).schedules()
    assert cron.rule == "every 10 min (UTC)" and at.rule.startswith("once at 2099-01-01")
    step(shell, clock, 600)
    assert shell.user_ns["hits"] == ["cron"]


def test_at_a_time_of_day_is_today_or_tomorrow():
    now = datetime(2026, 12, 7, 18, 0)
    assert parse_at("18:30", now) == datetime(2026, 12, 7, 18, 30)
    assert parse_at("17:59:30", now) == datetime(2026, 12, 8, 17, 59, 30)
    assert parse_at("2026-12-24T09:00", now) == datetime(2026, 12, 24, 9, 0)
    for bad in ("25:00", "tea time"):
        with pytest.raises(UsageError, match="HH:MM"):
            parse_at(bad, now)


@pytest.mark.parametrize("line, fix", [
    ("--every 0", "more than 0"),
    ("--every soon", "'5m'"),
    ('--cron "61 * * * *"', "5 fields"),
    ("--every 5m --cron '* * * * *'", "cannot be combined"),
    ("--every 5m --after 0", "--after does not apply"),
    ("--at 2000-01-01T00:00", "in the past"),
    ("--every 5m --overlap never", "invalid choice"),
    ("--cron '* * * * *' --tz Nowhere/Land", "IANA name"),
])
def test_bad_schedule_options_are_usage_errors_and_schedule_nothing(shell, line, fix):
    result = shell.run_cell(f"%%frost {line}\nhits.append(1)")
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    assert fix in str(result.error_in_exec)
    assert dispatcher(shell).schedules() == []


def test_schedules_pause_resume_unschedule(shell, clock, capsys):
    ok(shell, "%%frost --every 60 -n tick\nhits.append(1)")
    listing = ok(shell, "%frost schedules")
    assert "every 1 min" in repr(listing) and "every 1 min" in listing._repr_html_()
    ok(shell, "%frost pause 0")
    step(shell, clock, 120)
    assert shell.user_ns["hits"] == []
    ok(shell, "%frost resume 0")
    step(shell, clock, 60)
    assert shell.user_ns["hits"] == [1]
    ok(shell, "%frost unschedule 0")
    step(shell, clock, 60)
    assert shell.user_ns["hits"] == [1]
    out = capsys.readouterr().out
    assert "schedule 0 paused" in out and "schedule 0 resumed" in out and "schedule 0 ended" in out
    with pytest.raises(UsageError, match="no schedule 7"):
        shell.run_line_magic("frost", "pause 7")


def test_schedule_ids_complete_by_what_the_command_can_act_on(shell):
    ok(shell, "%%frost --every 60 -n first\nNone")
    ok(shell, "%%frost --every 60 -n second\nNone")
    dispatcher(shell).schedule(1).pause()

    def texts(code: str) -> list[tuple[str, str]]:
        with provisionalcompleter():
            return [(c.text, c.type) for c in shell.Completer.completions(code, len(code))]

    assert texts("%frost pause ") == [("0", "active")]
    assert texts("%frost resume ") == [("1", "paused")]
    assert [t for t, _ in texts("%frost unschedule ")] == ["1", "0"]
    assert "--every" in [t for t, _ in texts("%%frost --ev")]


def test_unload_and_reload_end_the_schedules(ip, thread_baseline):
    baseline = live_threads()
    ip.run_line_magic("load_ext", "nbfrost")
    ok(ip, "%%frost --every 5m\nNone")
    d = ip.magics_manager.registry["FrostMagics"].get_dispatcher()
    (s,) = d.schedules()
    ip.run_line_magic("reload_ext", "nbfrost")
    assert s.state.value == "ended" and s.reason == "the dispatcher shut down"
    ok(ip, "%%frost --every 5m\nNone")
    (s2,) = ip.magics_manager.registry["FrostMagics"].get_dispatcher().schedules()
    ip.run_line_magic("unload_ext", "nbfrost")
    assert s2.state.value == "ended"
    assert_no_leaked_threads(baseline)


def test_a_setting_that_needs_a_new_dispatcher_waits_for_the_schedules(shell):
    ok(shell, "%%frost --every 5m\nNone")
    d = dispatcher(shell)
    ok(shell, "%config FrostMagics.max_queue = 5")
    assert dispatcher(shell) is d  # the schedule keeps it alive
    d.schedules()[0].cancel()
    assert dispatcher(shell) is not d
    shell.config.pop("FrostMagics", None)


# ------------------------------------------------------------ dashboard
def test_the_dashboards_schedules_tab_shows_and_steers_them(clock, thread_baseline):
    d = nbfrost.Dispatcher(workers=1, clock=clock)
    try:
        s = d.every("5m", lambda: None, name="<b>refresh</b>")
        d.cron("0 * * * *", lambda: None, name="hourly", tz="UTC")
        dash = Dashboard(d, refresh=None)
        dash.tabs.selected_index = 2
        table = dash.schedules_table.value
        assert "every 5 min" in table and "at minute 0 of every hour (UTC)" in table
        assert html.escape("<b>refresh</b>") in table and "<b>refresh</b>" not in table
        dash.select_schedule(s.id)
        assert not dash.schedule_pause.disabled and dash.schedule_resume.disabled
        dash.schedule_pause.click()
        assert s.state.value == "paused" and "paused" in dash.schedules_table.value
        assert dash.schedule_pause.disabled and not dash.schedule_resume.disabled
        dash.schedule_resume.click()
        assert s.state.value == "active"
        clock.advance(300)
        d._scheduler.tick()
        assert s.last is not None and s.last.wait(WAIT)
        dash.refresh_now()
        assert f"job {s.last.id}" in dash.schedules_table.value
        dash.schedule_cancel.click()
        assert s.state.value == "ended" and dash.schedule_cancel.disabled
        dash.close()
    finally:
        d.shutdown()


def test_a_schedule_badge_has_one_line_and_working_buttons(clock, thread_baseline):
    from nbfrost.notebook.schedule_cell import ScheduleBadge

    d = nbfrost.Dispatcher(workers=1, clock=clock)
    try:
        s = d.every(60, lambda: None, name="<i>x</i>")
        badge = ScheduleBadge(s)
        assert "every 1 min" in badge.html.value and "<i>x</i>" not in badge.html.value
        badge.pause_button.click()
        assert s.state.value == "paused" and badge.pause_button.description == "Resume"
        badge.pause_button.click()
        assert s.state.value == "active" and badge.pause_button.description == "Pause"
        assert not badge.finished
        badge.cancel_button.click()
        assert s.state.value == "ended" and badge.finished and badge.cancel_button.disabled
        bundle = badge.bundle()
        assert "application/vnd.jupyter.widget-view+json" in bundle and "text/plain" in bundle
        badge.box.close()
    finally:
        d.shutdown()


def test_runs_of_a_scheduled_cell_keep_their_own_output(shell, clock):
    ok(shell, "%%frost --every 60\nprint('run', len(hits)); hits.append(1)")
    for _ in range(3):
        step(shell, clock, 60)
    runs = dispatcher(shell).schedules()[0].runs()
    assert [r.output for r in runs] == ["run 0\n", "run 1\n", "run 2\n"]


def test_threads_are_one_timer_for_all_scheduled_cells(shell):
    before = {t.name for t in threading.enumerate()}
    for _ in range(5):
        ok(shell, "%%frost --every 5m\nNone")
    names = [t.name for t in threading.enumerate()]
    assert names.count("nbfrost-schedules") == 1 or "nbfrost-schedules" in before
