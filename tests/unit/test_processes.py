"""The process pool with real worker processes: notebook code runs, output
and progress come home while the job runs, cancel and timeouts kill, a
worker that dies fails only its job, and nothing is left behind.

Jobs and tests meet through files (a job waits for a file the test
creates), never through sleeps.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest
from helpers import assert_no_leaked_threads, child_pids, eventually, live_threads, running

import nbfrost
from nbfrost import defaults
from nbfrost.backends.processes import ProcessBackend, ProcessCellJob, names_read
from nbfrost.backends.processes.pool import describe_exit
from nbfrost.backends.processes.worker import PROTOCOL, check_protocol, read_message, write_frames

WAIT = 20.0


def wait_for_file(path: str, timeout: float = WAIT) -> bool:
    """In a job: wait until the test creates *path*."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def spin() -> None:
    while True:
        pass


@pytest.fixture
def pool():
    threads, children = live_threads(), child_pids()
    d = nbfrost.Dispatcher(workers=1, backend="processes", process_workers=2)
    yield d
    d.shutdown(wait=True, cancel_pending=True, timeout=5)
    assert_no_leaked_threads(threads)
    assert child_pids() == children, "worker processes left behind"


def test_notebook_functions_lambdas_classes_and_closures_run_by_value(pool):
    factor = 3

    class Box:
        def __init__(self, v):
            self.v = v

    def scaled(x):
        return Box(x * factor)  # a closure over a local class

    t = pool.queue(scaled, 4)
    box = t.result(timeout=WAIT)
    assert box.v == 12 and type(box) is Box  # the class comes back as itself
    assert pool.queue(lambda: os.getpid()).result(timeout=WAIT) != os.getpid()
    assert pool.status(t.id).worker in {"process-0", "process-1"}


def test_output_and_progress_reach_the_job_while_it_runs(pool, tmp_path):
    gate = str(tmp_path / "go")

    def job():
        print("first line")
        print("to stderr", file=__import__("sys").stderr)
        nbfrost.report(0.5, "half way")
        wait_for_file(gate)
        return "done"

    t = pool.queue(job)
    eventually(lambda: "first line\n" in t.output and "to stderr\n" in t.output,
               WAIT, "output while running")
    eventually(lambda: t.status().progress == 0.5 and t.status().message == "half way",
               WAIT, "progress while running")
    assert t.state is nbfrost.JobState.RUNNING
    Path(gate).touch()
    assert t.result(timeout=WAIT) == "done"


def test_output_is_capped_like_a_thread_jobs(tmp_path):
    d = nbfrost.Dispatcher(workers=1, backend="processes", process_workers=1, output_cap=100)
    try:
        t = d.queue(lambda: print("x" * 10_000), quiet=True)
        t.result(timeout=WAIT)
        assert t.output.startswith("x" * 100)
        assert "output truncated at 100 characters" in t.output
    finally:
        d.shutdown()


def test_progress_helper_and_cooperative_cancel_work_in_the_worker(pool, tmp_path):
    started = str(tmp_path / "started")

    def job():
        for i in nbfrost.progress(range(1_000_000), message="items"):
            if i == 1:
                Path(started).touch()
            time.sleep(0.001)
        return "finished"

    t = pool.queue(job)
    assert wait_for_file(started)
    eventually(lambda: (t.status().progress or 0) > 0, WAIT, "progress")
    assert t.cancel()  # cooperative: progress() raises JobCancelled at its next item
    assert t.wait(WAIT)
    assert t.state is nbfrost.JobState.CANCELLED


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_interrupt_and_timeout_kill_a_busy_loop_within_a_second(pool, how):
    pids = set(pool.backend.pids())
    t = pool.queue(spin, timeout=1.0 if how == "timeout" else None)
    running(t)
    began = time.monotonic()
    if how == "cancel":
        assert t.cancel(interrupt=True)
        assert t.state is nbfrost.JobState.CANCELLED
    assert t.wait(WAIT)
    took = time.monotonic() - began
    if how == "timeout":
        assert isinstance(t.exception(), nbfrost.JobTimeout)
        assert took < 2.0
    else:
        assert took < 1.0
    # The killed process is gone and replaced; the pool goes on.
    assert pool.queue(lambda: 42).result(timeout=WAIT) == 42
    eventually(lambda: len(pool.backend.pids()) == 2 and set(pool.backend.pids()) != pids,
               WAIT, "a replacement process")


