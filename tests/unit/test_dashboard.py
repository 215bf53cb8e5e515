"""Widget-level tests of `nbfrost.Dashboard` (no front end).

Most tests use ``refresh=None`` and `Dashboard.refresh_now()`, so they do
not depend on the refresh thread's timing; the thread's own behaviour
(renders only on change, one thread per dispatcher, shutdown) is tested
through `_Hub.wait_ticks`, which counts its passes.
"""

from __future__ import annotations

import html
import re
import threading

import pytest

import nbfrost
from nbfrost import JobState
from nbfrost.notebook.dashboard import Dashboard, hub, render, widget

XSS = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
WAIT = 10.0


def count(dash: Dashboard, state: str) -> int:
    """The counter the header shows for *state*."""
    m = re.search(rf'nbf-count-{state}".*?<b>([\d,]+)</b>', dash.header.value)
    assert m, f"no {state} counter in the header"
    return int(m.group(1).replace(",", ""))


def table_ids(dash: Dashboard) -> list[int]:
    """Job ids in the rendered table, top to bottom."""
    body = dash.table.value.split("<tbody>", 1)
    if len(body) < 2:
        return []
    return [int(x) for x in re.findall(r"<tr>\s*<td[^>]*>(\d+)</td>", body[1])]


def all_html(dash: Dashboard) -> str:
    return "".join(w.value for w in (dash.header, dash.banner, dash.table, dash.details,
                                     dash.timeline, dash.message, dash.page_label))


@pytest.fixture
def d1(clock, thread_baseline):
    """One worker, so tests decide exactly which job runs and which waits."""
    d = nbfrost.Dispatcher(workers=1, expiry=3600.0, clock=clock)
    yield d
    d.shutdown(wait=True, cancel_pending=True, timeout=10)


def blocker(d: nbfrost.Dispatcher, **kw):
    """Queue a job that runs until released; returns (tracker, started, release)."""
    started, release = threading.Event(), threading.Event()

    def hold():
        print("holding")
        nbfrost.report(0.25, "holding the worker")
        started.set()
        while not release.wait(0.01):
            if nbfrost.cancelled():
                return "stopped"
        return "released"

    t = d.queue(hold, name=kw.pop("name", "hold"), **kw)
    assert started.wait(WAIT)
    return t, started, release


def boom(text="bad input"):
    raise ValueError(text)


# ------------------------------------------------------------------ header
def test_counters_throughput_and_workers(d1, clock):
    ok = [d1.queue(lambda: 1, name=f"ok{i}") for i in range(3)]
    bad = d1.queue(boom, name="bad")
    d1.wait([*ok, bad], timeout=WAIT)
    _hold, _, release = blocker(d1)
    waiting = [d1.queue(lambda: 2, name=f"wait{i}") for i in range(2)]
    waiting[1].cancel()
    clock.advance(10.0)
    dash = Dashboard(d1, refresh=None)
    try:
        assert {s.value: count(dash, s.value) for s in JobState} == {
            "queued": 1, "running": 1, "succeeded": 3, "failed": 1, "cancelled": 1}
        # 5 jobs finished in the 10 s the registry has existed: 30 a minute.
        assert "throughput <b>30/min</b>" in dash.header.value
        assert "workers <b>1/1</b> busy" in dash.header.value
        assert "held <b>7</b> of 7" in dash.header.value
        release.set()
        d1.wait(timeout=WAIT)
        dash.refresh_now()
        assert count(dash, "succeeded") == 5 and count(dash, "running") == 0
        assert "workers <b>0/1</b> busy" in dash.header.value
    finally:
        release.set()
        dash.close()


def test_bad_arguments_raise_before_anything_starts(d1):
    with pytest.raises(TypeError, match="refresh"):
        Dashboard(d1, refresh="fast")
    with pytest.raises(ValueError, match="refresh must be > 0"):
        Dashboard(d1, refresh=0)
    with pytest.raises(ValueError, match="page_size"):
        Dashboard(d1, page_size=0)
    with pytest.raises(TypeError, match="page_size"):
        Dashboard(d1, page_size=2.5)
    with pytest.raises(TypeError, match="Dispatcher"):
        Dashboard("not a dispatcher")
    assert not any(t.name == "nbfrost-dashboard" for t in threading.enumerate())
    assert id(d1) not in hub._hubs


