"""The Dask backend: the same job lifecycle on a real `distributed` cluster.

Only the runner differs from the thread backend; the registry still owns
every rule.  How each transition reaches the registry:

* **submit**: ``client.submit(_run_job, ..., pure=False)``, one Dask task per
  attempt, so identical calls are never deduplicated.
* **started**: once an attempt has run for `START_REPORT_DELAY` (20 ms) on
  a worker, or at its first progress report, the worker-side wrapper logs
  an event (``Worker.log_event``) on a topic private to this backend; the
  scheduler forwards it to this client (``Client.subscribe_topic``).  So a
  job is ``running`` only once it runs on a worker, and ``worker`` is that
  worker's address.  A shorter attempt is reported started and finished
  together when its result arrives: one message less per job.  Both carry
  how long the attempt had run (the worker's monotonic clock), so
  ``started_at`` and ``duration`` are right to within the message's transit
  time.  The same event stream carries progress reports.
* **finished**: the wrapper never raises; it returns an envelope (result or
  error with the worker's traceback, captured output, last progress).  A
  done-callback on the Dask future hands it to this backend's one thread,
  ``nbfrost-dask-<n>``, which gathers finished futures in batches and calls
  ``registry.finish``.  If the "started" event is still in flight, the
  envelope starts the job first, so order never matters.
* **retries**: ``registry.finish`` says whether to run again; a new task is
  submitted and ``registry.restart`` counts the attempt (Dask's own
  ``retries=`` is not used, because it would hide the attempts).
* **cancel**: a queued job's task is taken off the cluster: the workers are
  told to skip it (``client.run``; a worker may already hold it in its
  ready queue), then its future is cancelled.  A running job is asked to
  stop through a `distributed.Event` per job that ``nbfrost.cancelled()``
  polls on the worker (at most every 0.1 s); the Dispatcher calls
  ``request_cancel`` for that.  Dask cannot stop a running thread:
  ``cancel(interrupt=True)`` and timeouts mark the job at once and set the
  flag, but a job that never checks ``nbfrost.cancelled()`` keeps its
  worker thread busy until it returns (its result is then dropped).

All registry calls happen on the backend thread (or the caller's thread for
``submit``), never on distributed's event-loop thread, so a slow user
callback cannot stall the client.
"""

from __future__ import annotations

import ast
import itertools
import logging
import pickle
import queue
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..capture import CURRENT, DEFAULT_OUTPUT_CAP, JobContext, ensure_installed
from ..job import QUEUED, RUNNING, TERMINAL, Job

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["DaskBackend", "CellJob", "RemoteJobError"]

log = logging.getLogger("nbfrost")

_INSTALL_HINT = ('the Dask backend needs the "distributed" package; install it with '
                 'pip install "nbfrost[dask]"')

#: Seconds between two looks at a job's cancel flag on the worker, and
#: between two progress messages sent from one job.
POLL_INTERVAL = 0.1

#: A job is reported running once it has run this long on a worker (or at
#: its first progress report).  Shorter jobs are reported started and
#: finished together, when their result arrives: one message less per job.
START_REPORT_DELAY = 0.02

_serial = itertools.count()


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return distributed


class RemoteJobError(Exception):
    """Stands in for a job's exception that could not be pickled back from
    the worker; its message names the original type."""


