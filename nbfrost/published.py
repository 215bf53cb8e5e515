"""The files through which processes publish their jobs, and the server's commands back.

Both sides use this module: the publisher (`nbfrost.publisher`, inside every
process that runs jobs) writes them, the Jupyter server extension
(`nbfrost.server`) reads them.  It imports nothing heavy and nothing of the
engine, so the server never loads a dispatcher to read a file.

Layout, under ``<jupyter runtime dir>/nbfrost/`` (dirs 0700, files 0600)::

    live/<id>.json          one per publishing dispatcher, while it lives
    history/<id>.json       its "last words", written at a clean exit
    inbox/<id>/<cmd>.json   commands for it (cancel, retry), from the server

Every file is JSON with ``"format"`` and ``"version"`` keys; a reader
rejects a format or a version it does not understand with
`PublishedFormatError`, naming both.  Files are replaced atomically
(written to a temporary name in the same folder, then renamed), so a reader
sees the old file or the new one, never half of one.

A job file (live or history), version 1::

    {"format": "nbfrost-jobs", "version": 1,
     "id": "host-1234-1765130000-0",       # [A-Za-z0-9._-]+, stable for the dispatcher's life
     "pid": 1234, "host": "host", "proc_start": "8123456" | null,   # Linux start ticks (pid reuse)
     "started": 1765130000.5, "updated": 1765130012.25, "exited": null | float,
     "kind": "kernel" | "ipython" | "script",
     "kernel_id": "uuid" | null, "session_name": "nb.ipynb" | null,   # JPY_SESSION_NAME
     "argv": [...], "parent_argv": [...] | null, "cwd": "/home/me",
     "keep": 86400.0, "heartbeat": 10.0,
     "held": 1234, "counts": {"queued": 0, "running": 1, "succeeded": 1233, ...},
     "jobs": [<JobStatus.to_dict()> + {"output_tail": str}, ...],     # newest first
     "schedules": [<ScheduleStatus.to_dict()>, ...],   # active first; absent in older files
     "acks": [{"command": "c1", "ok": true, "message": "...", "at": float}, ...]}

A command file, version 1::

    {"format": "nbfrost-command", "version": 1, "id": "c1", "action": "cancel" | "retry",
     "job": 12, "interrupt": false, "issued": 1765130012.0}

or, to the whole process, ``"action": "cancel_all", "job": null``; or to one of
its schedules, ``"action": "pause" | "resume" | "unschedule", "job": null,
"schedule": 3``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

from . import defaults

__all__ = ["JOBS_FORMAT", "JOBS_VERSION", "COMMAND_FORMAT", "COMMAND_VERSION", "LOST", "STATES",
           "ACTIONS", "PROCESS_ACTIONS", "SCHEDULE_ACTIONS", "PublishedFormatError", "root",
           "write_atomic", "read_jobs_file",
           "read_command_file", "make_command", "process_alive", "this_host", "proc_start",
           "ID_PATTERN", "enabled_by_env"]

JOBS_FORMAT = "nbfrost-jobs"
JOBS_VERSION = 1
COMMAND_FORMAT = "nbfrost-command"
COMMAND_VERSION = 1
#: What a reader shows for a job that was queued or running in a process that died.
LOST = "lost"
STATES = ("queued", "running", "succeeded", "failed", "cancelled", LOST)
ACTIONS = ("cancel", "retry")
#: Commands to a whole process (their ``job`` is null): cancel every
#: queued and running job of its dispatcher.
PROCESS_ACTIONS = ("cancel_all",)
#: Commands to one schedule of a process (``schedule`` is its id, ``job`` null).
SCHEDULE_ACTIONS = ("pause", "resume", "unschedule")
#: A process id: safe as a file name and as one segment of a URL path.
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,200}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PublishedFormatError(ValueError):
    """A published file that this nbfrost cannot read (wrong format, a newer
    version, missing fields, not JSON)."""


# ------------------------------------------------------------------- where
def root() -> Path:
    """``<jupyter runtime dir>/nbfrost``; ``$JUPYTER_RUNTIME_DIR`` moves it.

    jupyter_core (a dependency of ipykernel and of the server) is imported
    here, lazily, never by ``import nbfrost``.
    """
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / "nbfrost"


def ensure_dir(path: Path) -> Path:
    """Make *path* (and missing parents) with mode 0700; tighten it if it exists."""
    if not path.parent.exists():
        ensure_dir(path.parent)
    path.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


_TMP_SERIAL = itertools.count()


def write_atomic(path: Path, data: bytes) -> None:
    """Write *data* to *path* with mode 0600: a temporary file in the same
    folder, then a rename, so readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_TMP_SERIAL)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def safe_id(text: str) -> str:
    """*text* with everything outside ``[A-Za-z0-9._-]`` replaced by ``_``."""
    return _UNSAFE.sub("_", text)[:100] or "_"


