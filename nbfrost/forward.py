"""Forwarding job output to the notebook: whole lines, in order, within a budget.

Capture (`capture.StreamRouter`) sees every write of every job.  Writing
each one straight on to ipykernel's stream mixes jobs mid-line (``print(a,
b)`` is four writes) and lets a job's first line overtake its cell's badge.
So a job's echoed output goes into its own `Lane` instead, and reaches the
real stream only here, in batches of whole lines:

- The job thread only appends to its lane (a ``deque.append``); it never
  waits for the notebook and never wakes a thread per write.
- One flusher thread per process (``nbfrost-forward``, started on the first
  printing job, stopped when the last dispatcher releases the router) wakes
  every `TICK` seconds while some lane is open.  It writes each lane's
  complete lines with one ``write()`` per stream, inside the job's context
  (so ipykernel puts them under the queuing cell) and under `_lock`, which
  serialises every write nbfrost makes to the real streams: two jobs'
  batches never interleave.  A partial line (a ``\\r`` ticker,
  ``print(..., end='')``) goes out once it has waited `PARTIAL_DELAY` s.
- At the end of each attempt the worker drains its lane itself (`end`),
  before the job is marked finished, so a job's output precedes its final
  badge and notices.
- A lane may be *gated* (`Gate`): a ``%%frost`` cell opens the gate after it
  displayed its badge, so the badge is the first output under the cell.
  Until then the lane holds everything; ``flush()`` from the job (which
  ipykernel's display publisher calls before every ``display()``) waits up
  to `GATE_WAIT` s for the gate; a lane that ends while gated is handed to
  the gate, which writes it when it opens.
- Budgets: each job forwards at most ``budget`` characters (whole lines);
  the rest is counted, not kept here (``t.output`` still has it), and one
  marker line says how much was not shown and where to read it.  Each
  dispatcher has a `Bucket`, a token bucket (characters per second with a
  burst) that bounds what all its jobs together send: while it is empty,
  lanes wait (bounded by their budget), and a lane that ends deep in debt
  is dropped into its marker.

The module knows nothing about jobs beyond ``id`` and ``name``, nor about
kernels; it sits at the bottom next to `capture`.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import defaults

__all__ = ["Bucket", "Gate", "Lane", "emit", "end", "flush", "stop",
           "NOTICE_LIMIT", "NOTICE_WINDOW"]

# The user-facing defaults (budget, rate, notice limits) live in nbfrost.defaults.
#: Seconds between two batches of a lane: the kernel sends few, large stream messages.
TICK = 0.05
#: Seconds a partial line waits for its end before it is forwarded anyway.
PARTIAL_DELAY = 0.1
#: Seconds a job's ``flush()`` (or ``display()``) waits for its cell's badge.
GATE_WAIT = 2.0
#: Seconds after a job went over its budget before its marker is shown, if it still runs.
MARKER_DELAY = 1.0
#: At most this many failure notices per `NOTICE_WINDOW` seconds; then one summary line.
NOTICE_LIMIT = defaults.FAILURE_NOTICE_LIMIT
NOTICE_WINDOW = defaults.FAILURE_NOTICE_WINDOW

# Guards _lanes, _flusher, _idle, every Lane's remainders and counters
# read by the flusher, every Gate's state, the notice window, and every write
# nbfrost makes to a real stream (so batches never interleave).  Never held
# while waiting for a gate.
_lock = threading.RLock()
_wake = threading.Condition(_lock)
_lanes: set[Lane] = set()
_flusher: threading.Thread | None = None
_idle = False  # the flusher waits for work (no lane, no pending notice)


class Bucket:
    """A token bucket: *rate* characters per second, up to *burst* at once."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float = defaults.FORWARD_RATE,
                 burst: float = 2 * defaults.FORWARD_RATE) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = time.monotonic()

    def refill(self, now: float) -> float:
        """The tokens available now.  Caller holds ``_lock``."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        return self.tokens


_DEFAULT_BUCKET = Bucket()


class Gate:
    """Holds a ``%%frost`` job's output until its badge is shown.

    Opened by `open` (after the badge's ``display``), or by the shell's
    ``post_run_cell`` hook when no badge was displayed.
    """

    __slots__ = ("_open", "_event", "held")

    def __init__(self) -> None:
        self._open = False
        self._event = threading.Event()
        # Lanes that ended while gated and notices, in order: (lane or None, ctx, target, text).
        self.held: list[tuple[Lane | None, Any, Any, str]] = []

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        """Let the output through: write what was held, in order (idempotent)."""
        with _lock:
            if self._open:
                return
            self._open = True
            held, self.held = self.held, []
            now = time.monotonic()
            for lane, ctx, target, text in held:
                if lane is not None:
                    _drain(lane, now, final=True)
                else:
                    _write(ctx, target, text)
            if _lanes:
                _wake.notify_all()
        self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


class Lane:
    """One job attempt's echoed output on its way to the notebook."""

    __slots__ = ("job_id", "name", "ctx", "queue", "gate", "bucket", "budget", "accepted",
                 "over_since", "over_target", "dropped", "dropped_lines", "marked",
                 "rem", "rem_since", "dirty", "open_end", "shown", "finishing", "over_rate",
                 "__weakref__")

    def __init__(self, job: Any, gate: Gate | None = None,
                 context: contextvars.Context | None = None) -> None:
        self.job_id = job.id
        self.name = job.name
        # Written inside a copy of the context the job writes in (the
        # queuing cell's parent header, or none with routing off), or *context*.
        self.ctx = contextvars.copy_context() if context is None else context
        self.queue: deque[tuple[Any, str]] = deque()
        self.gate = gate
        owner = getattr(job, "_owner", None)  # a `JobOwner`; none for a stand-in job
        self.bucket: Bucket = getattr(owner, "forward_bucket", None) or _DEFAULT_BUCKET
        self.budget: int = getattr(owner, "forward_budget", defaults.FORWARD_BUDGET)
        self.accepted = 0            # characters queued for the notebook (job thread only)
        self.over_since = 0.0        # when the budget ran out (0: not yet)
        self.over_target: Any = None
        self.dropped = 0             # characters not shown (job thread, then _lock)
        self.dropped_lines = 0
        self.marked = False
        self.rem: dict[Any, str] = {}  # target -> partial line held back
        self.rem_since = 0.0
        self.dirty: set[Any] = set()   # targets written since their last flush()
        self.open_end: dict[Any, bool] = {}  # target -> last forwarded text lacks "\n"
        self.shown = 0
        self.finishing: Any = None   # the target whose cut line is being ended
        self.over_rate = False       # cut by the dispatcher's rate, not the job's budget
        with _lock:
            _lanes.add(self)
            _ensure_flusher()

    def put(self, target: Any, text: str) -> None:
        """Queue *text* for *target* (the job's thread; no lock, no wake-up)."""
        accepted = self.accepted + len(text)
        if accepted <= self.budget:
            self.accepted = accepted
            self.queue.append((target, text))
            return
        self._over(target, text)

    def _over(self, target: Any, text: str) -> None:
        """Past the budget: keep whole lines up to it, finish an open line, count the rest."""
        if not self.over_since:
            room = self.budget - self.accepted
            cut = text.rfind("\n", 0, room) + 1 if room > 0 else 0
            if cut:
                self.queue.append((target, text[:cut]))
                text = text[cut:]
            elif self._line_open(target):
                self.finishing = target
            self.accepted = self.budget + 1  # nothing fits any more
            self.over_target = target
            self.over_since = time.monotonic()
        if self.finishing is target:
            # The last line shown was cut mid-way (print(a, b) is several
            # writes): let it end, so the notebook shows only whole lines.
            end = text.find("\n") + 1
            self.queue.append((target, text[:end] if end else text))
            if not end:
                return
            self.finishing = None
            text = text[end:]
        self.dropped += len(text)
        self.dropped_lines += text.count("\n")

    def _line_open(self, target: Any) -> bool:
        """Does what was accepted for *target* end mid-line?  (Once per lane.)"""
        with _lock:  # the flusher is not between popping and keeping a remainder
            for queued_target, queued in reversed(self.queue):
                if queued_target is target:
                    return not queued.endswith("\n")
            return bool(self.rem.get(target)) or bool(self.open_end.get(target))


def _ensure_flusher() -> None:
    """Start the flusher, or wake it if it sleeps.  Caller holds ``_lock``."""
    global _flusher
    if _flusher is not None:
        if _idle:  # asleep until there is work: one wake-up per printing job at most
            _wake.notify_all()
        return
    _flusher = threading.Thread(target=_run, name="nbfrost-forward", daemon=True)
    _flusher.start()


def _run() -> None:
    global _idle
    me = threading.current_thread()
    with _lock:
        # Runs until stop() replaces it (a later start makes a new thread).
        while _flusher is me:
            if not _lanes and not _notices.pending:
                _idle = True
                _wake.wait()
                _idle = False
                continue
            _wake.wait(TICK)
            now = time.monotonic()
            for lane in list(_lanes):
                gate = lane.gate
                if gate is None or gate._open:
                    _drain(lane, now, final=False)
            _notices.tick(now)


def stop() -> None:
    """Stop the flusher after one last pass (the last dispatcher released
    the router).  The failure notices' window closes too: the next
    dispatcher's first notices are shown, whatever the last one's were."""
    global _flusher
    with _lock:
        now = time.monotonic()
        thread = _flusher
        if thread is not None:
            for lane in list(_lanes):
                if lane.gate is None or lane.gate._open:
                    _drain(lane, now, final=False)
        _notices.tick(now, force=True)
        _notices.window_start, _notices.count = 0.0, 0
        if thread is None:
            return
        _flusher = None
        _wake.notify_all()
    if thread is not threading.current_thread():
        thread.join()


def _write(ctx: Any, target: Any, text: str) -> None:
    """One write to a real stream, in *ctx*.  Caller holds ``_lock``."""
    try:
        if ctx is None:
            target.write(text)
        else:
            ctx.run(target.write, text)
    except Exception:  # a closed stream must not kill the flusher or a worker
        import logging
        logging.getLogger("nbfrost").exception("nbfrost: writing job output failed")


# One pass under _lock per lane and tick: joining runs, holding partial lines, writing or
# dropping and the marker share that pass's locals (the flusher calls it for every lane).
def _drain(lane: Lane, now: float, final: bool, partial: bool = False) -> None:  # noqa: C901
    """Forward a lane's complete lines; its partial lines too when *partial*
    (a flush) or *final* (the attempt ended).  Caller holds ``_lock``."""
    q = lane.queue
    n = len(q)
    out: list[tuple[Any, list[str]]] = []
    rem = lane.rem
    if n:
        bucket = lane.bucket
        if not (final or partial) and bucket.refill(now) <= 0:
            n = 0  # over the dispatcher's rate: wait (bounded by the lane's budget)
        # Runs of writes to one stream, joined once each (a job printing
        # thousands of lines a tick costs one join, not a loop of concatenations).
        runs: list[tuple[Any, list[str]]] = []
        last: Any = None
        parts: list[str] = []
        popleft = q.popleft
        for _ in range(n):
            target, text = popleft()
            if target is last:
                parts.append(text)
            else:
                parts = [text]
                runs.append((target, parts))
                last = target
        for target, parts in runs:
            text = "".join(parts)
            held = rem.pop(target, None)
            if held is not None:
                text = held + text
            cut = text.rfind("\n") + 1
            if cut < len(text):
                if not rem and (cut or held is None):  # a new partial line starts waiting
                    lane.rem_since = now
                rem[target] = text[cut:]
            if cut:
                if out and out[-1][0] is target:
                    out[-1][1].append(text[:cut])
                else:
                    out.append((target, [text[:cut]]))
    if rem and (final or partial or now - lane.rem_since >= PARTIAL_DELAY):
        for target, text in rem.items():
            out.append((target, [text]))
        rem.clear()
    if out:
        size = 0
        if final and lane.bucket.refill(now) <= -lane.bucket.burst:
            # The dispatcher is far over its rate: what is left goes into the marker.
            for _, parts in out:
                for p in parts:
                    lane.dropped += len(p)
                    lane.dropped_lines += p.count("\n")
            if not lane.over_since:
                lane.over_since = now
                lane.over_target = out[0][0]
                lane.over_rate = True
        else:
            for target, parts in out:
                text = "".join(parts)
                size += len(text)
                _write(lane.ctx, target, text)
                lane.dirty.add(target)
                lane.open_end[target] = not text.endswith("\n")
            lane.bucket.tokens -= size
            lane.shown += size
    if final:
        # A job's output ends with a whole line, so the next job's does not
        # continue it (``t.output`` keeps the text exactly as written).
        for target, is_open in lane.open_end.items():
            if is_open:
                _write(lane.ctx, target, "\n")
                lane.open_end[target] = False
    if lane.over_since and not lane.marked and (final or now - lane.over_since >= MARKER_DELAY):
        lane.marked = True
        target = lane.over_target
        lead = "\n" if lane.open_end.get(target) else ""
        _write(lane.ctx, target, lead + marker(lane, finished=final) + "\n")
        lane.dirty.add(target)
        lane.open_end[target] = False


def marker(lane: Lane, finished: bool) -> str:
    """The one line that says what a job's notebook output left out."""
    what = f"{lane.dropped:,} characters ({lane.dropped_lines:,} lines)"
    if finished:
        told = f"{what} of its output were not shown here"
    else:
        told = f"the rest of its output is not shown here ({what} so far)"
    if lane.over_rate:
        limit = f"its dispatcher's notebook rate ({_size(int(lane.bucket.rate))}/s)"
    else:
        limit = f"its notebook budget ({_size(lane.budget)})"
    return (f"[nbfrost: job {lane.job_id} {lane.name!r} went over {limit}; {told}; "
            f"read all of it with %frost output {lane.job_id} or in the dashboard]")


def _size(n: int) -> str:
    if n >= 1 << 20 and not n % (1 << 20):
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and not n % (1 << 10):
        return f"{n >> 10} KiB"
    return f"{n:,} characters"


def end(lane: Lane) -> None:
    """The job attempt ended: forward everything left (or hand it to its gate)."""
    with _lock:
        _lanes.discard(lane)
        gate = lane.gate
        if gate is not None and not gate._open:
            gate.held.append((lane, None, None, ""))
            return
        _drain(lane, time.monotonic(), final=True)


def flush(lane: Lane | None, gate: Gate | None) -> list[Any]:
    """A job called ``flush()``: forward what it wrote so far, partial lines too.

    Waits (up to `GATE_WAIT` s) for a closed *gate* first, so that a
    ``display()`` from the job comes after its cell's badge.  Returns the
    real streams that were written to since their last flush, which the
    caller flushes (outside the lock).
    """
    if gate is not None and not gate._open:
        gate.wait(GATE_WAIT)
    if lane is None:
        return []
    with _lock:
        if lane.gate is not None and not lane.gate._open:
            return []
        _drain(lane, time.monotonic(), final=False, partial=True)
        dirty = list(lane.dirty)
        lane.dirty.clear()
    return dirty


def emit(ctx: Any, target: Any, text: str, gate: Gate | None = None) -> None:
    """Write a notice line to a real stream in *ctx*, after the job's output.

    With a closed *gate* the line waits for it, behind the job's output.
    """
    with _lock:
        if gate is not None and not gate._open:
            gate.held.append((None, ctx, target, text))
            return
        _write(ctx, target, text)


class _Notices:
    """Coalesces failure notices: at most `NOTICE_LIMIT` per `NOTICE_WINDOW` s.

    Past the limit, the notices of the window become one summary line,
    written under the cell of the last one when the window closes.
    """

    def __init__(self) -> None:
        self.window_start = 0.0
        self.count = 0
        self.pending = 0   # suppressed in this window
        self.last: tuple[Any, Any, Callable[[int], str]] | None = None

    def add(self, ctx: Any, target: Any, line: str, summary: Callable[[int], str]) -> None:
        """Caller holds ``_lock``."""
        now = time.monotonic()
        if now - self.window_start >= NOTICE_WINDOW:
            self.tick(now, force=True)
            self.window_start, self.count = now, 0
        if self.count < NOTICE_LIMIT:
            self.count += 1
            _write(ctx, target, line)
            return
        self.pending += 1
        self.last = (ctx, target, summary)
        _ensure_flusher()

    def tick(self, now: float, force: bool = False) -> None:
        """Write the summary of a closed window.  Caller holds ``_lock``."""
        if not self.pending or not (force or now - self.window_start >= NOTICE_WINDOW):
            return
        assert self.last is not None
        ctx, target, summary = self.last
        _write(ctx, target, summary(self.pending))
        self.pending, self.last = 0, None
        self.window_start, self.count = now, 0


_notices = _Notices()


def notice(ctx: Any, target: Any, line: str, summary: Callable[[int], str]) -> None:
    """Write a failure notice *line* in *ctx*, coalesced under the flood rules;
    ``summary(n)`` is the line that stands for *n* notices left out."""
    with _lock:
        _notices.add(ctx, target, line, summary)
