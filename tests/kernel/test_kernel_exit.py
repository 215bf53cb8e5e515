"""A kernel never waits for its jobs when it shuts down or restarts (a plain
interpreter does: tests/unit/test_plain_python.py); the history marks the
jobs in flight ``lost``."""

from __future__ import annotations

import time

import pytest

from nbfrost.history import history


@pytest.mark.timeout(120)
def test_kernel_shutdown_does_not_wait_and_history_marks_jobs_lost(tmp_path):
    from helpers import Kernel

    path = tmp_path / "jobs.sqlite"
    k = Kernel()
    try:
        k.run("import nbfrost, threading, time\n"
              f"d = nbfrost.Dispatcher(workers=1, history={str(path)!r})\n"
              "gate = threading.Event()\n"
              "long = d.queue(gate.wait, 600, name='long')\n"
              "later = d.queue(int, name='later')\n"
              "while not long.running():\n"
              "    time.sleep(0.01)\n"
              "d.flush_history(10)")
    finally:
        k._stop.set()
        k._pump.join()
        k.kc.stop_channels()
        started = time.monotonic()
        k.km.shutdown_kernel(now=False)     # a polite shutdown request, as Lab sends
        took = time.monotonic() - started
    assert not k.km.is_alive()
    # jupyter_client gives a kernel 5 s to exit before it kills it: well below.
    assert took < 5.0, f"the kernel took {took:.1f} s to shut down"
    frame = history(path).set_index("name")
    assert frame.loc["long", "state"] == "lost" and frame.loc["later", "state"] == "lost"