def test_interrupt_ends_a_job_stuck_in_a_c_call(pool):
    t = pool.queue(time.sleep, 60)
    running(t)
    began = time.monotonic()
    t.cancel(interrupt=True)
    assert t.wait(WAIT) and time.monotonic() - began < 1.0
    assert pool.queue(lambda: "next").result(timeout=WAIT) == "next"


@pytest.mark.parametrize("death,how", [
    (lambda: os._exit(3), "exit code 3"),
    (lambda: ctypes.string_at(0), "signal 11 (SIGSEGV)"),
])
def test_a_worker_that_dies_fails_only_its_job(pool, death, how):
    t = pool.queue(death)
    other = pool.queue(lambda: "fine")
    assert t.wait(WAIT)
    error = t.exception()
    assert isinstance(error, nbfrost.WorkerDied)
    assert "died" in str(error) and how in str(error)
    assert other.result(timeout=WAIT) == "fine"
    assert pool.queue(lambda: "after").result(timeout=WAIT) == "after"


def test_a_worker_killed_from_outside_fails_its_job_with_the_signal(pool):
    t = pool.queue(time.sleep, 60)
    running(t)
    live = pool.backend._live[t.id]
    os.kill(live.proc.pid, signal.SIGKILL)
    assert t.wait(WAIT)
    assert isinstance(t.exception(), nbfrost.WorkerDied)
    assert "signal 9 (SIGKILL)" in str(t.exception())
    assert t.exception().exitcode == -signal.SIGKILL


def test_a_job_whose_worker_died_is_retried_when_asked(pool, tmp_path):
    marker = str(tmp_path / "died-once")

    def flaky():
        if not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)
        return "second try"

    t = pool.queue(flaky, retries=1)
    assert t.result(timeout=WAIT) == "second try"
    assert t.status().attempts == 2


def test_an_error_comes_back_with_the_workers_traceback(pool):
    def fails():
        raise KeyError("missing")

    t = pool.queue(fails)
    assert t.wait(WAIT)
    assert isinstance(t.exception(), KeyError)
    assert "in fails" in t.status().traceback and "raise KeyError" in t.status().traceback


def test_what_cannot_be_sent_fails_the_job_naming_it(pool):
    lock = threading.Lock()
    t = pool.queue(lambda x: x, lock)
    assert t.wait(WAIT)
    assert t.state is nbfrost.JobState.FAILED
    assert "argument 0 (lock)" in str(t.exception())
    sock = socket.socket()
    try:
        t = pool.queue(lambda s: s, s=sock)
        assert t.wait(WAIT)
        assert "argument s= (socket)" in str(t.exception())
    finally:
        sock.close()


def test_a_cell_reads_notebook_globals_and_names_one_that_cannot_be_sent(pool, tmp_path):
    ns: dict[str, Any] = {"base": 10, "helper": lambda x: x + 1, "fh": open(tmp_path / "f", "w")}  # noqa: SIM115 - a global that cannot be sent
    try:
        source = "y = helper(base)\nprint('y is', y)\ny * 2\n"
        push = {n: ns[n] for n in names_read(source) if n in ns}
        assert sorted(push) == ["base", "helper"]
        t = pool.queue(ProcessCellJob(source, "<cell-1>", push))
        assert t.result(timeout=WAIT) == 22
        assert "y is 11" in t.output
        bad = "fh.write('x')\n"
        t = pool.queue(ProcessCellJob(bad, "<cell-2>", {n: ns[n] for n in names_read(bad)}))
        assert t.wait(WAIT)
        assert "'fh'" in str(t.exception()) and "cannot be sent" in str(t.exception())
    finally:
        ns["fh"].close()


