"""The magics in a real IPython InteractiveShell.

Jobs that must stay running wait on a `threading.Event` the test puts into
the user namespace, so nothing here sleeps to synchronise.
"""

from __future__ import annotations

import json
import re
import threading

import IPython
import pytest
from helpers import eventually
from IPython.core.error import UsageError
from magics_helpers import disp, magics, ok, plain, reset_config, run

import nbfrost
from nbfrost import JobState
from nbfrost.notebook.magics import FrostMagics, LiveTracker


@pytest.fixture
def shell(ip, thread_baseline):
    """The shell with nbfrost loaded; unloaded again (threads checked) after."""
    run(ip, "%load_ext nbfrost")
    ip.user_ns["ev"] = threading.Event()
    yield ip
    ip.user_ns["ev"].set()
    run(ip, "%unload_ext nbfrost")
    assert "FrostMagics" not in ip.magics_manager.registry
    reset_config(ip)
    for key in [k for k in ip.user_ns if k.startswith("t_")]:
        del ip.user_ns[key]














# ----------------------------------------------------------------- %%frost
def test_cell_returns_live_tracker_result_and_o_binding(shell):
    tracker = ok(shell, "%%frost -n add -o total\na = 20\na + 22")
    assert isinstance(tracker, LiveTracker)
    assert shell.user_ns["_"] is tracker
    assert tracker.name == "add"
    assert tracker.result(timeout=10) == 42
    assert shell.user_ns["total"] == 42
    assert shell.user_ns["a"] == 20  # the body ran in the user namespace


def test_o_is_bound_before_wait_returns(shell):
    # -o is bound before the job is marked succeeded, so the next line sees it.
    for i in range(20):
        ok(shell, f"%%frost -o v{i}\n{i} * 2")
        ok(shell, f"%frost wait {disp(shell).registry.select()[-1].id}")
        assert shell.user_ns[f"v{i}"] == i * 2


def test_o_not_bound_on_failure_and_traceback_uses_cell_lines(shell):
    result = run(shell, "%%frost -n boom -o never\nx = 1\n\nraise ValueError('bad value')\n")
    tracker = result.result
    assert tracker.exception(timeout=10).args == ("bad value",)
    assert "never" not in shell.user_ns
    out = plain(tracker.output)
    # Line 1 is the %%frost line, so the raise is on line 4 of the cell.
    # (IPython < 8.8 writes ``Cell In [N]``)
    assert re.search(rf"Cell In ?\[{result.execution_count}\], line 4", out), out
    assert "raise ValueError('bad value')" in out
    assert "ValueError: bad value" in out
    assert "nbfrost/" not in out  # starts at the user's code
    assert "could not format" not in out  # IPython's formatter, not the fallback
    assert tracker.state is JobState.FAILED


def test_traceback_formatter_takes_this_ipythons_colour_argument(shell):
    # IPython 9 takes theme_name=, IPython 8 color_scheme= (the matrix runs
    # both majors): the formatter is built and used without the fallback.
    from IPython.core import ultratb

    from nbfrost.notebook.cell_runner import colors_argument

    fmt = ultratb.AutoFormattedTB(mode=shell.xmode, tb_offset=0, **{colors_argument(): shell.colors})
    try:
        raise KeyError("spam")
    except KeyError as exc:
        text = fmt.stb2text(fmt.structured_traceback(type(exc), exc, exc.__traceback__))
    assert "KeyError" in text and "spam" in text
    major = int(IPython.__version__.split(".")[0])
    assert colors_argument() == ("theme_name" if major >= 9 else "color_scheme")


def test_default_name_is_the_cell_prompt(shell):
    result = run(shell, "%%frost\n1")
    assert result.result.name == f"In[{result.execution_count}]"


def test_names_assigned_by_the_body_exist_for_later_cells(shell):
    t = ok(shell, "%%frost\ndef double(v):\n    return 2 * v\nz = double(21)")
    assert t.result(timeout=10) is None  # no trailing expression
    assert ok(shell, "double(z)") == 84


def test_tags_timeout_retries_quiet(shell):
    t = ok(shell, "%%frost -t a -t b --quiet\nprint('hidden text')\n5")
    assert t.tags == ("a", "b")
    assert t.result(timeout=10) == 5
    assert t.output == "hidden text\n"
    assert t._job.echo is False

    shell.user_ns["attempts"] = 0
    t = ok(shell, "%%frost --retries 2 --quiet\nattempts += 1\n"
                  "if attempts < 3:\n    raise RuntimeError('flaky')\nattempts")
    assert t.result(timeout=10) == 3
    assert t.status().attempts == 3
    assert plain(t.output).count("retrying") == 2

    t = ok(shell, "%%frost --timeout 0.2 --quiet\nimport time\n"
                  "while not ev.is_set():\n    time.sleep(0.005)\n")
    exc = t.exception(timeout=10)
    assert isinstance(exc, nbfrost.JobTimeout)


