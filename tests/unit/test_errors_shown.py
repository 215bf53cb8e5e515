"""What a user reads when a job fails or a wait is interrupted.

In a real IPython InteractiveShell: a job's stored traceback names notebook
cells as ``Cell In[N], line L``; interrupting a wait with a real SIGINT
raises a short `WaitInterrupted` that ``except KeyboardInterrupt`` catches
and leaves the job running.  The same in a real kernel: test_kernel_errors.py.
"""

from __future__ import annotations

import json
import re
import signal
import threading

import pytest
from helpers import eventually

from nbfrost import JobFailed, JobState, WaitInterrupted
from nbfrost.tracebacks import cell_label, name_cells

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def shell(ip, thread_baseline):
    ip.run_cell("%load_ext nbfrost")
    yield ip
    ip.run_cell("%unload_ext nbfrost")


def ok(ip, source: str):
    result = ip.run_cell(source, store_history=True)
    assert result.success, (result.error_before_exec, result.error_in_exec)
    return result


# ---------------------------------------------------------------- cell names
def test_status_traceback_names_the_cells_of_an_api_job(shell):
    a = ok(shell, "def inner():\n    x = 1\n    raise ValueError('bad inner')\n")
    b = ok(shell, "import nbfrost\nt_api = nbfrost.get_dispatcher().queue(\n"
                  "    lambda: inner(), name='api-fail')\n")
    t = shell.user_ns["t_api"]
    assert t.wait(10)
    tb = json.loads(t.status().to_json())["traceback"]
    assert f"Cell In[{a.execution_count}], line 3, in inner" in tb, tb
    assert f"Cell In[{b.execution_count}], line 3, in <lambda>" in tb, tb
    assert "raise ValueError('bad inner')" in tb  # the source line is there too
    assert "ipykernel" not in tb and "<ipython-input" not in tb and "File \"" not in tb
    assert not ANSI.search(tb)
    assert tb.rstrip().endswith("ValueError: bad inner")


def test_status_traceback_of_a_frost_cell_names_its_cell(shell):
    r = ok(shell, "%%frost -n cell-fail\nx = 1\nraise KeyError('boom')\n")
    t = r.result
    assert t.wait(10) and t.state is JobState.FAILED
    status = ok(shell, f"%frost status {t.id} --json").result
    tb = json.loads(status)["traceback"]
    assert f"Cell In[{r.execution_count}], line 3" in tb, tb  # line 1 is %%frost
    assert "nbfrost/" not in tb and not ANSI.search(tb)


def test_real_files_keep_their_names_and_plain_python_is_untouched(shell):
    text = 'Traceback (most recent call last):\n  File "/srv/x.py", line 2, in f\nE: e\n'
    assert name_cells(text) == text
    assert cell_label("/srv/x.py") is None
    # A cell's file name is named by the running shell only.
    r = ok(shell, "def f():\n    pass\n")
    filename = shell.user_ns["f"].__code__.co_filename
    assert cell_label(filename) == f"Cell In[{r.execution_count}]"
    # Inside an exception group's margin too.
    grouped = f'  | Traceback (most recent call last):\n  |   File "{filename}", line 2, in f\n'
    assert f"  |   Cell In[{r.execution_count}], line 2, in f" in name_cells(grouped)


def test_result_of_a_failed_job_shows_the_jobs_own_traceback(shell):
    a = ok(shell, "def inner2():\n    raise ValueError('bad inner 2')\n")
    ok(shell, "t_fail = nbfrost.get_dispatcher().queue(inner2, name='fails')\nt_fail.wait(10)")
    t = shell.user_ns["t_fail"]
    with pytest.raises(JobFailed) as info:
        t.result()
    lines = info.value._render_traceback_()
    text = "\n".join(lines)
    assert f"Cell In[{a.execution_count}], line 2, in inner2" in text
    assert "nbfrost/" not in text
    assert lines[-1] == f"JobFailed: job {t.id} (fails) failed: ValueError: bad inner 2"