def test_a_failing_cell_prints_its_traceback_with_the_cells_lines(pool):
    t = pool.queue(ProcessCellJob("x = 1\nraise ValueError('bad cell')\n", "<cell-3>", {}))
    assert t.wait(WAIT)
    assert isinstance(t.exception(), ValueError)
    assert "raise ValueError('bad cell')" in t.output and "<cell-3>" in t.output


def test_names_read_ignores_attributes_and_stores():
    assert set(names_read("a.b = c\nd = 1\nfor e in f: g(e)\n")) == {"a", "c", "f", "g", "e"}


def test_queue_with_process_true_uses_a_lazy_pool_beside_the_threads():
    children = child_pids()
    d = nbfrost.Dispatcher(workers=2, process_workers=1)
    try:
        assert child_pids() == children  # nothing started yet
        here = d.queue(os.getpid).result(timeout=WAIT)
        there = d.queue(os.getpid, process=True).result(timeout=WAIT)
        assert here == os.getpid() and there != os.getpid()
        a = d.queue(lambda: 1, process=True)
        b = d.queue(os.getpid, process=True, after=a)
        assert b.result(timeout=WAIT) == there  # the same, reused process
        assert d.stats()["process_workers"] == 1
        t = d.queue(spin, process=True)
        running(t)
        assert t.cancel(interrupt=True) and t.wait(WAIT)
    finally:
        d.shutdown()
    assert child_pids() == children


def test_a_large_argument_and_result_go_through():
    blob = os.urandom(8 << 20)
    d = nbfrost.Dispatcher(backend="processes", process_workers=1)
    try:
        assert d.submit(lambda b: b[::-1], blob).result(timeout=WAIT) == blob[::-1]
    finally:
        d.shutdown()


def test_process_workers_has_a_default_and_a_bound():
    assert defaults.PROCESS_WORKERS == max(1, min(defaults.MAX_PROCESS_WORKERS, os.cpu_count() or 1))
    for bad in (0, defaults.MAX_PROCESS_WORKERS + 1):
        with pytest.raises(ValueError, match="process_workers"):
            nbfrost.Dispatcher(process_workers=bad)
    with pytest.raises(TypeError):
        nbfrost.Dispatcher(process_workers=1.5)  # type: ignore[arg-type]


def test_resize_grows_and_shrinks_the_pool(pool):
    assert pool.submit(lambda: 1).result(timeout=WAIT) == 1
    eventually(lambda: len(pool.backend.pids()) == 2, WAIT, "two processes")
    pool.resize(1)
    eventually(lambda: len(pool.backend.pids()) == 1, WAIT, "one process")
    pool.process_workers = 3
    eventually(lambda: len(pool.backend.pids()) == 3, WAIT, "three processes")
    assert sorted(pool.map(abs, [-1, -2, -3])) == [1, 2, 3]


def test_the_wire_format_is_versioned_and_checked(tmp_path):
    with pytest.raises(ValueError, match="wire format 99"):
        check_protocol(99, "worker")
    check_protocol(PROTOCOL, "worker")
    r, w = os.pipe()
    write_frames(w, b"not a pickle", pickle.dumps(("fine",)))
    os.close(w)
    with open(r, "rb") as stream:
        with pytest.raises(ValueError, match="unreadable frame"):
            read_message(stream)
        assert read_message(stream) == ("fine",)
        assert read_message(stream) is None


def test_describe_exit_says_how_a_process_ended():
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-9) == "signal 9 (SIGKILL)"
    assert describe_exit(None) == "an unknown cause"


def test_a_pool_object_can_be_passed_as_the_backend():
    d = nbfrost.Dispatcher(backend=ProcessBackend(1))
    try:
        assert d.submit(pow, 2, 10).result(timeout=WAIT) == 1024
    finally:
        d.shutdown()