class _RemoteTraceback(Exception):
    """Carries the worker's formatted traceback as the ``__cause__`` of a
    job's error, so ``JobStatus.traceback`` shows where on the worker it
    failed."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f"\n\"\"\"\n{self.tb}\"\"\""


# ---------------------------------------------------------------- worker side
class _WorkerJob:
    """The worker-side stand-in for a job record: the fields that
    `StreamRouter` and `JobContext` touch."""

    __slots__ = ("id", "out", "out_size", "progress", "message", "cancel_requested")

    def __init__(self, job_id: int) -> None:
        self.id = job_id
        self.out: list[str] = []
        self.out_size = 0
        self.progress: float | None = None
        self.message: str | None = None
        self.cancel_requested = False

    def write_output(self, text: str, cap: int) -> bool:
        """Keep up to *cap* characters; never echo on the worker (the client
        echoes the output in the queuing cell when the job comes back)."""
        size = self.out_size
        if size < cap:
            if size + len(text) > cap:
                self.out.append(text[: cap - size])
                self.out.append(f"\n[nbfrost: output truncated at {cap} characters]\n")
                self.out_size = cap
            else:
                self.out.append(text)
                self.out_size = size + len(text)
        return False

    @property
    def output(self) -> str:
        return "".join(self.out)


class _WorkerContext(JobContext):
    """The `JobContext` of one attempt running on a Dask worker.

    It tells the client that the attempt started once it has run for
    `START_REPORT_DELAY` seconds (a shorter attempt is reported started and
    finished together, by its result), or at its first progress report.
    ``cancelled()`` polls the job's distributed Event at most every
    `POLL_INTERVAL` seconds; ``report()`` sends progress as a worker event,
    at most one per interval (the last one is sent when the interval ends,
    and it also comes back with the result).
    """

    __slots__ = ("worker", "topic", "flag_name", "started", "start_msg", "next_poll",
                 "last_sent", "flush_due", "active", "lock")

    def __init__(self, cap: int, worker: Any, topic: str, flag_name: str, job_id: int,
                 attempt: int) -> None:
        super().__init__(cap)
        self.job = _WorkerJob(job_id)
        self.worker = worker
        self.topic = topic
        self.flag_name = flag_name
        self.started = time.monotonic()
        self.start_msg: list | None = ["s", job_id, attempt, worker.address]
        self.next_poll = 0.0
        self.last_sent = 0.0
        self.flush_due = False
        self.active = True
        self.lock = threading.Lock()  # guards start_msg, last_sent, flush_due, active
        _StartReporter.of(worker).watch(self)

    def _report_start(self) -> None:
        with self.lock:
            msg, self.start_msg = self.start_msg, None
            if not self.active:
                return  # finished already: its result reports the start
        if msg is not None:
            self.worker.log_event(self.topic, msg + [time.monotonic() - self.started])

    def cancelled(self) -> bool:
        job = self.job
        if job.cancel_requested:
            return True
        skip = _CANCELLED.get(self.topic)
        if skip and job.id in skip:  # cancelled before the client saw it start
            job.cancel_requested = True
            return True
        now = time.monotonic()
        if now < self.next_poll:
            return False
        self.next_poll = now + POLL_INTERVAL
        from distributed import Event
        try:
            flag = Event(self.flag_name).is_set()
        except Exception:  # the scheduler is gone: nothing can ask us to stop
            log.debug("nbfrost: could not read the cancel flag %s", self.flag_name, exc_info=True)
            return False
        if flag:
            job.cancel_requested = True
        return bool(flag)

    def report(self, fraction: float | None, message: str | None) -> None:
        super().report(fraction, message)
        now = time.monotonic()
        with self.lock:
            if now - self.last_sent >= POLL_INTERVAL:
                self.last_sent = now
                send = True
            else:
                send = False
                if not self.flush_due:
                    self.flush_due = True
                    delay = self.last_sent + POLL_INTERVAL - now
                    loop = self.worker.loop
                    loop.add_callback(loop.call_later, delay, self._flush)
        if send:
            self._send()

    def _flush(self) -> None:
        with self.lock:
            self.flush_due = False
            if not self.active:
                return  # the result carries the last values
            self.last_sent = time.monotonic()
        self._send()

    def _send(self) -> None:
        job = self.job
        with self.lock:
            start, self.start_msg = self.start_msg, None
        if start is not None:  # progress implies it started: say so first
            self.worker.log_event(self.topic, start + [time.monotonic() - self.started])
        self.worker.log_event(self.topic, ["p", job.id, job.progress, job.message])

    def close(self) -> None:
        with self.lock:
            self.active = False
        _StartReporter.of(self.worker).unwatch(self)


class _StartReporter:
    """Per worker: sends the "started" message of attempts that have run
    for `START_REPORT_DELAY` seconds.

    One timer on the worker's event loop serves all of them, armed only
    while an attempt is being watched, so a stream of short jobs costs no
    message and almost no wake-up of the loop.
    """

    _lock = threading.Lock()  # guards _by_worker
    _by_worker: dict[int, _StartReporter] = {}

    @classmethod
    def of(cls, worker: Any) -> _StartReporter:
        reporter = cls._by_worker.get(id(worker))
        if reporter is None or reporter.worker is not worker:
            with cls._lock:
                reporter = cls._by_worker.get(id(worker))
                if reporter is None or reporter.worker is not worker:
                    reporter = cls._by_worker[id(worker)] = cls(worker)
        return reporter

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.lock = threading.Lock()  # guards watched, armed
        self.watched: dict[_WorkerContext, float] = {}  # context -> when it is due
        self.armed = False

    def watch(self, ctx: _WorkerContext) -> None:
        with self.lock:
            self.watched[ctx] = time.monotonic() + START_REPORT_DELAY
            if self.armed:
                return
            self.armed = True
        loop = self.worker.loop
        loop.add_callback(loop.call_later, START_REPORT_DELAY, self._tick)

    def unwatch(self, ctx: _WorkerContext) -> None:
        with self.lock:
            self.watched.pop(ctx, None)

    def _tick(self) -> None:
        """On the worker's event loop: report the attempts now due."""
        now = time.monotonic()
        with self.lock:
            due = [c for c, t in self.watched.items() if t <= now]
            for c in due:
                del self.watched[c]
            later = min(self.watched.values(), default=None)
            self.armed = later is not None
        for c in due:
            c._report_start()
        if later is not None:
            self.worker.loop.call_later(max(0.0, later - now), self._tick)


