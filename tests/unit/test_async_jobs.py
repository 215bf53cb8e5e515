"""``async def`` jobs on the thread backend: run on each worker's own event
loop, with progress, cancel (task cancellation at the current ``await``),
timeouts, retries and the workers bound.  The Dask side is in test_dask.py,
the kernel side in test_kernel.py."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import threading
import warnings

import pytest
from helpers import WAIT, eventually, running

import nbfrost
from nbfrost import JobCancelled, JobFailed, JobState, JobTimeout

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def fetch(x: int, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return x * 10


async def parked(started: threading.Event, log: list, gate: asyncio.Event | None = None) -> str:
    """Waits at an await until cancelled; records what it saw."""
    started.set()
    try:
        await asyncio.sleep(3600)
        return "never"
    except asyncio.CancelledError:
        log.append("cancelled at await")
        raise
    finally:
        log.append("finally ran")


def test_coroutine_function_result(dispatcher):
    t = dispatcher.queue(fetch, 3)
    assert t.result(timeout=WAIT) == 30
    assert t.status().state is JobState.SUCCEEDED


def test_no_never_awaited_warning(dispatcher):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert dispatcher.queue(fetch, 1).result(timeout=WAIT) == 10
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_partial_and_callable_returning_a_coroutine(dispatcher):
    assert dispatcher.queue(functools.partial(fetch, 4)).result(timeout=WAIT) == 40
    assert dispatcher.queue(lambda: fetch(5)).result(timeout=WAIT) == 50


def test_coroutine_object_is_a_clear_type_error(dispatcher):
    coro = fetch(3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TypeError, match=r"pass the function and its arguments"):
            dispatcher.queue(coro)
        del coro
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert len(dispatcher.registry) == 0


def test_one_loop_per_worker_reused_and_running(dispatcher):
    async def loop_id() -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        return id(loop), threading.current_thread().name

    seen = [dispatcher.queue(loop_id).result(timeout=WAIT) for _ in range(12)]
    by_thread: dict[str, set[int]] = {}
    for loop, thread in seen:
        by_thread.setdefault(thread, set()).add(loop)
    assert all(len(loops) == 1 for loops in by_thread.values())
    assert len({loop for loop, _ in seen}) == len(by_thread)


def test_context_progress_and_output(dispatcher):
    async def job() -> str:
        for _ in nbfrost.progress(range(4), message="steps"):
            await asyncio.sleep(0)
        print("hello from a coroutine")
        return VAR.get()

    token = VAR.set("queued-value")
    try:
        t = dispatcher.queue(job)
    finally:
        VAR.reset(token)
    assert t.result(timeout=WAIT) == "queued-value"
    s = t.status()
    assert s.progress == 1.0
    assert "hello from a coroutine" in t.output


def test_failure_and_retries(dispatcher):
    calls = []

    async def flaky() -> str:
        calls.append(1)
        await asyncio.sleep(0)
        if len(calls) < 3:
            raise ValueError(f"attempt {len(calls)}")
        return "ok"

    assert dispatcher.queue(flaky, retries=2).result(timeout=WAIT) == "ok"
    assert len(calls) == 3

    async def bad() -> None:
        await asyncio.sleep(0)
        raise KeyError("boom")

    t = dispatcher.queue(bad)
    with pytest.raises(JobFailed) as info:
        t.result(timeout=WAIT)
    assert isinstance(info.value.__cause__, KeyError)
    assert "bad" in t.status().traceback


@pytest.mark.parametrize("interrupt", [False, True])
def test_cancel_cancels_the_task(dispatcher, interrupt):
    started = threading.Event()
    log: list[str] = []
    t = dispatcher.queue(parked, started, log)
    assert started.wait(WAIT)
    assert t.cancel(interrupt=interrupt)
    with pytest.raises(JobCancelled):
        t.result(timeout=WAIT)
    assert t.status().state is JobState.CANCELLED
    eventually(lambda: log == ["cancelled at await", "finally ran"], what=str(log))
    # The worker is free again and its loop still serves.
    assert dispatcher.queue(fetch, 2).result(timeout=WAIT) == 20


def test_cancelled_flag_inside_a_coroutine(dispatcher):
    async def polite() -> str:
        while not nbfrost.cancelled():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                # The task was cancelled too: the flag is already set.
                return "flag " + str(nbfrost.cancelled())
        return "flag seen"

    t = dispatcher.queue(polite)
    running(t)
    t.cancel()
    assert t.wait(WAIT)
    assert t.status().state is JobState.CANCELLED


def test_timeout_cancels_the_task(dispatcher):
    started = threading.Event()
    log: list[str] = []
    t = dispatcher.queue(parked, started, log, timeout=0.2)
    with pytest.raises(JobFailed) as info:
        t.result(timeout=WAIT)
    assert isinstance(info.value.__cause__, JobTimeout)
    eventually(lambda: log == ["cancelled at await", "finally ran"], what=str(log))
    assert dispatcher.queue(fetch, 1).result(timeout=WAIT) == 10


def test_workers_bound_coroutine_jobs():
    d = nbfrost.Dispatcher(workers=2)
    try:
        now = [0]
        peak = [0]
        lock = threading.Lock()

        async def job() -> None:
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            await asyncio.sleep(0.02)
            with lock:
                now[0] -= 1

        ts = [d.queue(job) for _ in range(10)]
        assert d.wait(ts, timeout=WAIT)
        assert peak[0] == 2
    finally:
        d.shutdown()


def test_leftover_tasks_are_cancelled_between_jobs(dispatcher):
    log = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            log.append("leftover cancelled")

    async def spawner() -> str:
        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)
        return "done"

    assert dispatcher.queue(spawner).result(timeout=WAIT) == "done"
    assert log == ["leftover cancelled"]


def test_loops_and_executor_threads_closed_at_shutdown(thread_baseline):
    loops = []

    async def job() -> int:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        # The loop's default executor starts threads of its own.
        return await loop.run_in_executor(None, sum, [1, 2, 3])

    d = nbfrost.Dispatcher(workers=2)
    assert [d.queue(job).result(timeout=WAIT) for _ in range(4)] == [6] * 4
    d.shutdown(wait=True)
    assert loops and all(loop.is_closed() for loop in loops)
    # thread_baseline's teardown checks that no thread is left.


def test_shutdown_with_timeout_cancels_a_parked_coroutine(thread_baseline):
    started = threading.Event()
    log: list[str] = []
    d = nbfrost.Dispatcher(workers=1)
    t = d.queue(parked, started, log)
    assert started.wait(WAIT)
    d.shutdown(wait=True, timeout=0.1)
    assert t.status().state is JobState.CANCELLED
    assert log == ["cancelled at await", "finally ran"]


def test_sync_jobs_unchanged_next_to_async_ones(dispatcher):
    ts = [dispatcher.queue(fetch, i) if i % 2 else dispatcher.queue(lambda i=i: i) for i in range(20)]
    assert [t.result(timeout=WAIT) for t in ts] == [i * 10 if i % 2 else i for i in range(20)]
