"""Opt-in job history: every job's transitions journaled to SQLite, readable after a restart.

``Dispatcher(history="jobs.sqlite")`` opens a `Journal` on that file and
attaches it to the dispatcher's registry.  On every transition the registry
does ``journal[job] = event`` into a plain dict, under its lock: a dict
store, because any call there would let the GIL switch threads while the
lock is held.  One writer thread swaps in an empty dict every few
milliseconds, reads each changed job's state, and commits one entry per job
in one transaction (WAL mode).  ``nbfrost.history("jobs.sqlite")`` reads the
file back as a DataFrame, in this process or any later one.

The file holds:

* ``sessions``: one row per journal (a dispatcher's lifetime): pid, host,
  the process's start time, when it opened and when it closed cleanly.
* ``batches``: the journal proper, one row per committed batch.  Its
  ``events`` column is a JSON array of entries, one per job that changed
  in that batch: ``[job, state, at, name, tags, worker, attempts,
  started_at, queued_at, error, error_type, traceback]`` (`ENTRY_FIELDS`;
  trailing nulls left out), where ``at`` is the time the job reached that
  state; times are integer microseconds since the epoch.  Each entry carries
  every time the job has so far, so the
  transitions of one job within one batch (a fast job is queued, started
  and finished within a few ms) fold into one entry without losing any of
  their times.  One ``INSERT`` of one JSON text per batch, instead of a
  row per transition, is what keeps the writer cheap.
* ``entries``: a view with one row per entry, for querying with SQL.

``PRAGMA application_id`` marks the file as nbfrost's, ``PRAGMA
user_version`` is its schema version.

The writer (`Journal`) and the reader (`history`) stay in one module
because they share the file format: the schema, `ENTRY_FIELDS`,
the identity and path checks and their error messages, and the session
liveness test.  Split, the format would be described in two places.

Durability: a change is committed within about ``interval`` (5 ms) while
the pool is busy, and within about 50 ms after a lull (the idle writer
polls less often).  A SIGKILL of the process loses only what was not
committed yet, that last window; `Journal.flush` and
`Dispatcher.flush_history` wait until everything so far is committed.
With ``synchronous=NORMAL`` in WAL mode, an operating-system crash or a
power loss can also lose the commits since the last checkpoint; a process
crash cannot.

`history` shows a job whose session was closed, or whose process is gone,
before the job ended as ``lost``, with its last known times.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from .frames import categories, strings, tuples, utc_times
from .job import QUEUED, RUNNING, TERMINAL, format_job_traceback

if TYPE_CHECKING:
    import pandas as pd

    from .job import Job
    from .registry import Registry

#: A job's entry as written (see `ENTRY_FIELDS`), and as read back.
Entry = tuple[Any, ...]
#: A session's (pid, host, proc_start, closed_at), by session id.
Sessions = dict[int, tuple[int, str, "str | None", "float | None"]]

__all__ = ["Journal", "history", "HISTORY_COLUMNS", "ENTRY_FIELDS", "LOST"]

log = logging.getLogger("nbfrost")

#: ``PRAGMA application_id`` of an nbfrost history file ("nbfr").
APPLICATION_ID = 0x6E626672
#: ``PRAGMA user_version``: bumped when the schema changes.
SCHEMA_VERSION = 1

#: Seconds a write waits for another connection's lock before it fails (and
#: is tried again with the next batch).
BUSY_TIMEOUT = 5.0
#: Most jobs kept for another try while the file cannot be written; beyond
#: that, changes are dropped (counted in `Journal.dropped`).
MAX_UNWRITTEN = 100_000

#: The state `history` gives a job whose process died (or whose session
#: closed) before the job reached a terminal state.
LOST = "lost"

#: The fields of one journal entry, by position (see the module docstring).
ENTRY_FIELDS = ("job", "state", "at", "name", "tags", "worker", "attempts",
                "started_at", "queued_at", "error", "error_type", "traceback")

#: Columns of `history`'s DataFrame.
HISTORY_COLUMNS = ("session", "pid", "id", "name", "state", "tags", "queued_at",
                   "started_at", "finished_at", "duration", "worker", "attempts",
                   "success", "error", "error_type", "traceback")

#: Terminal states by their stored names (entries hold the strings).
_TERMINAL = frozenset(s.value for s in TERMINAL)

_SCHEMA = """
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
       json_extract(e.value, '$[11]') AS traceback
FROM batches AS b, json_each(b.events) AS e
"""


def _check_path(path: Any) -> str:
    """*path* as a str, or TypeError/ValueError naming the fix."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"history must be a file path (str or os.PathLike) or None, "
                        f"got {type(path).__name__} {path!r}")
    p = os.fsdecode(os.fspath(path))
    if not p or p == ":memory:" or p.startswith("file:"):
        raise ValueError(f"history must be the path of a file such as 'jobs.sqlite', got {p!r}")
    return p


