"""What a queued cell shows: the live status badge and the one-line finish notice.

``%%frost`` returns a `LiveTracker`, whose display is a badge updated in
place when the job starts and ends.  With ``FrostMagics.notify`` a
one-line notice is printed under the queuing cell when the job ends.  Both
are shown in the context copied from the queuing cell, so they land under
it even when another cell runs.
"""

from __future__ import annotations

import contextvars
import html
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from . import capture
from .cell_runner import CellRunner
from .formatting import duration, job_summary
from .states import RUNNING, SUCCEEDED, TERMINAL, state_badge_html
from .tracker import Tracker

if TYPE_CHECKING:
    from .dispatcher import Dispatcher
    from .job import Job

__all__ = ["Badge", "LiveTracker", "live", "print_notice", "raw_stream", "badge_bundle"]


def raw_stream(name: str) -> Any:
    """``sys.stdout``/``sys.stderr`` without nbfrost's capture router.

    Notices about a job (``notify``) are printed from a done callback, which
    may run on the job's own worker thread: through the router they would
    land in the job's captured output, or vanish for a quiet job.
    """
    stream = getattr(sys, name)
    while isinstance(stream, capture.StreamRouter):
        stream = stream._target
    return stream


def badge_bundle(job: Any) -> dict[str, str]:
    """The live badge of a job: HTML (id, name, state, duration) and plain text."""
    status = job.snapshot(time.time())
    state = status.state
    dur = duration(status.duration) if status.complete else ""
    err = ""
    if status.error and state is not SUCCEEDED:
        err = (f' <span style="color:#dc2626">{html.escape(str(status.error_type))}: '
               f'{html.escape(status.error)}</span>')
    markup = (f'<span class="nbfrost-badge">job {status.id} <b>{html.escape(status.name)}</b> '
              f'{state_badge_html(state)}{" · " + dur if dur else ""}{err}</span>')
    return {"text/plain": job_summary(status, notice=False), "text/html": markup}


def _in_kernel(shell: Any) -> bool:
    """True when the front end can update a display in place (a Jupyter kernel).

    A terminal would print every update again, from a background thread.
    """
    return getattr(shell, "kernel", None) is not None


class Badge:
    """One displayed badge: its DisplayHandle and the context it was shown in."""

    __slots__ = ("handle", "ctx", "_lock", "_closed")

    def __init__(self, handle: Any, ctx: contextvars.Context) -> None:
        self.handle = handle
        self.ctx = ctx
        # Orders the updates: the worker's "running" update and the final one
        # (which a cancel or timeout can post from another thread) must not
        # overtake each other, or the badge would stay at "running".
        self._lock = threading.Lock()
        self._closed = False

    def update(self, job: Any, final: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = final
            # A copy: a Context can be entered by one thread at a time.
            self.ctx.copy().run(self.handle.update, badge_bundle(job), raw=True)


class LiveTracker(Tracker):
    """A `Tracker` whose notebook display is a live status badge.

    ``%%frost`` and ``%frost retry`` return one.  In a Jupyter kernel the
    badge is displayed with a display id and updated in place when the job
    starts and when it ends (id, name, state, duration); elsewhere it is
    shown once as plain text.  Everything else is a plain `Tracker`.
    """

    # A wrapper around the record, which is itself a plain Tracker.
    __slots__ = ("_job", "_dispatcher", "__weakref__")

    def __init__(self, job: Job, dispatcher: Dispatcher) -> None:
        self._job = job
        self._dispatcher = dispatcher

    def _ipython_display_(self) -> None:
        from IPython.core.getipython import get_ipython
        from IPython.display import display

        job = self._job
        if job.state in TERMINAL or not _in_kernel(get_ipython()):
            display(badge_bundle(job), raw=True)
            return
        shown = job.state
        handle = display(badge_bundle(job), raw=True, display_id=True)
        badge = Badge(handle, contextvars.copy_context())
        runner = job.fn
        if isinstance(runner, CellRunner):
            runner.watch(job.id, badge)
            # The job may have started between the display and watch(),
            # after the runner looked for badges to update.
            if shown is not RUNNING and job.state is RUNNING:
                badge.update(job)
        holder = [badge]

        def final(tracker: Tracker) -> None:
            b = holder.pop() if holder else None  # drop the context once used
            if b is not None:
                if isinstance(runner, CellRunner):
                    runner.unwatch(job.id)
                b.update(tracker._job, final=True)

        self.add_done_callback(final)


def live(tracker: Tracker) -> LiveTracker:
    return LiveTracker(tracker._job, tracker._dispatcher)


def print_notice(tracker: Tracker) -> None:
    out = raw_stream("stdout")
    out.write(job_summary(tracker.status()) + "\n")
    out.flush()
