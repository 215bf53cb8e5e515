"""Schedules: jobs that come back, every interval, on a cron rule, or once at a time.

`Dispatcher.every`, `Dispatcher.cron` and `Dispatcher.at` make a `Schedule`;
each of its runs is an ordinary job (a tracker, a status, output, the
registry's expiry) whose status carries the schedule's id.  One `Scheduler`
per dispatcher keeps every schedule's next due time in one heap and starts
runs from one timer thread (``nbfrost-schedules``), started with the first
schedule and joined on shutdown: no thread per schedule.

Semantics (the guide's page "Schedules" says the same for users):

- *Coalescing*: when the timer wakes late (a stalled process, a machine that
  slept) and several due times have passed, one run starts for all of them;
  the others are counted in ``missed``.
- *Overlap*: a run that comes due while the previous one still runs is
  skipped and counted in ``missed`` (``"skip"``, the default); or waits and
  starts when that one ends, at most one waiting, later ones counted in
  ``missed`` (``"queue"``); or starts anyway (``"allow"``).
- *Jitter*: each run starts up to ``jitter`` seconds after its due time, a
  fresh random delay per run; the due times themselves do not drift.
- *Pause*: while paused nothing comes due and nothing is counted as missed;
  ``resume()`` continues with the next due time after now.
- A failed run does not end the schedule unless ``stop_on_failure=True``.

Lock discipline: the scheduler's one `threading.Condition` guards its heap,
its table of schedules and every `Schedule`'s fields.  Runs are queued,
cancelled and called back outside it.
"""

from __future__ import annotations

import heapq
import html
import itertools
import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

from . import defaults
from .errors import QueueFull
from .states import FAILED, TERMINAL
from .tracker import Tracker

if TYPE_CHECKING:
    from .rules import Rule

__all__ = ["Schedule", "ScheduleState", "ScheduleStatus", "ScheduleList", "Scheduler", "OVERLAPS",
           "before_each_run", "status_html", "local_time"]

log = logging.getLogger("nbfrost")

#: What a run that comes due while the previous one runs does (see the module docstring).
OVERLAPS = ("skip", "queue", "allow")


class ScheduleState(str, Enum):
    """Where a schedule is: its runs come due (``active``), they do not for
    now (``paused``), or they never will again (``ended``)."""

    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


ACTIVE, PAUSED, ENDED = ScheduleState.ACTIVE, ScheduleState.PAUSED, ScheduleState.ENDED


