"""The history file's format, version 1: described here once.

A history file is an SQLite database (WAL mode) that holds:

* ``sessions``: one row per writer (a dispatcher's lifetime): pid, host,
  the process's start time, when it opened and when it closed cleanly, and
  the nbfrost version that wrote it.
* ``batches``: one row per committed batch.  Its ``events`` column is a
  JSON array of *entries*, one per job that changed in that batch:
  ``[job, state, at, name, tags, worker, attempts, started_at, queued_at,
  error, error_type, traceback, schedule]`` (`ENTRY_FIELDS`; trailing nulls
  left out; ``schedule`` is the id of the schedule a job is a run of),
  where ``at`` is the time the job reached that state.  Times are integer
  microseconds since the epoch.  Each entry carries every time the job has
  so far, so the transitions of one job within one batch (a fast job is
  queued, started and finished within a few ms) fold into one entry
  without losing any of their times.  One ``INSERT`` of one JSON text per
  batch, instead of a row per transition, is what keeps the writer cheap.
* ``schedules`` (since version 2): one row per schedule (``d.every``,
  ``d.cron``, ``d.at``) and session: its id, name, rule in words, rule as
  written, when it was made, and when and why it ended.
* ``entries``: a view with one row per entry, for querying with SQL.

Version 1 files (no ``schedules`` table, entries without ``schedule``) are
moved to version 2 when a writer opens them (`MIGRATE_1_TO_2`); readers
read both.

``PRAGMA application_id`` (`APPLICATION_ID`) marks the file as nbfrost's,
``PRAGMA user_version`` is the format's version (`SCHEMA_VERSION`): the
writer refuses to add to a file of a newer version.

What both sides share lives here: the schema and its version, the entry
layout, the path and identity checks with their error messages, and the
test whether the process that wrote a session is still alive.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from typing import Any

from ..states import TERMINAL

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SCHEMA", "ENTRY_FIELDS", "HISTORY_COLUMNS",
           "LOST", "TERMINAL_NAMES", "MIGRATE_1_TO_2", "Entry", "Sessions", "check_path", "check_identity",
           "open_error", "proc_start", "process_alive"]

#: A job's entry as written (see `ENTRY_FIELDS`), and as read back.
Entry = tuple[Any, ...]
#: A session's (pid, host, proc_start, closed_at), by session id.
Sessions = dict[int, tuple[int, str, "str | None", "float | None"]]

#: ``PRAGMA application_id`` of an nbfrost history file ("nbfr").
APPLICATION_ID = 0x6E626672
#: ``PRAGMA user_version``: the format's version, bumped when the schema changes.
SCHEMA_VERSION = 2

#: The state `nbfrost.history` gives a job whose process died (or whose
#: session closed) before the job reached a terminal state.
LOST = "lost"

#: The fields of one entry, by position (see the module docstring).
ENTRY_FIELDS = ("job", "state", "at", "name", "tags", "worker", "attempts",
                "started_at", "queued_at", "error", "error_type", "traceback", "schedule")

#: Columns of `nbfrost.history`'s DataFrame.
HISTORY_COLUMNS = ("session", "pid", "id", "name", "state", "tags", "queued_at",
                   "started_at", "finished_at", "duration", "worker", "attempts",
                   "success", "error", "error_type", "traceback", "schedule", "schedule_rule")

#: Terminal states by their stored names (entries hold the strings).
TERMINAL_NAMES = frozenset(s.value for s in TERMINAL)

#: The schema of version `SCHEMA_VERSION`, statements separated by ``;``.
SCHEMA = """
CREATE TABLE sessions (
    session     INTEGER PRIMARY KEY,
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    proc_start  TEXT,
    opened_at   REAL NOT NULL,
    closed_at   REAL,
    version     TEXT
);
CREATE TABLE batches (
    session     INTEGER NOT NULL,
    written_at  REAL NOT NULL,
    events      TEXT NOT NULL
);
CREATE TABLE schedules (
    session     INTEGER NOT NULL,
    schedule    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    rule        TEXT NOT NULL,
    expression  TEXT NOT NULL,
    created_at  REAL NOT NULL,
    ended_at    REAL,
    reason      TEXT,
    PRIMARY KEY (session, schedule)
);
CREATE VIEW entries AS
SELECT b.session AS session,
       b.written_at AS written_at,
       json_extract(e.value, '$[0]') AS job,
       json_extract(e.value, '$[1]') AS state,
       json_extract(e.value, '$[2]') / 1e6 AS at,
       json_extract(e.value, '$[3]') AS name,
       json_extract(e.value, '$[4]') AS tags,
       json_extract(e.value, '$[5]') AS worker,
       json_extract(e.value, '$[6]') AS attempts,
       json_extract(e.value, '$[7]') / 1e6 AS started_at,
       json_extract(e.value, '$[8]') / 1e6 AS queued_at,
       json_extract(e.value, '$[9]') AS error,
       json_extract(e.value, '$[10]') AS error_type,
       json_extract(e.value, '$[11]') AS traceback,
       json_extract(e.value, '$[12]') AS schedule
