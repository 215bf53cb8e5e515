"""The refresh thread of the dashboards: one per dispatcher, shared by its views.

Why one thread per dispatcher and not one per dashboard: a refresh pass
reads ``Dispatcher.stats()`` once for every view of that dispatcher, views
that show the same page share one rendering, and a notebook with several
dashboards does not multiply the polling.  The thread re-renders a view
only when ``registry.version`` moved, at most once per its ``refresh``
seconds, and it only assigns widget traits (``with output:`` from a thread
would capture the main thread's prints).  It ends when the last dashboard
is closed or the dispatcher shuts down.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ...dispatcher import Dispatcher
    from ...tracker import Tracker

__all__ = ["Hub", "View", "MIN_REFRESH"]

log = logging.getLogger("nbfrost")

MIN_REFRESH = 0.05        # seconds; the thread never polls faster than this


class View(Protocol):
    """What the hub needs of a dashboard (`nbfrost.dashboard.widget.Dashboard`)."""

    @property
    def dispatcher(self) -> Dispatcher: ...

    @property
    def refresh_interval(self) -> float | None:
        """Seconds between live renders, or None for manual refresh only."""

    def _tick(self, shared: dict[Any, Any], force: bool = False) -> None: ...


_hubs_lock = threading.Lock()  # guards _hubs and every hub's dashboards/thread
_hubs: dict[int, Hub] = {}   # id(dispatcher) -> its hub, while it has dashboards


class Hub:
    """The one refresh thread of a dispatcher, shared by its dashboards.

    It also owns the finish notices.  A `Dispatcher.on_finish` hook is
    armed for the *next* finish only: it records that job's tracker and
    unsubscribes itself, and each refresh pass arms it again.  So a busy
    pool pays for one callback per pass, not one per job; the notice says
    how many more finished, from ``stats()["finished"]``.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.dashboards: list[View] = []
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()
        self.caught: deque[tuple[int, Tracker]] = deque(maxlen=16)
        self._seq = itertools.count(1)
        self._arm_lock = threading.Lock()  # guards _unsubscribe and _left
        self._unsubscribe: Callable[[], None] | None = None
        self._left = False
        self.ticks = 0
        self.tick_cond = threading.Condition()
        self.arm()

    def arm(self) -> None:
        """Catch the next job that finishes (if not already waiting for one)."""
        with self._arm_lock:
            if self._unsubscribe is None and not self._left and not self.dispatcher.closed:
                self._unsubscribe = self.dispatcher.on_finish(self._on_finish)

    def disarm(self) -> None:
        with self._arm_lock:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def _on_finish(self, tracker: Tracker) -> None:
        # Runs in the worker that finished the job.  deque.append and
        # next(count) are atomic under the GIL; two workers racing here
        # both append, which is harmless.
        self.caught.append((next(self._seq), tracker))
        self.disarm()

    @classmethod
    def join(cls, dash: View) -> Hub:
        with _hubs_lock:
            hub = _hubs.get(id(dash.dispatcher))
            if hub is None:
                hub = _hubs[id(dash.dispatcher)] = cls(dash.dispatcher)
            hub.dashboards.append(dash)
            hub._ensure_thread()
        return hub

    def _ensure_thread(self) -> None:
        """Start the thread if a live dashboard needs it.  Caller holds _hubs_lock."""
        if self.thread is not None or self.dispatcher.closed:
            return
        if not any(d.refresh_interval is not None for d in self.dashboards):
            return
        self.wake.clear()
        self.thread = threading.Thread(target=self._run, name="nbfrost-dashboard", daemon=True)
        self.thread.start()

    def leave(self, dash: View) -> None:
        thread = None
        last = False
        with _hubs_lock:
            if dash in self.dashboards:
                self.dashboards.remove(dash)
            if not any(d.refresh_interval is not None for d in self.dashboards):
                thread = self.thread
                self.wake.set()
            last = not self.dashboards
            if last and _hubs.get(id(self.dispatcher)) is self:
                del _hubs[id(self.dispatcher)]
        if last:
            with self._arm_lock:
                self._left = True
            self.disarm()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    def _live(self) -> list[View] | None:
        """The dashboards to refresh now, or None if the thread should end."""
        with _hubs_lock:
            live = [d for d in self.dashboards if d.refresh_interval is not None]
            if not live or self.dispatcher.closed:
                self.thread = None
                return None
            return live

    def _run(self) -> None:
        try:
            while True:
                live = self._live()
                if live is None:
                    break
                interval = max(MIN_REFRESH, min(r for d in live if (r := d.refresh_interval) is not None))
                if self.wake.wait(interval):
                    self.wake.clear()
                try:
                    self.tick(live)
                except Exception:  # e.g. stats() failed: log it, keep refreshing
                    log.exception("nbfrost: dashboard refresh pass failed")
        finally:
            # One last pass so a dispatcher that shut down shows its final state.
            if self.dispatcher.closed:
                with _hubs_lock:
                    remaining = list(self.dashboards)
                try:
                    self.tick(remaining, force=True)
                except Exception:
                    log.exception("nbfrost: last dashboard refresh pass failed")

    def tick(self, dashboards: list[View], force: bool = False) -> None:
        """Refresh each dashboard whose registry changed (or all, with *force*)."""
        shared: dict[Any, Any] = {"stats": self.dispatcher.stats()}
        for dash in dashboards:
            try:
                dash._tick(shared, force)
            except Exception:  # a broken render must not kill the thread
                log.exception("nbfrost: dashboard refresh failed")
        self.arm()
        with self.tick_cond:
            self.ticks += 1
            self.tick_cond.notify_all()

    def wait_ticks(self, n: int, timeout: float = 10.0) -> bool:
        """Block until the thread made *n* more passes (tests use this)."""
        with self.tick_cond:
            target = self.ticks + n
            return self.tick_cond.wait_for(lambda: self.ticks >= target, timeout)
