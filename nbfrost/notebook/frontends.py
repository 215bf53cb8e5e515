"""Which frontend drives the kernel, and what each needs to see a job to its end.

Every frontend gets the badge and the job's output under the queuing cell
while that cell runs.  What arrives *after* the cell finished depends on
the frontend, so nbfrost tells three kinds apart (`kind`):

- ``live``: JupyterLab, Notebook 7, VS Code.  Late stream output and badge
  updates by display id reach the page: nothing more is needed.
- ``headless``: nbclient (papermill, ``jupyter nbconvert --execute``).  Its
  execute requests have ``allow_stdin`` false, and it keeps only messages of
  the cell it is executing; but an update sent *from that cell* for a known
  display id rewrites the earlier outputs with that id, in any cell.  So
  each ``%%frost`` cell gets a second, empty display at its end (the
  late-output area), and at the end of every later cell nbfrost sends, from
  that cell, the badge as it is now and the output the job wrote since its
  cell ended.  A notebook that ends with ``%frost wait`` is saved final.
- ``voila``: Voila (its kernels run with ``SERVER_SOFTWARE=voila/…`` or
  ``VOILA_*`` in their environment).  Only widgets stay live after a cell
  ran, so the badge is an ``ipywidgets.HTML`` (with HTML and text
  fallbacks in the same bundle) and the late-output area an
  ``ipywidgets.Output`` that the ticker fills in batches.

The shell's `Board` holds the one ticker thread that redraws live badges
(at most `TICK_HZ` times a second, only when something visible changed) and
the late-output areas; the thread exists only while something is live.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..states import TERMINAL

if TYPE_CHECKING:
    from .badge import Badge, DisplayBadge

__all__ = ["LIVE", "HEADLESS", "VOILA", "TICK_HZ", "LATE_CAP", "kind", "board", "close_board",
           "Board"]

log = logging.getLogger("nbfrost")

LIVE, HEADLESS, VOILA = "live", "headless", "voila"
#: Most redraws of one badge per second.
TICK_HZ = 4
#: Characters of late output a headless or Voila late-output area shows per job.
LATE_CAP = 200_000


def kind(shell: Any) -> str:
    """``"voila"``, ``"headless"`` (nbclient) or ``"live"``, for a kernel's shell.

    Read from the kernel's environment (Voila) and from the execute request
    being run (nbclient sends ``allow_stdin`` false), so call it while the
    queuing cell runs.
    """
    if os.environ.get("SERVER_SOFTWARE", "").startswith("voila") or any(
            name.startswith("VOILA_") for name in os.environ):
        return VOILA
    kernel: Any = getattr(shell, "kernel", None)
    try:
        allow = bool(kernel.get_parent("shell")["content"].get("allow_stdin", True))
    except Exception:  # an older kernel, or no request: read what it stored
        allow = bool(getattr(kernel, "_allow_stdin", True))
    return LIVE if allow else HEADLESS


# --------------------------------------------------------------- late output
def _written(job: Any) -> list[str]:
    """The job's captured output pieces (appended to, never changed)."""
    details = job._details
    out = None if details is None else details.out
    return [] if out is None else out.parts


class _Late:
    """The output one job writes after its queuing cell finished."""

    def __init__(self, badge: Badge) -> None:
        self.badge = badge
        self.job = badge.job
        self.start = 0          # pieces written before the cell ended
        self.index = 0          # pieces already shown
        self.shown = 0          # characters already shown
        self.finished = False

    def _take(self) -> str:
        """Text written since the last call, bounded by `LATE_CAP` in total."""
        parts = _written(self.job)
        end = len(parts)
        text = "".join(parts[self.index:end])
        self.index = end
        room = LATE_CAP - self.shown
        if len(text) > room:
            cut = max(room, 0)
            more = len(text) - cut
            text = text[:cut]
            if self.shown <= LATE_CAP:
                text += (f"\n[nbfrost: later output not shown here; "
                         f"%frost output {self.job.id} has it all]\n")
            self.shown = LATE_CAP + 1 + more
        else:
            self.shown += len(text)
        return text

    def open(self) -> bool:
        """At the end of the queuing cell: show the area; False if nothing can come late."""
        self.start = self.index = len(_written(self.job))
        return self.job.state not in TERMINAL and self.job.echo


class _TextLate(_Late):
    """nbclient: a text display under the queuing cell, rewritten from later cells."""

    def __init__(self, badge: Badge) -> None:
        super().__init__(badge)
        self.handle: Any = None
        self.text = ""

    def open(self) -> bool:
        from IPython.display import display

        if not super().open():
            return False
        self.handle = display({"text/plain": ""}, raw=True, display_id=True)
        return True

    def flush(self) -> None:
        """From the executing cell: the badge and the late output as they are now."""
        from IPython.display import update_display

        done = self.job.state in TERMINAL  # read first: then all output is written
        self.badge.resend()  # type: ignore[attr-defined]
        more = self._take()
        if more:
            self.text += more
            update_display({"text/plain": self.text}, display_id=self.handle.display_id,
                           raw=True)
        self.finished = done


