"""The history reader: a history file read back as a DataFrame.

Any process may read a history file, also while writers are adding to it:
it sees what they committed.  The newest entry of each (session, job) is
the job's last known state, because states only move forward; a job whose
session closed, or whose process is gone, before it ended is ``lost``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from ..frames import categories, strings, tuples, utc_times
from .format import (
    APPLICATION_ID,
    ENTRY_FIELDS,
    HISTORY_COLUMNS,
    LOST,
    TERMINAL_NAMES,
    Sessions,
    check_path,
    open_error,
    process_alive,
)
from .writer import flush_writers_of

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read_history"]


def _read(path: str) -> tuple[Sessions, list[tuple[int, str]], dict[tuple[int, int], str]]:
    """The sessions, the committed batches and the schedules' rules (by
    session and schedule id) of the history file *path*."""
    try:
        conn = sqlite3.connect(path, timeout=5.0)
    except sqlite3.Error as exc:
        raise open_error(path, exc, reading=True) from exc
    try:
        conn.execute("PRAGMA query_only=ON")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise ValueError(f"{path!r} is not an nbfrost job history file "
                             f"(application_id {app_id}); pass the file given to "
                             "Dispatcher(history=...)")
        sessions = {r[0]: r[1:] for r in conn.execute(
            "SELECT session, pid, host, proc_start, closed_at FROM sessions")}
        batches = conn.execute("SELECT session, events FROM batches ORDER BY rowid").fetchall()
        rules: dict[tuple[int, int], str] = {}
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name='schedules'").fetchone():
            rules = {(r[0], r[1]): r[2] for r in conn.execute(
                "SELECT session, schedule, rule FROM schedules")}
    except sqlite3.Error as exc:
        raise open_error(path, exc, reading=True) from exc
    finally:
        conn.close()
    return sessions, batches, rules


def _fold(batches: list[tuple[int, str]]) -> dict[tuple[int, int], list[Any]]:
    """The newest entry of each (session, job).  States only move forward,
    so the last entry written for a job is its last known state."""
    jobs: dict[tuple[int, int], list[Any]] = {}
    loads = json.loads
    for session, data in batches:
        for entry in loads(data):
            jobs[(session, entry[0])] = entry
    return jobs


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """`nbfrost.history`: every job recorded in the history file *path*, as a DataFrame."""
    import numpy as np
    import pandas as pd

    p = check_path(path)
    if os.path.isdir(p):
        raise IsADirectoryError(
            f"{p!r} is a folder, not a job history file; pass the file inside it that was "
            "given to Dispatcher(history=...), such as "
            f"{os.path.join(p, 'jobs.sqlite')!r}")
    if not os.path.isfile(p):
        raise FileNotFoundError(
            f"no job history file at {p!r}; start one with Dispatcher(history={p!r}) "
            "(or %config FrostMagics.history)")
    flush_writers_of(p)
    sessions, batches, rules = _read(p)
    folded = _fold(batches)
    dead = {s: closed is not None or not process_alive(pid, host, start)
            for s, (pid, host, start, closed) in sessions.items()}
    now = time.time()
    keys = sorted(folded)
    # Pad every entry to the full layout (trailing nulls are left out).
    width = len(ENTRY_FIELDS)
    recs = [e + [None] * (width - len(e)) for e in (folded[k] for k in keys)]
    states = []
    durations = []
    finished = []
    for (session, _), r in zip(keys, recs):
        state, started = r[1], r[7]
        ended = state in TERMINAL_NAMES
        if not ended and dead.get(session, True):
            state = LOST
        states.append(state)
        finished.append(r[2] if ended else None)
        if started is None or state == LOST:
            durations.append(np.nan)
        elif ended:
            durations.append((r[2] - started) / 1e6)
        else:
            durations.append(max(0.0, now - started / 1e6))

    data = {
        "session": np.array([k[0] for k in keys], dtype="int64"),
        "pid": np.array([sessions.get(k[0], (-1,))[0] for k in keys], dtype="int64"),
        "id": np.array([k[1] for k in keys], dtype="int64"),
        "name": strings([r[3] for r in recs]),
        "state": categories(states),
        "tags": tuples([tuple(r[4]) if r[4] else () for r in recs]),
        # A queued entry's own time is its queue time.  Times are integer
        # microseconds in the file.
        "queued_at": utc_times([r[8] if r[8] is not None else r[2] for r in recs], 1_000_000),
        "started_at": utc_times([r[7] for r in recs], 1_000_000),
        "finished_at": utc_times(finished, 1_000_000),
        "duration": np.array(durations, dtype="float64"),
        "worker": strings([r[5] for r in recs]),
        "attempts": np.array([r[6] or 0 for r in recs], dtype="int64"),
        "success": pd.array([(s == "succeeded") if s in TERMINAL_NAMES else None for s in states],
                            dtype="boolean"),
        "error": strings([r[9] for r in recs]),
        "error_type": strings([r[10] for r in recs]),
        "traceback": strings([r[11] for r in recs]),
        "schedule": pd.array([r[12] for r in recs], dtype="Int64"),
        "schedule_rule": strings([None if r[12] is None else rules.get((k[0], r[12]))
                                  for k, r in zip(keys, recs)]),
    }
    return pd.DataFrame(data, columns=list(HISTORY_COLUMNS))