def test_default_dispatcher_is_the_magics_one(thread_baseline):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history thread to leak
    shell = InteractiveShell.instance(config=config)
    try:
        d = nbfrost.get_dispatcher()
        dash = Dashboard(refresh=None)
        assert dash.dispatcher is d
        dash.close()
    finally:
        shell.run_line_magic("unload_ext", "nbfrost")
        InteractiveShell.clear_instance()


# ----------------------------------------------------------------- filters
def test_state_and_text_filters(d1):
    a = d1.queue(lambda: 1, name="load-users", tags=("etl",))
    b = d1.queue(boom, name="load-orders", tags=("etl", "nightly"))
    c = d1.queue(lambda: 1, name="train", tags=("ml",))
    d1.wait(timeout=WAIT)
    dash = Dashboard(d1, refresh=None)
    try:
        assert table_ids(dash) == [c.id, b.id, a.id]  # newest first
        dash.state_filter.value = "failed"
        assert table_ids(dash) == [b.id]
        assert "1–1 of 1" in dash.page_label.value
        dash.state_filter.value = "active"
        assert table_ids(dash) == []
        assert "No queued or running jobs" in dash.table.value
        dash.state_filter.value = "all"
        dash.text_filter.value = "load"  # substring of the name
        assert table_ids(dash) == [b.id, a.id]
        dash.text_filter.value = "tag:ml"
        assert table_ids(dash) == [c.id]
        dash.text_filter.value = "load-* tag:nightly"  # glob and tag together
        assert table_ids(dash) == [b.id]
        dash.text_filter.value = "nothing-like-this"
        assert table_ids(dash) == []
        assert "matching nothing-like-this" in dash.table.value
    finally:
        dash.close()


def test_parse_filter():
    assert render.parse_filter("") == (None, None)
    assert render.parse_filter("load") == ("*load*", None)
    assert render.parse_filter("lo?d*") == ("lo?d*", None)
    assert render.parse_filter("tag:etl") == (None, "etl")
    assert render.parse_filter("big job tag:x") == ("*big job*", "x")


def test_paging_newest_first(d1):
    ts = [d1.queue(lambda: None, name=f"j{i}") for i in range(120)]
    d1.wait(timeout=WAIT)
    dash = Dashboard(d1, refresh=None, page_size=50)
    try:
        ids = [t.id for t in ts][::-1]
        assert table_ids(dash) == ids[:50]
        assert "1–50 of 120" in dash.page_label.value
        assert dash.prev_button.disabled and not dash.next_button.disabled
        dash.next_button.click()
        assert table_ids(dash) == ids[50:100]
        assert "51–100 of 120" in dash.page_label.value
        dash.next_button.click()
        assert table_ids(dash) == ids[100:]
        assert "101–120 of 120" in dash.page_label.value
        assert dash.next_button.disabled and not dash.prev_button.disabled
        dash.prev_button.click()
        assert table_ids(dash) == ids[50:100]
        # A text filter shows its total too.
        dash.text_filter.value = "j"
        assert table_ids(dash) == ids[:50]  # a new filter starts at page 1
        assert "1–50 of 120" in dash.page_label.value
        assert not dash.next_button.disabled
        # The dropdown offers the page's jobs.
        offered = [v for _, v in dash.job_select.options if v is not None]
        assert offered == ids[:50]
        # Clearing the jobs of a later page goes back to a page that exists.
        dash.text_filter.value = ""
        dash.next_button.click()
        dash.next_button.click()
        d1.clear()
        dash.refresh_now()
        assert dash._page == 0 and table_ids(dash) == []
    finally:
        dash.close()


