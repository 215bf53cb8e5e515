"""Failures and interrupted waits as a notebook user reads them, in a real kernel.

A job's status JSON names notebook cells ``Cell In[N], line L``.
The Stop button (SIGINT, ``km.interrupt_kernel()``) during a wait prints
a few lines naming the jobs that keep running, the job does keep running,
and the kernel stays usable; ``%frost result`` of a failed job shows the
job's own traceback.  The interrupt is sent only once the kernel's main
thread is parked on the job (a watcher thread in the kernel says so).
"""

from __future__ import annotations

import json
import re

import pytest
from helpers import Kernel, kernel_with, parent

pytestmark = [pytest.mark.timeout(180)]

ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: Lines an interrupted wait may print: the message, the jobs, the hint.
SHORT = 8


@pytest.fixture(scope="module")
def kernel():
    with kernel_with("%load_ext nbfrost\nimport nbfrost, os, threading, time\n"
                     "d = nbfrost.get_dispatcher()\n"
                     "def waiters(t):\n"
                     "    return (t._job._details and t._job._details.waiters) or []\n"
                     "def watch(t, word):\n"
                     "    while not waiters(t):\n"
                     "        time.sleep(0.005)\n"
                     "    print(word, flush=True)\n") as k:
        yield k


def execution_count(kernel: Kernel, code: str) -> int:
    msg_id = kernel.submit(code)
    content = kernel.reply(msg_id)
    assert content["status"] == "ok", content
    return content["execution_count"]


def result_text(kernel: Kernel, msg_id: str) -> str:
    msg = kernel.wait_for(lambda m: parent(m) == msg_id and m["msg_type"] == "execute_result")
    return msg["content"]["data"]["text/plain"]


def status_traceback(kernel: Kernel, job: str) -> str:
    cell = kernel.run(f"%frost status {{{job}.id}} --json")
    tb = json.loads(result_text(kernel, cell))["traceback"]
    assert not ANSI.search(tb), tb
    assert "ipykernel_" not in tb and 'File "' not in tb, tb
    return tb


def test_status_json_names_both_cells_of_an_api_job(kernel):
    a = execution_count(kernel, "def inner():\n    x = 1\n    raise ValueError('bad inner')\n")
    b = execution_count(kernel, "t_api = d.queue(lambda: inner(), name='api-fail')\n"
                                "assert t_api.wait(30)\n")
    tb = status_traceback(kernel, "t_api")
    assert f"Cell In[{b}], line 1, in <lambda>" in tb, tb
    assert f"Cell In[{a}], line 3, in inner" in tb, tb
    assert tb.rstrip().endswith("ValueError: bad inner")


def test_status_json_names_the_cell_of_a_frost_job(kernel):
    n = execution_count(kernel, "%%frost -n cell-fail\nx = 1\n\nraise KeyError('boom')\n")
    kernel.run("t_cell = d.jobs(name='cell-fail')[-1]\nassert d.wait([t_cell.id], 30)")
    tb = status_traceback(kernel, "t_cell")
    assert f"Cell In[{n}], line 4" in tb, tb  # line 1 is the %%frost line


def test_frost_result_of_a_failed_job_shows_the_jobs_traceback(kernel):
    a = execution_count(kernel, "def inner3():\n    raise ValueError('bad inner 3')\n")
    kernel.run("t_r = d.queue(inner3, name='fails')\nassert t_r.wait(30)")
    reply = kernel.reply(kernel.submit("%frost result {t_r.id}"))
    assert reply["status"] == "error" and reply["ename"] == "JobFailed"
    text = ANSI.sub("", "\n".join(reply["traceback"]))
    assert f"Cell In[{a}], line 2, in inner3" in text, text
    assert "nbfrost" not in text.replace("nbfrost.errors", ""), text  # none of its frames
    assert "JobFailed: job" in text.splitlines()[-1]


WAITS = ["%frost wait", "%frost wait {t_long.id}", "t_long.result()", "t_long.wait()",
         "d.wait()", "%frost result {t_long.id}"]


def test_interrupting_a_wait_prints_a_short_message_and_the_job_runs_on(kernel, tmp_path):
    go = tmp_path / "finish-now"
    kernel.run(f"t_long = d.queue(lambda: [time.sleep(0.01) for _ in iter("
               f"lambda: os.path.exists({str(go)!r}), True)] and 'done', name='long')")
    seen = []
    for i, code in enumerate(WAITS):
        word = f"parked-{i}"
        kernel.run(f"threading.Thread(target=watch, args=(t_long, {word!r})).start()")
        fg = kernel.submit(code)
        kernel.wait_for(lambda m, word=word: m["msg_type"] == "stream"
                        and word in m["content"]["text"])
        kernel.km.interrupt_kernel()
        try:
            reply = kernel.reply(fg)
        except Exception as exc:
            raise AssertionError(f"no reply to {code!r} after the interrupt") from exc
        assert reply["status"] == "error", (code, reply)
        assert reply["ename"] == "WaitInterrupted", (code, reply["ename"])
        lines = ANSI.sub("", "\n".join(reply["traceback"])).splitlines()
        seen.append((code, len(lines)))
        assert len(lines) <= SHORT, (code, lines)
        text = "\n".join(lines)
        assert "stopped waiting" in text and "'long' (running)" in text, text
        assert "%frost cancel" in text and ".cancel()" in text, text
        assert ".py" not in text, text  # no frames at all
        # The error went to the interrupted cell only.
        errors = [m for m in kernel.messages if m["msg_type"] == "error"
                  and m["content"]["ename"] == "WaitInterrupted"]
        assert parent(errors[-1]) == fg
        # The kernel is usable, the job still running, no waiter left behind.
        kernel.run("assert t_long.state.value == 'running', t_long.state\n"
                   "assert not waiters(t_long)")
    print("lines printed per interrupted wait:", seen)
    # Code written for Ctrl-C still catches it.
    kernel.run("threading.Thread(target=watch, args=(t_long, 'parked-caught')).start()")
    fg = kernel.submit("try:\n    t_long.wait()\nexcept KeyboardInterrupt as e:\n"
                       "    print('caught', type(e).__name__, flush=True)\n")
    kernel.wait_for(lambda m: m["msg_type"] == "stream" and "parked-caught" in m["content"]["text"])
    kernel.km.interrupt_kernel()
    assert kernel.reply(fg)["status"] == "ok"
    assert "caught WaitInterrupted" in kernel.stdout(fg)
    go.write_text("go")
    kernel.run("assert t_long.result(timeout=30) == 'done'")
