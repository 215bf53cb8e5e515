"""The default backend: a fixed pool of daemon threads in this process.

Hot path, per job: one ``SimpleQueue.put``/``get`` pair, the registry's
``start`` and ``finish`` (one short lock each), and ``Context.run``.  No
Event, Condition or Future is created per job.

Bulk submission (`submit_many`) puts one *chunk* (a list of jobs) on the
queue instead of one job: a worker takes the chunk and runs its jobs one
after another, each still started and finished in the registry
(`Registry.run_chunk`, in one copy of the chunk's context).

Coroutine jobs: when a job's callable returns a coroutine (an ``async def``
function, or a partial of one), the worker runs it to completion on an
event loop of its own, made on its first coroutine job and closed when the
worker exits.  The coroutine holds its worker until it is done, so
``workers`` bounds coroutine jobs as it bounds the others.  Cancelling or
timing out such a job cancels its asyncio task (``CancelledError`` at its
current ``await``, so its ``finally`` blocks run) instead of raising an
asynchronous exception in the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import logging
import queue
import threading
import types
from typing import TYPE_CHECKING, Any

from .. import defaults
from ..capture import CURRENT, JobContext, end_attempt
from ..coroutines import close_loop, run_coroutine_job
from ..job import RUNNING, Job
from ..states import FAILED

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..protocols import WorkerSlot
    from ..registry import Registry
    from .base import Backend

__all__ = ["ThreadBackend"]

log = logging.getLogger("nbfrost")

_CORO = types.CoroutineType  # what an async def function returns

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
# The same C function, typed to pass NULL: that clears a pending exception.
# (Through the py_object prototype above, None would arrive as Py_None and
# be raised as a SystemError that kills the worker.)
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi))


class _Chunk(list):
    """Jobs of one `ThreadBackend.submit_many` call, last first (a worker
    pops from the end), and the context they were queued in."""

    __slots__ = ("context",)

    def __init__(self, jobs: Any, context: contextvars.Context | None) -> None:
        super().__init__(jobs)
        self.context = context


class _Worker(JobContext):
    """One worker thread's state, and the `JobContext` of the job it runs."""

    __slots__ = ("name", "thread", "ident", "retired", "registry", "loop", "task",
                 "lock", "chunk")

    def __init__(self, name: str, registry: Registry, cap: int) -> None:
        super().__init__(cap)
        self.name = name
        self.registry = registry
        self.thread: threading.Thread | None = None
        self.ident = 0
        self.retired = False
        # The worker's own event loop, made on its first coroutine job.
        self.loop: asyncio.AbstractEventLoop | None = None
        # The asyncio task of the coroutine job it runs, while its loop may
        # run; a canceller cancels that instead of raising in the thread.
        self.task: asyncio.Task | None = None
        self.lock = threading.Lock()  # guards task, and sending an interrupt
        # The chunk it is working through (jobs left, last first), so that a
        # worker abandoned in one of them hands the rest to another.
        self.chunk: _Chunk | None = None

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
    #: ``on_failure(job, context)``: called on the worker when a job failed
    #: for good, with the context it ran in (the dispatcher's failure notice).
    on_failure: Callable[[Job, contextvars.Context], None] | None = None

    def __init__(self, workers: int = defaults.WORKERS, *, output_cap: int = defaults.OUTPUT_CAP,
                 prefix: str = "worker") -> None:
        self._size = workers
        self._cap = output_cap
        self._prefix = prefix
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        if type(self).submit is ThreadBackend.submit:
            # `submit` is only ``put``: bind the queue's own (a C method),
            # one Python call less per queued job.  Not if a subclass
            # overrides it.
            self.submit = self._queue.put  # type: ignore[method-assign,assignment]
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
        try:
            thread.start()
        except BaseException:  # e.g. "can't start new thread": no worker to stop later
            self._workers.remove(worker)
            raise
        return worker

    @property
    def workers(self) -> int:
        return self._size

    def busy(self) -> int:
        return sum(1 for w in tuple(self._workers) if w.job is not None and not w.retired)

    def running(self) -> list[Job]:
        """The jobs the workers run now (the publisher lists them without
        walking the registry)."""
        return [job for job in (w.job for w in tuple(self._workers)) if job is not None]

    def threads(self) -> list[threading.Thread]:
        """The live worker threads (for tests and diagnostics)."""
        with self._lock:
            return [w.thread for w in self._workers if w.thread is not None]

    # ------------------------------------------------------------ running
    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def submit_many(self, jobs: list[Job]) -> None:
        """Hand *jobs* (already added to the registry) to one worker, which
        runs them in order.  Jobs cancelled meanwhile are skipped."""
        # One context for the chunk: the jobs of one map() call share it.
        context = next((j._caller_context for j in jobs if j._caller_context is not None), None)
        self._queue.put(_Chunk(reversed(jobs), context))

    def _work(self, w: _Worker) -> None:  # noqa: C901 - the queue() path inlined for speed (see below)
        registry = self._registry
        assert registry is not None
        CURRENT.ctx = w
        w.ident = threading.get_ident()
        get = self._queue.get
        start, finish, restart = registry.start, registry.finish, registry.restart
        name = w.name
        job_class, coroutine_class = Job, _CORO  # locals: read per job
        try:
            while not w.retired:
                job = get()
                if job.__class__ is not job_class:
                    if job is None:  # a wake-up to stop or shrink
                        if self._should_leave(w):
                            break
                        continue
                    self._run_chunk(w, job)
                    if self._retire and self._should_leave(w):
                        break
                    continue
                # A copy of `_call` and `_conclude` (the chunk runners' path),
                # kept because it pays: folded onto them, the queue() path
                # took 11-22% more wall-clock time per job (benchmarks/ab.py,
                # two runs, medians of 9 interleaved rounds, paired by round,
                # on a loaded 2-core machine; its CPU time went 7% down, so
                # the cost is in how the threads interleave, not in the
                # calls).  tests/lifecycle.py checks both give the same
                # outcomes.
                if not start(job, name):
                    continue  # cancelled while queued
                w.job = job
                try:
                    context = job._caller_context
                    if context is not None:
                        # A copy: the snapshot may be shared by several jobs
                        # (see Dispatcher._caller_context).  One per job, so that
                        # its retries see the context its last attempt left,
                        # as before.
                        context = context.copy()
                    while True:  # an attempt; again while finish() says so
                        try:
                            if context is None:
                                result = job._fn(*job._args, **job._kwargs)
                            elif job._args or job._kwargs:
                                result = context.run(job._fn, *job._args, **job._kwargs)
                            else:
                                # No arguments (the common case): a plain call,
                                # not the star-call's list, tuple and dict.
                                result = context.run(job._fn)
                            if result.__class__ is coroutine_class:  # an async def job: run it
                                result = self._await(w, job, result, context)
                            error = None
                        except BaseException as exc:  # a job never kills a worker
                            result, error = None, exc
                        if w.lane is not None:  # it printed: the rest goes out first
                            end_attempt(w)
                        if not (finish(job, result, error) and restart(job)):
                            break
                    if error is not None and self.on_failure is not None \
                            and context is not None and job._state is FAILED:
                        self.on_failure(job, context)
                except BaseException:
                    # Only an interrupt aimed at this job can land here, and it
                    # is sent only after the job was already given its final
                    # state; nothing is left to record.
                    pass
                finally:
                    w.job = None
                    if job._details is not None:
                        registry.clear_pending_interrupt(job, w.clear_interrupt)
                # Keep nothing of this job while waiting for the next one: its
                # record, result and error (with the frames its traceback
                # holds) belong to the registry, which lets them go, and the
                # result to whoever asked for it (a map() hands it over).
                job = context = result = error = None
                if self._retire and self._should_leave(w):
                    break
        finally:
            CURRENT.ctx = None
            loop = w.loop
            if loop is not None:
                w.loop = None
                close_loop(loop)
            self._exited(w)

    def _run_chunk(self, w: _Worker, chunk: _Chunk) -> None:
        """Run a chunk's jobs one after another.

        Without ``max_queue`` the registry's `Registry.run_chunk` works
        through it (one lock acquisition per job, the finish of one and the
        start of the next together), inside one copy of the chunk's
        context: a chunk is part of one ``map()`` call, from one context.
        A job that raised or returned a coroutine comes back here and is
        finished as `_work` does; then the rest of the chunk goes on.  With
        ``max_queue`` every job is started and finished on its own (each
        start releases a slot).  ``list.pop`` is atomic, so a job is taken
        either by this worker or by `grace_expired` / `resize` handing the
        rest of its chunk to the pool, never by both.
        """
        registry = self._registry
        assert registry is not None
        w.chunk = chunk
        try:
            if not registry.chunks_in_bulk():
                self._run_chunk_one_by_one(w, chunk)
                return
            run_chunk = registry.run_chunk
            name = w.name
            # One copy for the whole chunk, entered again after a job that
            # came back here: the chunk's jobs see each other's sets.
            context = chunk.context
            if context is not None:
                context = context.copy()
            while chunk and not w.retired:
                if context is None:
                    back = run_chunk(chunk, name, w)
                else:
                    back = context.run(run_chunk, chunk, name, w)
                if back is None:
                    return
                job, result, error = back
                back = None
                try:
                    if error is None and result.__class__ is _CORO:
                        try:
                            result = self._await(w, job, result, context)
                        except BaseException as exc:
                            result, error = None, exc
                    self._conclude(w, job, context, result, error)
                    result = error = None  # see _work: the result is not kept here
                except BaseException:
                    pass  # an interrupt aimed at this job (see _work)
                finally:
                    self._let_go(w, job)
        finally:
            w.job = None
            w.chunk = None

    def _run_chunk_one_by_one(self, w: _Worker, chunk: _Chunk) -> None:
        """`_run_chunk` with ``max_queue``: each job through `Registry.start`
        and `Registry.finish`, in its own copy of its context."""
        registry = self._registry
        assert registry is not None
        pop = chunk.pop
        name = w.name
        while chunk and not w.retired:
            try:
                job = pop()
            except IndexError:  # taken by grace_expired
                return
            if not registry.start(job, name):
                continue  # cancelled while queued
            w.job = job
            try:
                context = job._caller_context
                if context is not None:
                    context = context.copy()  # see _work
                result, error = self._call(w, job, context)
                self._conclude(w, job, context, result, error)
                result = error = None  # see _work
            except BaseException:
                pass  # an interrupt aimed at this job (see _work)
            finally:
                self._let_go(w, job)

    def _conclude(self, w: _Worker, job: Job, context: Any, result: Any,
                  error: BaseException | None) -> None:
        """Finish *job* from the outcome of its first attempt: its retries,
        then the failure notice (the chunk runners' general path; `_work`
        inlines the same steps, see there why).  The caller catches an interrupt aimed at
        the job and then lets go of it (`_let_go`)."""
        registry = self._registry
        assert registry is not None
        while True:
            if w.lane is not None:  # it printed: the rest goes out first
                end_attempt(w)
            if not (registry.finish(job, result, error) and registry.restart(job)):
                break
            result, error = self._call(w, job, context)
        if error is not None and self.on_failure is not None \
                and context is not None and job._state is FAILED:
            self.on_failure(job, context)

    def _let_go(self, w: _Worker, job: Job) -> None:
        """The worker holds *job* no more; an interrupt still pending for it
        is cleared."""
        w.job = None
        if job._details is not None:
            assert self._registry is not None
            self._registry.clear_pending_interrupt(job, w.clear_interrupt)

    def _requeue(self, chunk: _Chunk) -> None:
        """Put the jobs left in *chunk* back on the queue, as a new chunk."""
        rest = []
        while True:
            try:
                rest.append(chunk.pop())
            except IndexError:
                break
        if rest:
            rest.reverse()
            self._queue.put(_Chunk(rest, chunk.context))

    def _call(self, w: _Worker, job: Job, context: Any) -> tuple[Any, BaseException | None]:
        """One attempt of *job*: ``(result, None)`` or ``(None, error)``."""
        try:
            if context is None:
                result = job._fn(*job._args, **job._kwargs)
            else:
                result = context.run(job._fn, *job._args, **job._kwargs)
            if result.__class__ is _CORO:
                result = self._await(w, job, result, context)
            error = None
        except BaseException as exc:  # a job never kills a worker
            result, error = None, exc
        if w.lane is not None:  # it printed: the rest goes out first
            end_attempt(w)
        return result, error

    def _await(self, w: _Worker, job: Job, coro: Any, context: Any) -> Any:
        """Run a coroutine job's coroutine on the worker's own event loop."""
        loop = w.loop
        if loop is None:
            loop = w.loop = asyncio.new_event_loop()

        def publish(task: asyncio.Task | None) -> None:
            with w.lock:
                w.task = task
                # A cancel or timeout that came before the task existed
                # found no task, and may have sent an asynchronous
                # exception instead: take that back and cancel the task.
                if task is not None and (job._cancel_requested or job._state is not RUNNING):
                    w.clear_interrupt()
                    task.cancel()

        return run_coroutine_job(loop, coro, context, publish)

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
    def interrupt(self, job: Job, exc_type: type[BaseException]) -> None:
        """Raise *exc_type* inside the thread running *job*, or cancel the
        task of a coroutine job.

        Called under the registry lock, which the worker also takes when it
        leaves the job, so the exception can only reach that job.  It lands
        at the next Python bytecode: a blocking C call (``time.sleep``, a
        socket read, a long NumPy routine) is not interrupted until it
        returns.  While a coroutine job's event loop may run (``w.task`` is
        set, under ``w.lock``), no exception is raised in the thread, which
        could land inside the loop's own code: the task is cancelled on its
        loop instead.  One sent just before the task was published is taken
        back by the worker (see `_await`).
        """
        for w in tuple(self._workers):
            if w.job is job and w.ident:
                with w.lock:
                    if w.task is not None:  # a coroutine job: cancel its task
                        self._cancel_task(w)
                    elif w.job is job:
                        _set_async_exc(w.ident, exc_type)
                return

    def request_cancel(self, job: Job) -> None:
        """A cooperative cancel of a running job: a coroutine job's task is
        cancelled (a plain job reads ``nbfrost.cancelled()`` itself)."""
        for w in tuple(self._workers):
            if w.job is job:
                with w.lock:
                    if w.task is not None and w.job is job:
                        self._cancel_task(w)
                return

    @staticmethod
    def _cancel_task(w: _Worker) -> None:
        """Cancel the task of *w*'s coroutine job.  Caller holds ``w.lock``."""
        task, loop = w.task, w.loop
        if task is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to cancel
            loop.call_soon_threadsafe(task.cancel)

    def grace_expired(self, job: Job) -> None:
        """Retire a worker still stuck in an interrupted job and start another."""
        with self._lock:
            for w in self._workers:
                if w.job is job and not w.retired:
                    w.retired = True
                    log.warning(
                        "nbfrost: job %s did not stop after an interrupt (blocked in C "
                        "code?); its thread %s is abandoned and a new worker replaces it",
                        job._id, w.name)
                    if not self._stopping:  # no replacement once stop() began
                        self._spawn()
                    chunk = w.chunk
                    if chunk:  # the jobs queued behind it go to the others
                        self._requeue(chunk)
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
            busy = [w.chunk for w in self._workers] if delta < 0 else []
        for chunk in busy:
            if chunk:  # the rest of each chunk goes back, so that workers can leave
                self._requeue(chunk)
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
    # mypy checks that ThreadBackend has everything the dispatcher uses,
    # and that its workers give Registry.run_chunk what it needs.
    _: type[Backend] = ThreadBackend
    _slot: type[WorkerSlot] = _Worker
