"""The Dask backend against a real ``distributed.LocalCluster(processes=True)``
bound to 127.0.0.1, side by side with the thread backend.

One cluster serves the whole module (starting one costs about a second);
each test makes its own Dispatcher on it with ``client=``.  Jobs run in other
processes, so they synchronise through `distributed.Event`/`Queue` objects
(on the thread backend, their `threading`/`queue` twins with the same API):
events, not sleeps.  A few tests start their own cluster to check what only
an owned cluster does (loopback-only sockets, closing, threads).
"""

from __future__ import annotations

import functools
import itertools
import queue as queue_mod
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import cast

import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import helpers  # noqa: E402
from helpers import assert_no_leaked_threads, live_threads, wait_for_threads  # noqa: E402

import nbfrost  # noqa: E402
from nbfrost import JobCancelled, JobFailed, JobNotFound, JobState, JobTimeout  # noqa: E402
from nbfrost.backends.dask import DaskBackend  # noqa: E402

# Jobs defined here run in the workers' processes, which cannot import this
# test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.timeout(120)]

WAIT = 30.0
ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = {"127.0.0.1", "::1"}
_names = itertools.count()


def dask_backend(d: nbfrost.Dispatcher) -> DaskBackend:
    """*d*'s backend as what it is here, for the tests that look inside it."""
    return cast(DaskBackend, d.backend)


def loopback_cluster(n: int = 2, **kw):
    return distributed.LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0", **kw)


@pytest.fixture(scope="module")
def cluster():
    c = loopback_cluster(2)
    yield c
    c.close()


@pytest.fixture(scope="module")
def client(cluster):
    cl = distributed.Client(cluster, set_as_default=False)
    # Warm up what distributed starts once per process (its callback and
    # offload threads, the worker clients behind Event/Queue), so that the
    # per-test thread baselines include them.
    done = threading.Event()
    f = cl.submit(_warm_up, pure=False)
    f.add_done_callback(lambda _f: done.set())
    assert done.wait(WAIT) and f.result() == 2
    yield cl
    cl.close()


def _warm_up() -> int:
    return len(distributed.get_client().scheduler_info()["workers"])


# Poll: a remote state change has no local event to wait on.
eventually = functools.partial(helpers.eventually, timeout=WAIT)


class Kit:
    """What a test needs from one backend: dispatchers and sync objects that
    work across its workers."""

    def __init__(self, kind: str, client) -> None:
        self.kind = kind
        self.client = client
        self.dispatchers: list[nbfrost.Dispatcher] = []
        self.gates: list = []

    def dispatcher(self, workers: int = 2, **kw) -> nbfrost.Dispatcher:
        if self.kind == "dask":
            d = nbfrost.Dispatcher(workers, backend="dask", client=self.client, **kw)
        else:
            d = nbfrost.Dispatcher(workers, **kw)
        self.dispatchers.append(d)
        return d

    def event(self):
        if self.kind == "dask":
            e = distributed.Event(f"nbfrost-test-{uuid.uuid4().hex}", client=self.client)
        else:
            e = threading.Event()
        self.gates.append(e)
        return e

    def queue(self):
        if self.kind == "dask":
            return distributed.Queue(f"nbfrost-test-{uuid.uuid4().hex}", client=self.client)
        return queue_mod.Queue()

    def close(self) -> None:
        for g in self.gates:  # never leave a worker blocked for the next test
            g.set()
        for d in self.dispatchers:
            d.shutdown(wait=True, timeout=WAIT)


@pytest.fixture(params=["threads", "dask"])
def kit(request):
    # The module's client first, so its threads are part of the baseline.
    client = request.getfixturevalue("client") if request.param == "dask" else None
    baseline = live_threads()
    k = Kit(request.param, client)
    yield k
    k.close()
    assert_no_leaked_threads(baseline)


# ------------------------------------------------------------------ jobs
def add(a, b):
    return a + b


def hold(gate, q=None, value="held"):
    if q is not None:
        q.put("started")
    assert gate.wait(WAIT)
    return value


