"""`Dispatcher` as a `concurrent.futures.Executor`: submit, map, shutdown,
and ``loop.run_in_executor``, on the thread backend.

CPython's own executor tests run against it in `test_executor_cpython`;
these check what is nbfrost's own: every call is a tracked job, the future
follows the job, results are handed over.  The Dask side is in test_dask.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import threading
import weakref

import pytest

import nbfrost
from nbfrost import JobState

WAIT = 10.0


class Box:
    """A result that can be weakly referenced."""


def make_box(_i: int) -> Box:
    return Box()


def hold(gate: threading.Event, value: object = "held") -> object:
    assert gate.wait(WAIT)
    return value


def capture(*args, **kwargs):
    return args, kwargs


def consume(_obj: object) -> None:
    return None


@pytest.fixture
def d(thread_baseline):
    d = nbfrost.Dispatcher(workers=2)
    yield d
    d.shutdown(wait=True, cancel_pending=True, timeout=WAIT)


def test_it_is_an_executor_and_submit_is_a_tracked_job(d: nbfrost.Dispatcher):
    assert isinstance(d, cf.Executor) and not isinstance(d, cf.ThreadPoolExecutor)
    fut = d.submit(pow, 2, 8)
    assert isinstance(fut, cf.Future)
    assert fut.result(WAIT) == 256
    status = d.status(fut.job_id)
    assert status.state is JobState.SUCCEEDED and status.name == "pow"
    assert d.tracker(fut.job_id).future is fut
    assert [s.id for s in d.jobs(state="succeeded")] == [fut.job_id]
    assert f"job {fut.job_id}" in repr(fut)


def test_every_keyword_goes_to_the_callable(d):
    # queue()'s own keywords (name, tags, timeout, ...) are fn's here.
    fut = d.submit(capture, 1, name="x", timeout=3, retries=2, after=(), fn=4)
    assert fut.result(WAIT) == ((1,), {"name": "x", "timeout": 3, "retries": 2, "after": (), "fn": 4})
    assert d.status(fut.job_id).name == "capture"
    with pytest.raises(TypeError):
        d.submit(fn=capture)


def test_the_future_follows_the_job(d):
    gate = threading.Event()
    blockers = [d.submit(hold, gate) for _ in range(2)]
    queued = d.submit(pow, 2, 3)
    assert not queued.running() and not queued.done()
    for f in blockers:
        nbfrost_wait(lambda f=f: f.running())
        assert d.status(f.job_id).state is JobState.RUNNING
        assert not f.cancel()  # a running future cannot be cancelled
    assert queued.cancel() and queued.cancelled()
    assert d.status(queued.job_id).state is JobState.CANCELLED
    with pytest.raises(cf.CancelledError):
        queued.result(0)
    gate.set()
    assert [f.result(WAIT) for f in blockers] == ["held", "held"]
    assert all(d.status(f.job_id).state is JobState.SUCCEEDED for f in blockers)


def test_the_original_exception_and_done_callbacks(d):
    seen: list[cf.Future] = []
    fut = d.submit(divmod, 1, 0)
    fut.add_done_callback(seen.append)
    with pytest.raises(ZeroDivisionError):
        fut.result(WAIT)
    assert isinstance(fut.exception(), ZeroDivisionError)
    assert seen == [fut]
    status = d.status(fut.job_id)
    assert status.state is JobState.FAILED and status.error_type == "ZeroDivisionError"
    # The job's tracker keeps its own rules: JobFailed chained from it.
    with pytest.raises(nbfrost.JobFailed):
        d.tracker(fut.job_id).result()


def test_a_job_cancelled_while_running_ends_its_future(d):
    gate = threading.Event()
    fut = d.submit(hold, gate)
    nbfrost_wait(fut.running)
    assert d.cancel(fut.job_id, interrupt=True)
    with pytest.raises(cf.CancelledError):
        fut.result(WAIT)
    gate.set()


def test_wait_and_as_completed(d):
    fs = [d.submit(pow, 2, i) for i in range(6)]
    done, not_done = cf.wait(fs, timeout=WAIT)
    assert done == set(fs) and not not_done
    assert sorted(f.result() for f in cf.as_completed(fs, timeout=WAIT)) == [2 ** i for i in range(6)]


def test_a_succeeded_job_forgets_its_callable(d):
    box = Box()
    ref = weakref.ref(box)
    fut = d.submit(consume, box)
    fut.result(WAIT)
    del box, fut
    gc.collect()
    assert ref() is None
    job = d.jobs()[-1]
    assert job.state is JobState.SUCCEEDED and job.name == "consume"
    with pytest.raises(ValueError, match="no callable"):
        d.retry(job.id)


def test_map_in_order_lazily_and_handed_over(d):
    results = d.map(pow, range(8), range(8))
    ids = [s.id for s in d.jobs()]
    assert len(ids) == 8  # all queued at once, before the first next()
    assert list(results) == [i ** i for i in range(8)]
    assert [d.status(i).state for i in ids] == [JobState.SUCCEEDED] * 8
    with pytest.raises(nbfrost.ResultReleased):  # the iterator took the result
        d.tracker(ids[3]).result()

    for obj in d.map(make_box, range(10)):
        ref = weakref.ref(obj)
        del obj
        gc.collect()
        assert ref() is None


def test_map_raises_at_the_position_and_cancels_the_rest_when_closed(d):
    it = d.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(it) == (0, 1) and next(it) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(it)

    gate = threading.Event()
    it = d.map(hold, [gate] * 6)
    ids = [s.id for s in d.jobs(state="queued")] + [s.id for s in d.jobs(state="running")]
    it.close()
    gate.set()
    assert d.wait(ids, timeout=WAIT)
    states = [d.status(i).state for i in ids]
    assert states.count(JobState.CANCELLED) >= 4  # two were running


def test_map_timeout(d):
    gate = threading.Event()
    it = d.map(hold, [gate, gate, gate], timeout=0.05)
    with pytest.raises(TimeoutError):
        next(it)
    gate.set()
    assert d.wait(timeout=WAIT)


@pytest.mark.parametrize("caught", [TimeoutError, cf.TimeoutError])
def test_one_timeout_type_that_both_timeout_errors_catch(d, caught):
    # On Python 3.10 the two are distinct classes; WaitTimeout is both there.
    gate = threading.Event()
    try:
        with pytest.raises(caught) as raised:
            next(d.map(hold, [gate], timeout=0.01))
        assert type(raised.value) is nbfrost.WaitTimeout
        tracker = d.queue(hold, gate)
        with pytest.raises(caught) as raised:
            tracker.result(timeout=0.01)
        assert type(raised.value) is nbfrost.WaitTimeout
        with pytest.raises(caught):
            tracker.exception(timeout=0.01)
        assert not tracker.wait(timeout=0.01)  # wait() says False, it does not raise
    finally:
        gate.set()
    assert d.wait(timeout=WAIT)
    assert issubclass(nbfrost.WaitTimeout, nbfrost.NbfrostError)


def test_map_checks_its_arguments(d):
    with pytest.raises(ValueError, match="chunksize"):
        d.map(pow, [1], [1], chunksize=0)
    with pytest.raises(TypeError, match="timeout"):
        d.map(pow, [1], [1], timeout="1")
    assert list(d.map(pow, [2, 3], [2, 2], chunksize=5)) == [4, 9]


def test_shutdown_cancel_futures_and_submit_after_shutdown(thread_baseline):
    d = nbfrost.Dispatcher(workers=1)
    gate = threading.Event()
    first = d.submit(hold, gate)
    nbfrost_wait(first.running)
    rest = [d.submit(pow, 2, i) for i in range(5)]
    threading.Timer(0.05, gate.set).start()
    d.shutdown(wait=True, cancel_futures=True)
    assert first.result(0) == "held"
    assert all(f.cancelled() for f in rest)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        d.submit(pow, 2, 2)
    with pytest.raises(RuntimeError, match="after shutdown"):
        d.map(pow, [2], [2])


def test_context_manager_waits(thread_baseline):
    with nbfrost.Dispatcher(workers=2) as d:
        fs = [d.submit(pow, 2, i) for i in range(4)]
    assert d.closed and all(f.done() for f in fs)


def test_run_in_executor_is_a_job(d):
    async def main() -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(d, pow, 3, 4)

    assert asyncio.run(main()) == 81
    [status] = d.jobs()
    assert status.name == "pow" and status.state is JobState.SUCCEEDED


def nbfrost_wait(predicate, timeout: float = WAIT) -> None:
    """Poll a state that has no event of its own (a future turning running)."""
    import time
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        time.sleep(0.001)
