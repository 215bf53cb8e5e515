"""The history writer: every job's transitions, committed to the history file.

``Dispatcher(history="jobs.sqlite")`` opens a `HistoryWriter` on that file
and attaches it to the dispatcher's registry.  On every transition the
registry does ``history_inbox[job] = event`` into a plain dict, under its
lock: a dict store, because any call there would let the GIL switch threads
while the lock is held.  One writer thread swaps in an empty inbox every few
milliseconds, reads each changed job's state, and commits one entry per job
in one transaction (WAL mode), in the layout of `nbfrost.history.format`.

Durability: a change is committed within about ``interval`` (5 ms) while
the pool is busy, and within about 50 ms after a lull (the idle writer
polls less often).  A SIGKILL of the process loses only what was not
committed yet, that last window; `HistoryWriter.flush` and
`Dispatcher.flush_history` wait until everything so far is committed.
With ``synchronous=NORMAL`` in WAL mode, an operating-system crash or a
power loss can also lose the commits since the last checkpoint; a process
crash cannot.
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
from typing import TYPE_CHECKING

from ..job import QUEUED, RUNNING, format_job_traceback
from .format import (
    APPLICATION_ID,
    ENTRY_FIELDS,
    MIGRATE_1_TO_2,
    SCHEMA,
    SCHEMA_VERSION,
    Entry,
    check_identity,
    check_path,
    open_error,
    proc_start,
)

if TYPE_CHECKING:
    from ..job import Job
    from ..registry import Registry

__all__ = ["HistoryWriter", "flush_writers_of", "BUSY_TIMEOUT", "MAX_UNWRITTEN"]

log = logging.getLogger("nbfrost")

#: Seconds a write waits for another connection's lock before it fails (and
#: is tried again with the next batch).
BUSY_TIMEOUT = 5.0
#: Most jobs kept for another try while the file cannot be written; beyond
#: that, changes are dropped (counted in `HistoryWriter.dropped`).
MAX_UNWRITTEN = 100_000


def _writable_or_made(path: str, folder: str) -> None:
    """PermissionError for a read-only file or a read-only folder alike
    (SQLite words the two differently, and fails only on the first write);
    a missing file is created here, empty and readable by its owner only
    (0600, like Jupyter's runtime files): it holds job names, errors and
    tracebacks.  SQLite gives the -wal and -shm files the same mode, and
    takes the empty file as a new database (see `check_identity`)."""
    unwritable = path if os.path.exists(path) else folder
    if not os.access(unwritable, os.W_OK):
        raise PermissionError(
            f"cannot write the job history file {path!r}: "
            f"{'the file' if unwritable == path else 'its folder ' + repr(folder)} is read-only. "
            "Make it writable, or pass another path to Dispatcher(history=...)")
    if not os.path.exists(path):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # another process made it meanwhile: it is opened as it is
        except OSError as exc:
            raise open_error(path, exc) from exc


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
    _writable_or_made(path, folder)
    conn = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT)
        # Look before changing anything: a junk file fails on the first
        # read, and a foreign database is refused before WAL mode (which
        # rewrites the file header) is switched on.
        check_identity(path, conn)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"the file system refused WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")  # one process creates the schema
        if check_identity(path, conn):
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        else:
            if conn.execute("PRAGMA user_version").fetchone()[0] == 1:
                for stmt in MIGRATE_1_TO_2.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            problems = [r[0] for r in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError(
                    "database disk image is malformed: " + "; ".join(problems[:3]))
        conn.execute("COMMIT")
        return conn
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise open_error(path, exc) from exc
    except BaseException:
        if conn is not None:
            conn.close()
        raise


class HistoryWriter:
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
    that).  What still cannot be written when the writer closes is counted
    in `dropped`.

    How it stays cheap: on each transition the registry only does
    ``history_inbox[job] = event`` into a dict (no call under its lock).  Every
    ``interval`` the writer swaps in an empty inbox, reads each changed job's
    state *now* and writes one entry per job, all in a single ``INSERT`` of
    one JSON text.  So transitions of a job within one interval are folded
    into one entry that carries all of their times.
    """

    def __init__(self, path: str | os.PathLike, *, interval: float = 0.005,
                 batch: int = 20_000) -> None:
        self.path = check_path(path)
        self._interval = float(interval)
        self._batch = int(batch)
        self.written = 0       # entries committed (writer thread only)
        self.dropped = 0       # entries given up after write errors
        self.error: BaseException | None = None
        self._warned: set[str] = set()
        self._conn = _connect(self.path)
        # The file this writer writes: if the path stops naming it (deleted,
        # or replaced), writing on would go to an unlinked file; see _check_file.
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)
        #: Set once the file was deleted or replaced under the writer (see
        #: `_check_file`); `flush` raises it and stats() shows it.
        self.gone: OSError | None = None
        try:
            self.session = self._open_session()
        except sqlite3.Error as exc:
            self._conn.close()
            raise open_error(self.path, exc) from exc
        self._insert = "INSERT INTO batches(session, written_at, events) VALUES (?, ?, ?)"
        self._dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False,
                                       separators=(",", ":")).encode
        self._registry: Registry | None = None
        # Jobs whose batch failed, as in the registry's history inbox (only the
        # keys are used: an entry is written from the job's state at the time).
        # Writer thread only.
        self._unwritten: dict[Job, str] = {}
        # flush() Events; None asks the writer to stop
        self._requests: deque[threading.Event | None] = deque()
        self._wake = threading.Event()
        # Schedule rows to write (`note_schedule`): appended by any thread,
        # emptied by the writer.
        self._schedules: deque[tuple] = deque()
        self._close_lock = threading.Lock()  # guards _closed
        self._closed = False
        self._thread: threading.Thread | None = None

    def _open_session(self) -> int:
        from .._version import __version__

        pid = os.getpid()
        cur = self._conn.execute(
            "INSERT INTO sessions(pid, host, proc_start, opened_at, version) VALUES (?, ?, ?, ?, ?)",
            (pid, socket.gethostname(), proc_start(pid), time.time(), __version__))
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def note_schedule(self, schedule_id: int, name: str, rule: str, expression: str,
                      created_at: float, ended_at: float | None, reason: str | None) -> None:
        """Record a schedule (when it is made, and again when it ends) in the
        ``schedules`` table with the next batch.  Cheap and safe under any
        lock: a deque append, written by the writer thread."""
        self._schedules.append((self.session, schedule_id, name, rule, expression, created_at,
                                ended_at, reason))
        self._wake.set()

    def attach(self, registry: Registry) -> None:
        """Start recording *registry*'s transitions (once), and the writer thread."""
        if self._registry is not None:
            raise RuntimeError("this history writer is already attached to a registry")
        self._registry = registry
        registry.swap_history_inbox({})
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
                changes = registry.swap_history_inbox(None)
            elif registry.history_inbox:
                changes = registry.swap_history_inbox({})
            else:
                changes = None
            if self._schedules:
                self._write_schedules()
            if self._unwritten:  # jobs of a failed batch: their state now, again
                changes = {**self._unwritten, **(changes or {})}
                self._unwritten = {}
            if changes:
                self._write_all(list(changes))
                delay = interval
            else:
                delay = min(delay * 2, _IDLE_POLL)  # idle: wake up less often
            waiting = [ask for ask in asks if ask is not None]
            if self._unwritten and not stop and self.gone is None:
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

    def _write_schedules(self) -> None:
        rows = [self._schedules.popleft() for _ in range(len(self._schedules))]
        try:
            self._conn.executemany(
                "INSERT OR REPLACE INTO schedules(session, schedule, name, rule, expression, "
                "created_at, ended_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:  # the history must never stop the pool
            self.error = exc
            self._schedules.extendleft(reversed(rows))  # tried again with the next batch
            log.warning("nbfrost: could not write %d schedule rows to the history %r (%s)",
                        len(rows), self.path, exc)

    def _write_all(self, jobs: list[Job]) -> None:
        limit = self._batch
        for i in range(0, len(jobs), limit):
            self._write(jobs[i:i + limit])

    def _check_file(self) -> None:
        """Raise (and remember) an OSError if the path no longer names the
        file this writer opened: SQLite would go on writing to the deleted
        file, and every later entry would be lost without a word."""
        if self.gone is not None:
            raise self.gone
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self._identity
        except FileNotFoundError:
            same = False
        if not same:
            self.gone = FileNotFoundError(
                f"the job history file {self.path!r} was deleted or replaced while this "
                "dispatcher was writing to it; nothing more is recorded. Start a new "
                "Dispatcher(history=...) to record again")
            raise self.gone

    def _write(self, jobs: list[Job]) -> None:
        conn = self._conn
        try:
            self._check_file()
            data = self._dumps(self._entries(jobs))
            conn.execute("BEGIN")
            conn.execute(self._insert, (self.session, time.time(), data))
            conn.execute("COMMIT")
            self.written += len(jobs)
        except Exception as exc:  # the history must never stop the pool
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
            state = job._state
            name = job._label
            tags = job._tags or None
            # Times as integer microseconds: JSON writes an int much faster
            # than a float, and the writer is the GIL's guest.
            queued = round(job._queued_at * 1e6)
            row: Entry
            if state is QUEUED:
                row = (job._id, "queued", queued, name, tags)
            else:
                started = round(job._started_at * 1e6) if job._started_at is not None else None
                if state is RUNNING:
                    row = (job._id, "running", started, name, tags, job._worker, job._attempts,
                           started, queued)
                else:
                    error = job._error
                    end = round(job._finished_at * 1e6)  # type: ignore[operator]  # set: state is terminal
                    if error is None:
                        row = (job._id, state.value, end, name, tags, job._worker, job._attempts,
                               started, queued)
                    else:
                        row = (job._id, state.value, end, name, tags, job._worker, job._attempts,
                               started, queued, str(error) or type(error).__name__,
                               type(error).__name__, _traceback_of(job, error))
            details = job._details
            if details is not None and details.schedule is not None:
                # A run of a schedule: the nulls back up to traceback, then its id.
                row = row + (None,) * (_SCHEDULE_AT - len(row)) + (details.schedule,)
            append(row)
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
        Raises the `FileNotFoundError` in `gone` if the file was deleted or
        replaced under the writer.
        """
        if self.gone is not None:
            raise self.gone
        if self._closed or self._thread is None:
            return True
        done = threading.Event()
        self._requests.append(done)
        self._wake.set()
        finished = done.wait(timeout)
        if self.gone is not None:
            raise self.gone
        return finished

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
        return (f"<nbfrost.history.writer.HistoryWriter {state} path={self.path!r} session={self.session} "
                f"written={self.written} dropped={self.dropped}>")


_IDLE_POLL = 0.05  # seconds between polls of an idle writer: its commit delay after a lull
#: The attached writers of this process, so that `nbfrost.history` can flush the
#: ones writing the file it reads.
_OPEN: weakref.WeakSet[HistoryWriter] = weakref.WeakSet()


def flush_writers_of(path: str, timeout: float = 5.0) -> None:
    """Commit what this process's open writers on *path* still hold, so
    that reading right after a job ended shows it ended."""
    for writer in list(_OPEN):
        if writer.closed:
            continue
        try:
            same = os.path.samefile(writer.path, path)
        except OSError:
            continue
        if same:
            writer.flush(timeout)


#: The position of ``schedule`` in an entry (see `ENTRY_FIELDS`).
_SCHEDULE_AT = ENTRY_FIELDS.index("schedule")


def _traceback_of(job: Job, error: BaseException) -> str:
    """The job's traceback text, without writing to the job: the one a backend
    (or a reader) already cached for this error, else formatted here."""
    details = job._details
    cached = None if details is None else details.traceback
    if cached is not None and cached[0] is error:
        return cached[1]
    return format_job_traceback(error)