def until_cancelled(q, gate):
    """Loop until nbfrost.cancelled() (or the gate), then say so."""
    while not nbfrost.cancelled():
        if gate.wait(0.02):
            q.put("gate")
            return "gate"
    q.put("saw cancel")
    return "stopped"


def inner_failure(x):
    raise ValueError(f"boom {x}")


def fails(x):
    return inner_failure(x)


def flaky(q, failures):
    q.put(1)
    if q.qsize() <= failures:
        raise RuntimeError(f"attempt {q.qsize()} fails")
    return q.qsize()


def chatty(gate):
    print("to stdout")
    print("to stderr", file=sys.stderr)
    nbfrost.report(0.5, "half way")
    assert gate.wait(WAIT)
    for _ in nbfrost.progress(range(4), message="steps"):
        pass
    return "ok"


def worker_names(kit, d):
    if kit.kind == "dask":
        return set(kit.client.scheduler_info()["workers"])
    return {f"worker-{i}" for i in range(d.workers)}


# ---------------------------------------------------------- states, times
def test_states_times_and_worker(kit):
    """A job is running only once it starts on a worker; times are ordered;
    ``worker`` is the Dask worker's address."""
    d = kit.dispatcher(workers=2)
    gate, q = kit.event(), kit.queue()
    held = [d.queue(hold, gate, q, name=f"hold{i}") for i in range(2)]
    waiting = d.queue(hold, gate, name="waiting")
    for t in held:
        eventually(lambda t=t: t.state is JobState.RUNNING, what=f"{t.name} running")  # type: ignore[misc]
    assert q.get(timeout=WAIT) == "started" and q.get(timeout=WAIT) == "started"
    # Both workers are busy: the third job was submitted but has not started.
    s = waiting.status()
    assert s.state is JobState.QUEUED and s.started_at is None and s.worker is None
    assert d.stats()["busy"] == 2
    workers = worker_names(kit, d)
    assert {t.status().worker for t in held} <= workers
    assert len({t.status().worker for t in held}) == 2
    gate.set()
    assert [t.result(WAIT) for t in [*held, waiting]] == ["held"] * 3
    for t in [*held, waiting]:
        s = t.status()
        assert s.state is JobState.SUCCEEDED and s.success and s.attempts == 1
        assert s.queued_at <= s.started_at <= s.finished_at
        assert s.duration == pytest.approx((s.finished_at - s.started_at).total_seconds(), abs=1e-5)
        assert s.worker in workers
    assert d.stats()["busy"] == 0


def test_durations_are_the_time_on_the_worker(kit):
    """Short jobs (reported with their result) and long ones (reported when
    they start) both get their real running time."""
    d = kit.dispatcher()
    short = d.queue(time.sleep, 0.01)
    long = d.queue(time.sleep, 0.3)
    for t in (short, long):
        t.result(WAIT)
    s, lg = short.status(), long.status()
    assert 0.01 <= s.duration < 0.15, s.duration
    assert 0.3 <= lg.duration < 0.45, lg.duration
    assert s.queued_at <= s.started_at and lg.queued_at <= lg.started_at


def test_identical_calls_are_not_deduplicated(kit):
    d = kit.dispatcher()
    q = kit.queue()
    ts = [d.queue(q.put, "x") for _ in range(3)]
    for t in ts:
        t.result(WAIT)
    assert q.qsize() == 3
    assert [d.queue(add, 1, 2).result(WAIT) for _ in range(2)] == [3, 3]


def test_failure_with_traceback(kit):
    d = kit.dispatcher()
    t = d.queue(fails, 7)
    assert t.wait(WAIT)
    s = t.status()
    assert s.state is JobState.FAILED and s.success is False
    assert s.error == "boom 7" and s.error_type == "ValueError"
    # The traceback reaches into the job's own frames (on the worker).
    assert "inner_failure" in s.traceback and "ValueError: boom 7" in s.traceback
    with pytest.raises(JobFailed) as info:
        t.result()
    assert isinstance(info.value.__cause__, ValueError)
    assert isinstance(t.exception(), ValueError)


