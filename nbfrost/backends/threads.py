"""The default backend: a fixed pool of daemon threads in this process.

Hot path, per job: one ``SimpleQueue.put``/``get`` pair, the registry's
``start`` and ``finish`` (one short lock each), and ``Context.run``.  No
Event, Condition or Future is created per job.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from .. import defaults
from ..capture import CURRENT, JobContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..job import Job
    from ..registry import Registry
    from .base import Backend

__all__ = ["ThreadBackend"]

log = logging.getLogger("nbfrost")

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
# The same C function, typed to pass NULL: that clears a pending exception.
# (Through the py_object prototype above, None would arrive as Py_None and
# be raised as a SystemError that kills the worker.)
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi))


class _Worker(JobContext):
    """One worker thread's state, and the `JobContext` of the job it runs."""

    __slots__ = ("name", "thread", "ident", "retired", "registry")

    def __init__(self, name: str, registry: Registry, cap: int) -> None:
        super().__init__(cap)
        self.name = name
        self.registry = registry
        self.thread: threading.Thread | None = None
        self.ident = 0
        self.retired = False

    def report(self, fraction: float | None, message: str | None) -> None:
        super().report(fraction, message)
        self.registry.bump()

    def clear_interrupt(self) -> None:
        # Passing NULL clears a pending asynchronous exception of the thread.
        _clear_async_exc(self.ident, None)