# ---------------------------------------------------------- interrupted waits
def test_wait_interrupted_lists_a_bounded_number_of_jobs():
    # Outside IPython (pytest itself): the advice is the API's.
    pending = [(i, f"job-{i}", "running") for i in range(8)]
    err = WaitInterrupted.for_jobs(pending)
    lines = err._render_traceback_()
    assert lines[0] == "WaitInterrupted: stopped waiting; 8 jobs keep running in the background:"
    assert lines[1:6] == [f"  job {i} 'job-{i}' (running)" for i in range(5)]
    assert lines[6] == "  ... and 3 more (d.jobs() lists them)"
    assert lines[7] == "to stop them: t.cancel() on its tracker t, or d.cancel(0) on its dispatcher d"
    assert err.pending == tuple(pending)
    one = WaitInterrupted.for_jobs([(4, "x", "queued")])
    assert str(one).splitlines() == [
        "stopped waiting; 1 job keeps running in the background:",
        "  job 4 'x' (queued)",
        "to stop it: t.cancel() on its tracker t, or d.cancel(4) on its dispatcher d"]
    assert "already ended" in str(WaitInterrupted.for_jobs([]))
    assert isinstance(err, KeyboardInterrupt)


def test_wait_interrupted_names_the_magic_where_it_is_loaded(shell):
    pending = [(i, f"job-{i}", "running") for i in range(8)]
    lines = WaitInterrupted.for_jobs(pending)._render_traceback_()
    assert lines[6] == "  ... and 3 more (%frost jobs lists them)"
    assert lines[7] == "to stop them: %frost cancel 0, or t.cancel() on its tracker"


def _waiters(job) -> list:
    """The gates of the threads parked on *job* (the registry's record)."""
    details = job._details
    return (details.waiters if details is not None else None) or []


def _interrupt_when_parked(job) -> threading.Thread:
    """SIGINT the main thread, as the Stop button does, once it waits on *job*."""
    main = threading.main_thread().ident
    assert main is not None
    parked = threading.Event()

    def send() -> None:
        # Polls (no event to wait on: the registry parks waiters on private
        # locks); it ends as soon as the main thread is parked.
        while not _waiters(job) and not parked.wait(0.002):
            pass
        signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=send, name="test-sigint")
    thread.start()
    return thread


@pytest.fixture
def sigint():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("how", ["result", "wait", "dispatcher.wait"])
def test_an_interrupted_wait_is_a_short_keyboard_interrupt(dispatcher, sigint, how):
    assert threading.current_thread() is threading.main_thread()
    release = threading.Event()
    t = dispatcher.queue(release.wait, 30, name="long")
    # Running before the wait starts (on a loaded machine the worker may
    # take a while to pick it up, and the pending list would say "queued").
    eventually(lambda: t.state is JobState.RUNNING, what="the job runs")
    waiting = {"result": t.result, "wait": t.wait, "dispatcher.wait": dispatcher.wait}[how]
    sender = _interrupt_when_parked(t._job)
    caught = None
    try:
        waiting()
    except KeyboardInterrupt as exc:  # what code written for Ctrl-C catches
        caught = exc
    sender.join()
    assert isinstance(caught, WaitInterrupted)
    assert caught.__suppress_context__ and caught.__cause__ is None
    assert caught.pending == ((t.id, "long", "running"),)
    assert len(caught._render_traceback_()) == 3
    # Only the wait stopped: the job runs on, and no parked gate is left.
    assert t.state is JobState.RUNNING and not _waiters(t._job)
    release.set()
    assert t.result(timeout=10) is True


def test_frost_wait_interrupted_in_the_shell_is_short(shell, sigint):
    release = threading.Event()
    shell.user_ns["release"] = release
    t = ok(shell, "%%frost -n long-cell\nrelease.wait(30)").result
    t.status()  # queued or running; either keeps going
    sender = _interrupt_when_parked(t._job)
    result = shell.run_cell("%frost wait")
    sender.join()
    assert isinstance(result.error_in_exec, WaitInterrupted)
    assert result.error_in_exec.pending[0][:2] == (t.id, "long-cell")
    assert not t.done()
    release.set()
    assert t.wait(10)
