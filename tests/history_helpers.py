"""History test helpers shared by tests/unit/test_history.py and the
real-kernel history test: reading a history file's entries and rows, a child
program that records jobs and then dies or exits, and the check that its
unfinished jobs read lost."""

from __future__ import annotations

import json
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
    (to be killed), "exit" (exit without shutdown or waiting: wait_at_exit=False)
    or "kernel" (return)."""
    wait = ", wait_at_exit=False" if mode == "exit" else ""
    code = textwrap.dedent(f"""
        import os, sys, threading, time
        import nbfrost
        d = nbfrost.Dispatcher(workers=2, history={str(path)!r}{wait})
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


def committed(path):
    """The history once it shows the 4 ended and 2 running jobs, else None."""
    f = history(path)
    ended = f["state"].isin(["succeeded", "failed"]).sum()
    return f if ended == 4 and (f["state"] == "running").sum() == 2 else None


def check_lost(frame, pid):
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