def test_cancel_queued_job(kit):
    d = kit.dispatcher(workers=2)
    gate, q = kit.event(), kit.queue()
    held = [d.queue(hold, gate, q) for _ in range(2)]
    for t in held:
        eventually(lambda t=t: t.state is JobState.RUNNING)  # type: ignore[misc]
    ran = kit.queue()
    victim = d.queue(ran.put, "ran")
    assert victim.cancel() is True
    assert victim.state is JobState.CANCELLED
    with pytest.raises(JobCancelled):
        victim.result()
    if kit.kind == "dask":
        # The task is taken off the cluster in the background; a worker that
        # frees up within those milliseconds could still start it.
        eventually(lambda: victim.id not in d.backend._live, what="task released")
    gate.set()
    after = d.queue(add, 2, 3)
    assert after.result(WAIT) == 5
    for t in held:
        t.result(WAIT)
    assert ran.qsize() == 0, "a job cancelled while queued still ran"


def test_cooperative_cancel(kit):
    d = kit.dispatcher()
    q, gate = kit.queue(), kit.event()
    t = d.queue(until_cancelled, q, gate)
    eventually(lambda: t.state is JobState.RUNNING)
    assert t.cancel() is True
    assert t.wait(WAIT)
    assert t.state is JobState.CANCELLED
    assert q.get(timeout=WAIT) == "saw cancel"


def test_interrupting_cancel_frees_the_worker(kit):
    """``cancel(interrupt=True)`` marks the job at once; on Dask the job
    sees the flag through nbfrost.cancelled() and its worker is free again."""
    d = kit.dispatcher(workers=2)
    q, gate = kit.queue(), kit.event()
    ts = [d.queue(until_cancelled, q, gate) for _ in range(2)]
    for t in ts:
        eventually(lambda t=t: t.state is JobState.RUNNING)  # type: ignore[misc]
    for t in ts:
        assert t.cancel(interrupt=True) is True
        assert t.state is JobState.CANCELLED  # at once
    expected = "saw cancel" if kit.kind == "dask" else None
    if expected:
        assert {q.get(timeout=WAIT), q.get(timeout=WAIT)} == {expected}
    # Both workers take new work again.
    assert [d.queue(add, i, i).result(WAIT) for i in range(3)] == [0, 2, 4]


def test_timeout(kit):
    d = kit.dispatcher(grace=0.5)
    q, gate = kit.queue(), kit.event()
    t = d.queue(until_cancelled, q, gate, timeout=0.3)
    assert t.wait(WAIT)
    s = t.status()
    assert s.state is JobState.FAILED and s.error_type == "JobTimeout"
    assert isinstance(t.exception(), JobTimeout)
    if kit.kind == "dask":
        assert q.get(timeout=WAIT) == "saw cancel"
    assert d.queue(add, 1, 1).result(WAIT) == 2


def test_retries_count_attempts(kit):
    d = kit.dispatcher()
    q = kit.queue()
    t = d.queue(flaky, q, 2, retries=3)
    assert t.result(WAIT) == 3
    assert t.status().attempts == 3
    q2 = kit.queue()
    t2 = d.queue(flaky, q2, 5, retries=1)
    assert t2.wait(WAIT)
    s = t2.status()
    assert s.state is JobState.FAILED and s.attempts == 2 and s.error == "attempt 2 fails"
    assert q2.qsize() == 2


def test_dependencies(kit):
    d = kit.dispatcher()
    gate = kit.event()
    first = d.queue(hold, gate, value=1)
    second = d.queue(add, 1, 1, after=first)
    eventually(lambda: first.state is JobState.RUNNING)
    assert second.state is JobState.QUEUED
    gate.set()
    assert second.result(WAIT) == 2
    assert second.status().started_at >= first.status().finished_at
    bad = d.queue(fails, 1)
    never = d.queue(add, 1, 2, after=[second, bad])
    assert never.wait(WAIT)
    assert never.state is JobState.CANCELLED
    assert f"dependency job {bad.id}" in never.status().error