def _proc_start(pid: int) -> str | None:
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


def _process_alive(pid: int, host: str, proc_start: str | None) -> bool:
    """Whether the process that wrote a session may still be running.

    On another host we cannot tell, so we answer True (its jobs keep their
    last state).  On Linux the process's start time must also match, so a
    recycled pid does not count as alive.
    """
    if host != socket.gethostname():
        return True
    if os.path.isdir("/proc/self"):
        now = _proc_start(pid)
        if now is None or now == "":
            return False
        return proc_start is None or now == proc_start
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open_error(path: str, exc: BaseException) -> Exception:
    """Turn an sqlite3 error raised while opening *path* into a clear one."""
    text = str(exc)
    low = text.lower()
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return ValueError(
            f"the job history file {path!r} is not a usable SQLite database ({text}); it is "
            "corrupt or another kind of file. Move it away or delete it, or pass another "
            "path to Dispatcher(history=...)")
    err = PermissionError if ("readonly" in low or "read-only" in low or "permission" in low) else OSError
    return err(
        f"cannot write the job history file {path!r} ({text}). Check that the file and its "
        "folder exist and are writable (WAL mode also creates '-wal' and '-shm' files next "
        "to it), or pass another path to Dispatcher(history=...)")


def _check_identity(path: str, conn: sqlite3.Connection) -> bool:
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


