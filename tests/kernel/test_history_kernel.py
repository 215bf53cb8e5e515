"""History of a real kernel killed mid-run: its finished jobs stay, the
unfinished ones read lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import textwrap
import time

from nbfrost.history import history


def entries(path) -> list[tuple]:
    """Every history entry as (job, state, at_us) in commit order."""
    conn = sqlite3.connect(path)
    try:
        out = []
        for (data,) in conn.execute("SELECT events FROM batches ORDER BY rowid"):
            out += [(e[0], e[1], e[2]) for e in json.loads(data)]
        return out
    finally:
        conn.close()


def us(dt) -> int:
    return int(dt.timestamp() * 1e6)


def row(frame, job_id: int, session: int | None = None):
    sel = frame[frame["id"] == job_id]
    if session is not None:
        sel = sel[sel["session"] == session]
    assert len(sel) == 1, sel
    return sel.iloc[0]


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def pd_nat():
    import pandas as pd

    return pd.NaT


def child_code(path, mode: str) -> str:
    """A program that records its jobs in *path*: 4 jobs end (one fails), 2 block
    running, 1 waits queued; it prints ``ready PID``, then *mode*: "sleep"
    (to be killed), "exit" (exit without shutdown) or "kernel" (return)."""
    code = textwrap.dedent(f"""
        import os, sys, threading, time
        import nbfrost
        d = nbfrost.Dispatcher(workers=2, history={str(path)!r})
        gate = threading.Event()
        done = [d.queue(lambda i=i: i, name=f"done-{{i}}") for i in range(3)]
        bad = d.queue(lambda: 1 / 0, name="bad")
        for t in done + [bad]:
            t.wait(10)
        stuck = [d.queue(gate.wait, name=f"stuck-{{i}}") for i in range(2)]
        waiting = d.queue(int, name="waiting")
        while not all(t.running() for t in stuck):
            time.sleep(0.01)
        print("ready", os.getpid(), flush=True)
    """)
    return code + {"sleep": "time.sleep(60)\n", "exit": "sys.exit(0)\n", "kernel": ""}[mode]


def _committed(path):
    """The history once it shows the 4 ended and 2 running jobs, else None."""
    f = history(path)
    ended = f["state"].isin(["succeeded", "failed"]).sum()
    return f if ended == 4 and (f["state"] == "running").sum() == 2 else None


def _check_lost(frame, pid):
    assert (frame["pid"] == pid).all()
    states = dict(zip(frame["name"], frame["state"]))
    assert states == {"done-0": "succeeded", "done-1": "succeeded", "done-2": "succeeded",
                      "bad": "failed", "stuck-0": "lost", "stuck-1": "lost",
                      "waiting": "lost"}
    lost = frame[frame["state"] == "lost"].set_index("name")
    assert lost.loc[["stuck-0", "stuck-1"], "started_at"].notna().all()  # last known times
    assert lost["queued_at"].notna().all() and lost["finished_at"].isna().all()
    assert lost.loc["waiting", "started_at"] is pd_nat()
    assert row(frame, frame.set_index("name").loc["bad", "id"])["error_type"] == "ZeroDivisionError"


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
        wait_until(lambda: _committed(path), what="the kernel's history to show the ended jobs")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not km.is_alive(), what="the kernel to die")
        _check_lost(history(path), pid)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert time.monotonic() - t0 < 60

