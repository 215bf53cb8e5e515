"""Per-job capture of stdout/stderr, and the thread → job binding behind it.

``sys.stdout`` is process-wide, so per-job capture needs one router that
asks "which job is this thread running?" on every write.  The answer is a
thread-local, `CURRENT`, that the backend sets around each job: the write
goes into that job's buffer (up to its cap) and, unless the job is quiet, on
to the real stream as well.

Echoed text does not go straight on to the real stream: it goes into the
job's `forward.Lane`, which forwards it in whole lines, in batches, within
the job's notebook budget (see `nbfrost.forward`).

Which *cell* the forwarded text lands under is decided by the real stream:
ipykernel's ``OutStream`` reads the parent header from a ContextVar, and the
backend runs each job inside the `contextvars.Context` copied when the job
was queued, so the text goes to the queuing cell.  Nothing here needs to
know about kernels.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from . import defaults, forward

__all__ = ["CURRENT", "JobContext", "OutputBuffer", "StreamRouter", "end_attempt",
           "ensure_installed", "real_stream", "uninstall"]

#: ``CURRENT.ctx`` is the `JobContext` of the job this thread runs, if any.
CURRENT = threading.local()


class OutputBuffer:
    """One job's captured output: the text written, kept up to a cap.

    Whenever anything is dropped, a visible marker follows what was kept:
    the write that crosses the cap is cut there, and a write that arrives
    once the cap is reached exactly (nothing was cut yet) adds the marker
    too.  Later writes are dropped.  The job record in this process and the
    Dask worker's stand-in both keep their output here, so the two truncate
    alike.  The registry may replace a finished job's output with a note
    (`drop`) to stay within ``output_budget``.
    """

    # Pieces are joined only when the output is read: a write stays one
    # append, which matters for jobs that print in a tight loop.
    __slots__ = ("parts", "size", "truncated")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0  # characters of text kept so far, at most the cap
        self.truncated = False  # the marker was added: nothing more is kept

    def write(self, text: str, cap: int) -> None:
        """Keep *text*, or as much of it as fits under *cap* characters."""
        size = self.size
        end = size + len(text)
        if end <= cap:
            if text and not self.truncated:
                self.parts.append(text)
                self.size = end
            return
        if self.truncated:
            return
        if size < cap:
            self.parts.append(text[: cap - size])
            self.size = cap
        self.parts.append(f"\n[nbfrost: output truncated at {cap} characters]\n")
        self.truncated = True

    def chars(self) -> int:
        """Characters kept, marker included (the length of `getvalue`)."""
        return self.size + (len(self.parts[-1]) if self.truncated else 0)

    def drop(self, note: str) -> int:
        """Replace everything kept with *note*; nothing more is kept after.

        Returns how many characters were dropped.
        """
        n = self.size
        self.parts = [note]
        self.size = 0
        self.truncated = True
        return n

    def getvalue(self) -> str:
        """Everything kept, marker included."""
        return "".join(self.parts)


class JobContext:
    """What code running inside a job can reach: its record and its runtime.

    Backends subclass it.  The thread backend keeps one per worker and just
    swaps ``job``; the Dask backend makes one per job on the worker.
    """

    __slots__ = ("job", "cap", "lane", "gate")

    def __init__(self, cap: int = defaults.OUTPUT_CAP) -> None:
        self.job: Any = None
        self.cap = cap
        # The running attempt's output lane (made on its first echoed write)
        # and the gate of its ``%%frost`` cell, if any (set by the cell runner).
        self.lane: forward.Lane | None = None
        self.gate: forward.Gate | None = None

    def report(self, fraction: float | None, message: str | None) -> None:
        self.job.set_progress(fraction, message)

    def cancelled(self) -> bool:
        job = self.job
        return bool(job is not None and job._cancel_requested)


class StreamRouter:
    """A stand-in for ``sys.stdout``/``sys.stderr`` that tees job output."""

    def __init__(self, target: TextIO, name: str) -> None:
        self._target = target
        self._name = name

    def write(self, text: str) -> int:
        ctx = getattr(CURRENT, "ctx", None)
        if ctx is not None:
            job = ctx.job
            if job is not None:
                if not isinstance(text, str):
                    raise TypeError(f"write() argument must be str, not {type(text).__name__}")
                if not job.write_output(text, ctx.cap):
                    return len(text)  # quiet job: captured only
                lane = ctx.lane
                if lane is None:
                    lane = ctx.lane = forward.Lane(job, ctx.gate)
                lane.put(self._target, text)
                return len(text)
        return self._target.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        ctx = getattr(CURRENT, "ctx", None)
        if ctx is not None and ctx.job is not None and (
                ctx.lane is not None or ctx.gate is not None):
            # A job's flush (and its display(), which flushes first): its
            # lane goes out now, after its cell's badge.
            for target in forward.flush(ctx.lane, ctx.gate):
                target.flush()
            return
        self._target.flush()

    def __getattr__(self, attr: str) -> Any:
        # Everything else (encoding, isatty, fileno, set_thread_parent, ...)
        # is the real stream's.
        return getattr(self._target, attr)

    def __repr__(self) -> str:
        return f"<nbfrost router for sys.{self._name} -> {self._target!r}>"


def end_attempt(ctx: JobContext) -> None:
    """A job attempt on *ctx* ended: forward what is left of its output.

    Backends call it before they report the attempt's outcome, so that the
    output precedes the final badge and any notice.
    """
    lane = ctx.lane
    if lane is not None:
        ctx.lane = None
        forward.end(lane)


def real_stream(name: str) -> Any:
    """``sys.stdout``/``sys.stderr`` without nbfrost's router."""
    stream = getattr(sys, name)
    while isinstance(stream, StreamRouter):
        stream = stream._target
    return stream


_install_lock = threading.Lock()  # guards _users and the swap of sys streams
_users = 0


def ensure_installed() -> None:
    """Make sure both routers are in place (cheap when they are)."""
    if isinstance(sys.stdout, StreamRouter) and isinstance(sys.stderr, StreamRouter):
        return
    with _install_lock:
        if not isinstance(sys.stdout, StreamRouter):
            sys.stdout = StreamRouter(sys.stdout, "stdout")
        if not isinstance(sys.stderr, StreamRouter):
            sys.stderr = StreamRouter(sys.stderr, "stderr")


def acquire() -> None:
    """Register one more user of the routers (a dispatcher) and install them."""
    global _users
    with _install_lock:
        _users += 1
    ensure_installed()


def uninstall() -> None:
    """Drop one user; the last one puts the original streams back."""
    global _users
    with _install_lock:
        _users = max(0, _users - 1)
        if _users:
            return
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, StreamRouter):
                setattr(sys, name, stream._target)
    forward.stop()