def test_output_and_progress(kit):
    d = kit.dispatcher()
    gate = kit.event()
    t = d.queue(chatty, gate, quiet=True)
    eventually(lambda: t.status().progress == 0.5, what="progress while running")
    s = t.status()
    assert s.state is JobState.RUNNING and s.message == "half way"
    v = d.registry.version
    gate.set()
    assert t.result(WAIT) == "ok"
    s = t.status()
    assert s.progress == 1.0 and s.message == "steps 4/4"
    assert d.registry.version > v
    assert "to stdout\n" in t.output and "to stderr\n" in t.output


def test_output_cap(kit):
    d = kit.dispatcher(output_cap=10)
    t = d.queue(print, "x" * 50, quiet=True)
    t.result(WAIT)
    assert t.output.startswith("x" * 10) and "truncated at 10 characters" in t.output


def _fill_to_the_cap_then_more() -> None:
    # 1,024 lines of 1,024 characters fill a 1 MiB cap exactly; then more.
    line = "y" * 1023 + "\n"
    for _ in range(1024):
        sys.stdout.write(line)
    print("and then more")


def test_output_that_reaches_the_cap_exactly_then_continues_is_marked(kit):
    d = kit.dispatcher(output_cap=1 << 20)
    t = d.queue(_fill_to_the_cap_then_more, quiet=True)
    t.result(WAIT)
    out = t.output
    assert out.startswith("y" * 1023 + "\n") and "and then more" not in out
    assert out.endswith(f"\n[nbfrost: output truncated at {1 << 20} characters]\n")
    assert out.count("y") == 1023 * 1024


def test_expiry_with_injected_clock(kit, clock):
    d = kit.dispatcher(expiry=30.0, clock=clock)
    t = d.queue(add, 2, 2)
    assert t.result(WAIT) == 4
    assert d.status(t.id).state is JobState.SUCCEEDED
    clock.advance(31)
    with pytest.raises(JobNotFound, match="expired"):
        d.status(t.id)
    assert t.result() == 4  # the tracker keeps its record


def test_progress_is_rate_limited_but_the_last_value_arrives(client, thread_baseline):
    """Thousands of reports from one job cost a handful of messages."""
    with nbfrost.Dispatcher(2, backend="dask", client=client) as d:
        t = d.queue(_many_reports, 5000)
        assert t.result(WAIT) == 5000
        assert t.status().progress == 1.0 and t.status().message == "5000/5000"
        events = client.get_events(dask_backend(d)._topic)
        assert 1 <= len(events) < 200


def _many_reports(n):
    for i in range(n):
        nbfrost.report((i + 1) / n, f"{i + 1}/{n}")
    return n


# --------------------------------------------------------- dask specifics
def test_bad_arguments_start_nothing(client):
    with pytest.raises(ValueError, match="either address= or client="):
        nbfrost.Dispatcher(backend="dask", address="tcp://127.0.0.1:1", client=client)
    with pytest.raises(TypeError, match="address must be"):
        nbfrost.Dispatcher(backend="dask", address=8786)
    with pytest.raises(TypeError, match=r"distributed\.Client"):
        nbfrost.Dispatcher(backend="dask", client="tcp://127.0.0.1:1")
    with pytest.raises(TypeError, match="only apply when nbfrost starts the cluster"):
        nbfrost.Dispatcher(backend="dask", client=client, memory_limit="1GB")


def test_missing_distributed_says_what_to_install(monkeypatch):
    import nbfrost.backends.dask as dask_backend

    monkeypatch.setitem(sys.modules, "distributed", None)  # import now fails
    with pytest.raises(ImportError, match=r'pip install "nbfrost\[dask\]"'):
        nbfrost.Dispatcher(backend="dask")
    assert dask_backend.DaskBackend.name == "dask"


def test_unpicklable_job_fails_with_a_hint(client, thread_baseline):
    with nbfrost.Dispatcher(2, backend="dask", client=client) as d:
        lock = threading.Lock()
        t = d.queue(lambda: lock)
        assert t.wait(WAIT)
        s = t.status()
        assert s.state is JobState.FAILED
        assert "pickle" in s.error
        assert d.queue(add, 1, 2).result(WAIT) == 3


def test_resize_needs_an_owned_cluster(client):
    with nbfrost.Dispatcher(2, backend="dask", client=client) as d:
        assert d.workers == 2  # the cluster's threads
        with pytest.raises(RuntimeError, match="did not start"):
            d.resize(3)