def _dt(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc)


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    """An immutable snapshot of one schedule (what the badge, the dashboard
    and ``%frost schedules`` show).  Times are UTC datetimes or None."""

    id: int
    name: str
    rule: str            # in words: "every 5 min", "at minute 0 of every hour"
    expression: str      # as written: "every 300 s", "0 * * * *"
    state: ScheduleState
    next_run: datetime | None
    last: int | None     # the latest run's job id
    last_state: str | None
    runs: int            # runs started so far
    missed: int
    reason: str | None   # why it ended
    tags: tuple[str, ...]
    overlap: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601)."""
        return {"id": self.id, "name": self.name, "rule": self.rule,
                "expression": self.expression, "state": self.state.value,
                "next_run": None if self.next_run is None else self.next_run.isoformat(),
                "last": self.last, "last_state": self.last_state, "runs": self.runs,
                "missed": self.missed, "reason": self.reason, "tags": list(self.tags),
                "overlap": self.overlap}


class Schedule:
    """The handle to one schedule: its state, its runs, pause/resume/cancel.

    Made by `Dispatcher.every`, `Dispatcher.cron` and `Dispatcher.at`, never
    by users.  Every run is a job like any other; ``last`` is its tracker.
    Like a tracker, it shows its API and keeps its record private.
    """

    __slots__ = ("_id", "_label", "_tags", "_rule", "_call", "_scheduler", "_state",
                 "_due", "_fire", "_gen", "_count", "_run_ids", "_active", "_last", "_missed",
                 "_pending", "_start", "_end", "_max_runs", "_jitter", "_overlap",
                 "_stop_on_failure", "_reason", "_created", "_before_run", "__weakref__")

    _API = ("id", "name", "tags", "rule", "expression", "state", "next_run", "last", "runs",
            "run_count", "missed", "reason", "status", "pause", "resume", "cancel")

    def __init__(self, rule: Rule, call: Any, label: str, tags: tuple[str, ...],
                 start: float | None, end: float | None, max_runs: int | None, jitter: float,
                 overlap: str, stop_on_failure: bool) -> None:
        self._id = -1
        self._label = label
        self._tags = tags
        self._rule = rule
        # What a run queues; the dispatcher's own (its fn, args and options).
        self._call = call
        self._scheduler: Scheduler | None = None
        self._state = ACTIVE
        self._due: float | None = None    # the next nominal due time
        self._fire: float | None = None   # _due plus this run's jitter
        self._gen = 0                     # heap entries of older generations are stale
        self._count = 0                   # runs started (or waiting, with overlap="queue")
        self._run_ids: deque[int] = deque(maxlen=defaults.SCHEDULE_RUNS_KEPT)
        self._active: list[Tracker] = []  # runs not ended yet
        self._last: Tracker | None = None
        self._missed = 0
        self._pending = False             # a run waits for the previous one (overlap="queue")
        self._start = start
        self._end = end
        self._max_runs = max_runs
        self._jitter = jitter
        self._overlap = overlap
        self._stop_on_failure = stop_on_failure
        self._reason: str | None = None
        self._created = 0.0  # when the scheduler took it (its clock)
        # Called on the timer thread just before each run is queued (see
        # `before_each_run`); None: nothing.
        self._before_run: Callable[[], None] | None = None

    def __dir__(self) -> list[str]:
        return sorted(self._API)

    # ------------------------------------------------------------- reading
    @property
    def id(self) -> int:
        """The schedule's id: an int, unique within its dispatcher."""
        return self._id

    @property
    def name(self) -> str:
        """The name its runs carry."""
        return self._label

    @property
    def tags(self) -> tuple[str, ...]:
        return self._tags

    @property
    def rule(self) -> str:
        """The rule in words: ``every 5 min``, ``at minute 0 of every hour``."""
        return self._rule.describe()

    @property
    def expression(self) -> str:
        """The rule as written: ``every 300 s``, ``0 * * * *``, ``at 2026-...``."""
        return self._rule.expression

    @property
    def state(self) -> ScheduleState:
        """``active``, ``paused`` or ``ended``."""
        return self._state

    @property
    def next_run(self) -> datetime | None:
        """When the next run starts (UTC, jitter included), or None when
        paused or ended."""
        with self._lock():
            return _dt(self._fire) if self._state is ACTIVE else None

    @property
    def last(self) -> Tracker | None:
        """The tracker of the latest run, or None before the first."""
        return self._last

    @property
    def missed(self) -> int:
        """Runs that came due but did not start: skipped because the
        previous run still ran, or coalesced after a stall."""
        return self._missed

    @property
    def run_count(self) -> int:
        """How many runs this schedule started."""
        return self._count

    @property
    def reason(self) -> str | None:
        """Why the schedule ended (None while it has not)."""
        return self._reason

    def runs(self) -> list[Tracker]:
        """Trackers of this schedule's runs still in the registry, oldest first."""
        scheduler = self._scheduler
        if scheduler is None:
            return []
        with self._lock():
            ids = list(self._run_ids)
        return scheduler.find_runs(ids)

    def status(self) -> ScheduleStatus:
        """A `ScheduleStatus` snapshot."""
        with self._lock():
            last = self._last
            return ScheduleStatus(
                id=self._id, name=self._label, rule=self._rule.describe(),
                expression=self._rule.expression, state=self._state,
                next_run=_dt(self._fire) if self._state is ACTIVE else None,
                last=None if last is None else last.id,
                last_state=None if last is None else last.state.value,
                runs=self._count, missed=self._missed, reason=self._reason,
                tags=self._tags, overlap=self._overlap)

    def _lock(self) -> Any:
        scheduler = self._scheduler
        return scheduler._cond if scheduler is not None else threading.Lock()

    # ------------------------------------------------------------ steering
    def pause(self) -> bool:
        """Stop runs from coming due until `resume`; a running run goes on.
        Returns False if the schedule was not active."""
        return self._scheduler is not None and self._scheduler.pause(self)

    def resume(self) -> bool:
        """Let runs come due again, from the next due time after now (what
        came due while paused is neither run nor counted as missed).
        Returns False if the schedule was not paused."""
        return self._scheduler is not None and self._scheduler.resume(self)

    def cancel(self, running: bool = False, interrupt: bool = False) -> bool:
        """End the schedule: no run comes due again.  With *running*, its
        runs still queued or running are cancelled too (with *interrupt*, as
        `Tracker.cancel` does).  Returns False if it had already ended."""
        return self._scheduler is not None and self._scheduler.cancel(self, running, interrupt)

    # ------------------------------------------------------------- display
    def __repr__(self) -> str:
        s = self.status()
        nxt = "" if s.next_run is None else f" next={s.next_run.isoformat(timespec='seconds')}"
        return (f"<nbfrost.Schedule {s.id} {s.name!r} {s.rule} {s.state.value}{nxt} "
                f"runs={s.runs} missed={s.missed}>")

    def _repr_html_(self) -> str:
        return status_html(self.status())