def test_pager_totals_with_a_text_filter(d1):
    for i in range(111):
        d1.queue(lambda: None, name=f"load-{i}", tags=["etl"] if i % 3 == 0 else [])
    for i in range(9):
        d1.queue(lambda: None, name=f"other-{i}")
    d1.wait(timeout=WAIT)
    dash = Dashboard(d1, refresh=None, page_size=50)
    try:
        dash.text_filter.value = "load"
        assert "1–50 of 111" in dash.page_label.value
        dash.next_button.click()
        dash.next_button.click()
        assert "101–111 of 111" in dash.page_label.value and dash.next_button.disabled
        dash.text_filter.value = "load-1?"   # a glob: load-10 … load-19
        assert "1–10 of 10" in dash.page_label.value
        dash.text_filter.value = "tag:etl"
        assert "1–37 of 37" in dash.page_label.value
        dash.text_filter.value = "load tag:etl"
        dash.state_filter.value = "failed"
        assert "0 jobs" in dash.page_label.value
        dash.state_filter.value = "succeeded"
        assert "1–37 of 37" in dash.page_label.value
        dash.text_filter.value = "nothing-like-this"
        assert "0 jobs" in dash.page_label.value
    finally:
        dash.close()


def test_count_matches_what_select_lists(d1):
    import fnmatch

    names = ["load-1", "load-12", "xload", "Load", "a*b", "a[b]", "", "load-1x", "**"]
    for n in names:
        d1.queue(lambda: None, name=n if n else None)
    d1.wait(timeout=WAIT)
    held = [t.name for t in d1.jobs()]
    for pattern in ["*load*", "load-1*", "*a*b*", "*[b]*", "*", "**", "*oad-1?", "Load", "*x*"]:
        glob = any(c in pattern for c in "*?[")
        want = [n for n in held if (fnmatch.fnmatchcase(n, pattern) if glob else n == pattern)]
        assert [t.name for t in d1.jobs(name=pattern)] == want, pattern
        assert d1.registry.count(name=pattern) == len(want), pattern


def test_long_cells_carry_their_whole_text_as_an_escaped_tooltip(d1):
    name = 'say "hi" <b>' + "x" * 200
    t = d1.queue(boom, 'it said "no" & <i>left</i> ' + "y" * 300, name=name, tags=["a&b"])
    d1.wait(timeout=WAIT)
    dash = Dashboard(d1, refresh=None)
    try:
        table = dash.table.value
        full = html.escape(name, quote=True)
        assert f'<td class="nbf-col-name" title="{full}">{full}</td>' in table
        error = t.status().error_type + ": " + t.status().error
        assert f'title="{html.escape(error, quote=True)}"' in table
        assert '<td class="nbf-col-tags" title="a&amp;b">a&amp;b</td>' in table
        assert '"hi"' not in table and "<b>" not in table and "<i>" not in table
        # Short columns (id, times) carry none.
        assert f'<td class="nbf-col-id">{t.id}</td>' in table
    finally:
        dash.close()


# ----------------------------------------------------------------- details
def test_details_show_status_error_traceback_and_output(d1):
    def noisy_failure():
        print("step one done")
        boom("the input was bad")

    t = d1.queue(noisy_failure, name="noisy", quiet=True)
    d1.wait(timeout=WAIT)
    dash = Dashboard(d1, refresh=None)
    try:
        assert "Choose a job" in dash.details.value
        dash.job_select.value = t.id
        html = dash.details.value
        assert f"Job {t.id} · status" in html
        assert "&quot;state&quot;: &quot;failed&quot;" in html
        assert "ValueError: the input was bad" in html
        assert "Traceback" in html and "noisy_failure" in html and "boom" in html
        assert "step one done" in html
        # A running job's details follow its output without a version change.
        hold, _, release = blocker(d1, name="holder")
        dash.refresh_now()
        dash.select(hold.id)
        assert "holding" in dash.details.value and "holding the worker" in dash.details.value
        assert "&quot;progress&quot;: 0.25" in dash.details.value
        release.set()
        hold.wait(WAIT)
        dash.refresh_now()
        assert "&quot;state&quot;: &quot;succeeded&quot;" in dash.details.value
        # A job that left the registry says so instead of failing.
        d1.clear()
        dash.refresh_now()
        assert f"job {hold.id}" in dash.details.value and "cleared" in dash.details.value
    finally:
        dash.close()


def test_output_tail_is_bounded(d1):
    t = d1.queue(lambda: print("x" * 10000 + "THE-END"), quiet=True)
    t.wait(WAIT)
    dash = Dashboard(d1, refresh=None)
    try:
        dash.select(t.id)
        assert "THE-END" in dash.details.value
        assert "last 4,000 of 10,008 characters" in dash.details.value
        assert dash.details.value.count("x") < 4100
    finally:
        dash.close()