def _connect(path: str) -> sqlite3.Connection:
    """Open *path* for writing, create or validate the schema; clear errors."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot create the job history file {path!r}: the folder {folder!r} does not "
            "exist; create it or pass another path to Dispatcher(history=...)")
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"the job history path {path!r} is a directory; pass a file path such as "
            f"{os.path.join(path, 'jobs.sqlite')!r}")
    conn = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT)
        # Look before changing anything: a junk file fails on the first
        # read, and a foreign database is refused before WAL mode (which
        # rewrites the file header) is switched on.
        _check_identity(path, conn)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"the file system refused WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")  # one process creates the schema
        if _check_identity(path, conn):
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        else:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError(
                    "database disk image is malformed: " + "; ".join(problems[:3]))
        conn.execute("COMMIT")
        return conn
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise _open_error(path, exc) from exc
    except BaseException:
        if conn is not None:
            conn.close()
        raise


class Journal:
    """Writes the jobs of a registry to an SQLite file, from one thread.

    Args:
        path: the file; created with its schema if missing.
        interval: seconds the writer lets changes gather before it writes a
            batch: the commit delay under load, and about what a SIGKILL
            may lose.
        batch: most entries written in one transaction.

    Raises (at construction, before anything runs):
        TypeError, ValueError: *path* is not a file path, or the file is
            corrupt, not SQLite, or not an nbfrost history.
        OSError: the file or its folder cannot be written.

    `attach` connects it to a registry and starts the writer.  After that
    nothing here raises into a job: a failed write is logged (once per
    distinct message) and kept in `error`, and its jobs are written again
    with the next batch, in their state at that time (`flush` waits for
    that).  What still cannot be written when the journal closes is counted
    in `dropped`.

    How it stays cheap: on each transition the registry only does
    ``journal[job] = event`` into a dict (no call under its lock).  Every
    ``interval`` the writer swaps in an empty dict, reads each changed job's
    state *now* and writes one entry per job, all in a single ``INSERT`` of
    one JSON text.  So transitions of a job within one interval are folded
    into one entry that carries all of their times.
    """

    def __init__(self, path: str | os.PathLike, *, interval: float = 0.005,
                 batch: int = 20_000) -> None:
        self.path = _check_path(path)
        self._interval = float(interval)
        self._batch = int(batch)
        self.written = 0       # entries committed (writer thread only)
        self.dropped = 0       # entries given up after write errors
        self.error: BaseException | None = None
        self._warned: set[str] = set()
        self._conn = _connect(self.path)
        try:
            self.session = self._open_session()
        except sqlite3.Error as exc:
            self._conn.close()
            raise _open_error(self.path, exc) from exc
        self._insert = "INSERT INTO batches(session, written_at, events) VALUES (?, ?, ?)"
        self._dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False,
                                       separators=(",", ":")).encode
        self._registry: Registry | None = None
        # Jobs whose batch failed, as in the registry's journal dict (only the
        # keys are used: an entry is written from the job's state at the time).
        # Writer thread only.
        self._unwritten: dict[Job, str] = {}
        # flush() Events; None asks the writer to stop
        self._requests: deque[threading.Event | None] = deque()
        self._wake = threading.Event()
        self._close_lock = threading.Lock()  # guards _closed
        self._closed = False
        self._thread: threading.Thread | None = None

    def _open_session(self) -> int:
        from ._version import __version__

        pid = os.getpid()
        cur = self._conn.execute(
            "INSERT INTO sessions(pid, host, proc_start, opened_at, version) VALUES (?, ?, ?, ?, ?)",
            (pid, socket.gethostname(), _proc_start(pid), time.time(), __version__))
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def attach(self, registry: Registry) -> None:
        """Start journaling *registry*'s transitions (once), and the writer."""
        if self._registry is not None:
            raise RuntimeError("this journal is already attached to a registry")
        self._registry = registry
        registry.swap_journal({})
        self._thread = threading.Thread(target=self._run, name="nbfrost-history", daemon=True)
        self._thread.start()
        _OPEN.add(self)
        # Commit what is pending if the interpreter exits without shutdown().
        atexit.register(self.close)

    # -------------------------------------------------------------- writer
    def _run(self) -> None:
        registry, requests, wake = self._registry, self._requests, self._wake
        assert registry is not None  # attach() sets it before it starts this thread
        interval = self._interval
        delay = interval
        while True:
            wake.wait(delay)  # changes gather meanwhile: one commit per batch
            wake.clear()
            # Requests first: every change made before a flush() is then in
            # the dict taken below or in a batch already committed.
            asks = [requests.popleft() for _ in range(len(requests))]
            stop = None in asks
            if stop:
                changes = registry.swap_journal(None)
            elif registry.journal:
                changes = registry.swap_journal({})
            else:
                changes = None
            if self._unwritten:  # jobs of a failed batch: their state now, again
                changes = {**self._unwritten, **(changes or {})}
                self._unwritten = {}
            if changes:
                self._write_all(list(changes))
                delay = interval
            else:
                delay = min(delay * 2, _IDLE_POLL)  # idle: wake up less often
            waiting = [ask for ask in asks if ask is not None]
            if self._unwritten and not stop:
                requests.extendleft(reversed(waiting))  # answered once written
                continue
            for ask in waiting:
                ask.set()
            if stop:
                if self._unwritten:
                    self.dropped += len(self._unwritten)
                    log.warning("nbfrost: %d job history entries could not be written to %r "
                                "before it closed (%s)", len(self._unwritten), self.path,
                                self.error)
                self._close_session()
                return

    def _write_all(self, jobs: list[Job]) -> None:
        limit = self._batch
        for i in range(0, len(jobs), limit):
            self._write(jobs[i:i + limit])

    def _write(self, jobs: list[Job]) -> None:
        conn = self._conn
        try:
            data = self._dumps(self._entries(jobs))
            conn.execute("BEGIN")
            conn.execute(self._insert, (self.session, time.time(), data))
            conn.execute("COMMIT")
            self.written += len(jobs)
        except Exception as exc:  # noqa: BLE001 - the journal must never stop the pool
            self.error = exc
            # Entries are snapshots, so trying these jobs again later
            # writes their state as it is then; nothing is lost meanwhile.
            room = MAX_UNWRITTEN - len(self._unwritten)
            keep = jobs[:max(0, room)]
            self._unwritten.update(dict.fromkeys(keep, "unwritten"))
            self.dropped += len(jobs) - len(keep)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.debug("nbfrost: history rollback failed", exc_info=True)
            key = f"{type(exc).__name__}: {exc}"
            if key not in self._warned:
                self._warned.add(key)
                log.warning("nbfrost: could not write %d job history entries to %r (%s); jobs "
                            "keep running, and their entries are tried again with the next batch",
                            len(jobs), self.path, key)

    def _entries(self, jobs: list[Job]) -> list[Entry]:
        """One JSON-ready entry per changed job, from its state now.

        Writer thread only; it reads jobs, never writes them.  The state is
        read first: the registry sets a state's fields before it publishes
        the state, so the fields read after it are complete.  Layout:
        `ENTRY_FIELDS`, trailing nulls left out.
        """
        rows: list[Entry] = []
        append = rows.append
        for job in jobs:
            state = job.state
            name = job.label
            tags = job.tags or None
            # Times as integer microseconds: JSON writes an int much faster
            # than a float, and the writer is the GIL's guest.
            queued = round(job.queued_at * 1e6)
            if state is QUEUED:
                append((job.id, "queued", queued, name, tags))
                continue
            started = round(job.started_at * 1e6) if job.started_at is not None else None
            if state is RUNNING:
                append((job.id, "running", started, name, tags, job.worker, job.attempts,
                        started, queued))
                continue
            error = job.error
            end = round(job.finished_at * 1e6)  # type: ignore[operator]  # set: state is terminal
            if error is None:
                append((job.id, state.value, end, name, tags, job.worker, job.attempts,
                        started, queued))
            else:
                append((job.id, state.value, end, name, tags, job.worker, job.attempts,
                        started, queued, str(error) or type(error).__name__,
                        type(error).__name__, _traceback_of(job, error)))
        return rows

    def _close_session(self) -> None:
        try:
            self._conn.execute("UPDATE sessions SET closed_at=? WHERE session=?",
                               (time.time(), self.session))
        except sqlite3.Error as exc:
            log.warning("nbfrost: could not mark history session %s closed in %r: %s",
                        self.session, self.path, exc)
        finally:
            self._conn.close()

    # ------------------------------------------------------------- control
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every transition made so far is committed.

        Returns True when it is, False if *timeout* seconds passed first.
        Returns True at once after `close`, which commits everything.
        """
        if self._closed or self._thread is None:
            return True
        done = threading.Event()
        self._requests.append(done)
        self._wake.set()
        return done.wait(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float | None = 10.0) -> None:
        """Commit what is pending, detach from the registry, mark the
        session closed and stop the writer.  Safe to call twice."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        thread = self._thread
        if thread is None:  # never attached
            self._close_session()
            return
        self._requests.append(None)
        self._wake.set()
        if threading.current_thread() is not thread:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("nbfrost: the history writer for %r did not stop within %s s",
                            self.path, timeout)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<nbfrost.journal.Journal {state} path={self.path!r} session={self.session} "
                f"written={self.written} dropped={self.dropped}>")