def test_after_runs_in_order(shell):
    shell.user_ns["order"] = []
    first = ok(shell, "%%frost -n first\nev.wait(10)\norder.append('first')")
    second = ok(shell, f"%%frost -n second --after {first.id}\norder.append('second')")
    assert second.state is JobState.QUEUED
    shell.user_ns["ev"].set()
    assert second.wait(10)
    assert shell.user_ns["order"] == ["first", "second"]


def test_push_is_ignored_on_threads_but_checked(shell):
    t = ok(shell, "%%frost --push not_defined_anywhere,also_not\n3")
    assert t.result(timeout=10) == 3
    before = len(disp(shell).registry)
    result = run(shell, "%%frost --push 3bad\n3")
    assert isinstance(result.error_in_exec, UsageError)
    assert len(disp(shell).registry) == before


def test_top_level_await_and_line_magics_in_body(shell):
    t = ok(shell, "%%frost\nimport asyncio\nawait asyncio.sleep(0)\nawait asyncio.sleep(0, result=7)")
    assert t.result(timeout=10) == 7
    t = ok(shell, "%%frost\n%alias_magic -l frost_alias_test pwd\n41 + 1")
    assert t.result(timeout=10) == 42


@pytest.mark.parametrize("interrupt", [False, True])
def test_top_level_await_cell_is_cancelled_at_its_await(shell, interrupt):
    """A %%frost body with top-level await runs on the worker's event loop
    like an async def job: a cancel cancels its task at the current await."""
    ok(shell, "import asyncio, threading\nalog = []\nparked = threading.Event()")
    t = ok(shell, "%%frost -n parked -o never\n"
                  "try:\n"
                  "    parked.set()\n"
                  "    await asyncio.sleep(3600)\n"
                  "except asyncio.CancelledError:\n"
                  "    alog.append('cancelled at await')\n"
                  "    raise\n"
                  "finally:\n"
                  "    alog.append('finally ran')\n"
                  "'done'")
    assert shell.user_ns["parked"].wait(10)
    assert t.cancel(interrupt=interrupt)
    assert t.wait(10) and t.state is JobState.CANCELLED
    eventually(lambda: len(shell.user_ns["alog"]) == 2)
    assert shell.user_ns["alog"] == ["cancelled at await", "finally ran"]
    assert "never" not in shell.user_ns


def test_top_level_await_with_routing_off_sees_no_cell_context(shell):
    ok(shell, "import asyncio, contextvars\ncv2 = contextvars.ContextVar('cv2', default='unset')\n"
              "cv2.set('cell')")
    ok(shell, "%config FrostMagics.route_output = False")
    off = ok(shell, "%%frost\nawait asyncio.sleep(0)\ncv2.get()")
    assert off.result(timeout=10) == "unset"
    ok(shell, "%config FrostMagics.route_output = True")
    on = ok(shell, "%%frost -o got\nawait asyncio.sleep(0)\ncv2.get()")
    assert on.result(timeout=10) == "cell" and shell.user_ns["got"] == "cell"


def test_route_output_off_runs_without_the_cell_context(shell):
    ok(shell, "import contextvars\ncv = contextvars.ContextVar('cv', default='unset')\ncv.set('cell')")
    on = ok(shell, "%%frost\ncv.get()")
    assert on.result(timeout=10) == "cell"
    ok(shell, "%config FrostMagics.route_output = False")
    off = ok(shell, "%%frost\ncv.get()")
    assert off.result(timeout=10) == "unset"


def test_notify_prints_a_line_under_the_cell(shell, capsys):
    ok(shell, "%config FrostMagics.notify = True")
    done = threading.Event()
    t = ok(shell, "%%frost -n load --quiet\n1")
    t.add_done_callback(lambda _t: done.set())  # runs after the notice callback
    assert done.wait(10)
    bad_done = threading.Event()
    bad = ok(shell, "%%frost -n oops --quiet\nraise KeyError('k')")
    bad.add_done_callback(lambda _t: bad_done.set())
    assert bad_done.wait(10)
    out = capsys.readouterr().out
    assert re.search(rf"✔ job {t.id} 'load' finished in \d+\.\d s", out), out
    assert f"✘ job {bad.id} 'oops' failed: KeyError: 'k'" in out


