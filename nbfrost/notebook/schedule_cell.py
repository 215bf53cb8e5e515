"""``%%frost --every/--cron/--at`` cells: one badge per schedule, the latest run's output.

A scheduled cell shows one badge for its schedule (rule, state, next run,
the last run's state, runs, missed, and Pause/Resume and Unschedule
buttons), never one per run.  So that the cell does not grow over hundreds
of runs, each run starts by clearing the cell's output (``clear_output(wait=
True)``: the front end clears when the next output arrives) and showing the
badge again; what the run prints follows it.  Earlier runs' output stays
with their jobs (``%frost output ID``, the dashboard's details).  A
``--process`` or Dask cell's code runs in another process, so there the
timer thread does the clearing and redrawing, in the cell's context, just
before it queues each run (`schedules.before_each_run`).

The badge is an ``ipywidgets`` box (buttons need a widget), displayed with
HTML and text fallbacks in the same bundle.  Background threads only
assign its traits; the shell's ticker (`frontends.Board`) redraws it when
what it shows changed, until the schedule ended and its last run finished.

Under nbclient and Voila, output sent after a cell finished does not reach
the saved notebook or the page (see `frontends`): there the badge still
updates (a widget), and runs' output is read with ``%frost output ID``.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..schedules import ENDED, PAUSED, Schedule, ScheduleStatus, before_each_run, status_html
from ..states import TERMINAL
from .cell_runner import CellRunner

if TYPE_CHECKING:
    from .. import forward

__all__ = ["ScheduleBadge", "LiveSchedule", "ScheduledCellRunner", "parse_at"]

log = logging.getLogger("nbfrost")

_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_at(text: str, now: datetime) -> datetime:
    """``--at`` of ``%%frost``: ``HH:MM[:SS]`` today in local time, or
    tomorrow if that time has passed today; or an ISO 8601 date and time.

    Raises:
        UsageError: neither, naming the forms it takes.
    """
    match = _CLOCK.match(text.strip())
    if match:
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise UsageError(f"--at {text}: not a time of day; write HH:MM such as 18:30")
        when = now.replace(hour=hour, minute=minute, second=second, microsecond=0)
        return when if when > now else when + timedelta(days=1)
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--at {text!r}: write a time of day HH:MM (18:30: today, or tomorrow "
                         "if it has passed) or an ISO date and time (2026-12-24T18:30)") from None


class ScheduleBadge:
    """The widget a scheduled cell shows: the schedule's line and its buttons."""

    def __init__(self, schedule: Schedule) -> None:
        import ipywidgets as w

        self.schedule = schedule
        self.html = w.HTML()
        self.pause_button = w.Button(description="Pause", icon="pause", tooltip="pause this schedule",
                                     layout=w.Layout(width="auto", height="26px"))
        self.cancel_button = w.Button(description="Unschedule", icon="stop",
                                      tooltip="end this schedule (a running run goes on)",
                                      button_style="warning",
                                      layout=w.Layout(width="auto", height="26px"))
        self.pause_button.add_class("nbfrost-schedule-pause")
        self.cancel_button.add_class("nbfrost-schedule-cancel")
        self.box = w.HBox([self.html, self.pause_button, self.cancel_button],
                          layout=w.Layout(align_items="center", flex_flow="row wrap"))
        self.box.add_class("nbfrost-schedule-badge")
        self.pause_button.on_click(lambda _b: self.toggle())
        self.cancel_button.on_click(lambda _b: self.unschedule())
        self._lock = threading.Lock()  # orders redraws from the ticker, runs and clicks
        self._view: tuple | None = None
        self.finished = False
        self.update()

    def toggle(self) -> None:
        """The Pause/Resume button."""
        if self.schedule.state is PAUSED:
            self.schedule.resume()
        else:
            self.schedule.pause()
        self.update()

    def unschedule(self) -> None:
        """The Unschedule button."""
        self.schedule.cancel()
        self.update()

    def update(self) -> None:
        """Redraw if what the badge shows changed."""
        with self._lock:
            status = self.schedule.status()
            view = _view(status)
            if view != self._view:
                self._view = view
                self.html.value = status_html(status)
                paused = status.state is PAUSED
                self.pause_button.description = "Resume" if paused else "Pause"
                self.pause_button.icon = "play" if paused else "pause"
                self.pause_button.disabled = status.state is ENDED
                self.cancel_button.disabled = status.state is ENDED
            last = self.schedule.last
            self.finished = status.state is ENDED and (last is None or last.state in TERMINAL)

    def tick(self) -> None:
        """The ticker's call."""
        self.update()

    def bundle(self) -> dict[str, Any]:
        """The display bundle: the widget, with HTML and text fallbacks."""
        status = self.schedule.status()
        return {_WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": self.box.model_id},
                "text/html": status_html(status), "text/plain": repr(self.schedule)}

    def show(self) -> None:
        from IPython.display import display

        display(self.bundle(), raw=True)

    def redisplay(self) -> None:
        """Clear the cell (when the next output arrives) and show the badge
        again: called by each run, in its cell's context."""
        from IPython.display import clear_output

        clear_output(wait=True)
        self.update()
        self.show()