def test_address_form_and_client_left_open(cluster, client, thread_baseline):
    with nbfrost.Dispatcher(backend="dask", address=cluster.scheduler_address) as d:
        assert d.queue(add, 20, 22).result(WAIT) == 42
        assert dask_backend(d).client is not client
    assert dask_backend(d).client.status == "closed"  # its own client: closed
    with nbfrost.Dispatcher(backend="dask", client=client) as d2:
        assert d2.queue(add, 1, 1).result(WAIT) == 2
    assert client.status == "running"  # the user's client: left open


def test_cell_job_namespace_and_push_hint(client, thread_baseline):
    from nbfrost.backends.dask import DaskBackend

    job = DaskBackend.make_cell_job("c = a + b\nc * 2", "<cell>", {"a": 1, "b": 2})
    assert job() == 6  # locally too
    with pytest.raises(SyntaxError):
        DaskBackend.make_cell_job("x = (", "<cell>", {})
    with nbfrost.Dispatcher(2, backend="dask", client=client) as d:
        t = d.queue(job)
        assert t.result(WAIT) == 6
        no_tail = d.queue(DaskBackend.make_cell_job("y = a", "<cell>", {"a": 1}))
        assert no_tail.result(WAIT) is None
        missing = d.queue(DaskBackend.make_cell_job("print(a)\nzzz + 1", "<cell>", {"a": 1}))
        assert missing.wait(WAIT)
        s = missing.status()
        assert s.state is JobState.FAILED and s.error_type == "NameError"
        assert "--push zzz" in s.error
        assert missing.output == "1\n"