# ----------------------------------------------------------------- actions
def test_cancel_queued_and_running_jobs(d1):
    hold, _, release = blocker(d1)
    queued = d1.queue(lambda: 1, name="later")
    dash = Dashboard(d1, refresh=None)
    try:
        assert dash.cancel_button.disabled  # nothing chosen yet
        dash.select(queued.id)
        assert not dash.cancel_button.disabled and dash.interrupt_box.disabled
        dash.cancel_button.click()
        assert queued.state is JobState.CANCELLED
        assert "cancel requested" in dash.message.value
        assert count(dash, "cancelled") == 1
        assert dash.cancel_button.disabled  # finished now
        # Running job, cooperative cancel: the job sees nbfrost.cancelled().
        dash.select(hold.id)
        assert not dash.interrupt_box.disabled
        assert dash.cancel_selected() is True
        assert hold.wait(WAIT) and hold.state is JobState.CANCELLED
        dash.refresh_now()
        assert count(dash, "cancelled") == 2
        assert not dash.cancel_selected()  # already finished
        assert "already finished" in dash.message.value
    finally:
        release.set()
        dash.close()


def test_cancel_with_interrupt(d1):
    started = threading.Event()

    def stubborn():  # never checks cancelled(): only an interrupt stops it
        started.set()
        while True:
            threading.Event().wait(0.01)

    t = d1.queue(stubborn, name="stubborn")
    assert started.wait(WAIT)
    dash = Dashboard(d1, refresh=None)
    try:
        dash.select(t.id)
        dash.interrupt_box.value = True
        dash.cancel_button.click()
        assert t.state is JobState.CANCELLED
        assert "cancel and interrupt requested" in dash.message.value
        assert d1.wait(timeout=WAIT)
    finally:
        dash.close()


def test_retry_failed_job(d1):
    calls = []

    def flaky(x):
        calls.append(x)
        if len(calls) == 1:
            raise RuntimeError("first try fails")
        return x * 2

    t = d1.queue(flaky, 21, name="flaky", tags=("r",))
    t.wait(WAIT)
    ok = d1.queue(lambda: 1, name="fine")
    ok.wait(WAIT)
    dash = Dashboard(d1, refresh=None)
    try:
        dash.select(ok.id)
        assert dash.retry_button.disabled  # only failed or cancelled jobs
        dash.select(t.id)
        assert not dash.retry_button.disabled
        dash.retry_button.click()
        new_id = dash.selected
        assert new_id not in (t.id, ok.id)
        assert d1.tracker(new_id).result(WAIT) == 42
        assert calls == [21, 21]
        assert d1.status(new_id).name == "flaky" and d1.status(new_id).tags == ("r",)
        assert f"job {t.id} queued again as job {new_id}" in dash.message.value
        dash.refresh_now()
        assert table_ids(dash)[0] == new_id
    finally:
        dash.close()


def test_clear_finished(d1):
    for _ in range(3):
        d1.queue(lambda: None)
    d1.queue(boom)
    d1.wait(timeout=WAIT)
    hold, _, release = blocker(d1)
    dash = Dashboard(d1, refresh=None)
    try:
        dash.clear_button.click()              # asks first (Remove / Keep)
        dash.clear_yes.click()
        assert "cleared 4 finished jobs" in dash.message.value
        assert count(dash, "succeeded") == 0 and count(dash, "failed") == 0
        assert count(dash, "running") == 1
        assert table_ids(dash) == [hold.id]
    finally:
        release.set()
        dash.close()


# ----------------------------------------------------------------- refresh
def test_refreshes_on_change_only(dispatcher):
    dash = Dashboard(dispatcher, refresh=0.05)
    hub = dash._hub
    try:
        assert hub.wait_ticks(2)
        before = dash.renders
        assert hub.wait_ticks(4)
        assert dash.renders == before, "re-rendered although nothing changed"
        t = dispatcher.queue(lambda: None, name="change")
        t.wait(WAIT)
        assert hub.wait_ticks(3)
        after = dash.renders
        assert after > before
        assert t.id in table_ids(dash) and count(dash, "succeeded") == 1
        assert hub.wait_ticks(4)
        assert dash.renders == after
    finally:
        dash.close()