def _view(status: ScheduleStatus) -> tuple:
    return (status.state, status.next_run, status.last, status.last_state, status.runs,
            status.missed, status.reason)


class ScheduledCellRunner(CellRunner):
    """A `CellRunner` whose runs each start by showing the schedule's badge
    afresh under a cleared cell (so the cell holds the latest run's output)."""

    __slots__ = ("badge",)

    def __init__(self, shell: Any, code: Any, out_var: str | None, route: bool,
                 gate: forward.Gate | None = None) -> None:
        super().__init__(shell, code, out_var, route, gate)
        #: The cell's badge once shown in a live frontend; None keeps the output.
        self.badge: ScheduleBadge | None = None

    def __call__(self) -> Any:
        badge = self.badge
        if badge is not None and self.route:
            try:
                badge.redisplay()
            except Exception:  # the run goes on without a fresh badge
                log.exception("nbfrost: could not show the schedule's badge again")
        return super().__call__()


class LiveSchedule:
    """A `Schedule` whose notebook display is its live badge: what a
    ``%%frost --every/--cron/--at`` cell returns.  Everything else is the
    schedule's own API."""

    __slots__ = ("_schedule", "_runner")

    def __init__(self, schedule: Schedule, runner: Any) -> None:
        self._schedule = schedule
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._schedule, name)

    def __dir__(self) -> list[str]:
        return dir(self._schedule)

    def __repr__(self) -> str:
        return repr(self._schedule)

    @property
    def schedule(self) -> Schedule:
        """The plain `Schedule`."""
        return self._schedule

    def _ipython_display_(self) -> None:
        runner = self._runner
        gate = getattr(runner, "gate", None)
        try:
            self._show()
        finally:
            if gate is not None:
                gate.open()  # a run's output, held until now, follows the badge

    def _show(self) -> None:
        from IPython.core.getipython import get_ipython
        from IPython.display import display

        from . import frontends

        shell = get_ipython()
        if getattr(shell, "kernel", None) is None:  # a terminal: the line, once
            display({"text/plain": repr(self._schedule)}, raw=True)
            return
        badge = ScheduleBadge(self._schedule)
        badge.show()
        if frontends.kind(shell) == frontends.LIVE:
            if isinstance(runner := self._runner, ScheduledCellRunner):
                runner.badge = badge  # each run redraws it, in the cell's context
            else:
                # A --process or Dask cell: its runs' code runs elsewhere, so
                # the cell is cleared and the badge shown again here, on the
                # timer thread, in this cell's context, before each run is
                # queued; the run's output follows it.
                cell = contextvars.copy_context()

                def redisplay() -> None:
                    cell.copy().run(badge.redisplay)

                before_each_run(self._schedule, redisplay)
        frontends.board(shell).track(badge)
