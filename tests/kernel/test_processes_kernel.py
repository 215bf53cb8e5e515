"""``%%frost --process`` in a real kernel: notebook functions run in worker
processes, output lands under its own cell while other cells run, cancel
kills a busy loop within a second, a worker killed from outside fails only
its job, and unload and kernel exit leave no process behind.

Jobs wait for files the test creates (never sleeps); raw iopub messages are
read with jupyter_client, each sorted by its ``parent_header``.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from helpers import Kernel, eventually, kernel_with, parent, process_alive

pytestmark = [pytest.mark.timeout(300)]

SETUP = """\
%load_ext nbfrost
%config FrostMagics.process_workers = 2
import json, os, time, nbfrost
d = nbfrost.get_dispatcher()

def wait_for_file(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)

def kids():
    me, out = os.getpid(), []
    for e in os.listdir('/proc'):
        if e.isdigit():
            try:
                stat = open(f'/proc/{e}/stat').read()
            except OSError:
                continue
            f = stat[stat.rindex(')') + 2:].split()
            if int(f[1]) == me and f[0] != 'Z':
                out.append(int(e))
    return sorted(out)
"""


@pytest.fixture(scope="module")
def kernel():
    with kernel_with(SETUP) as k:
        yield k


def printed(kernel: Kernel, code: str) -> str:
    """Run *code* and return what its cell printed."""
    return kernel.stdout(kernel.run(code))


def value(kernel: Kernel, expr: str):
    return json.loads(printed(kernel, f"print(json.dumps({expr}))").strip().splitlines()[-1])


def streams_under(kernel: Kernel, cell: str) -> str:
    with kernel._cond:
        return "".join(m["content"]["text"] for m in kernel.messages
                       if parent(m) == cell and m["msg_type"] == "stream")


def test_a_process_cell_runs_notebook_code_and_its_output_lands_under_it(kernel, tmp_path):
    gate = tmp_path / "go"
    kernel.run("def crunch(n):\n    return sum(i * i for i in range(n))\nbase = 1000\n")
    cell = kernel.run(
        "%%frost --process -n crunching -o answer\n"
        "print('pid', os.getpid(), 'starts')\n"
        f"for i in nbfrost.progress(range(4), message='steps'):\n"
        f"    if i == 2:\n"
        f"        wait_for_file({str(gate)!r})\n"
        "print('crunched', crunch(base))\n"
        "crunch(base)\n")
    kernel.wait_for(lambda m: parent(m) == cell and m["msg_type"] == "stream"
                    and "starts" in m["content"]["text"])
    job = value(kernel, "d.jobs()[-1].id")
    # Progress shows while it runs; another cell runs meanwhile.
    eventually(lambda: value(kernel, f"d.status({job}).progress") == 0.5, 30, "progress 2/4")
    other = kernel.run("print('another cell')")
    assert value(kernel, f"d.status({job}).state") == "running"
    gate.touch()
    kernel.wait_for(lambda m: parent(m) == cell and m["msg_type"] == "stream"
                    and "crunched" in m["content"]["text"])
    expected = sum(i * i for i in range(1000))
    assert f"crunched {expected}\n" in streams_under(kernel, cell)
    assert "crunched" not in streams_under(kernel, other)
    assert streams_under(kernel, other) == "another cell\n"
    worker_pid = int(streams_under(kernel, cell).split("pid ")[1].split()[0])
    assert worker_pid != value(kernel, "os.getpid()")
    printed(kernel, f"d.wait([{job}], timeout=30)")
    assert value(kernel, "answer") == expected
    status = value(kernel, f"d.status({job}).to_dict()")
    assert status["worker"].startswith("process-") and status["state"] == "succeeded"


def test_cancel_ends_a_busy_loop_within_a_second_and_the_pool_goes_on(kernel):
    kernel.run("%%frost -P -n spin\nwhile True: pass\n")
    job = value(kernel, "d.jobs()[-1].id")
    eventually(lambda: value(kernel, f"d.status({job}).state") == "running", 30, "spin runs")
    took = value(kernel, f"(lambda t0: (d.cancel({job}, interrupt=True), d.wait([{job}], 5), "
                         "time.monotonic() - t0)[-1])(time.monotonic())")
    assert took < 1.0
    assert value(kernel, f"d.status({job}).state") == "cancelled"
    assert value(kernel, "d.queue(lambda: 7, process=True).result(30)") == 7


def test_a_worker_killed_from_outside_fails_only_its_job(kernel):
    kernel.run("%%frost -P -n sleeper\ntime.sleep(120)\n")
    job = value(kernel, "d.jobs()[-1].id")
    eventually(lambda: value(kernel, f"d.status({job}).state") == "running", 30, "it runs")
    pids = value(kernel, "d.process_pool.pids()")
    # The process running the job: the pool's record of it (a test-only look).
    victim = value(kernel, f"d.process_pool._live[{job}].proc.pid")
    assert victim in pids
    os.kill(victim, signal.SIGKILL)  # from outside the kernel
    printed(kernel, f"d.wait([{job}], timeout=30)")
    status = value(kernel, f"d.status({job}).to_dict()")
    assert status["state"] == "failed" and status["error_type"] == "WorkerDied"
    assert "signal 9 (SIGKILL)" in status["error"]
    assert value(kernel, "d.queue(lambda: 'still here', process=True).result(30)") == "still here"


def test_unload_reload_and_kernel_exit_leave_no_process_behind():
    k = Kernel()
    try:
        k.run(SETUP)
        before = value(k, "kids()")
        assert value(k, "d.queue(os.getpid, process=True).result(30)") not in before
        assert len(value(k, "kids()")) == len(before) + 2
        k.run("%unload_ext nbfrost")
        assert value(k, "kids()") == before
        k.run("%load_ext nbfrost\nd = nbfrost.get_dispatcher()")
        k.run("d.queue(os.getpid, process=True).result(30)")
        k.run("%reload_ext nbfrost\nd = nbfrost.get_dispatcher()")
        assert value(k, "kids()") == before
        k.run("%%frost -P\ntime.sleep(120)\n")
        eventually(lambda: len(value(k, "kids()")) == len(before) + 2, 30, "workers up")
        workers = sorted(set(value(k, "kids()")) - set(before))
    finally:
        k.close()  # a kernel shutdown, with a process job still running
    eventually(lambda: not any(process_alive(p) for p in workers), 30,
               "worker processes to end with their kernel")


def test_the_status_and_frame_show_process_jobs_like_thread_jobs(kernel):
    kernel.run("d.queue(lambda: 1, process=True, name='in-proc').result(30)\n"
               "d.queue(lambda: 1, name='in-thread').result(30)")
    frame = value(kernel, "d.to_frame(name='in-*')[['name', 'state', 'worker']]"
                          ".to_dict(orient='records')")
    by_name = {row["name"]: row for row in frame}
    assert by_name["in-proc"]["worker"].startswith("process-")
    assert not by_name["in-thread"]["worker"].startswith("process-")
    assert by_name["in-proc"]["state"] == by_name["in-thread"]["state"] == "succeeded"
    shown = printed(kernel, "listing = %frost jobs --name in-proc\nprint(listing)")
    assert "in-proc" in shown and "process-" in shown