def before_each_run(schedule: Schedule, hook: Callable[[], None] | None) -> None:
    """Call *hook* on the timer thread just before each run of *schedule*
    is queued (None: no hook).  For front ends: a ``%%frost --process``
    schedule cell clears its output there, since its runs' code runs in
    another process.  Not part of `Schedule`'s API (it is not in its
    ``dir()``); an exception from *hook* is logged and the run goes on."""
    schedule._before_run = hook


def status_html(s: ScheduleStatus) -> str:
    """One schedule as a line of HTML; everything from the user is escaped."""
    esc = html.escape
    nxt = "" if s.next_run is None else f" · next {esc(local_time(s.next_run))}"
    last = "" if s.last is None else f" · last run: job {s.last} {esc(s.last_state or '')}"
    why = "" if s.reason is None else f" ({esc(s.reason)})"
    return (f'<span class="nbfrost-schedule">schedule {s.id} <b>{esc(s.name)}</b> '
            f"{esc(s.rule)} · {esc(s.state.value)}{why}{nxt}{last} · runs {s.runs} · "
            f"missed {s.missed}</span>")


class ScheduleList(list):
    """A plain list of `ScheduleStatus` that renders as a table in notebooks
    (what ``%frost schedules`` returns)."""

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{c}</th>" for c in ("id", "name", "rule", "state", "next run",
                                                  "last run", "runs", "missed"))
        rows = []
        for s in self:
            nxt = "" if s.next_run is None else local_time(s.next_run)
            last = "" if s.last is None else f"job {s.last} {s.last_state}"
            state = s.state.value + ("" if s.reason is None else f" ({s.reason})")
            rows.append(f"<tr><td>{s.id}</td><td>{esc(s.name)}</td><td>{esc(s.rule)}</td>"
                        f"<td>{esc(state)}</td><td>{esc(nxt)}</td><td>{esc(last)}</td>"
                        f"<td>{s.runs}</td><td>{s.missed}</td></tr>")
        if not rows:
            rows.append('<tr><td colspan="8">no schedules</td></tr>')
        return f'<table class="nbfrost-schedules"><tr>{head}</tr>{"".join(rows)}</table>'

    def __repr__(self) -> str:
        if not self:
            return "(no schedules)"
        lines = []
        for s in self:
            nxt = "" if s.next_run is None else f" next {local_time(s.next_run)}"
            last = "" if s.last is None else f" last job {s.last} {s.last_state}"
            lines.append(f"{s.id:>3} {s.name!r} {s.rule} · {s.state.value}{nxt}{last} · "
                         f"runs {s.runs} · missed {s.missed}")
        return "\n".join(lines)

    def to_json(self, **kwargs: Any) -> str:
        import json
        return json.dumps([s.to_dict() for s in self], **kwargs)


def local_time(when: datetime) -> str:
    """*when* in this process's local time, to the second (today: the time only)."""
    local = when.astimezone()
    if local.date() == datetime.now().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