def test_refresh_is_throttled(dispatcher):
    stop = threading.Event()

    def chatty():  # moves the registry version ~1000 times a second
        i = 0
        while not stop.wait(0.001):
            i += 1
            nbfrost.report(message=f"tick {i}")

    dash = Dashboard(dispatcher, refresh=0.2)
    hub = dash._hub
    try:
        t = dispatcher.queue(chatty)
        assert hub.wait_ticks(1)
        before = dash.renders
        # Ten passes of the thread (about 2 s at one pass per 0.2 s).
        assert hub.wait_ticks(10)
        rendered = dash.renders - before
        assert 1 <= rendered <= 11
    finally:
        stop.set()
        t.wait(WAIT)
        dash.close()


def test_pause_stops_live_refresh(dispatcher):
    dash = Dashboard(dispatcher, refresh=0.05)
    hub = dash._hub
    try:
        dash.pause_button.value = True
        assert "paused" in dash.header.value and dash.pause_button.description == "Resume"
        before = dash.renders
        dispatcher.queue(lambda: None, name="while-paused").wait(WAIT)
        assert hub.wait_ticks(4)
        assert dash.renders == before
        assert "while-paused" not in dash.table.value
        dash.pause_button.value = False
        assert "while-paused" in dash.table.value  # resuming renders at once
        assert "live" in dash.header.value
    finally:
        dash.close()


def test_one_thread_per_dispatcher_and_shared_rendering(dispatcher, monkeypatch):
    a = Dashboard(dispatcher, refresh=0.05)
    b = Dashboard(dispatcher, refresh=0.05)
    try:
        threads = [t for t in threading.enumerate() if t.name == "nbfrost-dashboard"]
        assert len(threads) == 1 and a._hub is b._hub
        # Two dashboards showing the same page render it once per pass.
        calls = []
        real = widget.render_page
        monkeypatch.setattr(widget, "render_page", lambda *args: calls.append(args) or real(*args))
        dispatcher.queue(lambda: None).wait(WAIT)
        a.pause_button.value = b.pause_button.value = True  # no live renders now
        calls.clear()
        a._hub.tick([a, b], force=True)
        assert len(calls) == 1
        assert a.table.value.replace(a._uid, "X") == b.table.value.replace(b._uid, "X")
        # Different views are rendered separately.
        b.state_filter.value = "failed"
        calls.clear()
        a._hub.tick([a, b], force=True)
        assert len(calls) == 2
        a.close()
        assert threads[0].is_alive()  # b still needs it
    finally:
        a.close()
        b.close()
    threads[0].join(WAIT)
    assert not threads[0].is_alive()
    assert id(dispatcher) not in hub._hubs
    assert not dispatcher.registry.listeners  # the on_finish hook is gone too


def test_close_stops_the_thread(dispatcher, thread_baseline):
    dash = Dashboard(dispatcher, refresh=0.05)
    thread = dash._hub.thread
    assert thread is not None and thread.is_alive()
    dash.close()
    dash.close()  # twice is fine
    assert not thread.is_alive()  # close() joins it
    assert dash.closed and dash.comm is None


def test_dispatcher_shutdown_stops_the_thread(clock, thread_baseline):
    d = nbfrost.Dispatcher(workers=2, clock=clock)
    dash = Dashboard(d, refresh=0.05)
    thread = dash._hub.thread
    d.shutdown(wait=True)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert "dispatcher shut down" in dash.header.value  # the final pass
    dash.refresh_now()  # still works, without a thread
    dash.close()


def test_finish_banner(d1):
    dash = Dashboard(d1, refresh=None)
    try:
        assert dash.banner.value == ""
        d1.queue(lambda: None, name="quick").wait(WAIT)
        dash.refresh_now()
        assert "✔ job 0 'quick' finished in" in dash.banner.value
        assert "succeeded" in dash.banner.value
        d1.queue(boom, name="b1").wait(WAIT)
        d1.queue(boom, "worse", name="b2").wait(WAIT)
        # The hook catches the first job to finish after each pass and
        # counts the rest: one callback per pass, not one per job.
        assert len(d1.registry.listeners) == 0
        dash.refresh_now()
        assert "✘ job 1 'b1' failed: ValueError: bad input" in dash.banner.value
        assert "and 1 more finished" in dash.banner.value
        assert len(d1.registry.listeners) == 1  # armed again
        dash._update_banner(widget.time.monotonic() + widget._BANNER_SECONDS + 1, d1.stats())
        assert dash.banner.value == ""
    finally:
        dash.close()