def test_badge_text_fallback_outside_a_kernel(shell, capsys):
    run(shell, "%%frost -n badge\nev.wait(10)")
    out = capsys.readouterr().out
    assert re.search(r"job \d+ 'badge' (queued|running)", out), out


# ------------------------------------------------------------ syntax errors
@pytest.mark.parametrize("body, line", [
    ("x = 1\ny = (\n", 3),
    ("x = 1\n\n\nif x\n    pass\n", 5),
    ("def f():\nreturn 1\n", 3),        # IndentationError
])
def test_syntax_error_shows_at_once_and_queues_nothing(shell, capsys, body, line):
    d = disp(shell)
    before, version = len(d.registry), d.registry.version
    result = run(shell, "%%frost -n broken\n" + body)
    exc = result.error_in_exec
    assert isinstance(exc, SyntaxError)
    assert exc.lineno == line
    assert not result.success
    out = plain(capsys.readouterr().out)
    # IPython < 8.8 prints its own syntax errors as ``Cell In [N]``
    assert re.search(rf"Cell In ?\[{result.execution_count}\], line {line}", out), out
    assert len(d.registry) == before and d.registry.version == version


# ------------------------------------------------------------ malformed lines
MALFORMED = [
    "%%frost --bogus\n1",
    "%%frost -n\n1",
    "%%frost --timeout abc\n1",
    "%%frost --timeout 0\n1",
    "%%frost --timeout -1\n1",
    "%%frost --retries -2\n1",
    "%%frost --retries x\n1",
    "%%frost -o 1abc\n1",
    "%%frost -o class\n1",
    "%%frost --after 999\n1",
    "%%frost --after x\n1",
    '%%frost -n "unbalanced\n1',
    "%%frost stray positional\n1",
    "%frost jbos",
    "%frost status",
    "%frost status x",
    "%frost jobs --state sleeping",
    "%frost wait --timeout -1",
    "%frost cancel 12345",
    "%frost --json",
    "%frost output 1 2",
    "%frost result 0 --timeout -3",
    "%frost retry 777",
    "%frost history",
    "%frost clear now",
]


@pytest.mark.parametrize("source", MALFORMED)
def test_malformed_lines_are_usage_errors_and_change_nothing(shell, source):
    ok(shell, "%%frost -n seed\n0")  # job 0 exists
    d = disp(shell)
    d.wait()
    before = [(s.id, s.state) for s in d.jobs()]
    version = d.registry.version
    result = run(shell, source)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    assert [(s.id, s.state) for s in d.jobs()] == before
    assert d.registry.version == version
    assert disp(shell) is d


def test_unknown_subcommand_is_one_line_with_the_closest_and_where_the_usage_is(shell):
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("frost", "jbos --state failed")
    assert str(info.value) == ("%frost: unknown subcommand 'jbos'; did you mean "
                               "'%frost jobs'? (%frost help lists them all)")
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("frost", "bogus")
    text = str(info.value)
    assert "\n" not in text and "did you mean '%frost " in text and "%frost help" in text


def test_bad_argument_shows_the_subcommand_usage(shell):
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("frost", "status x")
    assert "usage: %frost status [--json] id" in str(info.value)


# -------------------------------------------------------------- subcommands
def test_jobs_status_output_result_clear(shell, capsys):
    a = ok(shell, "%%frost -n alpha -t etl\nprint('alpha says hi')\n'A'")
    b = ok(shell, "%%frost -n beta\nraise ValueError('no')")
    ok(shell, "%frost wait")
    frame = ok(shell, "%frost jobs")
    assert list(frame.index) == [a.id, b.id]
    assert list(ok(shell, "%frost jobs --state failed").index) == [b.id]
    assert list(ok(shell, "%frost jobs --name al*").index) == [a.id]
    assert list(ok(shell, "%frost jobs --tag etl").index) == [a.id]
    assert list(ok(shell, "%frost jobs --state succeeded --state failed").index) == [a.id, b.id]

    status = ok(shell, f"%frost status {a.id}")
    assert status.state is JobState.SUCCEEDED and status.name == "alpha"
    text = ok(shell, f"%frost status {b.id} --json")
    data = json.loads(text)
    assert data["state"] == "failed" and data["error"] == "no"

    capsys.readouterr()
    ok(shell, f"%frost output {a.id}")
    assert "alpha says hi" in capsys.readouterr().out
    assert ok(shell, f"%frost result {a.id}") == "A"
    result = run(shell, f"%frost result {b.id}")
    assert isinstance(result.error_in_exec, nbfrost.JobFailed)

    ok(shell, "%frost clear")
    assert "removed 2 finished job(s)" in capsys.readouterr().out
    assert len(ok(shell, "%frost jobs")) == 0