class _WidgetLate(_Late):
    """Voila: an Output widget under the queuing cell that the ticker fills."""

    def __init__(self, badge: Badge) -> None:
        super().__init__(badge)
        self.out: Any = None

    def open(self) -> bool:
        import ipywidgets
        from IPython.display import display

        if not super().open():
            return False
        self.out = ipywidgets.Output()
        display(self.out)
        return True

    def tick(self) -> None:
        done = self.job.state in TERMINAL
        text = self._take()
        if text:
            # One append per tick: append_stdout rebuilds the outputs tuple.
            self.out.append_stdout(text)
        self.finished = done


# --------------------------------------------------------------------- board
class Board:
    """One shell's live badges: the ticker thread and the late-output areas.

    The ticker starts with the first live badge and ends when none is left
    (or at `close`), so an idle shell has no nbfrost thread for badges.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self._lock = threading.Lock()  # guards _live, _thread, _fresh, _pending
        self._live: list[Any] = []         # what the ticker redraws (.tick(), .finished)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._fresh: list[_Late] = []      # shown in the executing cell, opened at its end
        self._pending: list[_TextLate] = []  # nbclient: flushed at the end of later cells
        self._resenders: list[Callable[[], bool]] = []  # nbclient: widgets to send again
        self._hooked = False

    # ------------------------------------------------------------- ticker
    def track(self, item: Any) -> None:
        """Redraw *item* (``tick()``) until it is ``finished``."""
        with self._lock:
            if self._stop.is_set():
                return
            self._live.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nbfrost-badges",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        me = threading.current_thread()
        while not self._stop.wait(1.0 / TICK_HZ):
            with self._lock:
                items = list(self._live)
            for item in items:
                try:
                    item.tick()
                except Exception:
                    log.exception("nbfrost: redrawing %r failed", item)
                    item.finished = True
            with self._lock:
                self._live = [i for i in self._live if not i.finished]
                if not self._live:
                    break
        with self._lock:
            if self._thread is me:
                self._thread = None

    @property
    def ticking(self) -> bool:
        with self._lock:
            return self._thread is not None

    # -------------------------------------------------------- late output
    def fresh(self, late: _Late) -> None:
        """Open *late* at the end of the executing cell."""
        with self._lock:
            self._fresh.append(late)
        self._hook()

    def resend_at_cell_end(self, resend: Callable[[], bool]) -> None:
        """nbclient: call *resend* at the end of every cell until it returns False.

        For widgets updated from threads (the dashboard): nbclient saves
        only the widget messages of the executing cell.
        """
        with self._lock:
            self._resenders.append(resend)
        self._hook()

    def _hook(self) -> None:
        with self._lock:
            if self._hooked or self._stop.is_set():
                return
            self._hooked = True
        self.shell.events.register("post_run_cell", self._post_run_cell)

    def headless(self, badge: DisplayBadge) -> None:
        """nbclient: give *badge* a late-output area and send it from later cells."""
        self.fresh(_TextLate(badge))

    def voila(self, badge: Badge) -> None:
        """Voila: give *badge* a late-output widget that the ticker fills."""
        self.fresh(_WidgetLate(badge))

    def _post_run_cell(self, result: Any = None) -> None:
        with self._lock:
            fresh, self._fresh = self._fresh, []
        for late in fresh:
            try:
                if not late.open():
                    continue
            except Exception:
                log.exception("nbfrost: showing the late-output area of job %s failed",
                              late.job.id)
                continue
            if isinstance(late, _TextLate):
                with self._lock:
                    self._pending.append(late)
            else:
                self.track(late)
        self.flush()

    def flush(self) -> None:
        """nbclient: send every pending badge and late output from this cell."""
        with self._lock:
            pending = list(self._pending)
        for late in pending:
            try:
                late.flush()
            except Exception:
                log.exception("nbfrost: sending job %s to the notebook failed", late.job.id)
                late.finished = True
        with self._lock:
            self._pending = [p for p in self._pending if not p.finished]
            resenders = list(self._resenders)
        gone = []
        for resend in resenders:
            try:
                keep = resend()
            except Exception:
                log.exception("nbfrost: sending %r again failed", resend)
                keep = False
            if not keep:
                gone.append(resend)
        if gone:
            with self._lock:
                self._resenders = [r for r in self._resenders if r not in gone]

    # -------------------------------------------------------------- close
    def close(self) -> None:
        """Stop the ticker (joining it) and the hook.  Safe to call twice."""
        with self._lock:
            self._stop.set()
            thread, self._thread = self._thread, None
            self._live, self._fresh, self._pending, self._resenders = [], [], [], []
            hooked, self._hooked = self._hooked, False
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        if hooked:
            with contextlib.suppress(ValueError):
                self.shell.events.unregister("post_run_cell", self._post_run_cell)


_boards: weakref.WeakKeyDictionary[Any, Board] = weakref.WeakKeyDictionary()
_boards_lock = threading.Lock()  # guards _boards


def board(shell: Any) -> Board:
    """The shell's `Board`, made on first use (and after `close_board`)."""
    with _boards_lock:
        b = _boards.get(shell)
        if b is None:
            b = _boards[shell] = Board(shell)
        return b


def close_board(shell: Any) -> None:
    """Stop the shell's ticker and hooks (at ``%unload_ext``)."""
    with _boards_lock:
        b = _boards.pop(shell, None)
    if b is not None:
        b.close()