class Scheduler:
    """One dispatcher's schedules and their one timer thread.

    *clock* gives epoch seconds (the dispatcher's, injectable);
    *launch(schedule)* queues one run and returns its tracker;
    *find_runs(ids)* returns the trackers of those ids still held;
    *changed()* is called (outside the lock) after anything a reader shows
    changed.
    """

    def __init__(self, clock: Callable[[], float], launch: Callable[[Schedule], Tracker],
                 find_runs: Callable[[list[int]], list[Tracker]],
                 changed: Callable[[], None] = lambda: None,
                 recheck: float = defaults.SCHEDULE_RECHECK,
                 name: str = "nbfrost-schedules") -> None:
        self.clock = clock
        self._launch = launch
        self.find_runs = find_runs
        self._changed = changed
        self._recheck = recheck
        self._name = name
        # Guards _heap, _table, _ended, _thread, _closed, _launching and every
        # Schedule's fields.  Two conditions on it: the timer thread waits on
        # _cond (a new due time), tick() on _idle (runs queued).
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._idle = threading.Condition(lock)
        self._heap: list[tuple[float, int, int, Schedule]] = []
        self._table: dict[int, Schedule] = {}
        self._ended: deque[int] = deque()
        self._ids = itertools.count()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._launching = 0  # runs decided on but not queued yet (see tick)
        self.random = random.Random()  # jitter; replace with a seeded one in tests
        #: Called with a schedule when it is made and when it ends (the
        #: history writer's `note_schedule`): cheap, and called under the lock.
        self.on_record: Callable[[Schedule, float], None] | None = None

    # ------------------------------------------------------------ the table
    def add(self, schedule: Schedule) -> Schedule:
        """Give *schedule* an id and its first due time, and arm the timer.

        Raises:
            ValueError: it would never run (its first due time is past its
                ``end``); nothing is added.
            RuntimeError: the scheduler is closed.
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("this dispatcher is shut down; create a new nbfrost.Dispatcher()")
            now = self.clock()
            first = schedule._rule.first(now, schedule._start)
            if first is None or (schedule._end is not None and first > schedule._end):
                raise ValueError(
                    f"this schedule would never run: its first due time "
                    f"{_dt(first)} is after end={_dt(schedule._end)}; pass a later end (or none)")
            schedule._id = next(self._ids)
            schedule._scheduler = self
            schedule._created = now
            self._table[schedule._id] = schedule
            self._arm(schedule, first)
            if self.on_record is not None:
                self.on_record(schedule, now)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        self._changed()
        return schedule

    def get(self, schedule_id: int) -> Schedule:
        """The schedule with this id (KeyError naming the known ones if none)."""
        with self._cond:
            found = self._table.get(schedule_id)
            known = sorted(self._table)
        if found is None:
            shown = ", ".join(map(str, known[-10:])) or "none"
            raise KeyError(f"no schedule {schedule_id!r} (schedules: {shown}); "
                           "d.schedules() lists them")
        return found

    def all(self) -> list[Schedule]:
        """Every schedule held (active, paused, and the most recent ended ones), by id."""
        with self._cond:
            return [self._table[k] for k in sorted(self._table)]

    @property
    def active_count(self) -> int:
        with self._cond:
            return sum(1 for s in self._table.values() if s._state is ACTIVE)

    # ---------------------------------------------------------- the timer
    def _arm(self, s: Schedule, due: float) -> None:
        """Set *s*'s next due time and push it on the heap.  Caller holds the lock."""
        s._due = due
        s._fire = due + (self.random.uniform(0.0, s._jitter) if s._jitter else 0.0)
        heapq.heappush(self._heap, (s._fire, next(self._seq), s._gen, s))

    def _finish(self, s: Schedule, reason: str) -> None:
        """End *s*.  Caller holds the lock."""
        if s._state is ENDED:
            return
        s._state = ENDED
        s._reason = reason
        s._gen += 1
        s._fire = None
        if self.on_record is not None:
            self.on_record(s, self.clock())
        self._ended.append(s._id)
        while len(self._ended) > defaults.SCHEDULES_ENDED_KEPT:
            self._table.pop(self._ended.popleft(), None)

    def _due_now(self, now: float) -> list[Schedule]:
        """Pop what is due at *now*, decide each (run, skip, wait), re-arm.
        Returns the schedules to start a run of.  Caller holds the lock."""
        out: list[Schedule] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, gen, s = heapq.heappop(heap)
            if gen != s._gen or s._state is not ACTIVE or s._due is None or s._fire is None:
                continue  # stale: paused, resumed or ended since it was pushed
            # Every due time up to now (this run's jitter aside) comes due at
            # once: one run for all of them, the rest counted as missed.
            count, nxt = s._rule.through(s._due, now - (s._fire - s._due))
            s._missed += count - 1
            s._active = [t for t in s._active if t.state not in TERMINAL]
            if s._active and s._overlap == "skip":
                s._missed += 1
            elif s._active and s._overlap == "queue":
                if s._pending:
                    s._missed += 1
                else:
                    s._pending = True
                    s._count += 1
            else:
                s._count += 1
                self._launching += 1
                out.append(s)
            if s._max_runs is not None and s._count >= s._max_runs:
                self._finish(s, f"max_runs={s._max_runs} reached")
            elif nxt is None:
                self._finish(s, "ran its one run" if s._count else "its one due time passed")
            elif s._end is not None and nxt > s._end:
                self._finish(s, f"end reached ({_dt(s._end)})")
            else:
                self._arm(s, nxt)
        return out

    def tick(self) -> int:
        """Start the runs that are due by the clock now; returns how many
        this call started.

        For tests that move an injected clock: the runs start at once, on
        the calling thread.  The timer thread may have found some of them
        first (the lock makes the two take turns); either way, when this
        returns, every run decided on so far is queued.
        """
        with self._cond:
            if self._closed:
                return 0
            due = self._due_now(self.clock())
        self._start(due)
        with self._cond:
            while self._launching:
                self._idle.wait()
        return len(due)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = self.clock()
                    due = self._due_now(now)
                    if due:
                        break
                    if self._heap:
                        # Capped, so that a wall clock that jumped (or a
                        # machine that slept) is noticed within `recheck`.
                        self._cond.wait(min(self._heap[0][0] - now, self._recheck))
                    else:
                        self._cond.wait()
            self._start(due)

    def _start(self, schedules: list[Schedule]) -> None:
        """Queue one run of each of *schedules* (outside the lock)."""
        if not schedules:
            return
        for s in schedules:
            try:
                self._run(s)
            finally:
                with self._cond:
                    self._launching -= 1
                    self._idle.notify_all()
        self._changed()

    def _run(self, s: Schedule) -> None:
        hook = s._before_run
        if hook is not None:
            try:
                hook()
            except Exception:  # the run goes on without it
                log.exception("nbfrost: schedule %s: the before-run hook failed", s._id)
        try:
            tracker = self._launch(s)
        except QueueFull:
            with self._cond:
                s._count -= 1
                s._missed += 1
            return
        except RuntimeError:
            return  # the dispatcher shut down meanwhile; close() ends the schedule
        except Exception:
            log.exception("nbfrost: schedule %s could not queue a run", s._id)
            with self._cond:
                s._count -= 1
                s._missed += 1
            return
        with self._cond:
            s._last = tracker
            s._run_ids.append(tracker.id)
            s._active.append(tracker)
        tracker.add_done_callback(lambda t: self._run_done(s, t))

    def _run_done(self, s: Schedule, tracker: Tracker) -> None:
        start_next = False
        with self._cond:
            s._active = [t for t in s._active if t is not tracker and t.state not in TERMINAL]
            if tracker.state is FAILED and s._stop_on_failure and s._state is not ENDED:
                self._finish(s, f"run {tracker.id} failed (stop_on_failure=True)")
                if s._pending:
                    s._pending = False
                    s._count -= 1
            if s._pending and not s._active and not self._closed:
                s._pending = False
                start_next = True
                self._launching += 1
        if start_next:
            self._start([s])
        else:
            self._changed()

    # ------------------------------------------------------------ steering
    def pause(self, s: Schedule) -> bool:
        with self._cond:
            if s._state is not ACTIVE:
                return False
            s._state = PAUSED
            s._gen += 1
            s._fire = None
            if s._pending:
                s._pending = False
                s._count -= 1
        self._changed()
        return True

    def resume(self, s: Schedule) -> bool:
        with self._cond:
            if s._state is not PAUSED or self._closed:
                return False
            s._state = ACTIVE
            due = s._due
            now = self.clock()
            if due is not None and due <= now:
                # What came due while paused is skipped, not counted.
                _, due = s._rule.through(due, now)
            if due is None:
                self._finish(s, "its due times passed while it was paused")
            elif s._end is not None and due > s._end:
                self._finish(s, f"end passed while it was paused ({_dt(s._end)})")
            else:
                self._arm(s, due)
                self._cond.notify()
        self._changed()
        return True

    def cancel(self, s: Schedule, running: bool = False, interrupt: bool = False) -> bool:
        with self._cond:
            was = s._state is not ENDED
            if was:
                if s._pending:
                    s._pending = False
                    s._count -= 1
                self._finish(s, "cancelled")
            runs = list(s._active) if running else []
        for tracker in runs:
            tracker.cancel(interrupt=interrupt)
        self._changed()
        return was

    def close(self) -> None:
        """End every schedule and join the timer thread.  Safe to call twice."""
        with self._cond:
            self._closed = True
            for s in list(self._table.values()):  # _finish forgets old ended ones
                if s._pending:
                    s._pending = False
                self._finish(s, "the dispatcher shut down")
            self._heap.clear()
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._changed()