def this_host() -> str:
    return safe_id(socket.gethostname())


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3 and on of /proc/<pid>/stat (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return stat[stat.rfind(")") + 2:].split()


def proc_start(pid: int) -> str | None:
    """The start time of process *pid* in clock ticks since boot (Linux), or
    None where /proc does not tell.  With the pid it names a process for
    good: a pid reused later has another start time."""
    fields = _proc_stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def enabled_by_env() -> bool:
    """Publishing is on unless ``$NBFROST_PUBLISH`` is ``0``, ``false``, ``no`` or ``off``."""
    value = os.environ.get("NBFROST_PUBLISH", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


# ------------------------------------------------------------------ reading
def _check_header(data: Any, fmt: str, version: int, where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != fmt:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise PublishedFormatError(f"{where}: not an {fmt} file (format {got!r})")
    got_version = data.get("version")
    if got_version != version:
        raise PublishedFormatError(
            f"{where}: {fmt} version {got_version!r}, but this nbfrost reads version "
            f"{version} only; run the same nbfrost version in the kernels and the Jupyter server")
    return data


def parse_jobs(raw: bytes, where: str = "published file") -> dict[str, Any]:
    """Parse and check a job file's bytes.  Raises `PublishedFormatError`."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PublishedFormatError(f"{where}: not JSON ({exc})") from None
    data = _check_header(data, JOBS_FORMAT, JOBS_VERSION, where)
    number = (int, float)
    wanted: dict[str, type | tuple[type, ...]] = {
        "id": str, "pid": int, "host": str, "started": number, "updated": number,
        "jobs": list, "counts": dict}
    for key, kind in wanted.items():
        if not isinstance(data.get(key), kind):
            raise PublishedFormatError(f"{where}: field {key!r} is missing or not "
                                       f"{getattr(kind, '__name__', 'a number')}")
    if not ID_PATTERN.fullmatch(data["id"]):
        raise PublishedFormatError(f"{where}: bad process id {data['id']!r}")
    for job in data["jobs"]:
        if not (isinstance(job, dict) and isinstance(job.get("id"), int)
                and job.get("state") in STATES and isinstance(job.get("name"), str)):
            raise PublishedFormatError(f"{where}: a job entry lacks an int id, a name or a "
                                       f"known state: {str(job)[:120]}")
    return data


def read_jobs_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a live or history file.  Raises `PublishedFormatError`
    (and OSError when it cannot be read)."""
    with open(path, "rb") as f:
        raw = f.read(defaults.PUBLISH_FILE_MAX + 1)
    if len(raw) > defaults.PUBLISH_FILE_MAX:
        raise PublishedFormatError(f"{path}: larger than {defaults.PUBLISH_FILE_MAX} bytes")
    return parse_jobs(raw, str(path))


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def make_command(action: str, job: int | None, interrupt: bool = False,
                 issued: float = 0.0, schedule: int | None = None) -> dict[str, Any]:
    """A command for `read_command_file`'s reader: a job's (`ACTIONS`, *job*
    an id), a schedule's (`SCHEDULE_ACTIONS`, *schedule* an id, *job* None)
    or the whole process's (`PROCESS_ACTIONS`, both None).  Raises
    ValueError/TypeError."""
    if action in PROCESS_ACTIONS or action in SCHEDULE_ACTIONS:
        if job is not None:
            raise TypeError(f"{action} is not for a job: job must be None, got {job!r}")
        if (action in SCHEDULE_ACTIONS) != _is_id(schedule):
            wanted = "a schedule id" if action in SCHEDULE_ACTIONS else "no schedule"
            raise TypeError(f"{action} needs {wanted}, got schedule={schedule!r}")
    elif action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS + PROCESS_ACTIONS + SCHEDULE_ACTIONS}, "
                         f"got {action!r}")
    elif not _is_id(job):
        raise TypeError(f"job must be a non-negative int, got {job!r}")
    command = {"format": COMMAND_FORMAT, "version": COMMAND_VERSION,
               "id": secrets.token_hex(8), "action": action, "job": job,
               "interrupt": bool(interrupt), "issued": issued}
    if schedule is not None:
        command["schedule"] = schedule
    return command


def read_command_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a command file.  Raises `PublishedFormatError`, OSError."""
    with open(path, "rb") as f:
        raw = f.read(defaults.COMMAND_FILE_MAX + 1)
    if len(raw) > defaults.COMMAND_FILE_MAX:
        raise PublishedFormatError(f"{path}: larger than {defaults.COMMAND_FILE_MAX} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PublishedFormatError(f"{path}: not JSON ({exc})") from None
    data = _check_header(data, COMMAND_FORMAT, COMMAND_VERSION, str(path))
    job, action, schedule = data.get("job"), data.get("action"), data.get("schedule")
    if action in PROCESS_ACTIONS:
        target_ok = job is None and schedule is None
    elif action in SCHEDULE_ACTIONS:
        target_ok = job is None and _is_id(schedule)
    else:
        target_ok = action in ACTIONS and _is_id(job) and schedule is None
    if (not target_ok or not isinstance(data.get("id"), str)
            or not isinstance(data.get("interrupt", False), bool)):
        raise PublishedFormatError(f"{path}: a command needs an action in {ACTIONS} with an int "
                                   f"job, one in {SCHEDULE_ACTIONS} with an int schedule, or one "
                                   f"in {PROCESS_ACTIONS} with a null job, and a str id")
    return data


# ----------------------------------------------------------------- liveness
def process_alive(info: dict[str, Any], heartbeat_age: float, host: str | None = None) -> bool:
    """Whether the process that wrote *info* (a live file) still runs.

    On this host: its pid exists and, where /proc tells, started when the
    file says (a reused pid is another process).  On another host (a home
    directory shared over the network): its heartbeat (the file's mtime,
    touched every ``heartbeat`` seconds) is younger than
    `defaults.PUBLISH_STALE`.  A history file's process has exited.
    """
    if info.get("exited") is not None:
        return False
    if info.get("host") != (host or this_host()):
        return heartbeat_age <= defaults.PUBLISH_STALE
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    except OSError:
        return False
    if sys.platform.startswith("linux"):
        fields = _proc_stat(pid)
        if fields is not None:
            if fields[0] in ("Z", "X"):
                return False  # killed, not yet reaped by its parent
            expected = info.get("proc_start")
            if expected is not None and len(fields) > 19 and fields[19] != expected:
                return False
    return True


# ------------------------------------------------------------------ pruning
def remove_tree(path: Path) -> None:
    """Remove *path*, a folder of plain files (an inbox), if it exists."""
    try:
        with os.scandir(path) as it:
            for entry in it:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        os.rmdir(path)
    except FileNotFoundError:
        pass


def peek_header(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The header of a job file (everything before its ``"jobs"``), read
    from the file's first bytes, or None when that is not possible.  Cheap:
    what pruning and liveness need, without parsing the jobs."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_MAX)
    except OSError:
        return None
    cut = head.find(b', "jobs": [')
    if cut < 0:
        return None
    try:
        data = json.loads(head[:cut] + b"}")
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("format") != JOBS_FORMAT or data.get("version") != JOBS_VERSION:
        return None
    return data


_HEADER_MAX = 64 * 1024


def prune(base: Path, now: float, host: str | None = None) -> list[str]:
    """Delete what nobody needs under *base* (a `root`): history files whose
    ``keep`` has passed since the exit (and the oldest beyond
    `defaults.PUBLISH_HISTORY_FILES`), live files of dead processes whose
    ``keep`` has passed since their last heartbeat, unreadable files and
    left-over temporary files older than that, and inboxes without a live
    file.  Returns the names removed."""
    removed: list[str] = []
    host = host or this_host()

    def drop(path: Path) -> None:
        try:
            os.unlink(path)
            removed.append(f"{path.parent.name}/{path.name}")
        except FileNotFoundError:
            pass

    for folder in ("history", "live"):
        try:
            entries = list(os.scandir(base / folder))
        except FileNotFoundError:
            continue
        kept: list[tuple[float, Path]] = []
        for entry in entries:
            path = Path(entry.path)
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if entry.name.startswith("."):
                if now - mtime > 60.0:  # a writer died between write and rename
                    drop(path)
                continue
            info = peek_header(path)
            if info is None:
                if now - mtime > defaults.PUBLISH_KEEP:
                    drop(path)
                continue
            keep = info.get("keep")
            keep = float(keep) if isinstance(keep, (int, float)) else defaults.PUBLISH_KEEP
            if folder == "history":
                exited = info.get("exited")
                if now - (exited if isinstance(exited, (int, float)) else mtime) > keep:
                    drop(path)
                else:
                    kept.append((mtime, path))
            elif now - mtime > keep and not process_alive(info, now - mtime, host):
                drop(path)
        for path in _beyond_cap(kept):
            drop(path)
    return removed + _prune_inboxes(base, now)


def _beyond_cap(kept: list[tuple[float, Path]]) -> list[Path]:
    """The oldest of the history files *kept* ((mtime, path) pairs) beyond
    `defaults.PUBLISH_HISTORY_FILES`."""
    extra = len(kept) - defaults.PUBLISH_HISTORY_FILES
    return [path for _mtime, path in sorted(kept)[:extra]] if extra > 0 else []


def _prune_inboxes(base: Path, now: float) -> list[str]:
    """Delete the inboxes under *base* that have had no live file for a
    minute; returns the names removed."""
    removed: list[str] = []
    try:
        inboxes = list(os.scandir(base / "inbox"))
    except FileNotFoundError:
        inboxes = []
    for entry in inboxes:
        if not (base / "live" / f"{entry.name}.json").exists():
            try:
                if now - entry.stat().st_mtime > 60.0:
                    remove_tree(Path(entry.path))
                    removed.append(f"inbox/{entry.name}")
            except FileNotFoundError:
                pass
    return removed
