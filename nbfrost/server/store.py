"""What the server knows of the published files: read, cached, merged.

No jupyter_server here (the handlers are in `handlers`), and nothing of
the engine: the files are all there is.  A file is parsed again only when
its (mtime, size, inode) changed, so a request over many idle processes
costs a ``stat`` per file; its jobs are kept sorted newest first, so the
newest page of all processes together is a merge that stops after the page.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .. import defaults, published

__all__ = ["Store", "NotFound", "NotAlive"]

log = logging.getLogger("nbfrost.server")

_ACTIVE = ("queued", "running")


class NotFound(LookupError):
    """No such process or job (HTTP 404)."""


class NotAlive(RuntimeError):
    """The process has ended; it takes no commands (HTTP 409)."""


class _File:
    """One parsed live or history file."""

    __slots__ = ("key", "info", "jobs", "keys", "ids", "history", "mtime")

    def __init__(self, key: tuple[int, int, int], info: dict[str, Any], history: bool,
                 mtime: float) -> None:
        self.key = key
        self.history = history
        self.mtime = mtime
        jobs = info.pop("jobs")
        # Newest first by (queued time, id); the publisher writes them so,
        # but older running jobs come last: sort once per parse.  The times
        # are ISO 8601 in UTC from one formatter, so they sort as strings
        # ("...:05+00:00" < "...:05.000001+00:00": '+' sorts before '.').
        keys = [(j.get("queued_at") or "", j["id"]) for j in jobs]
        order = sorted(range(len(jobs)), key=keys.__getitem__, reverse=True)
        self.jobs: list[dict[str, Any]] = [jobs[i] for i in order]
        self.keys: list[tuple[str, int]] = [keys[i] for i in order]
        self.ids = {j["id"] for j in self.jobs}
        self.info = info


class Store:
    """The published processes and their jobs, under *root* (default:
    `nbfrost.published.root`).  *clock* gives epoch seconds."""

    def __init__(self, root: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.root = root if root is not None else published.root()
        self.clock = clock
        self._files: dict[str, _File] = {}  # path -> parsed
        self._bad: dict[str, tuple[int, int, int]] = {}  # path -> key of a file that did not parse
        self._last_prune = float("-inf")
        self.host = published.this_host()
        # Guards _files, _bad and _last_prune: the handlers call the public
        # methods from the server's thread pool (file I/O stays off its event
        # loop), so two requests may run at once.  A parsed _File is not
        # changed afterwards, but for its key and mtime (a heartbeat).
        self._lock = threading.Lock()

    # -------------------------------------------------------------- reading
    def _scan(self) -> list[_File]:
        """The current files, each parsed again only if it was rewritten."""
        with self._lock:
            return self._scan_locked()

    def _scan_locked(self) -> list[_File]:
        seen: dict[str, _File] = {}
        for folder in ("history", "live"):
            try:
                entries = list(os.scandir(self.root / folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                name = entry.name
                if name.startswith(".") or not name.endswith(".json"):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # removed between the listing and now
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
                cached = self._files.get(entry.path)
                if cached is not None and cached.key != key and cached.key[1:] == key[1:] \
                        and _peek_updated(entry.path) == cached.info.get("updated"):
                    cached.key = key  # only touched: a heartbeat (os.utime), not a new write
                    cached.mtime = st.st_mtime
                if cached is None or cached.key != key:
                    if self._bad.get(entry.path) == key:
                        continue
                    try:
                        info = published.read_jobs_file(entry.path)
                    except FileNotFoundError:
                        continue
                    except (OSError, published.PublishedFormatError) as exc:
                        self._bad[entry.path] = key
                        log.warning("nbfrost: skipped a published file: %s", exc)
                        continue
                    self._bad.pop(entry.path, None)
                    cached = _File(key, info, folder == "history", st.st_mtime)
                seen[entry.path] = cached
        self._files = seen
        self._bad = {p: k for p, k in self._bad.items() if os.path.exists(p)}
        # A clean exit writes the history file, then removes the live one:
        # for a moment both exist.  The history file wins.
        by_id: dict[str, _File] = {}
        for f in seen.values():
            other = by_id.get(f.info["id"])
            if other is None or (f.history and not other.history):
                by_id[f.info["id"]] = f
        return list(by_id.values())

    def _alive(self, f: _File, now: float) -> bool:
        if f.history:
            return False
        return published.process_alive(f.info, now - f.mtime, self.host)

    def maybe_prune(self) -> list[str]:
        """Prune (see `nbfrost.published.prune`) at most every
        `defaults.API_PRUNE_INTERVAL` seconds.  Returns what was removed."""
        now = self.clock()
        with self._lock:
            if now - self._last_prune < defaults.API_PRUNE_INTERVAL:
                return []
            self._last_prune = now
        try:
            return published.prune(self.root, now, self.host)
        except OSError as exc:
            log.warning("nbfrost: pruning %s failed: %s", self.root, exc)
            return []

    # ---------------------------------------------------------------- views
    def _described(self, sessions: dict[str, str], kernels: Iterable[str] | None = None
                   ) -> list[tuple[_File, dict[str, Any]]]:
        """Each process's file and its REST entry."""
        now = self.clock()
        known = set(sessions) if kernels is None else set(kernels) | set(sessions)
        out = []
        for f in self._scan():
            info = f.info
            alive = self._alive(f, now)
            kernel_id = info.get("kernel_id")
            path = sessions.get(kernel_id) if isinstance(kernel_id, str) else None
            counts = {state: 0 for state in published.STATES}
            for state, n in (info.get("counts") or {}).items():
                if state in counts and isinstance(n, int):
                    counts[state] = n
            if not alive:
                counts[published.LOST] += counts["queued"] + counts["running"]
                counts["queued"] = counts["running"] = 0
            out.append((f, {
                "id": info["id"],
                "kernel_id": kernel_id if kernel_id in known else None,
                "path": path,
                "name": _label(info, path),
                "kind": info.get("kind", "script"),
                "pid": info["pid"],
                "host": info["host"],
                "alive": alive,
                "started": info["started"],
                "updated": info["updated"],
                "exited": info.get("exited"),
                "counts": counts,
                "published": len(f.jobs),
                "held": info.get("held", len(f.jobs)),
            }))
        return out

    def processes(self, sessions: dict[str, str] | None = None,
                  kernels: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The REST ``processes`` list, newest first.  *sessions* maps this
        server's kernel ids to notebook paths; *kernels* are its kernel ids."""
        entries = []
        for f, p in self._described(sessions or {}, kernels):
            # Its schedules (`ScheduleStatus.to_dict` each); a process that
            # is gone runs none any more.
            schedules = f.info.get("schedules")
            p["schedules"] = schedules if p["alive"] and isinstance(schedules, list) else []
            entries.append(p)
        entries.sort(key=lambda p: (p["started"], p["id"]), reverse=True)
        return entries

    def jobs(self, states: Iterable[str] = (), process: str | None = None,
             name: str | None = None, tag: str | None = None,
             newest: int = defaults.API_NEWEST, offset: int = 0,
             sessions: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], int]:
        """(a page of jobs, newest first; how many matched).  Raises
        ValueError for an unknown state."""
        wanted = set(states)
        unknown = wanted - set(published.STATES)
        if unknown:
            raise ValueError(f"unknown state {sorted(unknown)[0]!r}; one of {', '.join(published.STATES)}")
        needle = name.lower() if name else None
        streams = []
        total = 0
        for f, entry in self._described(sessions or {}):
            if process is not None and entry["id"] != process:
                continue
            lost = not entry["alive"]
            filtered = wanted or needle is not None or tag is not None or lost
            if not filtered:
                total += len(f.jobs)
                streams.append(_tagged(f.keys, f.jobs, entry))
                continue
            matched_keys, matched = [], []
            for key, job in zip(f.keys, f.jobs):
                state = job["state"]
                if lost and state in _ACTIVE:
                    state = published.LOST
                if wanted and state not in wanted:
                    continue
                if needle is not None and needle not in job["name"].lower():
                    continue
                if tag is not None and tag not in (job.get("tags") or ()):
                    continue
                matched_keys.append(key)
                matched.append(job)
            total += len(matched)
            streams.append(_tagged(matched_keys, matched, entry))
        merged = heapq.merge(*streams, key=lambda t: t[0], reverse=True)
        page: list[dict[str, Any]] = []
        for index, (_key, job, entry) in enumerate(merged):
            if index < offset:
                continue
            if len(page) >= newest:
                break
            out = dict(job)
            if not entry["alive"] and out["state"] in _ACTIVE:
                out["state"] = published.LOST
            out["process"] = entry["id"]
            out["path"] = entry["path"]
            page.append(out)
        return page, total

    # -------------------------------------------------------------- commands
    def command(self, process: str, action: str, job: int | None,
                interrupt: bool = False, schedule: int | None = None) -> str:
        """Deliver a command to *process*'s inbox; returns its id.  *job*
        None: a command to the whole process (``cancel_all``) or, with
        *schedule*, to one of its schedules (``pause``, ``resume``,
        ``unschedule``).

        Raises `NotFound` (no such process, or no such job or schedule among
        its published ones), `NotAlive` (it has ended), ValueError (bad action).
        """
        if not published.ID_PATTERN.fullmatch(process):
            raise NotFound(f"no process {process!r}")
        command = published.make_command(action, job, interrupt, self.clock(), schedule)
        for f, entry in self._described({}):
            if entry["id"] != process:
                continue
            if job is not None and job not in f.ids:
                raise NotFound(f"process {process} has published no job {job}")
            if schedule is not None and schedule not in {
                    s.get("id") for s in f.info.get("schedules") or () if isinstance(s, dict)}:
                raise NotFound(f"process {process} has published no schedule {schedule}")
            if not entry["alive"]:
                what = "its schedules cannot be changed" if schedule is not None else (
                    f"its jobs cannot be {'retried' if action == 'retry' else 'cancelled'}")
                raise NotAlive(f"process {process} has ended; {what} any more")
            inbox = self.root / "inbox" / process
            if not inbox.is_dir():
                raise NotAlive(f"process {process} takes no commands (no inbox)")
            name = f"{time.time_ns()}-{command['id']}.json"
            published.write_atomic(inbox / name, json.dumps(command).encode("utf-8"))
            return str(command["id"])
        raise NotFound(f"no process {process!r}")