def test_wait_with_ids_and_timeout(shell, capsys):
    t = ok(shell, "%%frost -n blocked\nev.wait(10)")
    statuses = ok(shell, f"%frost wait {t.id} --timeout 0.05")
    assert [s.state for s in statuses] == [t.state] and not t.done()
    assert f"still not done after 0.05 s: {t.id}" in capsys.readouterr().err
    shell.user_ns["ev"].set()
    statuses = ok(shell, f"%frost wait {t.id}")
    assert statuses[0].state is JobState.SUCCEEDED


def test_cancel_queued_and_interrupt_running(shell, capsys):
    ok(shell, "%config FrostMagics.workers = 1")
    running = ok(shell, "%%frost -n spin\nimport time\nwhile not ev.is_set():\n    time.sleep(0.005)")
    queued = ok(shell, "%%frost -n waiting\n1")
    ok(shell, f"%frost cancel {queued.id}")
    assert queued.state is JobState.CANCELLED
    ok(shell, f"%frost cancel {running.id} --interrupt")
    assert running.state is JobState.CANCELLED
    ok(shell, f"%frost cancel {queued.id}")
    out = capsys.readouterr().out
    assert f"job {queued.id} cancelled" in out
    assert f"job {queued.id} had already cancelled" in out
    assert running.wait(10)


def test_retry_runs_the_cell_again(shell):
    shell.user_ns["runs"] = 0
    t = ok(shell, "%%frost -n again -o last\nruns += 1\nassert runs > 1, 'first run'\nruns")
    assert t.wait(10) and t.state is JobState.FAILED
    t2 = ok(shell, f"%frost retry {t.id}")
    assert isinstance(t2, LiveTracker) and t2.id != t.id
    assert t2.result(timeout=10) == 2
    assert shell.user_ns["last"] == 2
    assert t2.status().name == "again"
    # A succeeded cell let go of its code: re-run the cell instead.
    with pytest.raises(UsageError, match="only failed or cancelled jobs can be retried"):
        shell.run_line_magic("frost", f"retry {t2.id}")


def test_config_shows_effective_settings(shell):
    cfg = ok(shell, "%frost config")
    assert cfg["dispatcher"].startswith("not started")
    ok(shell, "%config FrostMagics.workers = 3")
    ok(shell, "%config FrostMagics.expiry = 12.5")
    disp(shell)
    ok(shell, "%config FrostMagics.output_budget = 4096")  # applies live
    cfg = ok(shell, "%frost config")
    assert cfg["workers"] == 3 and cfg["expiry"] == 12.5 and cfg["output_budget"] == 4096
    assert cfg["dispatcher"] == {"backend": "threads", "workers": 3, "expiry": 12.5,
                                 "max_queue": 0, "grace": 2.0, "output_budget": 4096}


def test_dashboard_or_jobs_table(shell):
    value = ok(shell, "%frost")
    try:
        from nbfrost.notebook.dashboard import Dashboard
    except ImportError:
        import pandas as pd
        assert isinstance(value, pd.DataFrame)
    else:
        assert isinstance(value, Dashboard)
        assert isinstance(ok(shell, "%frost dashboard"), Dashboard)


def test_history_subcommand(shell, tmp_path):
    path = tmp_path / "jobs.sqlite"
    ok(shell, f"%config FrostMagics.history = {str(path)!r}")
    t = ok(shell, "%%frost -n journaled\n1")
    t.wait(10)
    disp(shell).flush_history(10)
    frame = ok(shell, "%frost history")
    assert "journaled" in set(frame["name"])


def test_help_texts(shell, capsys):
    line_doc = FrostMagics.frost_line.__doc__
    for sub in ("dashboard", "jobs", "status", "wait", "cancel", "output", "result",
                "retry", "clear", "config", "history"):
        assert f"%frost {sub}" in line_doc
    assert "Examples::" in line_doc
    cell_doc = FrostMagics.frost_cell.__doc__
    assert "%%frost [-n NAME] [-t TAG] [-o VAR]" in cell_doc
    assert "--push" in cell_doc and "ignored" in cell_doc
    ok(shell, "%frost help")
    assert "%frost wait [--timeout S] [ID ...]" in capsys.readouterr().out