# ---------------------------------------------------------------- timeline
def test_timeline_svg(dispatcher, clock):
    for i in range(6):
        t = dispatcher.queue(lambda: None, name=f"t{i}")
        t.wait(WAIT)
        clock.advance(1.0)
    dispatcher.queue(boom, name=XSS[0]).wait(WAIT)
    dash = Dashboard(dispatcher, refresh=None, timeline_jobs=5)
    try:
        assert dash.timeline.value == ""  # rendered only when shown
        dash.tabs.selected_index = 1
        svg = dash.timeline.value
        assert svg.count("<svg") == 1
        assert svg.count('<g class="bar">') == 5  # the 5 most recent jobs
        lanes = {w for w in re.findall(r">(worker-\d+)<tspan", svg)}
        workers = {dispatcher.status(i).worker for i in range(2, 7)}
        assert lanes == workers
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg and "<script>" not in svg
        assert "#DC2626".lower() in svg  # the failed job's bar
        assert "pool busy" in svg
    finally:
        dash.close()


# ---------------------------------------------------------------- security
def test_every_user_string_is_escaped(d1):
    def evil(text):
        print(text)
        nbfrost.report(0.5, text)
        raise RuntimeError(text)

    jobs = [d1.queue(evil, s, name=s, tags=(s,), quiet=True) for s in XSS]
    d1.wait(timeout=WAIT)
    hold, _, release = blocker(d1, name=XSS[1], tags=(XSS[0],))
    dash = Dashboard(d1, refresh=None)
    try:
        pages = []
        for t in [*jobs, hold]:
            dash.select(t.id)
            dash.tabs.selected_index = 1
            dash.refresh_now()
            pages.append(all_html(dash))
            dash.tabs.selected_index = 0
        for html in pages:
            for s in XSS:
                assert s not in html
            assert "<script>" not in html and "<img" not in html
        joined = "".join(pages)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in joined
        assert "&lt;img src=x onerror=alert(1)&gt;" in joined
        # Escaped in the table cells, the error column, the details (JSON,
        # error, traceback, output), the banner and the timeline tooltips.
        assert ('<td class="nbf-col-name" title="&lt;img src=x onerror=alert(1)&gt;">'
                '&lt;img src=x onerror=alert(1)&gt;</td>') in dash.table.value
        assert "RuntimeError: &lt;script&gt;" in joined
        assert 'nbf-output">&lt;img src=x onerror=alert(1)&gt;' in joined
        assert "<title>#" in joined and "&lt;script&gt;" in dash.timeline.value
    finally:
        release.set()
        dash.close()


def test_a_summary_line_shows_the_first_line_of_a_long_error_only():
    from nbfrost.formatting import SUMMARY_ERROR_CHARS, job_summary

    with nbfrost.Dispatcher(workers=1) as d:
        long_ = d.queue(lambda: (_ for _ in ()).throw(ValueError("x" * 1000)), name="long")
        multi = d.queue(lambda: (_ for _ in ()).throw(ValueError("first\nsecond")), name="multi")
        d.wait()
        line = job_summary(long_.status())
        assert line.endswith("…") and len(line) < SUMMARY_ERROR_CHARS + 60, line
        assert job_summary(multi.status()) == f"✘ job {multi.id} 'multi' failed: ValueError: first …"


@pytest.mark.parametrize("ids, digits", [(["0", "7"], 3), (["12000", "9"], 5),
                                             (["9876543210", "1"], 10)])
def test_the_id_column_is_as_wide_as_the_longest_id_on_the_page(ids, digits):
    columns = {c: [""] * len(ids) for c in render._TABLE_COLUMNS}
    columns["id"] = ids
    html = render._table_html(columns)
    assert f'<th class="nbf-col-id" style="width:calc({digits}ch + 10px)">id</th>' in html
    assert html.count("calc(") == 1
