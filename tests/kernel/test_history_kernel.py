"""History of a real kernel killed mid-run: its finished jobs stay, the
unfinished ones read lost."""

from __future__ import annotations

import os
import signal
import time

from history_helpers import check_lost, child_code, committed, wait_until

from nbfrost.history import history


def test_sigkill_of_a_kernel_mid_run(tmp_path):
    """A real kernel runs a Dispatcher(history=...) with some jobs ended and
    some blocked; it is killed with SIGKILL; the history read afterwards has
    every ended job with its outcome and every job in flight as lost."""
    from jupyter_client.manager import start_new_kernel

    path = tmp_path / "jobs.sqlite"
    t0 = time.monotonic()
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        outputs: list = []
        reply = kc.execute_interactive(child_code(path, "kernel"), timeout=60,
                                       output_hook=outputs.append)
        assert reply["content"]["status"] == "ok", reply["content"]
        text = "".join(m["content"].get("text", "") for m in outputs
                       if m["msg_type"] == "stream")
        pid = int(text.split("ready")[1].split()[0])
        wait_until(lambda: committed(path), what="the kernel's history to show the ended jobs")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not km.is_alive(), what="the kernel to die")
        check_lost(history(path), pid)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert time.monotonic() - t0 < 60