class ThreadBackend:
    """Run jobs on *workers* daemon threads named ``nbfrost-<prefix>-<n>``."""

    name = "threads"
    shares_namespace = True  # jobs run in this process

    def __init__(self, workers: int = defaults.WORKERS, *, output_cap: int = defaults.OUTPUT_CAP,
                 prefix: str = "worker") -> None:
        self._size = workers
        self._cap = output_cap
        self._prefix = prefix
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _workers, _retire, _stopping, _serial
        self._workers: list[_Worker] = []
        self._retire = 0     # workers still to leave after a shrink
        self._stopping = False
        self._serial = 0
        self._registry: Registry | None = None

    # ---------------------------------------------------------------- life
    def start(self, registry: Registry) -> None:
        self._registry = registry
        with self._lock:
            for _ in range(self._size):
                self._spawn()

    def _spawn(self) -> _Worker:
        """Start one worker thread.  Caller holds ``_lock``."""
        assert self._registry is not None
        name = f"{self._prefix}-{self._serial}"
        self._serial += 1
        worker = _Worker(name, self._registry, self._cap)
        thread = threading.Thread(target=self._work, args=(worker,),
                                  name=f"nbfrost-{name}", daemon=True)
        worker.thread = thread
        self._workers.append(worker)
        thread.start()
        return worker

    @property
    def workers(self) -> int:
        return self._size

    def busy(self) -> int:
        return sum(1 for w in tuple(self._workers) if w.job is not None and not w.retired)

    def threads(self) -> list[threading.Thread]:
        """The live worker threads (for tests and diagnostics)."""
        with self._lock:
            return [w.thread for w in self._workers if w.thread is not None]

    # ------------------------------------------------------------ running
    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def _work(self, w: _Worker) -> None:
        registry = self._registry
        assert registry is not None
        CURRENT.ctx = w
        w.ident = threading.get_ident()
        get = self._queue.get
        start, finish, restart = registry.start, registry.finish, registry.restart
        name = w.name
        try:
            while not w.retired:
                job = get()
                if job is None:  # a wake-up to stop or shrink
                    if self._should_leave(w):
                        break
                    continue
                if not start(job, name):
                    continue  # cancelled while queued
                w.job = job
                try:
                    context = job.caller_context
                    if context is not None:
                        # A copy: the snapshot may be shared by several jobs
                        # (see Dispatcher._caller_context).  One per job, so that
                        # its retries see the context its last attempt left,
                        # as before.
                        context = context.copy()
                    again = True
                    while again:
                        try:
                            if context is None:
                                result = job.fn(*job.args, **job.kwargs)
                            else:
                                result = context.run(job.fn, *job.args, **job.kwargs)
                            error = None
                        except BaseException as exc:  # a job never kills a worker
                            result, error = None, exc
                        again = finish(job, result, error) and restart(job)
                    # Not kept until the next job: the result belongs to
                    # whoever asked for it (a map() hands it over).
                    result = error = None
                except BaseException:
                    # Only an interrupt aimed at this job can land here, and it
                    # is sent only after the job was already given its final
                    # state; nothing is left to record.
                    pass
                finally:
                    w.job = None
                    if job.details is not None:
                        registry.clear_pending_interrupt(job, w.clear_interrupt)
                if self._retire and self._should_leave(w):
                    break
        finally:
            CURRENT.ctx = None
            self._exited(w)

    def _should_leave(self, w: _Worker) -> bool:
        with self._lock:
            if self._stopping:
                return True
            if self._retire > 0:
                self._retire -= 1
                return True
            return False

    def _exited(self, w: _Worker) -> None:
        with self._lock:
            if w in self._workers:
                self._workers.remove(w)
            replace = not self._stopping and not w.retired and self._retire == 0 \
                and len([x for x in self._workers if not x.retired]) < self._size
            if replace:
                log.warning("nbfrost: worker %s died; starting a replacement", w.name)
                self._spawn()

    # ------------------------------------------------------- interruption
    def request_cancel(self, job: Job) -> None:
        """Nothing to do: the job's thread reads ``job.cancel_requested``."""

    def interrupt(self, job: Job, exc_type: type[BaseException]) -> None:
        """Raise *exc_type* inside the thread running *job*.

        Called under the registry lock, which the worker also takes when it
        leaves the job, so the exception can only reach that job.  It lands
        at the next Python bytecode: a blocking C call (``time.sleep``, a
        socket read, a long NumPy routine) is not interrupted until it
        returns.
        """
        for w in tuple(self._workers):
            if w.job is job and w.ident:
                _set_async_exc(w.ident, exc_type)
                return

    def grace_expired(self, job: Job) -> None:
        """Retire a worker still stuck in an interrupted job and start another."""
        with self._lock:
            for w in self._workers:
                if w.job is job and not w.retired:
                    w.retired = True
                    log.warning(
                        "nbfrost: job %s did not stop after an interrupt (blocked in C "
                        "code?); its thread %s is abandoned and a new worker replaces it",
                        job.id, w.name)
                    if not self._stopping:  # no replacement once stop() began
                        self._spawn()
                    return

    # ---------------------------------------------------------------- cells
    def make_cell_job(self, source: str, filename: str,
                      push: dict[str, Any]) -> Callable[[], Any]:
        """Not needed here: cells run in the notebook's namespace (see
        `shares_namespace`).

        Raises:
            RuntimeError: always; check `shares_namespace` first.
        """
        raise RuntimeError("the thread backend runs %%frost cells in the notebook's "
                           "namespace; queue the cell's code directly")

    # -------------------------------------------------------------- sizing
    def resize(self, workers: int) -> None:
        with self._lock:
            delta = workers - self._size
            self._size = workers
            if delta > 0:
                take = min(delta, self._retire)
                self._retire -= take
                for _ in range(delta - take):
                    self._spawn()
            elif delta < 0:
                self._retire += -delta
        for _ in range(max(0, -delta)):
            self._queue.put(None)

    def stop(self, wait: bool) -> None:
        """Stop every worker.  The registry has already drained the queue."""
        with self._lock:
            self._stopping = True
            workers = list(self._workers)
        for _ in workers:
            self._queue.put(None)
        if wait:
            current = threading.current_thread()
            for w in workers:
                if w.thread is not None and w.thread is not current:
                    # Not join(): a worker stuck in C after an interrupt is
                    # abandoned when its grace runs out, and then not waited for.
                    while not w.retired and w.thread.is_alive():
                        w.thread.join(0.05)


if TYPE_CHECKING:
    # mypy checks that ThreadBackend has everything the dispatcher uses.
    _: type[Backend] = ThreadBackend