_IDLE_POLL = 0.05  # seconds between polls of an idle journal: its commit delay after a lull
#: The attached journals of this process, so that `history` can flush the
#: ones writing the file it reads.
_OPEN: weakref.WeakSet[Journal] = weakref.WeakSet()


def _flush_writers_of(path: str, timeout: float = 5.0) -> None:
    """Commit what this process's open journals on *path* still hold, so
    that reading right after a job ended shows it ended."""
    for journal in list(_OPEN):
        if journal.closed:
            continue
        try:
            same = os.path.samefile(journal.path, path)
        except OSError:
            continue
        if same:
            journal.flush(timeout)


def _traceback_of(job: Job, error: BaseException) -> str:
    """The job's traceback text, without writing to the job: the one a backend
    (or a reader) already cached for this error, else formatted here."""
    details = job.details
    cached = None if details is None else details.traceback
    if cached is not None and cached[0] is error:
        return cached[1]
    return format_job_traceback(error)


# ---------------------------------------------------------------- reading
def _read(path: str) -> tuple[Sessions, list[tuple[int, str]]]:
    """The sessions and the committed batches of the history file *path*."""
    try:
        conn = sqlite3.connect(path, timeout=5.0)
    except sqlite3.Error as exc:
        raise _open_error(path, exc) from exc
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
    except sqlite3.Error as exc:
        raise _open_error(path, exc) from exc
    finally:
        conn.close()
    return sessions, batches


def _fold(batches: list[tuple[int, str]]) -> dict[tuple[int, int], list[Any]]:
    """The newest entry of each (session, job).  States only move forward,
    so the last entry written for a job is its last known state."""
    jobs: dict[tuple[int, int], list[Any]] = {}
    loads = json.loads
    for session, data in batches:
        for entry in loads(data):
            jobs[(session, entry[0])] = entry
    return jobs


def history(path: str | os.PathLike) -> pd.DataFrame:
    """Every job journaled in the history file *path*, as a DataFrame.

    One row per job and session (a session is one dispatcher's lifetime),
    ordered by session then job id, with the columns in `HISTORY_COLUMNS`:
    ``session``, ``pid`` and ``id`` identify the job (int64); the rest
    have the dtypes of ``Dispatcher.to_frame()`` (see
    `nbfrost.frames.frame_dtypes`: text is ``string``, ``state`` the same
    categorical, times ``datetime64[ns, UTC]``, ``duration`` seconds,
    ``success`` a nullable boolean).

    A job that had not ended when its process died, or when its session
    closed, has state ``"lost"`` and keeps its last known times
    (``queued_at``, and ``started_at`` if it had started).  The jobs of a
    process that is still running keep their state (``queued`` or
    ``running``).  Journals of *this* process that write *path* are
    flushed first; of other processes, what they committed is read (see
    the module's notes on durability).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an nbfrost history, or is corrupt.
    """
    import numpy as np
    import pandas as pd

    p = _check_path(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(
            f"no job history file at {p!r}; start one with Dispatcher(history={p!r}) "
            "(or %config FrostMagics.history)")
    _flush_writers_of(p)
    sessions, batches = _read(p)
    folded = _fold(batches)
    dead = {s: closed is not None or not _process_alive(pid, host, start)
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
        ended = state in _TERMINAL
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
        "success": pd.array([(s == "succeeded") if s in _TERMINAL else None for s in states],
                            dtype="boolean"),
        "error": strings([r[9] for r in recs]),
        "error_type": strings([r[10] for r in recs]),
        "traceback": strings([r[11] for r in recs]),
    }
    return pd.DataFrame(data, columns=list(HISTORY_COLUMNS))
