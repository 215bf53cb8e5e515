"""The notebook's side of the process pool: `ProcessBackend`.

It starts the worker processes (on first use), hands each free one the
next job, turns what the workers send back into registry calls, kills the
process of a job that is interrupted or times out, and replaces any
process that died.  See the package docstring for the design and why.

Threads: one reader per worker process, ``nbfrost-process-<slot>``, which
reads that worker's frames and calls the registry.  No other thread is
started; jobs are pickled and sent by whoever submits them (the queuing
thread, or the reader of the worker that just became free).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import contextvars
import itertools
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ... import defaults, forward
from ...capture import real_stream
from ...errors import WorkerDied
from ...job import QUEUED, RUNNING, Job
from ...states import FAILED
from ..remote import CellJob, RemoteTraceback
from .cells import ProcessCellJob
from .worker import (
    Answer,
    Cancel,
    Done,
    Output,
    Progress,
    Ready,
    Recall,
    Setup,
    Skip,
    Stop,
    Task,
    check_protocol,
    read_frame,
    read_message,
    send_message,
)

if TYPE_CHECKING:
    from ...registry import Registry
    from ..base import Backend

__all__ = ["ProcessBackend", "describe_exit"]

log = logging.getLogger("nbfrost")

# Not ``-m``: the worker module must keep its name (its messages are pickled
# by reference to it), and nothing of the notebook's __main__ is imported.
_WORKER_MAIN = "import sys; from nbfrost.backends.processes.worker import main; sys.exit(main(sys.argv))"


def describe_exit(code: int | None) -> str:
    """How a process ended, in words: ``exit code 3`` or ``signal 9 (SIGKILL)``."""
    if code is None:
        return "an unknown cause"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        return f"signal {-code} ({name})"
    return f"exit code {code}"


class _Live:
    """What the pool keeps for one submitted, unfinished job."""

    __slots__ = ("job", "payload", "sources", "attempt", "lane", "gate", "context", "proc",
                 "ticket", "recalling")

    def __init__(self, job: Job, payload: bytes, gate: forward.Gate | None) -> None:
        self.job = job
        self.payload = payload   # (fn, args, kwargs), pickled once for every attempt
        self.sources: dict[str, list[str]] = {}  # cell lines for the worker's tracebacks
        self.attempt = 1
        self.lane: forward.Lane | None = None
        self.gate = gate         # a %%frost --process cell's: output waits for its badge
        self.context: contextvars.Context | None = None
        self.proc: _Proc | None = None
        self.ticket = 0           # of its latest sending (pool lock): `Task.ticket`
        # A `Recall` of it (sent ahead to a busy process) awaits its answer
        # (pool lock): until then it is not started in the registry.
        self.recalling = False


class _Proc:
    """One worker process and what the pool knows about it."""

    __slots__ = ("slot", "name", "popen", "fd", "stream", "lock", "reader", "live", "ahead",
                 "ready", "killed", "stopping", "files", "settled", "feeding")

    def __init__(self, slot: int, popen: subprocess.Popen, fd: int, stream: Any) -> None:
        self.slot = slot
        self.name = f"process-{slot}"
        self.popen = popen
        self.fd = fd                  # our end of its task pipe
        self.stream = stream          # our end of its result pipe (buffered reader)
        self.lock = threading.Lock()  # guards writes to fd, so frames never interleave
        self.reader: threading.Thread | None = None
        self.live: _Live | None = None  # the job it runs (pool lock)
        self.ahead: _Live | None = None  # the job sent to run after it (pool lock)
        # Held while jobs are chosen for it and sent, so that they reach it
        # in the order it is to run them.
        self.feeding = threading.Lock()
        self.ready = False            # it said Ready (pool lock)
        self.killed = False           # we killed it (interrupt or stop)
        self.stopping = False         # Stop was sent: it exits after its job
        self.files: set[str] = set()  # cells whose lines it has (Task.sources)
        self.settled = threading.Event()  # set once it said Ready, or exited

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send(self, msg: tuple, payload: Any = None) -> None:
        send_message(self.fd, self.lock, msg, payload)

    def kill(self) -> None:
        self.killed = True
        with contextlib.suppress(OSError):  # already gone
            self.popen.kill()


#: Numbers each sending of a job to a worker (`Task.ticket`).
_TICKETS = itertools.count(1)

#: Every pool with live processes, so that none outlives the interpreter.
_POOLS: weakref.WeakSet[ProcessBackend] = weakref.WeakSet()


@atexit.register
def _kill_all() -> None:
    for pool in list(_POOLS):
        pool.stop(wait=True, timeout=1.0)


class ProcessBackend:
    """Run jobs in a pool of worker processes (see the package docstring).

    Args:
        workers: how many worker processes (and so jobs) run at once; they
            start on first use and are reused.
        output_cap: characters of stdout/stderr kept per job.

    Raises:
        TypeError, ValueError: bad arguments (nothing is started).
    """

    name = "processes"
    shares_namespace = False  # a cell travels as a ProcessCellJob (make_cell_job)
    #: ``on_failure(job, context)``: called when a job failed for good, with
    #: the context it was queued in (the dispatcher's failure notice).
    on_failure: Callable[[Job, contextvars.Context], None] | None = None

    def __init__(self, workers: int = defaults.PROCESS_WORKERS, *,
                 output_cap: int = defaults.OUTPUT_CAP) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise TypeError(f"process workers must be an int, got {type(workers).__name__}")
        if not 1 <= workers <= defaults.MAX_PROCESS_WORKERS:
            raise ValueError(f"process_workers must be between 1 and "
                             f"{defaults.MAX_PROCESS_WORKERS}, got {workers}")
        self._size = workers
        self._cap = output_cap
        self._registry: Registry | None = None
        self._lock = threading.Lock()  # guards _procs, _pending, _live entries' proc, _stopping
        self._procs: list[_Proc] = []
        self._pending: collections.deque[_Live] = collections.deque()
        # Submitted, unfinished jobs by id (also how the dispatcher tells
        # that a job is ours: `owns`).  Added to and replaced under _lock;
        # reads and removals are single dict operations.
        self._live: dict[int, _Live] = {}
        self._stopping = False
        self._started = False

    # ------------------------------------------------------------------ life
    #: Jobs sent to a busy worker to run after its current one (0 or 1):
    #: it starts the next at once instead of waiting a round trip.
    AHEAD = 1

    def start(self, registry: Registry) -> None:
        """Remember *registry*; the processes start on the first job."""
        self._registry = registry
        registry.listeners = (*registry.listeners, self._on_complete)

    def _ensure_procs(self) -> None:
        """Start processes up to the pool's size.  Caller holds ``_lock``."""
        if self._stopping:
            return
        if not self._started:
            self._started = True
            _POOLS.add(self)
        used = {p.slot for p in self._procs if not p.stopping}
        while len(used) < self._size:
            slot = next(i for i in range(len(used) + 1) if i not in used)
            used.add(slot)
            self._procs.append(self._spawn(slot))

    def _spawn(self, slot: int) -> _Proc:
        """Start one worker process and its reader thread.  Caller holds ``_lock``.

        ``subprocess`` starts it with ``posix_spawn``/``vfork`` + ``exec`` of
        this Python: no Python code runs between the fork and the exec, so
        none of the kernel's threads or locks are copied into a child that
        would use them.
        """
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        try:
            popen = subprocess.Popen(
                [sys.executable, "-c", _WORKER_MAIN, str(task_r), str(result_w)],
                pass_fds=(task_r, result_w), stdin=subprocess.DEVNULL, close_fds=True,
                env=_worker_env())
        except BaseException:
            for fd in (task_r, task_w, result_r, result_w):
                os.close(fd)
            raise
        os.close(task_r)
        os.close(result_w)
        os.set_inheritable(task_w, False)
        os.set_inheritable(result_r, False)
        # The stream lives as long as the process: _exited closes it.
        proc = _Proc(slot, popen, task_w, open(result_r, "rb", buffering=1 << 16))  # noqa: SIM115
        with contextlib.suppress(OSError):  # it died at once: its reader sees the end and says how
            proc.send(Setup(_protocol(), list(sys.path)))
        proc.reader = threading.Thread(target=self._read, args=(proc,),
                                       name=f"nbfrost-{proc.name}", daemon=True)
        proc.reader.start()
        return proc

    @property
    def workers(self) -> int:
        return self._size

    def busy(self) -> int:
        return sum(1 for p in tuple(self._procs)
                   if p.live is not None and p.live.job._state is RUNNING)

    def threads(self) -> list[threading.Thread]:
        """The live reader threads (for tests and diagnostics)."""
        with self._lock:
            return [p.reader for p in self._procs if p.reader is not None and p.reader.is_alive()]

    def pids(self) -> list[int]:
        """The process ids of the live worker processes."""
        with self._lock:
            return [p.pid for p in self._procs if p.popen.poll() is None]

    def warm(self, timeout: float = 60.0) -> bool:
        """Start the worker processes now (they otherwise start on the first
        job) and wait until they are ready, up to *timeout* seconds: to pay
        the start cost up front.  True if all are ready."""
        with self._lock:
            self._ensure_procs()
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every process started so far is ready for jobs (or
        has exited), up to *timeout* seconds; True if none is still starting."""
        deadline = time.monotonic() + timeout
        with self._lock:
            procs = list(self._procs)
        return all(p.settled.wait(max(0.0, deadline - time.monotonic())) for p in procs)

    def owns(self, job: Job) -> bool:
        """True if *job* was submitted here and has not finished here."""
        return job._id in self._live

    # --------------------------------------------------------------- running
    def submit(self, job: Job) -> None:
        """Pickle *job* now and run it on the next free process.  If it does
        not pickle, it fails with an error that says what could not be sent."""
        try:
            payload, sources = _dumps_job(job)
        except Exception as exc:
            self._fail_unsent(job, exc)
            return
        gate = getattr(job._fn, "gate", None)
        live = _Live(job, payload, gate if isinstance(gate, forward.Gate) else None)
        live.sources = sources
        with self._lock:
            self._live[job._id] = live
            if self._stopping:
                return
            self._ensure_procs()
            self._pending.append(live)
            proc = self._needy()
        if proc is not None:
            self._feed(proc)

    def submit_many(self, jobs: list[Job]) -> None:
        """Submit *jobs* one by one: each goes to the next free process."""
        for job in jobs:
            self.submit(job)

    def _usable(self, proc: _Proc) -> bool:
        """*proc* may be given jobs.  Caller holds ``_lock``."""
        return proc.ready and not proc.stopping and not proc.killed and not self._stopping

    def _needy(self) -> _Proc | None:
        """A process that can take a job now: a free one first, else one
        whose next job is not sent yet.  Caller holds ``_lock``."""
        if not self._pending:
            return None
        for p in self._procs:
            if p.live is None and self._usable(p):
                return p
        if self.AHEAD:
            for p in self._procs:
                if p.ahead is None and self._usable(p):
                    return p
        return None

    def _pop_pending(self) -> _Live | None:
        """The next pending job that may still run.  Caller holds ``_lock``."""
        while self._pending:
            live = self._pending.popleft()
            state = live.job._state
            if state is QUEUED or (state is RUNNING and live.attempt > 1):
                return live  # a new job, or a retry
            self._live.pop(live.job._id, None)  # cancelled while it waited
        return None

    def _fill_one(self, proc: _Proc) -> tuple[_Live, bool] | None:
        """Give *proc* its next job: ``(live, True)`` to run now, ``(live,
        False)`` to run after its current one; None if it needs none or
        none is pending.  Caller holds ``_lock``."""
        if not self._usable(proc):
            return None
        if len([p for p in self._procs if not p.stopping]) > self._size \
                and proc.live is None and proc.ahead is None:
            proc.stopping = True  # the pool shrank: this one leaves
            _send_quietly(proc, Stop())
            return None
        current = proc.live
        now = current is None
        if current is not None and (proc.ahead is not None or not self.AHEAD or current.recalling):
            return None
        live = self._pop_pending()
        if live is None:
            return None
        if now:
            proc.live = live
        else:
            proc.ahead = live
        live.proc = proc
        live.ticket = next(_TICKETS)
        return live, now

    def _feed(self, proc: _Proc) -> None:
        """Send *proc* the jobs it can take now, in the order it runs them.

        A job to run now is started in the registry first (a cancelled one
        is dropped and the next taken).  A job sent ahead stays queued in
        the registry until the worker reports the one before it done (see
        `_on_done`); the worker runs it at once then, so no round trip is
        lost between two jobs.
        """
        registry = self._registry
        assert registry is not None
        with proc.feeding:
            while True:
                with self._lock:
                    item = self._fill_one(proc)
                if item is None:
                    break
                live, now = item
                job = live.job
                if now and live.attempt == 1 and not registry.start(job, proc.name):
                    with self._lock:  # cancelled while queued: never sent
                        if proc.live is live:
                            proc.live = None
                    self._live.pop(job._id, None)
                    continue
                self._send_task(proc, live)
        if proc.live is None and self.AHEAD:
            self._recall_ahead()

    def _recall_ahead(self) -> None:
        """Some process is idle and nothing is pending: recall jobs sent
        ahead to busy processes (one per idle process), so that they run on
        the idle ones instead of waiting behind a long job.  A worker that
        has begun the job already keeps it (see `_on_answer`)."""
        with self._lock:
            if self._pending or self._stopping:
                return
            idle = sum(1 for p in self._procs if p.live is None and self._usable(p))
            idle -= sum(1 for p in self._procs if p.ahead is not None and p.ahead.recalling)
            recalls = []
            for p in self._procs:
                if idle <= 0:
                    break
                live = p.ahead
                if live is not None and not live.recalling and not p.killed:
                    live.recalling = True
                    recalls.append((p, live.ticket))
                    idle -= 1
        for p, ticket in recalls:
            _send_quietly(p, Recall(ticket))

    def _on_answer(self, proc: _Proc, msg: Answer) -> None:
        """*proc*'s answer to a `Recall`: the job goes back to the queue (and
        on to an idle process), or, if it has begun there, it is started here."""
        with self._lock:
            live = next((x for x in (proc.ahead, proc.live)
                         if x is not None and x.ticket == msg.ticket), None)
            if live is None or not live.recalling:
                return
            live.recalling = False
            returned = msg.returned
            if returned:
                if proc.ahead is live:
                    proc.ahead = None
                elif proc.live is live:
                    proc.live = None  # the job before it ended meanwhile
                live.proc = None
                if self._stopping:
                    self._live.pop(live.job._id, None)
                else:
                    self._pending.appendleft(live)  # it was next: it stays next
            begun = not returned and proc.live is live
        if returned:
            self._feed_all()
        elif begun:
            self._begun(proc, live)

    def _begun(self, proc: _Proc, live: _Live) -> None:
        """*live*'s job, sent ahead to *proc*, runs there now: start it in
        the registry (a retry's attempt is started already)."""
        if live.attempt == 1 and live.job._state is QUEUED:
            assert self._registry is not None
            self._registry.start(live.job, proc.name)

    def _confirm(self, proc: _Proc, job_id: int) -> None:
        """A message about *job_id* came from *proc* while its recall was
        open: the worker had begun it (the `Answer` says so too, later)."""
        live = proc.live
        if live is None or not live.recalling or live.job._id != job_id:
            return
        with self._lock:
            if not live.recalling:
                return
            live.recalling = False
        self._begun(proc, live)

    def _send_task(self, proc: _Proc, live: _Live) -> None:
        job = live.job
        if live.context is None:
            context = job._caller_context
            # A copy: the snapshot may be shared by several jobs (see
            # Dispatcher._caller_context); the job's output is written in it.
            live.context = None if context is None else context.copy()
        sources = live.sources
        if sources:  # each process gets a cell's lines once
            sources = {k: v for k, v in sources.items() if k not in proc.files}
            proc.files.update(sources)
        with contextlib.suppress(OSError):  # the process died: its reader fails the job and says how
            proc.send(Task(job._id, live.attempt, live.ticket, self._cap, sources), live.payload)

    def _feed_all(self) -> None:
        """Feed every process that can take a job (after a job came back
        to the pending queue)."""
        while True:
            with self._lock:
                proc = self._needy()
            if proc is None:
                return
            before = len(self._pending)
            self._feed(proc)
            if len(self._pending) >= before:
                return  # nothing was taken (the process cannot take any now)

    def _on_complete(self, job: Job) -> None:
        """Registry listener: a job sent ahead to a worker was cancelled
        before it started: tell the worker to skip it."""
        live = self._live.get(job._id)
        if live is None or job._started_at is not None:
            return
        proc = live.proc
        if proc is not None and (proc.ahead is live or proc.live is live):
            _send_quietly(proc, Skip(job._id))

    def _fail_unsent(self, job: Job, exc: BaseException) -> None:
        registry = self._registry
        assert registry is not None
        error = TypeError(_unsent_message(job, exc))
        error.__cause__ = exc
        context = job._caller_context
        if job._state is QUEUED:
            registry.start(job, "-")
        # Every further attempt would fail the same way.
        while registry.finish(job, None, error) and registry.restart(job):
            pass
        self._notify_failure(job, context)

    def _notify_failure(self, job: Job, context: contextvars.Context | None) -> None:
        if self.on_failure is not None and context is not None and job._state is FAILED:
            try:
                self.on_failure(job, context)
            except Exception:
                log.exception("nbfrost: the failure notice of job %s failed", job._id)

    # ------------------------------------------------------- the reader thread
    def _read(self, proc: _Proc) -> None:
        """Read *proc*'s frames until it exits, then clean up after it."""
        try:
            while True:
                msg = read_message(proc.stream)
                if msg is None:
                    break
                if isinstance(msg, Output):
                    self._confirm(proc, msg.job_id)
                    self._on_output(proc, msg)
                elif isinstance(msg, Progress):
                    self._confirm(proc, msg.job_id)
                    self._on_progress(proc, msg)
                elif isinstance(msg, Done):
                    payload = read_frame(proc.stream)
                    if payload is None:
                        break
                    self._confirm(proc, msg.job_id)
                    self._on_done(proc, msg, payload)
                elif isinstance(msg, Answer):
                    self._on_answer(proc, msg)
                elif isinstance(msg, Ready):
                    check_protocol(msg.protocol, f"worker {proc.name}")
                    self._on_ready(proc)
        except Exception:
            log.exception("nbfrost: reading from worker %s (pid %s) failed; it is replaced",
                          proc.name, proc.pid)
            proc.kill()
        finally:
            self._exited(proc)

    def _on_ready(self, proc: _Proc) -> None:
        with self._lock:
            proc.ready = True
        proc.settled.set()
        self._feed(proc)

    def _on_output(self, proc: _Proc, msg: Output) -> None:
        live = proc.live
        if live is None or live.job._id != msg.job_id or live.job._state is not RUNNING:
            return
        job = live.job
        if not job.write_output(msg.text, self._cap):
            return  # quiet: captured only
        lane = live.lane
        if lane is None:
            # Through a lane, like a thread job's output: whole lines, within
            # the job's notebook budget, written in the job's copied context
            # (ipykernel then puts it under the queuing cell).
            lane = live.lane = forward.Lane(job, live.gate, live.context)
        lane.put(real_stream(msg.stream), msg.text)

    def _on_progress(self, proc: _Proc, msg: Progress) -> None:
        live = proc.live
        if live is None or live.job._id != msg.job_id or live.job._state is not RUNNING:
            return
        live.job.set_progress(msg.fraction, msg.message)
        assert self._registry is not None
        self._registry.bump()

    def _on_done(self, proc: _Proc, msg: Done, payload: bytearray) -> None:
        registry = self._registry
        assert registry is not None
        live = proc.live
        if live is None or live.job._id != msg.job_id or live.attempt != msg.attempt:
            return
        job = live.job
        if job._started_at is None:
            # Cancelled while it was sent ahead: the worker skipped it.
            with self._lock:
                proc.live, proc.ahead = proc.ahead, None
            self._live.pop(job._id, None)
            nxt = proc.live
            if nxt is not None and not nxt.recalling:
                self._begun(proc, nxt)
            self._feed(proc)
            return
        try:
            value = pickle.loads(payload)
        except Exception as exc:
            ok, value = False, exc
        else:
            ok = msg.ok
        del payload
        if (msg.progress is not None or msg.message is not None) and job._state is RUNNING:
            job.set_progress(msg.progress, msg.message)
        if live.lane is not None:
            lane, live.lane = live.lane, None
            forward.end(lane)  # the output goes before the final badge
        error: BaseException | None = None
        result: Any = None
        if ok:
            result = value
        else:
            error = value if isinstance(value, BaseException) else RuntimeError(repr(value))
            if msg.traceback:
                error.__cause__ = RemoteTraceback(msg.traceback)
        value = None
        context = live.context
        retry = registry.finish(job, result, error) and registry.restart(job)
        result = error = None
        with self._lock:
            if retry:
                live.attempt += 1
                self._pending.appendleft(live)  # after the job already sent ahead
            # The job sent ahead is running in the worker now (unless a
            # recall of it is open: then its answer, or its first message, says).
            nxt, proc.ahead = proc.ahead, None
            proc.live = nxt
            begun = nxt is not None and not nxt.recalling
        if not retry:
            self._live.pop(job._id, None)
            self._notify_failure(job, context)
        if begun:
            # If it was cancelled meanwhile, the worker skips it (see
            # _on_complete) and reports it done; it stays ours until then.
            assert nxt is not None
            self._begun(proc, nxt)
        with self._lock:
            if not self._live:
                # A dict keeps the table of its largest size: a fresh one,
                # so a burst of queued jobs leaves no memory behind.
                self._live = {}
        self._feed(proc)

    def _exited(self, proc: _Proc) -> None:
        """*proc*'s pipe closed: reap it, fail its job if it still ran,
        start a replacement."""
        try:
            code = proc.popen.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.popen.wait()
        proc.settled.set()
        proc.stream.close()
        with contextlib.suppress(OSError):
            os.close(proc.fd)
        with self._lock:
            live, proc.live = proc.live, None
            ahead = proc.ahead
            proc.ahead = None
            # Its recall was open: the job before it ended, so it may have
            # begun (and perhaps killed the worker).  It counts as begun: it
            # fails with WorkerDied (or is retried) rather than run again.
            unconfirmed = live is not None and live.recalling
            if live is not None:
                live.recalling = False
            if ahead is not None:
                ahead.recalling = False
                if ahead.job._state is QUEUED or ahead.attempt > 1:
                    ahead.proc = None
                    self._pending.appendleft(ahead)  # it never ran: it goes first
                else:
                    self._live.pop(ahead.job._id, None)
            if proc in self._procs:
                self._procs.remove(proc)
            if not self._stopping and not proc.stopping:
                self._ensure_procs()  # a replacement, so the pool stays warm
        if live is not None:
            if unconfirmed:
                self._begun(proc, live)
            self._lost(proc, live, code)
        self._feed_all()

    def _lost(self, proc: _Proc, live: _Live, code: int | None) -> None:
        """*proc* died while it ran *live*'s job: fail it (or retry it)."""
        job = live.job
        if live.lane is not None:
            lane, live.lane = live.lane, None
            forward.end(lane)
        registry = self._registry
        assert registry is not None
        if job._state is RUNNING and job._started_at is not None:
            how = describe_exit(code)
            error = WorkerDied(
                f"the worker process {proc.name} (pid {proc.pid}) running job {job._id} "
                f"died: {how}. The pool starts a new process; if it ran out of memory or "
                f"crashed in C code, queue the job again with less work per job", code)
            context = live.context
            if registry.finish(job, None, error) and registry.restart(job):
                live.attempt += 1
                live.proc = None
                with self._lock:
                    if not self._stopping:
                        self._pending.appendleft(live)
                        return
            self._notify_failure(job, context)
        self._live.pop(job._id, None)

    # --------------------------------------------------------- interruption
    def interrupt(self, job: Job, exc_type: type[BaseException]) -> None:
        """Kill the process running *job* (SIGKILL): it stops at once, even
        in ``while True: pass`` or a C call.  The registry has already
        given the job its final state; a new process replaces this one.
        Called under the registry lock: only a signal is sent here."""
        live = self._live.get(job._id)
        proc = None if live is None else live.proc
        if proc is not None and proc.live is live:
            proc.kill()

    def request_cancel(self, job: Job) -> None:
        """Tell the process running *job* that ``nbfrost.cancelled()`` is true now."""
        live = self._live.get(job._id)
        proc = None if live is None else live.proc
        if proc is not None and proc.live is live:
            _send_quietly(proc, Cancel(job._id))

    def grace_expired(self, job: Job) -> None:
        """Nothing to free: an interrupted job's process was killed at once."""
        live = self._live.get(job._id)
        proc = None if live is None else live.proc
        if proc is not None and proc.live is live and proc.popen.poll() is None:
            proc.kill()

    # ---------------------------------------------------------------- cells
    @staticmethod
    def make_cell_job(source: str, filename: str, push: dict[str, Any]) -> ProcessCellJob:
        """A picklable callable that runs a ``%%frost`` cell body in a
        worker process (see `ProcessCellJob`).

        Raises:
            SyntaxError: now, if *source* does not compile.
        """
        return ProcessCellJob(source, filename, push)

    # --------------------------------------------------------------- sizing
    def resize(self, workers: int) -> None:
        """Run *workers* processes from now on: more start at once (if the
        pool has started), extra ones leave when their job ends."""
        if not 1 <= workers <= defaults.MAX_PROCESS_WORKERS:
            raise ValueError(f"process_workers must be between 1 and "
                             f"{defaults.MAX_PROCESS_WORKERS}, got {workers}")
        with self._lock:
            self._size = workers
            if self._started:
                self._ensure_procs()
            extra = len([p for p in self._procs if not p.stopping]) - workers
            for p in list(self._procs):
                if extra <= 0:
                    break
                if p.live is None and not p.stopping:
                    p.stopping = True
                    _send_quietly(p, Stop())
                    extra -= 1

    def stop(self, wait: bool, timeout: float = defaults.PROCESS_STOP_TIMEOUT) -> None:
        """Stop every worker process: idle ones exit now, a busy one after
        its job; with *wait*, wait for them (a process still alive after
        *timeout* seconds is killed).  Safe to call twice."""
        with self._lock:
            self._stopping = True
            procs = list(self._procs)
            pending, self._pending = list(self._pending), collections.deque()
        for live in pending:
            self._live.pop(live.job._id, None)
        for proc in procs:
            if not proc.stopping:
                proc.stopping = True
                _send_quietly(proc, Stop())
        if not wait:
            return
        current = threading.current_thread()
        for proc in procs:
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("nbfrost: worker %s (pid %s) did not stop within %g s; killed",
                            proc.name, proc.pid, timeout)
                proc.kill()
            reader = proc.reader
            if reader is not None and reader is not current:
                reader.join(timeout)
        _POOLS.discard(self)

    def __repr__(self) -> str:
        return f"<nbfrost ProcessBackend workers={self._size} live={len(self._procs)}>"


def _worker_env() -> dict[str, str]:
    """The environment of a worker: this one, with the directory nbfrost was
    imported from first on ``PYTHONPATH``, so the worker imports the same
    nbfrost before it gets the notebook's ``sys.path`` (in `Setup`)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["nbfrost"].__file__ or "")))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    return env


def _protocol() -> int:
    from .worker import PROTOCOL
    return PROTOCOL


def _send_quietly(proc: _Proc, msg: tuple) -> None:
    with contextlib.suppress(OSError):  # it exited already; its reader cleans up
        proc.send(msg)


def _dumps_job(job: Job) -> tuple[bytes, dict[str, list[str]]]:
    """``(fn, args, kwargs)`` pickled by value where needed (cloudpickle:
    functions, lambdas, classes and closures of the notebook travel whole),
    and the source lines of the notebook cells their code comes from."""
    import io

    buf = io.BytesIO()
    pickler = _pickler_class()(buf)
    pickler.dump((job._fn, job._args, job._kwargs))
    return buf.getvalue(), pickler.sources()


_PICKLER: Any = None
_UNKNOWN: Any = object()
#: File name -> the lines a worker needs for it (None: it reads the file
#: itself, or there is nothing to send).  Decided once per name: a cell's
#: file name changes with its text, and a real file is read by the worker.
_SOURCES: dict[str, list[str] | None] = {}


def _source_of(name: str) -> list[str] | None:
    import linecache

    if name.startswith("<") and name.endswith(">") and name not in linecache.cache:
        return None
    if os.path.exists(name):
        return None  # the worker reads it itself
    return linecache.getlines(name) or None


def _pickler_class() -> Any:
    """cloudpickle's pickler, keeping the file name of code sent by value.

    cloudpickle writes ``<dynamic-code>`` as the file name of every function
    it sends by value, so a traceback from the worker could not say which
    cell failed.  This subclass keeps the real name and collects the lines
    of files that exist only in this process (notebook cells, which IPython
    keeps in `linecache`), sent along so tracebacks show the cell's code.
    Without the private hook it needs (another cloudpickle), it is plain
    cloudpickle.
    """
    global _PICKLER
    if _PICKLER is not None:
        return _PICKLER
    import collections as _collections
    import functools
    import types

    import cloudpickle
    from cloudpickle import cloudpickle as _impl

    code_reduce = getattr(_impl, "_code_reduce", None)

    def reduce_code(files: set[str], code: types.CodeType) -> Any:
        assert code_reduce is not None  # only installed with it
        rv = code_reduce(code)
        if isinstance(rv, tuple) and len(rv) == 2 and isinstance(rv[1], tuple):
            name = code.co_filename
            args = tuple(name if a == "<dynamic-code>" else a for a in rv[1])
            files.add(name)
            return rv[0], args
        return rv

    class Pickler(cloudpickle.Pickler):
        def __init__(self, file: Any) -> None:
            self._files: set[str] = set()
            if code_reduce is not None:
                # A partial over the set, not a bound method: that would be a
                # cycle (pickler -> table -> method -> pickler) that keeps the
                # pickler's memo, and so the job's callable and arguments,
                # alive until the next garbage collection.
                self.dispatch_table = _collections.ChainMap(
                    {types.CodeType: functools.partial(reduce_code, self._files)},
                    cloudpickle.Pickler.dispatch_table)
            super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)

        def sources(self) -> dict[str, list[str]]:
            out = {}
            for name in self._files:
                lines = _SOURCES.get(name, _UNKNOWN)
                if lines is _UNKNOWN:
                    lines = _SOURCES[name] = _source_of(name)
                if lines:
                    out[name] = lines
            return out

    _PICKLER = Pickler
    return Pickler


def _unsent_message(job: Job, exc: BaseException) -> str:
    """Why *job* could not be sent to a worker process, naming the culprit."""
    import cloudpickle

    what = f"{type(exc).__name__}: {exc}"
    fn = job._fn
    if isinstance(fn, CellJob):
        for name, value in fn.push.items():
            try:
                cloudpickle.dumps(value)
            except Exception as err:
                return (f"job {job._id} was not run: the notebook variable {name!r} "
                        f"({type(value).__name__}) that the cell reads cannot be sent to a "
                        f"worker process ({type(err).__name__}: {err}); make it inside the "
                        "cell, or run the cell on threads (without --process)")
    for i, arg in enumerate(job._args):
        try:
            cloudpickle.dumps(arg)
        except Exception as err:
            return (f"job {job._id} was not run: its argument {i} ({type(arg).__name__}) "
                    f"cannot be sent to a worker process ({type(err).__name__}: {err})")
    for key, arg in job._kwargs.items():
        try:
            cloudpickle.dumps(arg)
        except Exception as err:
            return (f"job {job._id} was not run: its argument {key}= ({type(arg).__name__}) "
                    f"cannot be sent to a worker process ({type(err).__name__}: {err})")
    return (f"job {job._id} was not run: its callable {job._label!r} cannot be sent to a worker "
            f"process ({what}); what it uses from the notebook must pickle with cloudpickle "
            "(no open files, locks or sockets)")


if TYPE_CHECKING:
    # mypy checks that ProcessBackend has everything the dispatcher uses.
    _: type[Backend] = ProcessBackend