FROM batches AS b, json_each(b.events) AS e
"""

#: What moves a version 1 file to version 2: the schedules table, and the
#: entries view with the ``schedule`` column.
MIGRATE_1_TO_2 = ";".join(
    [stmt for stmt in SCHEMA.split(";") if "CREATE TABLE schedules" in stmt]
    + ["DROP VIEW entries"]
    + [stmt for stmt in SCHEMA.split(";") if "CREATE VIEW entries" in stmt])


def check_path(path: Any) -> str:
    """*path* as a str, or TypeError/ValueError naming the fix."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"history must be a file path (str or os.PathLike) or None, "
                        f"got {type(path).__name__} {path!r}")
    p = os.fsdecode(os.fspath(path))
    if not p or p == ":memory:" or p.startswith("file:"):
        raise ValueError(f"history must be the path of a file such as 'jobs.sqlite', got {p!r}")
    return p


def proc_start(pid: int) -> str | None:
    """The start time of process *pid* from /proc (Linux), '' if it is a
    zombie, None if there is no such process or no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = data.rpartition(")")[2].split()  # the command name may hold spaces
    if not fields or fields[0] in ("Z", "X"):
        return ""  # a zombie: dead, only not reaped yet
    return fields[19] if len(fields) > 19 else ""


def process_alive(pid: int, host: str, started: str | None) -> bool:
    """Whether the process that wrote a session may still be running.

    On another host we cannot tell, so we answer True (its jobs keep their
    last state).  On Linux the process's start time must also match
    *started*, so a recycled pid does not count as alive.
    """
    if host != socket.gethostname():
        return True
    if os.path.isdir("/proc/self"):
        now = proc_start(pid)
        if now is None or now == "":
            return False
        return started is None or now == started
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_error(path: str, exc: BaseException, *, reading: bool = False) -> Exception:
    """Turn an sqlite3 error raised while opening *path* into a clear one
    (*reading*: for ``nbfrost.history(path)``, else for a writer).

    A file that is not SQLite is most likely some other file of the user's
    (a script, a CSV), so the message never suggests deleting it."""
    text = str(exc)
    low = text.lower()
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        if reading:
            return ValueError(
                f"{path!r} is not an nbfrost job history: it is not an SQLite database "
                f"({text}). nbfrost.history() reads the file given to "
                "Dispatcher(history=...); this one was only read")
        return ValueError(
            f"{path!r} is not an nbfrost job history: it is not a usable SQLite database "
            f"({text}), so nbfrost left it as it is. Pass another path to "
            "Dispatcher(history=...)")
    err = PermissionError if ("readonly" in low or "read-only" in low or "permission" in low) else OSError
    return err(
        f"cannot write the job history file {path!r} ({text}). Check that the file and its "
        "folder exist and are writable (WAL mode also creates '-wal' and '-shm' files next "
        "to it), or pass another path to Dispatcher(history=...)")


def check_identity(path: str, conn: sqlite3.Connection) -> bool:
    """True if the database is empty (new), False if it is an nbfrost
    history this version can write; else ValueError naming the fix."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    if app_id == 0 and not tables:
        return True
    if app_id != APPLICATION_ID:
        raise ValueError(
            f"{path!r} is an SQLite database but not an nbfrost job history "
            f"(application_id {app_id}, tables {sorted(tables)}); pass another path to "
            "Dispatcher(history=...) so that this file is not modified")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"the job history {path!r} was written by a newer nbfrost (schema {version}, "
            f"this one reads {SCHEMA_VERSION}); upgrade nbfrost or pass another path")
    return False
