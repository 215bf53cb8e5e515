"""A single timer thread for deadlines (job timeouts and their grace checks,
and expiry).

One thread per dispatcher, started only when it is first needed: when the
first job finishes (expiry frees finished jobs on time) or the first job with
a ``timeout=`` starts.  An idle dispatcher's timer wakes once per ``expiry``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Timers"]

log = logging.getLogger("nbfrost")


class Timers:
    """Run callbacks at monotonic deadlines on one lazily started thread."""

    def __init__(self, name: str = "nbfrost-timers") -> None:
        self._name = name
        self._cond = threading.Condition()  # guards _heap, _thread, _closed
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_at(self, deadline: float, fn: Callable[[], None]) -> None:
        """Run *fn* on the timer thread once ``time.monotonic() >= deadline``."""
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._heap, (deadline, next(self._seq), fn))
            if self._thread is None:
                thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                # May raise (no thread can start at interpreter exit): then
                # there is no thread to stop later, and the next call tries again.
                thread.start()
                self._thread = thread
            self._cond.notify()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.call_at(time.monotonic() + delay, fn)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._closed:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("nbfrost: timer callback %r raised", fn)

    def close(self) -> None:
        """Stop the thread; pending deadlines are dropped.  Safe to call twice."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            thread = self._thread
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