_UPDATED = re.compile(rb'"updated": ([0-9.eE+-]+)')


def _peek_updated(path: str) -> float | None:
    """The ``updated`` time in a job file's header (its first bytes), or
    None.  A heartbeat moves the mtime without a write; a write always
    moves ``updated``."""
    try:
        with open(path, "rb") as f:
            head = f.read(2048)
        match = _UPDATED.search(head)
        return float(match.group(1)) if match else None
    except (OSError, ValueError):
        return None


def _tagged(keys: list[tuple[str, int]], jobs: list[dict[str, Any]], entry: dict[str, Any]
            ) -> Iterator[tuple[tuple[str, int], dict[str, Any], dict[str, Any]]]:
    for key, job in zip(keys, jobs):
        yield key, job, entry


def _label(info: dict[str, Any], path: str | None) -> str:
    """A name a person recognises: the notebook, the script, or what started it."""
    if path:
        return os.path.basename(path) or path
    session = info.get("session_name")
    if isinstance(session, str) and session:
        return os.path.basename(session) or session
    kind = info.get("kind")
    pid = info.get("pid")
    parent = info.get("parent_argv") or []
    if kind == "kernel":
        notebooks = [os.path.basename(a) for a in parent if isinstance(a, str) and a.endswith(".ipynb")]
        if notebooks:
            tool = next((os.path.basename(a) for a in parent[:3]
                         if isinstance(a, str) and os.path.basename(a) in ("papermill", "jupyter-nbconvert",
                                                                          "nbconvert", "jupyter")), None)
            return f"{tool} {notebooks[0]}" if tool else notebooks[0]
        kernel_id = info.get("kernel_id") or ""
        return f"kernel {kernel_id[:8]}" if kernel_id else f"kernel {pid}"
    if kind == "ipython":
        return f"ipython {pid}"
    argv = [a for a in info.get("argv") or [] if isinstance(a, str)]
    if argv and argv[0] not in ("", "-c", "-m"):
        return os.path.basename(argv[0])
    return f"python {pid}"
