"""The magics in a real Jupyter kernel, through jupyter_client and nbclient.

What only a real kernel can show: which cell each output message belongs
to (its ``parent_header["msg_id"]``), and that the Stop button interrupts
only the foreground cell.  Jobs are released by files the test creates
after the kernel went idle, so "after every cell has finished" is exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import kernel_with, parent

pytestmark = [pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "magics_e2e.ipynb"


@pytest.fixture(scope="module")
def kernel():
    with kernel_with("%load_ext nbfrost\nimport threading, os, time") as k:
        yield k


def release(path: Path) -> None:
    path.write_text("go")


def job_waits_for(path: Path) -> str:
    return f"while not os.path.exists({str(path)!r}):\n    time.sleep(0.01)\n"


def test_stream_output_goes_to_the_queuing_cell(kernel, tmp_path):
    done = tmp_path / "all-cells-done"
    kernel.run("gate_b = threading.Event(); said_second = threading.Event()")
    cell_a = kernel.run(
        "%%frost -n routed\n"
        "print('first print', flush=True)\n"
        "gate_b.wait(30)\n"
        "print('second print', flush=True)\n"
        "said_second.set()\n"
        + job_waits_for(done) +
        "print('third print', flush=True)\n"
        "'routed result'\n")
    # Cell B is running while the job prints for the second time.
    cell_b = kernel.run("gate_b.set()\nassert said_second.wait(30)\nprint('cell b here')")
    # Every cell has finished (idle); now the job prints once more.
    release(done)
    kernel.wait_for(lambda m: m["msg_type"] == "stream" and "third print" in m["content"]["text"])
    for text in ("first print", "second print", "third print"):
        msgs = kernel.streams(text)
        assert msgs, text
        assert {parent(m) for m in msgs} == {cell_a}, text
    assert {parent(m) for m in kernel.streams("cell b here")} == {cell_b}

    # The badge: displayed in cell A with a display id, updated in place, in cell A.
    shown = kernel.wait_for(lambda m: parent(m) == cell_a and m["msg_type"] == "display_data")
    display_id = shown["content"]["transient"]["display_id"]
    assert "routed" in shown["content"]["data"]["text/html"]
    final = kernel.wait_for(
        lambda m: m["msg_type"] == "update_display_data"
        and m["content"]["transient"]["display_id"] == display_id
        and "succeeded" in m["content"]["data"]["text/plain"])
    assert parent(final) == cell_a
    updates = [m for m in kernel.messages if m["msg_type"] == "update_display_data"
               and m["content"]["transient"]["display_id"] == display_id]
    assert {parent(m) for m in updates} == {cell_a}
    # It showed "running" (at first, or as an update) before the final state.
    states = [m["content"]["data"]["text/plain"].split()[3] for m in [shown, *updates]]
    assert "running" in states and states[-1] == "succeeded", states


def test_traceback_goes_to_the_queuing_cell_with_cell_lines(kernel, tmp_path):
    go = tmp_path / "fail-now"
    cell = kernel.run("%%frost -n failing\nimport os, time\n" + job_waits_for(go)
                      + "raise ValueError('kaboom from the job')\n")
    kernel.run("print('another cell')")
    release(go)
    msg = kernel.wait_for(lambda m: m["msg_type"] == "stream"
                          and "kaboom from the job" in m["content"]["text"])
    assert msg["content"]["name"] == "stderr"
    msgs = kernel.streams("kaboom from the job")
    assert {parent(m) for m in msgs} == {cell}
    import re
    text = re.sub(r"\x1b\[[0-9;]*m", "", "".join(m["content"]["text"] for m in msgs))
    assert re.search(r"Cell In\[\d+\], line 5", text), text  # line 1 is %%frost
    # The captured output holds the same traceback.
    kernel.run("import nbfrost\n_d = nbfrost.get_dispatcher()\n"
               "_t = _d.jobs(name='failing')[-1]\n"
               "assert 'kaboom from the job' in _d.tracker(_t.id).output")


def test_display_goes_to_the_queuing_cell(kernel, tmp_path):
    go = tmp_path / "display-now"
    cell = kernel.run("%%frost -n displayer\nfrom IPython.display import display, HTML\n"
                      + job_waits_for(go) + "display(HTML('<b>shown by the job</b>'))\n")
    kernel.run("print('yet another cell')")
    release(go)
    msg = kernel.wait_for(lambda m: m["msg_type"] == "display_data"
                          and "shown by the job" in m["content"]["data"].get("text/html", ""))
    assert parent(msg) == cell


def test_interrupt_stops_only_the_foreground_cell(kernel, tmp_path):
    go = tmp_path / "finish-now"
    kernel.run("job_running = threading.Event()")
    kernel.run("%%frost -n survivor -o survivor_result\n"
               "job_running.set()\n" + job_waits_for(go) + "'still alive'\n")
    kernel.run("survivor = _\nworkers_before = len(survivor.dispatcher.backend.threads())")
    # Short sleeps, not one long one: Linux may hand the SIGINT to any of the
    # process's threads, and then CPython raises it in the main thread only
    # once that thread is back from its blocking call.
    fg = kernel.submit("assert job_running.wait(30)\nprint('foreground sleeping', flush=True)\n"
                       "for _ in range(1200):\n    time.sleep(0.1)\n")
    kernel.wait_for(lambda m: parent(m) == fg and m["msg_type"] == "stream"
                    and "foreground sleeping" in m["content"]["text"])
    kernel.km.interrupt_kernel()
    reply = kernel.reply(fg)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    kernel.run("assert survivor.state.value == 'running', survivor.state")
    release(go)
    kernel.run("assert survivor.result(timeout=30) == 'still alive'\n"
               "assert survivor_result == 'still alive'\n"
               "assert len(survivor.dispatcher.backend.threads()) == workers_before")


def test_notify_line_goes_to_the_queuing_cell(kernel, tmp_path):
    go = tmp_path / "notify-now"
    kernel.run("%config FrostMagics.notify = True")
    try:
        cell = kernel.run("%%frost -n noisy --quiet\n" + job_waits_for(go) + "print('quiet')\n")
        kernel.run("print('a later cell')")
        release(go)
        msg = kernel.wait_for(lambda m: m["msg_type"] == "stream"
                              and "'noisy' finished in" in m["content"]["text"])
        assert parent(msg) == cell
        assert msg["content"]["text"].startswith("\u2714 job ")
        assert not kernel.streams("quiet\n")  # --quiet kept the job's own print off
    finally:
        kernel.run("%config FrostMagics.notify = False")


def test_route_output_off_falls_back_to_the_latest_cell(kernel, tmp_path):
    go = tmp_path / "unrouted-now"
    kernel.run("%config FrostMagics.route_output = False")
    try:
        cell_a = kernel.run("%%frost -n unrouted\n" + job_waits_for(go)
                            + "print('unrouted print', flush=True)\n")
        cell_b = kernel.run("print('the latest cell')")
        release(go)
        msg = kernel.wait_for(lambda m: m["msg_type"] == "stream"
                              and "unrouted print" in m["content"]["text"])
        assert parent(msg) == cell_b != cell_a
    finally:
        kernel.run("%config FrostMagics.route_output = True")


def test_unload_in_the_kernel_leaves_no_nbfrost_threads(kernel):
    kernel.run("%unload_ext nbfrost")
    kernel.run("import threading\n"
               "left = [t.name for t in threading.enumerate() if t.name.startswith('nbfrost')]\n"
               "assert not left, left")
    kernel.run("%load_ext nbfrost")


def test_notebook_end_to_end_with_nbclient():
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}})
    client.execute()
    # Every assert cell ran (an AssertionError would have stopped nbclient);
    # the one tagged raises-exception showed the UsageError with a hint.
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if o.get("output_type") == "error"]
    typo = next(c for c in nb.cells if "raises-exception" in c.metadata.get("tags", []))
    text = "".join(o.get("text", "") for o in typo.outputs)
    assert ("UsageError: %frost: unknown subcommand 'jbos'; did you mean '%frost jobs'? "
            "(%frost help lists them all)") in text
    assert "Usage:" not in text  # one line, not the whole usage
    last = nb.cells[-1]
    assert any("end to end ok" in o.get("text", "") for o in last.outputs)


def test_async_jobs_cancel_and_timeout_in_a_kernel(kernel):
    """``async def`` jobs in a real kernel (whose own event loop runs in the
    main thread): output under the queuing cell, and cancel (with and
    without interrupt) and a timeout reach the coroutine at its await."""
    kernel.run(
        "import asyncio, nbfrost\n"
        "_ad = nbfrost.Dispatcher(workers=3, grace=1.0)\n"
        "_alog = []\n"
        "async def parked(tag):\n"
        "    try:\n"
        "        await asyncio.sleep(3600)\n"
        "    except asyncio.CancelledError:\n"
        "        _alog.append(tag + ' cancelled')\n"
        "        raise\n"
        "    finally:\n"
        "        _alog.append(tag + ' finally')\n"
        "async def fetch(x):\n"
        "    await asyncio.sleep(0.01)\n"
        "    print('fetched from a coroutine', x)\n"
        "    return x * 10\n")
    cell = kernel.run("_f = _ad.queue(fetch, 3)\nassert _f.result(timeout=30) == 30")
    kernel.wait_for(lambda m: m["msg_type"] == "stream"
                    and "fetched from a coroutine 3" in m["content"]["text"])
    assert {parent(m) for m in kernel.streams("fetched from a coroutine")} == {cell}
    kernel.run(
        "_c = _ad.queue(parked, 'coop')\n_i = _ad.queue(parked, 'intr')\n"
        "_t = _ad.queue(parked, 'time', timeout=0.3)\n"
        "_deadline = time.monotonic() + 30\n"
        "while not (_c.state.value == _i.state.value == 'running'):\n"
        "    assert time.monotonic() < _deadline\n"
        "    time.sleep(0.01)\n"
        "time.sleep(0.05)  # both parked at their await\n"
        "assert _c.cancel() and _i.cancel(interrupt=True)\n"
        "assert _ad.wait([_c, _i, _t], timeout=30)\n"
        "assert _c.state.value == _i.state.value == 'cancelled', (_c, _i)\n"
        "assert _t.status().error_type == 'JobTimeout', _t.status()\n"
        "_deadline = time.monotonic() + 30\n"
        "while len(_alog) < 6:\n"
        "    assert time.monotonic() < _deadline, _alog\n"
        "    time.sleep(0.01)\n"
        "assert sorted(_alog) == sorted(f'{t} {w}' for t in ('coop', 'intr', 'time')\n"
        "                              for w in ('cancelled', 'finally')), _alog\n"
        "assert _ad.queue(fetch, 4).result(timeout=30) == 40\n"
        "_ad.shutdown()\n"
        "assert _ad.backend.threads() == []")