# -------------------------------------------------- owned cluster: ports, threads
def _listening(procs) -> list[tuple[int, str, int]]:
    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except Exception:  # the process went away meanwhile
            continue
        out += [(p.pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == "LISTEN"]
    return out


def test_owned_cluster_listens_on_loopback_only_and_closes():
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    others = {p.pid for p in me.children(recursive=True)}  # the module's cluster and helpers
    before = set(_listening([me, *me.children(recursive=True)]))
    d = nbfrost.Dispatcher(2, backend="dask")
    try:
        cluster = dask_backend(d).cluster
        assert cluster is not None and len(cluster.workers) == 2
        procs = [me, *me.children(recursive=True)]
        found = [s for s in _listening(procs) if s not in before]
        # Scheduler, its dashboard, and per worker: worker, nanny, dashboard.
        assert len(found) >= 5, found
        exposed = [s for s in found if s[1] not in LOOPBACK]
        assert not exposed, f"listening beyond loopback: {exposed}"
        assert dask_backend(d).dashboard_link.startswith("http://127.0.0.1:")
        assert d.queue(add, 1, 2).result(WAIT) == 3
        d.resize(3)  # the owned cluster scales
        assert d.workers == 3
        eventually(lambda: len(dask_backend(d).client.scheduler_info()["workers"]) == 3,
                   what="a third worker")
        assert d.queue(add, 2, 2).result(WAIT) == 4
        children = [p for p in me.children(recursive=True) if p.pid not in others]
        assert len(children) >= 3  # the worker processes
    finally:
        d.shutdown()
    assert cluster.status.name == "closed"
    _gone, alive = psutil.wait_procs(children, timeout=WAIT)
    assert not alive, f"worker processes left running: {alive}"


def test_threads_return_to_baseline_across_dispatchers():
    """nbfrost's own threads end with each dispatcher; distributed's
    process-wide ones (its callback and offload executors) are made once
    and reused, so the count does not grow with repeated dispatchers."""
    baseline = live_threads()
    counts = []
    for _ in range(3):
        d = nbfrost.Dispatcher(1, backend="dask")
        ours = d.backend.threads()
        assert [t.name for t in ours] and ours[0].name.startswith("nbfrost-dask-")
        assert d.queue(add, 1, 1).result(WAIT) == 2
        d.shutdown()
        assert not any(t.is_alive() for t in ours)
        extra = wait_for_threads(baseline)
        assert not [t.name for t in extra if t.name.startswith("nbfrost")]
        counts.append(len(extra))
    assert counts[1] == counts[0] and counts[2] == counts[0], counts
    allowed = ("Dask-Callback-Thread", "Dask-Offload")
    assert all(t.name.startswith(allowed) for t in wait_for_threads(baseline)), \
        sorted(t.name for t in wait_for_threads(baseline))


# ------------------------------------------------------------ notebook
def test_distributed_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = ROOT / "notebooks" / "distributed.ipynb"
    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"the notebook took {elapsed:.0f} s"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


# ------------------------------------------------------ %%frost in a kernel
def test_frost_magic_push_and_output_in_a_real_kernel(cluster):
    """``%%frost --push a,b -o total`` runs the body on a worker of the
    cluster at ``FrostMagics.dask_address`` and binds the result; a name
    that was not pushed fails with a ``--push`` hint."""
    pytest.importorskip("jupyter_client")
    from helpers import Kernel

    k = Kernel()
    try:
        k.run("%load_ext nbfrost\n"
              "%config FrostMagics.backend = 'dask'\n"
              f"%config FrostMagics.dask_address = {cluster.scheduler_address!r}\n"
              "a, b = 20, 22")
        cell = k.run("%%frost --push a,b -o total -n add\n"
                     "c = a + b\n"
                     "print('on a worker:', c)\n"
                     "c")
        k.run("%frost wait --timeout 30")
        # -o binds from the job's done callback, which runs just after the
        # waiters wake: give it that moment.
        check = k.run(
            "import nbfrost, time\n"
            "deadline = time.monotonic() + 10\n"
            "while 'total' not in globals() and time.monotonic() < deadline:\n"
            "    time.sleep(0.005)\n"
            "d = nbfrost.get_dispatcher()\n"
            "s = d.jobs(name='add')[0]\n"
            "print('RESULT', repr(total), s.state.value, d.backend.name, s.worker)\n"
            "print('LOCAL', 'c' in globals())")
        out = k.stdout(check)
        assert "RESULT 42 succeeded dask tcp://127.0.0.1:" in out, out
        assert "LOCAL False" in out  # the body ran in a fresh namespace on the worker
        # The job's output came back and was shown under the queuing cell.
        k.wait_for(lambda m: m["parent_header"].get("msg_id") == cell
                   and m["msg_type"] == "stream" and "on a worker: 42" in m["content"]["text"])

        k.run("%%frost -n nopush --quiet\nundefined_here + 1")
        k.run("%frost wait --timeout 30")
        check = k.run("s = d.jobs(name='nopush')[0]\nprint('ERR', s.state.value, s.error)")
        out = k.stdout(check)
        assert "ERR failed" in out and "--push undefined_here" in out, out
        k.run("%unload_ext nbfrost")
    finally:
        k.close()


def test_cancel_right_after_queueing_leaves_no_worker_busy(client, thread_baseline):
    """A job cancelled while the client still sees it queued may already
    have started on a worker; it is told too, so the worker frees up."""
    with nbfrost.Dispatcher(2, backend="dask", client=client) as d:
        q = distributed.Queue(f"nbfrost-test-{uuid.uuid4().hex}", client=client)
        gate = distributed.Event(f"nbfrost-test-{uuid.uuid4().hex}", client=client)
        try:
            ts = [d.queue(until_cancelled, q, gate) for _ in range(4)]
            for t in ts:
                t.cancel()
            assert all(t.state is JobState.CANCELLED for t in ts)
            assert [d.queue(add, i, 1).result(WAIT) for i in range(4)] == [1, 2, 3, 4]
            eventually(lambda: not dask_backend(d)._live, what="all tasks released")
            # Those that had started saw the cancel; none ran to the gate.
            assert all(q.get(timeout=WAIT) == "saw cancel" for _ in range(q.qsize()))
        finally:
            gate.set()


# ------------------------------------------- concurrent.futures.Executor
def test_executor_submit_map_and_shutdown(kit):
    """``submit``, ``map`` and ``shutdown(cancel_futures=True)`` on both
    backends: every call is a tracked job, the future raises the job's own
    exception, map() yields in order and hands each result over."""
    d = kit.dispatcher(workers=2)
    fut = d.submit(add, 2, b=3)
    assert fut.result(WAIT) == 5
    assert d.status(fut.job_id).state is JobState.SUCCEEDED
    assert d.tracker(fut.job_id).future is fut
    bad = d.submit(fails, 7)
    with pytest.raises(ValueError, match="boom 7"):
        bad.result(WAIT)
    assert d.status(bad.job_id).state is JobState.FAILED

    assert list(d.map(add, range(6), range(6), timeout=WAIT)) == [2 * i for i in range(6)]
    ids = [s.id for s in d.jobs(name="add")][-6:]
    assert [d.status(i).state for i in ids] == [JobState.SUCCEEDED] * 6
    with pytest.raises(nbfrost.ResultReleased):  # handed over to the iterator
        d.tracker(ids[0]).result()
    it = d.map(fails, [1, 2])
    with pytest.raises(ValueError, match="boom 1"):
        next(it)

    gate, q = kit.event(), kit.queue()
    held = [d.submit(hold, gate, q) for _ in range(2)]
    for f in held:
        eventually(f.running, what="held job running")
        assert not f.cancel()
    waiting = [d.submit(add, i, 1) for i in range(3)]
    assert waiting[0].cancel() and waiting[0].cancelled()
    threading.Timer(0.2, gate.set).start()
    d.shutdown(wait=True, cancel_futures=True, timeout=WAIT)
    assert [f.result(0) for f in held] == ["held", "held"]
    assert all(f.cancelled() for f in waiting)
    with pytest.raises(RuntimeError, match="after shutdown"):
        d.submit(add, 1, 1)


def test_executor_run_in_executor(kit):
    import asyncio

    d = kit.dispatcher(workers=2)

    async def main():
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*(loop.run_in_executor(d, add, i, i) for i in range(3)))

    assert asyncio.run(main()) == [0, 2, 4]
    assert [s.state for s in d.jobs(name="add")] == [JobState.SUCCEEDED] * 3


