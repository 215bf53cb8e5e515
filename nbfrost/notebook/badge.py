"""What a queued cell shows: the live status badge and the one-line finish notice.

``%%frost`` returns a `LiveTracker`, whose display is a badge: the job's id,
name and state, and while it runs the elapsed time and (when the job reports
it) a progress bar, the percentage and the message.  The shell's `Ticker`
refreshes running badges a few times a second, only when something visible
changed; a finished badge shows the duration, a failed one the error line.
With ``FrostMagics.notify`` a one-line notice is printed under the queuing
cell when the job ends.  Both are shown in the context copied from the
queuing cell, so they land under it even when another cell runs.

Frontends that drop what arrives for a finished cell get more (see
`nbfrost.notebook.frontends`): under Voila the badge is a widget, and under nbclient
(papermill, ``nbconvert --execute``) the final badge is sent again from
the cell that is executing.
"""

from __future__ import annotations

import contextvars
import html
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import capture, forward
from ..formatting import duration, job_summary
from ..states import RUNNING, SUCCEEDED, TERMINAL, state_badge_html
from ..tracker import Tracker
from .cell_runner import CellRunner

if TYPE_CHECKING:
    from ..job import Job, JobStatus

__all__ = ["Badge", "DisplayBadge", "WidgetBadge", "LiveTracker", "live", "print_notice", "raw_stream",
           "badge_bundle", "badge_view", "status_bundle", "watch_badge"]

#: Characters of a progress message or an error line shown in a badge.
_TEXT_MAX = 160
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def raw_stream(name: str) -> Any:
    """``sys.stdout``/``sys.stderr`` without nbfrost's capture router.

    Notices about a job (``notify``) are printed from a done callback, which
    may run on the job's own worker thread: through the router they would
    land in the job's captured output, or vanish for a quiet job.
    """
    return capture.real_stream(name)


def _line(text: str | None) -> str:
    """The first line of *text*, cut to `_TEXT_MAX` characters."""
    if not text:
        return ""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= _TEXT_MAX else first[: _TEXT_MAX - 1] + "…"


def _elapsed(seconds: float | None) -> str:
    """Whole seconds below a minute: a running badge then changes once a
    second, not on every tick."""
    if seconds is None:
        return ""
    return f"{int(seconds)} s" if seconds < 60 else duration(seconds)


def badge_view(status: JobStatus) -> tuple:
    """Everything a badge shows, as a plain tuple: equal views draw equal badges.

    The ticker compares views to send an update only when something visible
    changed.
    """
    state = status.state
    if state is RUNNING:
        pct = None if status.progress is None else int(status.progress * 100)
        return (state, _elapsed(status.duration), pct, _line(status.message))
    error = _line(f"{status.error_type}: {status.error}") if (
        status.error and state is not SUCCEEDED) else ""
    took = duration(status.duration) if status.complete else ""
    return (state, took, None, error)


def _bar(pct: int) -> str:
    return ('<span style="display:inline-block;width:6em;height:0.6em;background:#e5e7eb;'
            'border-radius:3px;vertical-align:middle;overflow:hidden">'
            f'<span style="display:block;width:{pct}%;height:100%;background:#2563eb">'
            '</span></span>')


def badge_bundle(job: Any, now: float | None = None) -> dict[str, str]:
    """The badge of *job* as a display bundle: ``text/html`` and ``text/plain``.

    Everything that comes from the user (name, message, error) is escaped.
    """
    return status_bundle(job.snapshot(time.time() if now is None else now))


def status_bundle(status: JobStatus) -> dict[str, str]:
    """`badge_bundle` of a snapshot."""
    state, when, pct, text = badge_view(status)
    parts = [f'job {status.id} <b>{html.escape(status.name)}</b> {state_badge_html(state)}']
    if when:
        parts.append(f" · {when}")
    if pct is not None:
        parts.append(f" · {_bar(pct)} {pct}%")
    if text:
        colour = "#dc2626" if state is not RUNNING else "#4b5563"
        parts.append(f' <span style="color:{colour}">{html.escape(text)}</span>')
    markup = f'<span class="nbfrost-badge">{"".join(parts)}</span>'
    if state is RUNNING:
        plain = f"job {status.id} {status.name!r} running"
        plain += f" · {when}" if when else ""
        plain += f" · {pct}%" if pct is not None else ""
        plain += f" · {text}" if text else ""
    else:
        plain = job_summary(status, notice=False)
    return {"text/plain": plain, "text/html": markup}


def _in_kernel(shell: Any) -> bool:
    """True when the front end can update a display in place (a Jupyter kernel).

    A terminal would print every update again, from a background thread.
    """
    return getattr(shell, "kernel", None) is not None


class Badge(ABC):
    """One displayed badge of one job; subclasses say how it is redrawn.

    `update` redraws it when what it shows changed; the ticker calls it a
    few times a second, the worker when the job starts, a done callback
    with ``final=True`` when it ends (nothing is drawn after that).
    """

    __slots__ = ("job", "clock", "_lock", "_closed", "_view")

    def __init__(self, job: Any, clock: Callable[[], float] = time.time) -> None:
        self.job = job
        self.clock = clock  # the dispatcher's: job times are on it
        # Orders the redraws, and is held while one is sent: the worker's
        # "running" update, the ticker's and the final one (which a cancel
        # or timeout can post from another thread) must not overtake each
        # other, or the badge would stay at "running".
        self._lock = threading.Lock()
        self._closed = False
        self._view: tuple | None = None

    @property
    def closed(self) -> bool:
        """True once the final state was drawn."""
        return self._closed

    def update(self, job: Any = None, final: bool = False) -> bool:
        """Redraw if something visible changed; True if it was redrawn."""
        with self._lock:
            if self._closed:
                return False
            self._closed = final
            status = self.job.snapshot(self.clock())
            view = badge_view(status)
            if view == self._view:
                return False
            self._view = view
            self._draw(status_bundle(status))
            return True

    def tick(self) -> None:
        """The ticker's call: redraw if needed."""
        self.update()

    @property
    def finished(self) -> bool:
        return self._closed

    @abstractmethod
    def _draw(self, bundle: dict[str, str]) -> None:
        """Show *bundle* (``text/html`` and ``text/plain``) in the frontend."""


