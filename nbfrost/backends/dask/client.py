"""The client side of the Dask backend: `DaskBackend`, in the notebook's process.

It submits one `run_job` task per attempt, turns the worker events and the
returned `AttemptResult` into registry calls on its one thread, and takes
cancelled jobs off the cluster.  See the package docstring for how each
transition reaches the registry.
"""

from __future__ import annotations

import itertools
import logging
import queue
import re
import threading
import uuid
from typing import TYPE_CHECKING, Any

from ... import defaults, forward
from ...capture import real_stream
from ...job import QUEUED, RUNNING, TERMINAL, Job
from ..remote import RemoteTraceback
from .cells import CellJob
from .worker import (
    AttemptResult,
    AttemptSpec,
    Progress,
    Started,
    forget_cancelled,
    mark_cancelled,
    parse_event,
    run_job,
)

if TYPE_CHECKING:
    from ...registry import Registry
    from ..base import Backend

__all__ = ["DaskBackend"]

log = logging.getLogger("nbfrost")

_INSTALL_HINT = ('the Dask backend needs the "distributed" package; install it with '
                 'pip install "nbfrost[dask]"')

_serial = itertools.count()


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return distributed


_RemoteTraceback = RemoteTraceback  # shared with the process pool (see ..remote)


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
    shares_namespace = False  # a cell travels as a CellJob (make_cell_job)

    def __init__(self, workers: int = defaults.WORKERS, *, output_cap: int = defaults.OUTPUT_CAP,
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
        self._marked = False  # the workers hold some of our ids (worker.mark_cancelled)
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
        registry.listeners = (*registry.listeners, self._on_complete)
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
        self._live[job._id] = live
        self._send(live)

    def submit_many(self, jobs: list[Job]) -> None:
        """Send *jobs* to the cluster, one task each: the scheduler spreads
        them over the workers itself."""
        for job in jobs:
            self.submit(job)

    def _send(self, live: _Live) -> None:
        job = live.job
        spec = AttemptSpec(self._topic, job._id, live.attempt, self._cap, self._flag_name(job._id))
        key = f"{_key_name(job.display_name)}-nbfrost-{self._token}-{job._id}-{live.attempt}"
        try:
            future = self._client.submit(run_job, spec, job._fn, job._args, job._kwargs,
                                         pure=False, key=key)
        except Exception as exc:
            self._live.pop(job._id, None)
            error = RuntimeError(f"could not send job {job._id} to the Dask cluster "
                                 f"({type(exc).__name__}: {exc}); its callable and arguments "
                                 "must pickle with cloudpickle")
            error.__cause__ = exc
            self._fail_unstarted(job, error, "client")
            return
        live.future = future
        future.add_done_callback(self._on_done)
        if job._state in TERMINAL:  # cancelled while it was being sent
            self._inbox.put(("end", job))

    def _fail_unstarted(self, job: Job, error: BaseException, worker: str) -> None:
        registry = self._registry
        assert registry is not None
        if job._state is QUEUED:
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
        if job._id not in self._live:
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
                batch: list[Any] = []  # finished Dask futures
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

    def _handle_event(self, payload: Any) -> None:
        registry = self._registry
        assert registry is not None
        msg = parse_event(payload)
        if msg is None:
            return
        live = self._live.get(msg.job_id)
        if live is None:
            return
        job = live.job
        if isinstance(msg, Started):
            if msg.attempt == 1 and job._state is QUEUED and registry.start(
                    job, msg.worker, at=registry.clock() - msg.seconds):
                self._running.add(job._id)
        elif isinstance(msg, Progress) and job._state is RUNNING:
            job.set_progress(msg.fraction, msg.message)
            registry.bump()

    def _handle_command(self, what: str, job: Job) -> None:
        live = self._live.get(job._id)
        if live is None:
            return
        if what == "flag":
            if not live.flagged:
                live.flagged = True
                self._set_flag(job._id, True)
        elif what == "end" and job._state in TERMINAL:
            self._running.discard(job._id)
            future = live.future
            if future is None:
                return  # still being sent: _send looks at the state once it is
            if not future.done():
                if job._started_at is None:
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
            self._client.run(mark_cancelled, self._topic, [live.job._id for live in lives])
            self._client.cancel([live.future for live in lives])
        except Exception:
            log.warning("nbfrost: could not cancel %d tasks on the cluster", len(lives),
                        exc_info=True)
        for live in lives:
            self._drop(live)

    def _drop(self, live: _Live) -> None:
        self._live.pop(live.job._id, None)
        if live.flagged:
            live.flagged = False
            self._set_flag(live.job._id, False)

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
        if value is None and job._state in TERMINAL:
            self._drop(live)  # skipped on the worker: cancelled while queued
            return
        if live.ended:
            # The job was ended (timeout, interrupt) while its task ran on.
            if future.status == "finished" and isinstance(value, AttemptResult) and value.output:
                job.write_output(value.output, self._cap)
            self._drop(live)
            return
        if future.status == "finished" and isinstance(value, AttemptResult):
            if job._state is QUEUED and registry.start(job, value.worker,
                                                      at=registry.clock() - value.seconds):
                self._running.add(job._id)
            if value.output:
                self._deliver_output(job, value.output)
            if value.progress is not None or value.message is not None:
                job.set_progress(value.progress, value.message)
            error: BaseException | None = None
            result: Any = None
            if value.ok:
                result = value.value
            else:
                error = value.value
                if value.traceback:
                    error.__cause__ = _RemoteTraceback(value.traceback)
        else:
            if future.status == "cancelled" and job._state in TERMINAL:
                self._drop(live)
                return
            error = value if isinstance(value, BaseException) else _future_error(future)
            result = None
            if job._state is QUEUED and registry.start(job, "unknown"):
                self._running.add(job._id)
        if registry.finish(job, result, error) and registry.restart(job):
            live.attempt += 1
            self._send(live)
            return
        self._running.discard(job._id)
        self._drop(live)

    def _deliver_output(self, job: Job, output: str) -> None:
        if not job.write_output(output, self._cap):
            return  # quiet
        context = job._caller_context
        # Through a lane, like a thread job's output: whole lines, within the
        # job's notebook budget, written inside the job's copied context
        # (ipykernel then puts it under the queuing cell).  A copy: the
        # snapshot may be shared by several jobs (see
        # Dispatcher._caller_context), and a Context is entered by one thread
        # at a time.
        lane = forward.Lane(job, context=None if context is None else context.copy())
        lane.put(real_stream("stdout"), output)
        forward.end(lane)

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
        live = self._live.get(job._id)
        if live is not None and live.ended:
            log.warning(
                "nbfrost: job %s was %s but has not returned: Dask cannot stop a running "
                "thread, so worker %s stays busy until the job returns; make it check "
                "nbfrost.cancelled(), or restart that worker (client.restart_workers)",
                job._id, job._state.value, job._worker)

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
                client.run(forget_cancelled, self._topic)
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

        See `CellJob`.

        Raises:
            SyntaxError: now, if *source* does not compile.
        """
        return CellJob(source, filename, push)

    def __repr__(self) -> str:
        where = self._address or ("LocalCluster" if self._client is None or self._cluster
                                  else "client")
        return f"<nbfrost DaskBackend {where} workers={self._size}>"



if TYPE_CHECKING:
    # mypy checks that DaskBackend has everything the dispatcher uses.
    _: type[Backend] = DaskBackend

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