def _portable_error(exc: BaseException) -> BaseException:
    """*exc*, or a `RemoteJobError` if it would not survive pickling."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RemoteJobError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")


def _format_tb(exc: BaseException) -> str:
    # Skip this wrapper's own frame: the traceback starts at the user's code.
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code is _run_job.__code__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


#: In a worker process: per backend topic, the ids of jobs cancelled before
#: they started, pushed by the client (`_mark_cancelled`) so that a task the
#: worker had already taken is skipped rather than run.
_CANCELLED: dict[str, set[int]] = {}


def _mark_cancelled(topic: str, ids: list[int]) -> None:
    """Run on every worker (``client.run``): never start these jobs."""
    _CANCELLED.setdefault(topic, set()).update(ids)


def _forget_cancelled(topic: str) -> None:
    _CANCELLED.pop(topic, None)


def _run_job(spec: tuple, fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple | None:
    """Run one attempt of a job on a Dask worker (the task nbfrost submits).

    *spec* is ``(topic, job_id, attempt, output_cap, flag_name)``.  Returns
    ``(ok, value, traceback_text, output, progress, message, worker, seconds)``,
    where *value* is the result or the (picklable) exception, or None for a
    job cancelled before it started; it never raises, so every outcome goes
    through the registry's rules.
    """
    from distributed import get_worker

    topic, job_id, attempt, cap, flag_name = spec
    skip = _CANCELLED.get(topic)
    if skip and job_id in skip:
        skip.discard(job_id)
        return None  # cancelled while queued
    worker = get_worker()
    address = worker.address
    ensure_installed()
    ctx = _WorkerContext(cap, worker, topic, flag_name, job_id, attempt)
    previous = getattr(CURRENT, "ctx", None)
    CURRENT.ctx = ctx
    try:
        value = fn(*args, **kwargs)
        ok, tb = True, None
    except BaseException as exc:  # a job never kills the worker's thread
        ok, value, tb = False, _portable_error(exc), _format_tb(exc)
        exc.__traceback__ = None  # drop the frames (and what they hold) now
    finally:
        CURRENT.ctx = previous
        ctx.close()
    job = ctx.job
    ran = time.monotonic() - ctx.started
    return (ok, value, tb, job.output, job.progress, job.message, address, ran)


class CellJob:
    """A ``%%frost`` cell body to run on a Dask worker, in a fresh namespace.

    The namespace holds only the pushed variables (they travel with this
    object, pickled by cloudpickle).  Calling it runs the body and returns
    the value of a trailing expression (``None`` if there is none).  A
    `NameError` for a name that was not pushed is raised again with a hint
    to add ``--push name``.

    Raises:
        SyntaxError: when built, if the source does not compile.
    """

    def __init__(self, source: str, filename: str, push: dict[str, Any]) -> None:
        if not isinstance(source, str):
            raise TypeError(f"source must be a str, got {type(source).__name__}")
        self.source = source
        self.filename = filename
        self.push = dict(push)
        self._compile()  # a syntax error shows now, before anything is queued

    def _compile(self) -> tuple[Any, Any]:
        tree = ast.parse(self.source, self.filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        body = compile(tree, self.filename, "exec")
        tail = compile(last, self.filename, "eval") if last is not None else None
        return body, tail

    def __call__(self) -> Any:
        import linecache

        # Tracebacks on the worker show the cell's lines, as in the notebook.
        linecache.cache[self.filename] = (len(self.source), None,
                                          self.source.splitlines(True), self.filename)
        body, tail = self._compile()
        ns: dict[str, Any] = {"__name__": "__nbfrost_cell__", "__builtins__": __builtins__}
        ns.update(self.push)
        try:
            exec(body, ns)
            return eval(tail, ns) if tail is not None else None
        except NameError as exc:
            name = getattr(exc, "name", None)
            if name is None or name in self.push:
                raise
            raise NameError(
                f"{exc}: the cell runs on a Dask worker in a fresh namespace; add "
                f"--push {name} to ship it from the notebook", name=name) from None

    def __repr__(self) -> str:
        first = self.source.strip().splitlines()[0] if self.source.strip() else ""
        return f"<nbfrost cell job {first[:40]!r} push={sorted(self.push)}>"


# ---------------------------------------------------------------- client side
class _Live:
    """What the backend knows about one submitted job (backend thread only,
    except `future`, which ``submit`` sets before the job can finish)."""

    __slots__ = ("job", "future", "attempt", "flagged", "ended")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.future: Any = None
        self.attempt = 1
        self.flagged = False   # its cancel Event is set on the scheduler
        self.ended = False     # terminal in the registry, task still running


_STOP = object()


class DaskBackend:
    """Run jobs as tasks on a `distributed` cluster.

    Args:
        workers: with neither *address* nor *client*: how many single-thread
            worker processes the owned `LocalCluster` gets.  Otherwise
            ignored (the cluster decides).
        output_cap: characters of stdout/stderr kept per job.
        address: a scheduler address (``"tcp://127.0.0.1:8786"``) to
            connect to; the client is closed on ``stop``, the cluster is not.
        client: an existing synchronous `distributed.Client` to use; it is
            left open on ``stop``.
        **cluster_options: extra `LocalCluster` arguments (only without
            *address* and *client*).

    Raises:
        ImportError: ``distributed`` is not installed (says what to install).
        TypeError, ValueError: bad arguments; nothing is started.
    """

    name = "dask"

    def __init__(self, workers: int = 4, *, output_cap: int = DEFAULT_OUTPUT_CAP,
                 address: str | None = None, client: Any = None,
                 **cluster_options: Any) -> None:
        distributed = _import_distributed()
        if address is not None and client is not None:
            raise ValueError("pass either address= or client=, not both")
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a scheduler address string such as "
                            f"'tcp://127.0.0.1:8786', got {type(address).__name__} {address!r}")
        if client is not None:
            if not isinstance(client, distributed.Client):
                raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
            if client.asynchronous:
                raise ValueError("client must be a synchronous distributed.Client "
                                 "(created without asynchronous=True)")
        if cluster_options and (address is not None or client is not None):
            raise TypeError(f"LocalCluster options {sorted(cluster_options)} only apply when "
                            "nbfrost starts the cluster (without address= or client=)")
        self._size = workers
        self._cap = output_cap
        self._address = address
        self._client: Any = client
        self._owns_client = client is None
        self._cluster: Any = None
        self._cluster_options = cluster_options
        self._token = uuid.uuid4().hex[:8]
        self._topic = f"nbfrost-{self._token}"
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        # Submitted, not yet finished jobs, by id.  Written by `submit` (any
        # thread) and the backend thread; dict operations are atomic.
        self._live: dict[int, _Live] = {}
        self._running: set[int] = set()  # started on a worker (backend thread)
        self._to_cancel: list[_Live] = []  # never-started jobs to cancel (backend thread)
        self._marked = False  # the workers hold some of our ids in _CANCELLED
        self._registry: Registry | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ------------------------------------------------------------------ life
    def start(self, registry: Registry) -> None:
        """Connect (or start the owned LocalCluster), subscribe to this
        backend's worker events and start the backend thread."""
        from distributed import Client, LocalCluster

        self._registry = registry
        if self._client is None:
            if self._address is None:
                options: dict[str, Any] = dict(
                    n_workers=self._size, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address="127.0.0.1:0",
                    worker_dashboard_address="127.0.0.1:0")
                options.update(self._cluster_options)
                self._cluster = LocalCluster(**options)
                try:
                    self._client = Client(self._cluster, set_as_default=False)
                except BaseException:
                    self._cluster.close()
                    raise
            else:
                self._client = Client(self._address, set_as_default=False)
        if self._cluster is None:
            self._size = max(1, sum(self._client.nthreads().values()))
        self._client.subscribe_topic(self._topic, self._on_event)
        registry.listeners = registry.listeners + (self._on_complete,)
        self._thread = threading.Thread(target=self._loop, name=f"nbfrost-dask-{next(_serial)}",
                                        daemon=True)
        self._thread.start()

    @property
    def client(self) -> Any:
        """The `distributed.Client` jobs are submitted with."""
        return self._client

    @property
    def cluster(self) -> Any:
        """The `LocalCluster` this backend started, or None."""
        return self._cluster

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's URL, when the scheduler serves one."""
        return getattr(self._client, "dashboard_link", None)

    @property
    def workers(self) -> int:
        return self._size

    def busy(self) -> int:
        return len(self._running)

    def threads(self) -> list[threading.Thread]:
        """The threads nbfrost itself started (for tests and diagnostics)."""
        t = self._thread
        return [t] if t is not None and t.is_alive() else []

    # --------------------------------------------------------------- running
    def submit(self, job: Job) -> None:
        """Send *job* to the cluster.  If it cannot be sent (say, its callable
        does not pickle), the job fails with that error."""
        live = _Live(job)
        self._live[job.id] = live
        self._send(live)

    def _send(self, live: _Live) -> None:
        job = live.job
        spec = (self._topic, job.id, live.attempt, self._cap, self._flag_name(job.id))
        key = f"{_key_name(job.display_name)}-nbfrost-{self._token}-{job.id}-{live.attempt}"
        try:
            future = self._client.submit(_run_job, spec, job.fn, job.args, job.kwargs,
                                         pure=False, key=key)
        except Exception as exc:
            self._live.pop(job.id, None)
            error = RuntimeError(f"could not send job {job.id} to the Dask cluster "
                                 f"({type(exc).__name__}: {exc}); its callable and arguments "
                                 "must pickle with cloudpickle")
            error.__cause__ = exc
            self._fail_unstarted(job, error, "client")
            return
        live.future = future
        future.add_done_callback(self._on_done)
        if job.state in TERMINAL:  # cancelled while it was being sent
            self._inbox.put(("end", job))

    def _fail_unstarted(self, job: Job, error: BaseException, worker: str) -> None:
        registry = self._registry
        assert registry is not None
        if job.state is QUEUED:
            registry.start(job, worker)
        # Every further attempt would fail the same way.
        while registry.finish(job, None, error) and registry.restart(job):
            pass

    def _flag_name(self, job_id: int) -> str:
        return f"{self._topic}-cancel-{job_id}"

    # Both run on distributed's threads: only hand over to the backend thread.
    def _on_event(self, event: tuple) -> None:
        self._inbox.put(("event", event[1]))

    def _on_done(self, future: Any) -> None:
        self._inbox.put(future)

    def _on_complete(self, job: Job) -> None:
        """Registry listener: a job ended (maybe cancelled or timed out
        elsewhere); release its task on the cluster."""
        if job.id not in self._live:
            return
        if threading.current_thread() is self._thread:
            self._handle_command("end", job)  # e.g. a callback cancelled another job
        else:
            self._inbox.put(("end", job))

    def _loop(self) -> None:
        get = self._inbox.get
        try:
            while True:
                item = get()
                batch = []
                while True:
                    if item is _STOP:
                        self._handle_batch(batch)
                        return
                    if type(item) is not tuple:
                        batch.append(item)  # a finished Dask future
                    elif item[0] == "event":
                        self._handle_event(item[1])
                    else:
                        self._handle_command(*item)
                    try:
                        item = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                self._release()
                self._handle_batch(batch)
        except BaseException:
            log.exception("nbfrost: the Dask backend thread failed")
            raise
        finally:
            self._close()

    def _handle_event(self, msg: Any) -> None:
        registry = self._registry
        assert registry is not None
        kind, job_id = msg[0], msg[1]
        live = self._live.get(job_id)
        if live is None:
            return
        job = live.job
        if kind == "s":
            # msg: "s", job id, attempt, worker address, seconds since it started
            if msg[2] == 1 and job.state is QUEUED:
                if registry.start(job, msg[3], at=registry.clock() - msg[4]):
                    self._running.add(job.id)
        elif kind == "p" and job.state is RUNNING:
            if msg[2] is not None:
                job.progress = msg[2]
            if msg[3] is not None:
                job.message = msg[3]
            registry.bump()

    def _handle_command(self, what: str, job: Job) -> None:
        live = self._live.get(job.id)
        if live is None:
            return
        if what == "flag":
            if not live.flagged:
                live.flagged = True
                self._set_flag(job.id, True)
        elif what == "end" and job.state in TERMINAL:
            self._running.discard(job.id)
            future = live.future
            if future is None:
                return  # still being sent: _send looks at the state once it is
            if not future.done():
                if job.started_at is None:
                    # Not started: take it off the cluster (batched, see _loop).
                    self._to_cancel.append(live)
                else:
                    # Running on a worker, which cannot be stopped: keep the
                    # flag set until the task returns (see _finished).
                    live.ended = True
                return
            self._drop(live)

    def _release(self) -> None:
        """Cancel the collected never-started tasks in one scheduler call."""
        lives = self._to_cancel
        if not lives:
            return
        self._to_cancel = []
        self._marked = True
        try:
            # First tell the workers to skip these jobs (a worker may hold a
            # task in its ready queue and start it before the cancel below
            # reaches it), then take the tasks off the scheduler.
            self._client.run(_mark_cancelled, self._topic, [live.job.id for live in lives])
            self._client.cancel([live.future for live in lives])
        except Exception:
            log.warning("nbfrost: could not cancel %d tasks on the cluster", len(lives),
                        exc_info=True)
        for live in lives:
            self._drop(live)

    def _drop(self, live: _Live) -> None:
        self._live.pop(live.job.id, None)
        if live.flagged:
            live.flagged = False
            self._set_flag(live.job.id, False)

    def _set_flag(self, job_id: int, value: bool) -> None:
        from distributed import Event

        try:
            event = Event(self._flag_name(job_id), client=self._client)
            event.set() if value else event.clear()
        except Exception:
            log.warning("nbfrost: could not %s the cancel flag of job %s on the cluster",
                        "set" if value else "clear", job_id, exc_info=True)

    def _handle_batch(self, futures: list) -> None:
        if not futures:
            return
        finished = [f for f in futures if f.status == "finished"]
        values: dict[Any, Any] = {}
        if finished:
            try:
                values = dict(zip(finished, self._client.gather(finished)))
            except Exception:
                # One result would not come back; fetch them one by one so
                # only that job fails.
                for f in finished:
                    try:
                        values[f] = f.result()
                    except Exception as exc:
                        values[f] = exc
        for f in futures:
            self._finished(f, values.get(f))

    def _finished(self, future: Any, value: Any) -> None:
        registry = self._registry
        assert registry is not None
        job_id = _job_id_of(future.key)
        live = self._live.get(job_id)
        if live is None or live.future is not future:
            return  # released already (cancelled, timed out, or an old attempt)
        job = live.job
        if value is None and job.state in TERMINAL:
            self._drop(live)  # skipped on the worker: cancelled while queued
            return
        if live.ended:
            # The job was ended (timeout, interrupt) while its task ran on.
            if future.status == "finished" and isinstance(value, tuple) and value[3]:
                job.write_output(value[3], self._cap)
            self._drop(live)
            return
        if future.status == "finished" and isinstance(value, tuple):
            ok, payload, tb, output, progress, message, worker, ran = value
            if job.state is QUEUED and registry.start(job, worker, at=registry.clock() - ran):
                self._running.add(job.id)
            if output:
                self._deliver_output(job, output)
            if progress is not None:
                job.progress = progress
            if message is not None:
                job.message = message
            error = None
            if not ok:
                error = payload
                if tb:
                    error.__cause__ = _RemoteTraceback(tb)
            result = payload if ok else None
        else:
            if future.status == "cancelled" and job.state in TERMINAL:
                self._drop(live)
                return
            error = value if isinstance(value, BaseException) else _future_error(future)
            result = None
            if job.state is QUEUED and registry.start(job, "unknown"):
                self._running.add(job.id)
        if registry.finish(job, result, error) and registry.restart(job):
            live.attempt += 1
            self._send(live)
            return
        self._running.discard(job.id)
        self._drop(live)

    def _deliver_output(self, job: Job, output: str) -> None:
        if not job.write_output(output, self._cap):
            return  # quiet
        ctx = job.ctx
        import sys

        # The router passes it through (this thread runs no job); inside the
        # job's copied context ipykernel puts it under the queuing cell.
        if ctx is not None:
            # A copy: the snapshot may be shared by several jobs (see
            # Dispatcher._snapshot), and a Context is entered by one thread
            # at a time.
            ctx.copy().run(sys.stdout.write, output)
        else:
            sys.stdout.write(output)

    # --------------------------------------------------------- interruption
    def request_cancel(self, job: Job) -> None:
        """A cooperative cancel of a running job was asked: set its flag."""
        self._inbox.put(("flag", job))

    def interrupt(self, job: Job, exc_type: type[BaseException]) -> None:
        """Set the job's cancel flag and release its task (non-blocking).

        Dask cannot raise inside a worker's thread: a job that never checks
        ``nbfrost.cancelled()`` runs on until it returns, its result dropped.
        """
        self._inbox.put(("flag", job))

    def grace_expired(self, job: Job) -> None:
        """Warn if an interrupted job's task still runs: Dask cannot stop it."""
        live = self._live.get(job.id)
        if live is not None and live.ended:
            log.warning(
                "nbfrost: job %s was %s but has not returned: Dask cannot stop a running "
                "thread, so worker %s stays busy until the job returns; make it check "
                "nbfrost.cancelled(), or restart that worker (client.restart_workers)",
                job.id, job.state.value, job.worker)

    # ---------------------------------------------------------------- sizing
    def resize(self, workers: int) -> None:
        """Scale the owned LocalCluster to *workers* processes.

        Raises:
            RuntimeError: the cluster is not nbfrost's (scale it yourself).
        """
        if self._cluster is None:
            raise RuntimeError("this Dispatcher uses a Dask cluster it did not start; resize "
                               "that cluster itself (for example cluster.scale(n))")
        self._cluster.scale(workers)
        self._size = workers

    def stop(self, wait: bool) -> None:
        """Stop the backend thread; close the client and the cluster it owns."""
        if self._stopping:
            return
        self._stopping = True
        self._inbox.put(_STOP)
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _close(self) -> None:
        client = self._client
        if client is None:
            return
        self._release()
        try:
            client.unsubscribe_topic(self._topic)
        except Exception:
            log.debug("nbfrost: unsubscribe failed", exc_info=True)
        futures = [live.future for live in self._live.values()
                   if live.future is not None and not live.future.done()]
        try:
            if futures:
                client.cancel(futures)
            if self._marked:
                client.run(_forget_cancelled, self._topic)
        except Exception:
            log.debug("nbfrost: cleaning up on the cluster failed", exc_info=True)
        self._live.clear()
        self._running.clear()
        if self._owns_client:
            try:
                client.close()
            finally:
                if self._cluster is not None:
                    self._cluster.close()

    @staticmethod
    def make_cell_job(source: str, filename: str, push: dict[str, Any]) -> CellJob:
        """A picklable callable that runs a ``%%frost`` cell body on a worker.

        See `CellJob`.  Raises SyntaxError now if *source* does not compile.
        """
        return CellJob(source, filename, push)

    def __repr__(self) -> str:
        where = self._address or ("LocalCluster" if self._client is None or self._cluster
                                  else "client")
        return f"<nbfrost DaskBackend {where} workers={self._size}>"


_KEY_SAFE = re.compile(r"[^A-Za-z0-9_.]+")


def _key_name(name: str) -> str:
    return _KEY_SAFE.sub("_", name)[:40] or "job"


def _job_id_of(key: Any) -> int:
    # Keys end in "-<job id>-<attempt>".
    return int(str(key).rsplit("-", 2)[1])


def _future_error(future: Any) -> BaseException:
    """The exception of a future that did not finish normally."""
    if future.status == "cancelled":
        return RuntimeError("the Dask cluster dropped this job's task (a worker or the "
                            "scheduler went away?); queue it again")
    try:
        exc = future.exception()
    except Exception as err:
        exc = err
    return exc if isinstance(exc, BaseException) else RuntimeError(str(exc))