class DisplayBadge(Badge):
    """A badge drawn through its display handle, in the queuing cell's context."""

    __slots__ = ("handle", "ctx", "_resent")

    def __init__(self, job: Any, handle: Any, ctx: contextvars.Context,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(job, clock)
        self.handle = handle
        self.ctx = ctx
        self._resent: tuple | None = None  # the view last sent by resend()

    def _draw(self, bundle: dict[str, str]) -> None:
        # A copy: a Context can be entered by one thread at a time.
        self.ctx.copy().run(self.handle.update, bundle, raw=True)

    def resend(self) -> None:
        """Send the current badge again from *this* thread's context.

        nbclient keeps only messages of the cell it is executing, but an
        update with a known display id, sent from that cell, rewrites the
        earlier output with that id in any cell.
        """
        from IPython.display import update_display

        status = self.job.snapshot(self.clock())
        view = badge_view(status)
        if view != self._resent:
            self._resent = view
            update_display(status_bundle(status), display_id=self.handle.display_id, raw=True)


class WidgetBadge(Badge):
    """A badge drawn by assigning an HTML widget's value (safe from any thread).

    Used under Voila, where only widgets stay live after a cell ran.
    """

    __slots__ = ("widget",)

    def __init__(self, job: Any, widget: Any, clock: Callable[[], float] = time.time) -> None:
        super().__init__(job, clock)
        self.widget = widget

    def _draw(self, bundle: dict[str, str]) -> None:
        self.widget.value = bundle["text/html"]

    @classmethod
    def show(cls, job: Any, clock: Callable[[], float] = time.time) -> WidgetBadge:
        """Display a widget badge, with HTML and text fallbacks in the same bundle."""
        import ipywidgets
        from IPython.display import display

        bundle = badge_bundle(job, clock())
        widget = ipywidgets.HTML(value=bundle["text/html"])
        widget.add_class("nbfrost-badge-widget")
        badge = cls(job, widget, clock)
        view = {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
        display({_WIDGET_VIEW: view, **bundle}, raw=True)
        return badge


class LiveTracker(Tracker):
    """A `Tracker` whose notebook display is a live status badge.

    ``%%frost`` and ``%frost retry`` return one.  In a Jupyter kernel the
    badge is displayed with a display id and updated in place while the job
    runs (elapsed time, progress) and when it ends (duration, or the
    error); elsewhere it is shown once as plain text.  Everything else is a
    plain `Tracker`.
    """

    # A wrapper around the record, which is itself a plain Tracker.
    __slots__ = ("_job", "__weakref__")

    def __init__(self, job: Job) -> None:
        self._job = job

    def _ipython_display_(self) -> None:
        job = self._job
        runner = job._fn
        gate = runner.gate if isinstance(runner, CellRunner) else None
        try:
            self._show(job)
        finally:
            if gate is not None:
                gate.open()  # the job's output, held until now, follows the badge

    def _show(self, job: Job) -> None:
        from IPython.core.getipython import get_ipython
        from IPython.display import display

        from . import frontends

        clock = self._job._owner.clock
        shell = get_ipython()
        if not _in_kernel(shell):
            display(badge_bundle(job, clock()), raw=True)
            return
        kind = frontends.kind(shell)
        if kind == frontends.VOILA:
            try:
                wbadge = WidgetBadge.show(job, clock)
            except ImportError:  # no ipywidgets: a badge that stays as shown
                display(badge_bundle(job, clock()), raw=True)
                return
            watch_badge(self, wbadge)
            wbadge.update()
            board = frontends.board(shell)
            board.track(wbadge)
            board.voila(wbadge)
            return
        if job.state in TERMINAL:
            display(badge_bundle(job, clock()), raw=True)
            return
        status = job.snapshot(clock())
        handle = display(status_bundle(status), raw=True, display_id=True)
        badge = DisplayBadge(job, handle, contextvars.copy_context(), clock)
        badge._view = badge_view(status)
        watch_badge(self, badge)
        badge.update()  # it may have started between the display and watch_badge
        board = frontends.board(shell)
        board.track(badge)
        if kind == frontends.HEADLESS:
            board.headless(badge)


def watch_badge(tracker: Tracker, badge: Badge) -> None:
    """Redraw *badge* when the job starts (``%%frost`` cells) and when it ends."""
    job = tracker._job
    runner = job._fn
    if isinstance(runner, CellRunner):
        runner.watch(job.id, badge)

    def final(t: Tracker) -> None:
        if isinstance(runner, CellRunner):
            runner.unwatch(job.id)
        badge.update(final=True)

    tracker.add_done_callback(final)


def live(tracker: Tracker) -> LiveTracker:
    return LiveTracker(tracker._job)


def print_notice(tracker: Tracker, ctx: contextvars.Context | None = None,
                 gate: forward.Gate | None = None) -> None:
    """Print the one-line finish notice in *ctx*, after the job's output and,
    with a closed *gate*, after its badge."""
    out = raw_stream("stdout")
    forward.emit(ctx, out, job_summary(tracker.status()) + "\n", gate)
    out.flush()