def test_the_dashboard_shows_process_jobs_their_workers_and_lanes():
    from nbfrost.notebook.dashboard import render

    d = nbfrost.Dispatcher(workers=1, process_workers=1)
    try:
        assert render._processes_kpi(d.stats()) == ""  # no pool yet: nothing to show
        d.queue(lambda: 1, process=True, name="in-a-process").result(timeout=WAIT)
        d.queue(lambda: 2, name="on-a-thread").result(timeout=WAIT)
        head = render.header_html(d.stats(), "live")
        assert "processes <b>0/1</b> busy" in head
        frame = d.to_frame()
        columns = render._display_columns(frame)
        by_name = dict(zip(columns["name"], columns["worker"]))
        assert by_name["in-a-process"] == "process-0"
        assert by_name["on-a-thread"].startswith("worker-")
        svg = render.render_timeline(frame, d.registry.clock(), 2)
        assert "process-0" in svg and "worker-" in svg  # a lane each
    finally:
        d.shutdown()


def test_retry_runs_a_failed_process_job_in_a_process_again():
    d = nbfrost.Dispatcher(workers=1, process_workers=1)
    try:
        t = d.queue(lambda: os.getpid() == 0 or 1 / 0, process=True)
        assert t.wait(WAIT) and t.state is nbfrost.JobState.FAILED
        again = d.retry(t)
        assert again.wait(WAIT) and again.status().worker == "process-0"
    finally:
        d.shutdown()


def test_a_job_sent_ahead_and_cancelled_while_queued_never_runs(tmp_path):
    gate, marker = str(tmp_path / "go"), str(tmp_path / "ran")
    d = nbfrost.Dispatcher(workers=1, process_workers=1)
    try:
        first = d.queue(wait_for_file, gate, process=True)
        running(first)
        second = d.queue(lambda: Path(marker).touch(), process=True)  # sent ahead
        assert second.state is nbfrost.JobState.QUEUED
        assert second.cancel() and second.state is nbfrost.JobState.CANCELLED
        Path(gate).touch()
        assert first.result(timeout=WAIT) is True
        assert d.queue(lambda: "after", process=True).result(timeout=WAIT) == "after"
        assert not os.path.exists(marker)
    finally:
        d.shutdown()


def test_the_job_behind_a_killed_one_runs_on_the_replacement():
    d = nbfrost.Dispatcher(workers=1, process_workers=1)
    try:
        first = d.queue(spin, process=True)
        running(first)
        second = d.queue(os.getpid, process=True)  # sent ahead to the same process
        victim = d.process_pool.pids()[0]
        first.cancel(interrupt=True)
        assert second.result(timeout=WAIT) != victim
        assert second.status().attempts == 1
    finally:
        d.shutdown()


def test_warm_starts_the_processes_before_the_first_job():
    children = child_pids()
    d = nbfrost.Dispatcher(backend="processes", process_workers=2)
    try:
        assert child_pids() == children
        backend = cast(ProcessBackend, d.backend)
        assert backend.warm(timeout=WAIT)
        assert len(backend.pids()) == 2 and len(child_pids() - children) == 2
    finally:
        d.shutdown()
    assert child_pids() == children


def test_a_forked_child_does_not_wait_for_its_parents_jobs_at_exit(tmp_path):
    """ProcessPoolExecutor forks on Linux: its workers inherit the exit wait
    of the parent's dispatchers but none of their jobs."""
    import multiprocessing

    gate = str(tmp_path / "go")
    d = nbfrost.Dispatcher(workers=1)
    try:
        t = d.queue(wait_for_file, gate)
        running(t)
        child = multiprocessing.get_context("fork").Process(target=int)
        child.start()
        child.join(WAIT)
        assert child.exitcode == 0  # it exited, instead of waiting for job t
    finally:
        Path(gate).touch()
        d.shutdown()


class _Owner:
    def method(self) -> int:
        return 1


def test_a_submitted_object_is_freed_when_its_job_ends_without_a_garbage_collection(pool):
    """Nothing of the pool (the pickler's memo above all) keeps a job's
    callable or arguments alive once it ended: reference counting alone
    frees them (CPython's test_no_stale_references asks the same)."""
    import gc
    import weakref

    owner, arg = _Owner(), _Owner()
    freed = threading.Event(), threading.Event()
    refs = (weakref.ref(owner, lambda _: freed[0].set()),
            weakref.ref(arg, lambda _: freed[1].set()))
    gc.disable()
    try:
        f = pool.submit(owner.method)
        g = pool.submit(id, arg)
        del owner, arg
        assert f.result(WAIT) == 1 and g.result(WAIT)
        assert freed[0].wait(WAIT) and freed[1].wait(WAIT), [r() for r in refs]
    finally:
        gc.enable()


