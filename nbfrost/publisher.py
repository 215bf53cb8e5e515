"""Publishing: each dispatcher's jobs, as a file the Jupyter server reads.

Every `Dispatcher` (unless ``publish=False`` or ``$NBFROST_PUBLISH=0``)
gets a `Publication`: its entry in ``<jupyter runtime dir>/nbfrost/live/``
(the format is in `nbfrost.published`).  One daemon thread per process,
the publisher, serves all of them, at most `defaults.PUBLISH_RATE` times a
second each:

* it compares the registry's change counter (and the output size of the
  jobs it last saw running) with what it wrote last, and writes only when
  they moved: a process with nothing happening costs one integer compare
  per tick, a directory listing of its inbox, and an mtime touch every
  `defaults.PUBLISH_HEARTBEAT` seconds;
* it reads the dispatcher's inbox and applies the server's commands
  (cancel, with or without an interrupt, and retry) through the dispatcher's
  own ``cancel``/``retry``.  The publisher is not the main thread, so a
  command lands while a notebook cell keeps the main thread busy.

Nothing lingers: ``shutdown()`` (or the interpreter's exit) writes the
dispatcher's "last words" to ``history/`` and removes its live entry and
inbox; the thread ends when the last publication closes.  A process that
is killed leaves its live file behind, and readers show its unfinished
jobs as lost (see `nbfrost.published.process_alive`).

Why files and not a port: nothing listens (no port to find, to secure or to
collide), the runtime dir is already private to the user (0700) and is where
Jupyter keeps kernels' connection files, and a file outlives the process
that wrote it, which is what shows a killed kernel's jobs as lost.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import defaults, published
from .errors import JobNotFound
from .job import QUEUED, RUNNING, SUCCEEDED, Job, JobState

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["Publication", "Publishable", "attach", "settings_from_env"]

log = logging.getLogger("nbfrost")


class Publishable(Protocol):
    """What a publication needs from its owner (a `Dispatcher`)."""

    registry: Registry

    def cancel(self, job_id: int, interrupt: bool = False) -> bool: ...

    def retry(self, job_id: int) -> Any: ...

    def schedules(self) -> list[Any]: ...

    def schedule(self, schedule_id: int) -> Any: ...


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"${name}={raw!r} is not a number; unset it or give a number "
                         f"(default {default:g})") from None
    if value < minimum:
        raise ValueError(f"${name}={raw!r} must be >= {minimum:g}")
    return value


def settings_from_env() -> tuple[int, float]:
    """(jobs listed, seconds kept) from ``$NBFROST_PUBLISH_JOBS`` and
    ``$NBFROST_PUBLISH_KEEP``, or the defaults.  Raises ValueError for a bad value."""
    jobs = int(_env_number("NBFROST_PUBLISH_JOBS", defaults.PUBLISH_JOBS, 0))
    keep = _env_number("NBFROST_PUBLISH_KEEP", defaults.PUBLISH_KEEP, 0)
    return jobs, keep


# ------------------------------------------------------------- who we are
_SERIAL = itertools.count()
_PROCESS: dict[str, Any] = {}  # filled once, by the publisher thread (see _process_info)


def _cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(8192)
    except OSError:
        return None
    return [a.decode("utf-8", "replace")[:300] for a in raw.split(b"\0") if a][:40]


def _kernel() -> tuple[bool, str | None]:
    """(whether this process is an ipykernel kernel, its kernel id).  The id
    comes from a connection file named ``kernel-<id>.json``, as a Jupyter
    server names them; papermill's and nbconvert's kernels have a temporary
    connection file and no id."""
    if "ipykernel.kernelapp" not in sys.modules:
        return False, None
    try:
        from ipykernel.kernelapp import IPKernelApp

        if not IPKernelApp.initialized():
            return False, None
        from ipykernel import get_connection_file

        name = os.path.basename(get_connection_file())
    except Exception:  # an embedded or half-started kernel: publish without an id
        log.debug("nbfrost: no kernel connection file", exc_info=True)
        return True, None
    if name.startswith("kernel-") and name.endswith(".json"):
        return True, name[len("kernel-"):-len(".json")]
    return True, None


def _process_info() -> dict[str, Any]:
    """What the files say about this process; computed once, lazily (it
    may import ipykernel's pieces, and reads /proc)."""
    if not _PROCESS or _PROCESS.get("pid") != os.getpid():  # a fork is another process
        _PROCESS.clear()
        pid = os.getpid()
        in_kernel, kernel_id = _kernel()
        ipython = sys.modules.get("IPython")
        get = getattr(ipython, "get_ipython", None)
        in_ipython = get is not None and get() is not None
        kind = "kernel" if in_kernel else "ipython" if in_ipython else "script"
        try:
            cwd = os.getcwd()
        except OSError:
            cwd = None
        _PROCESS.update(
            pid=pid, host=published.this_host(), proc_start=published.proc_start(pid),
            kind=kind, kernel_id=kernel_id, session_name=os.environ.get("JPY_SESSION_NAME"),
            argv=[str(a)[:300] for a in sys.argv[:40]],
            parent_argv=_cmdline(os.getppid()), cwd=cwd)
    return _PROCESS


def _tail(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return "\u2026" + text[-(limit - 1):]


def _output_tail(job: Job, limit: int) -> str:
    details = job._details
    out = details.out if details is not None else None
    if out is None:
        return ""
    parts = list(out.parts)  # a copy: the job's thread may append meanwhile
    pieces: list[str] = []
    size = 0
    for part in reversed(parts):
        pieces.append(part)
        size += len(part)
        if size >= limit:
            break
    return _tail("".join(reversed(pieces)), limit) or ""


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat()


def _fast_entry(job: Job, state: JobState, template: dict[str, Any], limit: int) -> dict[str, Any]:
    """``job.snapshot(now).to_dict()`` plus its output tail, for a job that
    is *state* (queued or succeeded), built from *template* (the entry of
    another job in that state, made the long way): what such an entry holds
    of its own is filled in, the rest is the same for every job in the
    state.  Several times cheaper than a snapshot, and it caches no
    `JobStatus` on the job; that matters when each write meets hundreds of
    new jobs (a test compares the two ways)."""
    entry = template.copy()
    entry["id"] = job._id
    entry["name"] = job._label
    entry["queued_at"] = _iso(job._queued_at)
    if state is SUCCEEDED:
        started, finished = job._started_at, job._finished_at
        entry["started_at"] = _iso(started)
        entry["finished_at"] = _iso(finished)
        entry["duration"] = (None if started is None or finished is None else finished - started)
        entry["worker"] = job._worker
        entry["attempts"] = job._attempts
    entry["tags"] = list(job._tags)
    entry["schedule"] = job.schedule_id
    details = job._details
    if details is None:
        entry["progress"] = entry["message"] = None
        entry["output_tail"] = ""
    else:
        entry["progress"] = details.progress
        entry["message"] = details.message
        entry["output_tail"] = _output_tail(job, limit)
    return entry


#: The states `_fast_entry` builds.
_FAST = (QUEUED, SUCCEEDED)


def _out_chars(job: Job) -> int:
    details = job._details
    out = details.out if details is not None else None
    return 0 if out is None else out.size


_PRUNED: set[Path] = set()


def _prune_once(root: Path, now: float) -> None:
    """Prune *root* once per process (the server prunes too, once a minute),
    so that files of processes long gone do not pile up where no server runs."""
    if root in _PRUNED:
        return
    _PRUNED.add(root)
    try:
        published.prune(root, now)
    except OSError as exc:
        log.debug("nbfrost: pruning %s failed: %s", root, exc)


# ------------------------------------------------------------ publication
class Publication:
    """One dispatcher's published entry.

    Made by `attach`; the publisher thread calls `tick`; the dispatcher
    calls `close` when it shuts down.  `publish` and `poll_commands` are
    what a tick does, callable directly (tests drive them so).
    """

    def __init__(self, owner: Publishable, *, root: Path | None = None,
                 jobs: int | None = None, keep: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        env_jobs, env_keep = settings_from_env()
        self.limit = env_jobs if jobs is None else jobs
        self.keep = env_keep if keep is None else keep
        self._owner = weakref.ref(owner)
        self.registry = owner.registry  # kept: the last words need it after the owner is gone
        self.clock = clock
        self.started = clock()
        self.pid = os.getpid()  # a forked child must not write or remove this process's files
        self.serial = next(_SERIAL)
        self.id = f"{published.this_host()}-{os.getpid()}-{int(self.started)}-{self.serial}"
        self._root = root  # resolved on first use, in the publisher thread
        # Guards the files (a write in flight against close) and the fields below.
        self.lock = threading.Lock()
        self.closed = False
        self.failed = False      # the folder could not be made: publishing is off
        self.writes = 0          # files written (tests and the rate bound read it)
        self._written: tuple[int, int] | None = None  # (registry version, output chars) last written
        self._running: list[Job] = []    # the running jobs of the last write
        self._older_running: list[Job] = []
        self._last_scan = float("-inf")
        # job id -> (the state it was read in, its entry), for queued and finished jobs
        self._cache: dict[int, tuple[JobState, dict[str, Any]]] = {}
        # Per state in _FAST, the entry of the first job encoded the long
        # way: the shape that _fast_entry fills in for the others.
        self._templates: dict[JobState, dict[str, Any]] = {}
        self._acks: deque[dict[str, Any]] = deque(maxlen=defaults.PUBLISH_ACKS)
        self._acks_dirty = False
        self._touched = 0.0
        self._not_before = float("-inf")  # monotonic time before which no write starts

    # -- paths
    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = published.root()
        return self._root

    @property
    def live_path(self) -> Path:
        return self.root / "live" / f"{self.id}.json"

    @property
    def history_path(self) -> Path:
        return self.root / "history" / f"{self.id}.json"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox" / self.id

    # -- the thread's work
    def tick(self) -> None:
        """Apply waiting commands, then write if anything changed, else
        touch the heartbeat when it is due."""
        if self.closed or self.failed or self.pid != os.getpid():
            return
        try:
            if self._written is not None:
                self.poll_commands()
            if not self.publish(paced=True):
                now = self.clock()
                if self._written is not None and now - self._touched >= defaults.PUBLISH_HEARTBEAT:
                    self._touched = now
                    try:
                        os.utime(self.live_path)
                    except FileNotFoundError:  # removed by someone: write it again
                        with self.lock:
                            self._written = (-1, -1)
        except OSError as exc:
            with self.lock:
                if self.closed:
                    return
                self.failed = True
            log.warning("nbfrost: publishing %s stopped: %s (the Jupyter server's job panel "
                        "will not show this process; NBFROST_PUBLISH=0 silences this)", self.id, exc)

    def _fingerprint(self) -> tuple[int, int]:
        return self.registry.version, sum(map(_out_chars, self._running))

    def publish(self, force: bool = False, paced: bool = False) -> bool:
        """Write the live file if anything changed since the last write
        (or *force*).  *paced* (the publisher thread): not before the last
        write's cost allows (see `defaults.PUBLISH_DUTY`).  Returns whether
        it wrote."""
        with self.lock:
            if self.closed or self.pid != os.getpid():
                return False
            fingerprint = self._fingerprint()
            if not force and not self._acks_dirty and fingerprint == self._written:
                return False
            if self._written is None and fingerprint[0] == 0 and not force:
                return False  # nothing ever happened: no file at all
            if paced and time.monotonic() < self._not_before:
                return False  # the last write was costly: see PUBLISH_DUTY
            spent = time.thread_time()
            data = self._render(exited=None)
            first = self._written is None
            if first:
                published.ensure_dir(self.root)
                published.ensure_dir(self.root / "live")
            published.write_atomic(self.live_path, data)
            if first:
                published.ensure_dir(self.root / "inbox")
                published.ensure_dir(self.inbox)
                _prune_once(self.root, self.clock())
            # Bounded cost: a write that took t s of this thread's CPU defers
            # the next by t / PUBLISH_DUTY, never past PUBLISH_MAX_DELAY (so a
            # change still shows within 1 s).
            spent = time.thread_time() - spent
            self._not_before = time.monotonic() + min(defaults.PUBLISH_MAX_DELAY,
                                                      spent / defaults.PUBLISH_DUTY)
            self._written = fingerprint
            self._acks_dirty = False
            self._touched = self.clock()
            self.writes += 1
            return True

    def _select(self) -> list[Job]:
        registry = self.registry
        jobs = registry.select(newest=self.limit) if self.limit else []
        running = registry.counts()["running"]
        shown = sum(1 for j in jobs if j._state is RUNNING)
        if shown < running:
            # Running jobs older than the newest `limit`.  A backend that
            # knows what its workers run says so at once; for another, a
            # walk down the registry, at most every PUBLISH_SCAN_INTERVAL s
            # (in between, the ones found last time that still run).
            seen = {j._id for j in jobs}
            owner = self._owner()
            backend_running = getattr(getattr(owner, "backend", None), "running", None)
            if backend_running is not None:
                self._older_running = [j for j in backend_running()
                                       if j._id not in seen and j._state is RUNNING]
            elif time.monotonic() - self._last_scan >= defaults.PUBLISH_SCAN_INTERVAL:
                self._last_scan = time.monotonic()
                self._older_running = [j for j in registry.select(state=RUNNING, newest=running)
                                       if j._id not in seen]
            else:
                self._older_running = [j for j in self._older_running if j._state is RUNNING]
            self._older_running.sort(key=lambda j: j._id, reverse=True)
            jobs = jobs + self._older_running
        else:
            self._older_running = []
        return jobs

    def _render(self, exited: float | None) -> bytes:
        """The file's bytes.  Caller holds ``self.lock``.

        Entries are dicts, kept for queued and finished jobs while their
        state does not change, and the whole file is one ``json.dumps``
        (one call into the C encoder rather than one per job).
        """
        registry = self.registry
        now = registry.clock()
        jobs = self._select()
        cache, new_cache = self._cache, {}
        text = defaults.PUBLISH_TEXT
        templates = self._templates
        entries = []
        running = []
        for job in jobs:
            state = job._state
            cached = cache.get(job._id)
            # A queued or finished job's entry does not change while its
            # state does not: made once.  A running one is made anew.
            if cached is not None and cached[0] is state and state is not RUNNING:
                entry = cached[1]
            elif state in templates:
                # A burst of new jobs: the newest are queued or just
                # succeeded, and their entries differ in a few fields.
                entry = _fast_entry(job, state, templates[state], text)
            else:
                status = job.snapshot(now)
                entry = status.to_dict()
                entry["error"] = _tail(entry["error"], text)
                entry["traceback"] = _tail(entry["traceback"], text)
                entry["output_tail"] = _output_tail(job, text)
                state = status.state  # what was read (the job may have moved since)
                if state in _FAST and state not in templates:
                    templates[state] = entry
            if state is RUNNING:
                running.append(job)
            else:
                new_cache[job._id] = (state, entry)
            entries.append(entry)
        self._cache = new_cache
        self._running = running
        info = _process_info()
        # The header first, then the jobs, then the acks: a reader that needs
        # only the header (published.peek_header) reads the first few KiB.
        document = {
            "format": published.JOBS_FORMAT, "version": published.JOBS_VERSION,
            "id": self.id, "pid": info["pid"], "host": info["host"],
            "proc_start": info["proc_start"], "started": self.started, "updated": now,
            "exited": exited, "kind": info["kind"], "kernel_id": info["kernel_id"],
            "session_name": info["session_name"], "argv": info["argv"],
            "parent_argv": info["parent_argv"], "cwd": info["cwd"],
            "keep": self.keep, "heartbeat": defaults.PUBLISH_HEARTBEAT,
            "held": len(registry), "counts": registry.counts(),
            "jobs": entries, "schedules": self._schedule_entries(), "acks": list(self._acks),
        }
        return json.dumps(document).encode("utf-8")

    def _schedule_entries(self) -> list[dict[str, Any]]:
        """The owner's schedules (`ScheduleStatus.to_dict`): active and
        paused first, then ended, newest first; at most `PUBLISH_SCHEDULES`."""
        owner = self._owner()
        if owner is None:
            return []
        # Chosen first, then snapshotted: only the listed ones pay for status().
        chosen = sorted(owner.schedules(), key=lambda s: (s.state.value != "ended", s.id),
                        reverse=True)[:defaults.PUBLISH_SCHEDULES]
        return [s.status().to_dict() for s in chosen]

    # -- commands
    def poll_commands(self) -> int:
        """Apply the commands waiting in the inbox (oldest first, at most
        `defaults.COMMANDS_PER_TICK`).  Returns how many were read."""
        try:
            with os.scandir(self.inbox) as it:
                names = sorted(e.name for e in it
                               if e.name.endswith(".json") and not e.name.startswith("."))
        except FileNotFoundError:
            return 0
        done = 0
        for name in names[:defaults.COMMANDS_PER_TICK]:
            path = self.inbox / name
            try:
                st = os.stat(path)
                if (hasattr(os, "getuid") and st.st_uid != os.getuid()) or st.st_mode & 0o077:
                    raise published.PublishedFormatError(
                        f"{path}: refused, a command file must be the user's own and mode 0600")
                command = published.read_command_file(path)
            except (OSError, published.PublishedFormatError) as exc:
                log.warning("nbfrost: ignored a command: %s", exc)
                self._ack(name.removesuffix(".json"), False, str(exc))
                command = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            done += 1
            if command is not None:
                self._apply(command)
        return done

    def _apply(self, command: dict[str, Any]) -> None:
        owner = self._owner()
        job_id = command["job"]
        if owner is None:
            self._ack(command["id"], False, "the dispatcher is gone")
            return
        try:
            if command["action"] == "cancel_all":
                ok, message = True, self._cancel_all(owner, command.get("interrupt", False))
            elif command["action"] in published.SCHEDULE_ACTIONS:
                ok, message = self._steer(owner, command["action"], command["schedule"])
            elif command["action"] == "cancel":
                interrupt = command.get("interrupt", False)
                ok = owner.cancel(job_id, interrupt=interrupt)
                message = (f"job {job_id} {'interrupted' if interrupt else 'cancel requested'}"
                           if ok else f"job {job_id} had already finished")
            else:
                new = owner.retry(job_id)
                ok, message = True, f"job {job_id} queued again as job {new.id}"
        except (JobNotFound, ValueError, TypeError, RuntimeError) as exc:
            ok, message = False, str(exc)
        self._ack(command["id"], ok, message)

    @staticmethod
    def _steer(owner: Publishable, action: str, schedule_id: int) -> tuple[bool, str]:
        """Pause, resume or end one of the owner's schedules."""
        try:
            schedule = owner.schedule(schedule_id)
        except KeyError as exc:
            return False, str(exc.args[0]) if exc.args else f"no schedule {schedule_id}"
        steer, said = {"pause": (schedule.pause, "paused"), "resume": (schedule.resume, "resumed"),
                       "unschedule": (schedule.cancel, "ended")}[action]
        done = steer()
        state = schedule.state.value
        return bool(done), (f"schedule {schedule_id} {said}" if done
                            else f"schedule {schedule_id} is {state}: not {said}")

    @staticmethod
    def _cancel_all(owner: Publishable, interrupt: bool) -> str:
        """Cancel every queued job, then every running one (so that none of
        the queued ones starts in a worker that a cancelled job freed);
        says how many."""
        jobs = owner.registry.active_jobs()
        queued = [j._id for j in jobs if j._state is QUEUED]
        running = [j._id for j in jobs if j._state is not QUEUED]
        done = 0
        for job_id in queued + running:
            with contextlib.suppress(JobNotFound):
                done += owner.cancel(job_id, interrupt=interrupt)
        return (f"{done} job(s) {'interrupted' if interrupt else 'asked to cancel'} "
                f"({len(queued)} queued, {len(running)} running)")

    def _ack(self, command_id: str, ok: bool, message: str) -> None:
        with self.lock:
            self._acks.append({"command": command_id, "ok": ok, "message": message[:500],
                               "at": self.clock()})
            self._acks_dirty = True

    # -- the end
    def close(self) -> None:
        """Write the last words (if anything was ever published), remove
        the live file and the inbox, and leave the publisher.  Idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.pid != os.getpid():
                return  # a forked child: the files are its parent's
            try:
                if self._written is not None and not self.failed:
                    published.ensure_dir(self.root)
                    published.ensure_dir(self.root / "history")
                    published.write_atomic(self.history_path, self._render(exited=self.clock()))
                self._remove_files()
            except OSError as exc:
                log.warning("nbfrost: could not write the last words of %s: %s", self.id, exc)
        _PUBLISHER.remove(self)

    def _remove_files(self) -> None:
        if self._written is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.live_path)
        published.remove_tree(self.inbox)


# -------------------------------------------------------------- the thread
class _Publisher:
    """The process's one publishing thread, alive while a publication is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _entries, _thread, _stop
        self._entries: list[Publication] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._atexit = False

    def add(self, pub: Publication) -> None:
        with self._lock:
            self._entries.append(pub)
            if not self._atexit:
                atexit.register(self.close_all)
                self._atexit = True
            if self._thread is None:
                stop = self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, args=(stop,),
                                                name="nbfrost-publisher", daemon=True)
                self._thread.start()

    def remove(self, pub: Publication) -> None:
        with self._lock:
            if pub in self._entries:
                self._entries.remove(pub)
            if self._entries or self._thread is None:
                return
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not threading.current_thread():
            thread.join(5.0)

    def entries(self) -> list[Publication]:
        with self._lock:
            return list(self._entries)

    def _run(self, stop: threading.Event) -> None:
        interval = 1.0 / defaults.PUBLISH_RATE
        while not stop.is_set():
            for pub in self.entries():
                if pub._owner() is None and pub.registry.active == 0:
                    pub.close()  # the dispatcher was dropped without shutdown()
                    continue
                try:
                    pub.tick()
                except Exception:  # the thread must not die: log and go on
                    log.exception("nbfrost: publishing %s failed", pub.id)
            stop.wait(interval)

    def close_all(self) -> None:
        """At interpreter exit: every publication writes its last words."""
        for pub in self.entries():
            pub.close()


_PUBLISHER = _Publisher()


def _forget_in_child() -> None:
    """After a fork: the child starts with no publications and no thread
    (threads do not survive a fork; the parent's files stay the parent's)."""
    global _PUBLISHER
    for pub in _PUBLISHER._entries:  # the child is single-threaded now: no lock needed
        pub.lock = threading.Lock()  # the parent's thread may have held it at the fork
        pub.closed = True
    _PUBLISHER = _Publisher()
    _PROCESS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def attach(owner: Publishable, **options: Any) -> Publication:
    """Start publishing *owner*'s jobs; returns its `Publication` (call
    ``close()`` at shutdown).  Raises ValueError for a bad
    ``$NBFROST_PUBLISH_JOBS``/``$NBFROST_PUBLISH_KEEP``."""
    pub = Publication(owner, **options)
    _PUBLISHER.add(pub)
    return pub


def active() -> list[Publication]:
    """The publications of this process (for tests and diagnostics)."""
    return _PUBLISHER.entries()