# ------------------------------------------------------------ async jobs
async def async_add(a, b):
    import asyncio

    await asyncio.sleep(0.01)
    return a + b


async def parked(q):
    """Parks at an await; says where a cancel reached it."""
    import asyncio

    q.put("started")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        q.put("cancelled at await")
        raise
    finally:
        q.put("finally ran")


def test_async_job_result(kit):
    d = kit.dispatcher()
    ts = [d.queue(async_add, i, 1) for i in range(4)]
    assert [t.result(WAIT) for t in ts] == [1, 2, 3, 4]


@pytest.mark.parametrize("interrupt", [False, True])
def test_async_cancel_cancels_the_task(kit, interrupt):
    d = kit.dispatcher()
    q = kit.queue()
    t = d.queue(parked, q)
    assert q.get(timeout=WAIT) == "started"
    eventually(lambda: t.state is JobState.RUNNING)
    assert t.cancel(interrupt=interrupt) is True
    assert t.wait(WAIT)
    assert t.state is JobState.CANCELLED
    assert [q.get(timeout=WAIT), q.get(timeout=WAIT)] == ["cancelled at await", "finally ran"]
    assert d.queue(async_add, 1, 1).result(WAIT) == 2


def test_async_timeout_cancels_the_task(kit):
    d = kit.dispatcher(grace=0.5)
    q = kit.queue()
    t = d.queue(parked, q, timeout=0.5)
    assert t.wait(WAIT)
    assert isinstance(t.exception(), JobTimeout)
    assert [q.get(timeout=WAIT) for _ in range(3)] == ["started", "cancelled at await",
                                                       "finally ran"]
    assert d.queue(async_add, 2, 2).result(WAIT) == 4


def test_map_on_dask_uses_the_same_jobs(client, thread_baseline):
    d = nbfrost.Dispatcher(2, backend="dask", client=client)
    try:
        assert list(d.map(add, range(20), range(20))) == [2 * i for i in range(20)]
        assert list(d.map(async_add, range(5), range(5), chunksize=2)) == [0, 2, 4, 6, 8]
    finally:
        d.shutdown()