def test_a_job_sent_ahead_behind_a_long_one_moves_to_a_process_that_became_free(tmp_path):
    """Two processes each run a gated job and hold the next job sent ahead.
    When one process's jobs end, the job waiting behind the other (still
    running) one is recalled and runs on the free process: no job waits
    behind a long job while a process is idle."""
    long_gate, short_gate = str(tmp_path / "long"), str(tmp_path / "short")
    d = nbfrost.Dispatcher(workers=1, backend="processes", process_workers=2)
    try:
        assert cast(ProcessBackend, d.backend).warm(WAIT)
        first = d.submit(wait_for_file, long_gate)
        second = d.submit(wait_for_file, short_gate)
        behind = [d.submit(os.getpid) for _ in range(2)]  # one sent ahead to each process
        ids = [j.id for j in d.jobs()]
        eventually(lambda: all(d.status(i).state is nbfrost.JobState.RUNNING for i in ids[:2]))
        Path(short_gate).touch()
        assert second.result(WAIT) is True
        pids = {f.result(WAIT) for f in behind}  # while the first job still runs
        assert not first.done() and d.status(ids[0]).state is nbfrost.JobState.RUNNING
        assert len(pids) == 1, "both ran on the process that became free"
        assert {d.status(i).worker for i in ids[2:]} == {d.status(ids[1]).worker}
        Path(long_gate).touch()
        assert first.result(WAIT) is True
    finally:
        d.shutdown()


def test_a_recalled_job_is_given_back_only_if_it_has_not_begun():
    """The worker's side of a recall: it gives back a job still waiting in
    its inbox (and then skips it without a word), never one it has begun;
    each recall gets an answer."""
    from nbfrost.backends.processes.worker import Task, _ProcessContext

    ctx = _ProcessContext(cast(Any, None))  # no channel: nothing is sent here
    waiting, begun = Task(7, 1, 11, 100, {}), Task(8, 1, 12, 100, {})
    again = Task(7, 1, 13, 100, {})  # job 7 sent to this worker again, after it gave it back
    ctx.waiting.update({11, 12})
    assert ctx.begin(begun) is True
    assert not ctx.give_back(12), "begun: it runs here"
    ctx.finish()
    assert ctx.give_back(11)
    assert not ctx.give_back(11), "given back once"
    ctx.waiting.add(13)
    assert ctx.begin(waiting) is None, "given back: not run, no answer"
    assert ctx.begin(again) is True, "the copy sent again runs"
    ctx.finish()
    assert not ctx.give_back(14), "unknown (its task is not here yet): kept"
    assert not ctx.returned and not ctx.waiting
    # Every recall is answered, by the sender thread (the reader never writes).
    assert [tuple(a) for a in ctx.answers] == [(12, False), (11, True), (11, False), (14, False)]


def test_an_async_job_runs_in_the_worker_and_a_cooperative_cancel_stops_it_at_its_await(
        pool, tmp_path):
    """``async def`` jobs run on a loop of their own in the worker; a cancel
    without interrupt cancels the job's task at its current ``await`` (the
    process is not killed: it goes on with the next job)."""
    import asyncio

    started = str(tmp_path / "started")

    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    async def parked() -> str:
        Path(started).touch()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print("cancelled at await")
            raise
        return "never"

    assert pool.queue(add, 2, 3).result(timeout=WAIT) == 5
    t = pool.queue(parked)
    assert wait_for_file(started)
    pid = pool.process_pool.pids()
    assert t.cancel()  # cooperative
    assert t.wait(WAIT) and t.state is nbfrost.JobState.CANCELLED
    eventually(lambda: "cancelled at await" in t.output, WAIT, "the job's own except clause ran")
    assert pool.process_pool.pids() == pid, "not killed: the same processes go on"
    assert pool.queue(add, 1, 1).result(timeout=WAIT) == 2