# ------------------------------------------------------------ configuration
def test_workers_resize_live_and_expiry_applies(shell):
    d = disp(shell)
    assert d.workers == 4
    ok(shell, "%config FrostMagics.workers = 6")
    assert disp(shell) is d and d.workers == 6 and len(d.backend.threads()) == 6
    ok(shell, "%config FrostMagics.workers = 2")
    assert disp(shell) is d and d.workers == 2
    # Shrinking retires idle workers asynchronously: let them exit.
    for thread in d.backend.threads():
        if len(d.backend.threads()) == 2:
            break
        thread.join(0.2)
    assert len(d.backend.threads()) == 2
    ok(shell, "%config FrostMagics.expiry = 7.0")
    assert d.expiry == 7.0
    ok(shell, "%config FrostMagics.expiry = None")
    assert d.expiry is None
    run(shell, "%config FrostMagics.workers = 0")  # IPython prints the TraitError
    assert d.workers == 2 and magics(shell).workers == 2


def test_settings_that_need_a_new_dispatcher_wait_for_idle(shell, capsys):
    d = disp(shell)
    t = ok(shell, "%%frost -n busy\nev.wait(10)")
    ok(shell, "%config FrostMagics.max_queue = 5")
    assert "applies once the 1 queued/running job(s)" in capsys.readouterr().err
    assert disp(shell) is d  # busy: keeps running jobs on the old one
    shell.user_ns["ev"].set()
    assert t.wait(10)
    new = disp(shell)
    assert new is not d and d.closed and new.max_queue == 5
    assert t.result() is True  # the old job's tracker still works


# ------------------------------------------------------------ load / unload
def test_get_dispatcher_is_the_magics_dispatcher(shell):
    assert nbfrost.get_dispatcher() is disp(shell)
    t = ok(shell, "%%frost\n1")
    assert nbfrost.get_dispatcher().tracker(t.id).result(timeout=10) == 1


def test_get_dispatcher_loads_the_extension(ip, thread_baseline):
    assert "FrostMagics" not in ip.magics_manager.registry
    d = nbfrost.get_dispatcher()
    assert magics(ip).get_dispatcher() is d
    assert "nbfrost" in ip.extension_manager.loaded
    run(ip, "%unload_ext nbfrost")
    assert d.closed


def test_unload_cancels_queued_and_stops_running_jobs(ip, thread_baseline):
    run(ip, "%load_ext nbfrost")
    ok(ip, "%config FrostMagics.workers = 1")
    ok(ip, "%config FrostMagics.grace = 0.1")
    # A shrink lets workers leave when they are free: wait until only one is
    # left, or a second could still take the "queued" job below.
    d = magics(ip).get_dispatcher()
    eventually(lambda: len(d.backend.threads()) == 1, what="the pool to shrink to 1")
    ip.user_ns["ev"] = threading.Event()
    running = ok(ip, "%%frost\nimport time\nwhile not ev.is_set():\n    time.sleep(0.005)")
    # Started before the next is queued: a %%frost job waits for its cell's
    # badge gate, so the one worker could otherwise take the second job first.
    eventually(lambda: running.state is JobState.RUNNING, what="the first job to start")
    queued = ok(ip, "%%frost\n1")
    assert magics(ip).get_dispatcher().backend.threads()
    run(ip, "%unload_ext nbfrost")
    reset_config(ip)
    assert queued.state is JobState.CANCELLED
    assert running.state is JobState.CANCELLED
    assert "frost" not in ip.magics_manager.magics["line"]
    assert "frost" not in ip.magics_manager.magics["cell"]
    assert not any(isinstance(c, FrostMagics) for c in ip.configurables)
    assert isinstance(run(ip, "%frost jobs").error_in_exec, UsageError)  # magic is gone


def test_reload_replaces_the_dispatcher_without_leaking_threads(ip, thread_baseline):
    run(ip, "%load_ext nbfrost")
    first = magics(ip).get_dispatcher()
    ok(ip, "%%frost\n1").wait(10)
    run(ip, "%reload_ext nbfrost")
    assert first.closed
    second = magics(ip).get_dispatcher()
    assert second is not first
    assert ok(ip, "%%frost\n2").result(timeout=10) == 2
    run(ip, "%unload_ext nbfrost")
    assert second.closed


# ------------------------------------------------------------------- Dask
