"""The bulk path behind ``map()``: jobs handed to the workers in chunks,
each still a job with its own id, status and terminal state."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator

import pytest
from helpers import WAIT, eventually

import nbfrost
from nbfrost import JobCancelled, JobFailed, JobState
from nbfrost.bulk import MAX_AUTO_CHUNK, auto_chunksize
from nbfrost.job import Job


def square(x: int) -> int:
    return x * x


def held_at(at: int, gate: threading.Event) -> Callable[[int], int]:
    """An identity item that holds its worker on *gate* when called with *at*."""
    def item(x: int) -> int:
        if x == at:
            gate.wait(WAIT)
        return x

    return item


def queue_held_chunk(d: nbfrost.Dispatcher, item: Callable, n: int, chunksize: int) -> list[Job]:
    """``item(0) … item(n - 1)`` in chunks of *chunksize*; returns once the first runs."""
    ts = d._queue_many(item, [(i,) for i in range(n)], chunksize=chunksize)
    eventually(lambda: ts[0].status().state is JobState.RUNNING)
    return ts


@contextlib.contextmanager
def shut_down_after(d: nbfrost.Dispatcher, gate: threading.Event | None = None
                    ) -> Iterator[nbfrost.Dispatcher]:
    """*d* for the block; then *gate* opens (so no item holds a worker) and *d* shuts down."""
    try:
        yield d
    finally:
        if gate is not None:
            gate.set()
        d.shutdown()


def test_results_in_order_ids_consecutive(dispatcher):
    ts = dispatcher._queue_many(square, [(i,) for i in range(1000)], chunksize=64)
    assert [t.result(timeout=WAIT) for t in ts] == [i * i for i in range(1000)]
    ids = [t.id for t in ts]
    assert ids == list(range(ids[0], ids[0] + 1000))
    assert all(t.status().state is JobState.SUCCEEDED for t in ts)
    assert dispatcher.registry.counts()["succeeded"] == 1000
    assert dispatcher.registry.active == 0


def test_ids_stay_consecutive_beside_concurrent_queue(dispatcher):
    stop = threading.Event()

    def other() -> None:
        while not stop.is_set():
            dispatcher.queue(square, 1)

    th = threading.Thread(target=other)
    th.start()
    try:
        ts = dispatcher._queue_many(square, [(i,) for i in range(2000)], chunksize=16)
    finally:
        stop.set()
        th.join()
    ids = [t.id for t in ts]
    assert ids == list(range(ids[0], ids[0] + 2000))
    assert dispatcher.wait(timeout=WAIT)
    assert [dispatcher.status(i).state for i in ids] == [JobState.SUCCEEDED] * 2000


def test_jobs_in_a_chunk_start_in_order_on_one_worker():
    with shut_down_after(nbfrost.Dispatcher(workers=1)) as d:
        order: list[int] = []
        ts = d._queue_many(order.append, [(i,) for i in range(300)], chunksize=100)
        assert d.wait(ts, timeout=WAIT)
        assert order == list(range(300))
        assert {t.status().worker for t in ts} == {"worker-0"}


def test_a_failing_item_fails_alone(dispatcher):
    def maybe(x: int) -> int:
        if x == 7:
            raise ValueError("seven")
        return x

    ts = dispatcher._queue_many(maybe, [(i,) for i in range(20)], chunksize=20)
    assert dispatcher.wait(ts, timeout=WAIT)
    states = [t.status().state for t in ts]
    assert states[7] is JobState.FAILED
    assert states[:7] + states[8:] == [JobState.SUCCEEDED] * 19
    with pytest.raises(JobFailed, match="seven"):
        ts[7].result()
    assert ts[8].result() == 8


def test_cancel_queued_items_of_a_chunk(dispatcher):
    gate = threading.Event()
    ran = []

    def item(x: int) -> int:
        if x == 0:
            gate.wait(WAIT)
        ran.append(x)
        return x

    with shut_down_after(nbfrost.Dispatcher(workers=1), gate) as d:
        ts = queue_held_chunk(d, item, 10, chunksize=10)
        assert ts[5].cancel() and ts[6].cancel()
        gate.set()
        assert d.wait(ts, timeout=WAIT)
        assert ran == [0, 1, 2, 3, 4, 7, 8, 9]
        assert ts[5].status().state is JobState.CANCELLED
        with pytest.raises(JobCancelled):
            ts[6].result()


def test_shutdown_mid_chunk_leaves_every_job_terminal(thread_baseline):
    gate = threading.Event()
    item = held_at(0, gate)

    d = nbfrost.Dispatcher(workers=2)
    ts = queue_held_chunk(d, item, 100, chunksize=25)
    d.shutdown(wait=False, cancel_pending=True)
    gate.set()
    assert d.wait(ts, timeout=WAIT)
    states = [t.status().state for t in ts]
    assert states[0] is JobState.SUCCEEDED
    assert set(states) <= {JobState.SUCCEEDED, JobState.CANCELLED}
    assert JobState.CANCELLED in states
    with pytest.raises(RuntimeError, match="shutdown"):
        d._queue_many(item, [(1,)])


def test_workers_bound_chunks_and_interrupting_a_chunk_job_frees_the_rest():
    with shut_down_after(nbfrost.Dispatcher(workers=2, grace=0.2)) as d:
        started = threading.Event()

        def item(x: int) -> int:
            if x == 0:
                started.set()
                while True:  # a Python loop: the interrupt lands
                    pass
            return x

        ts = d._queue_many(item, [(i,) for i in range(40)], chunksize=20)
        assert started.wait(WAIT)
        ts[0].cancel(interrupt=True)
        assert d.wait(ts, timeout=WAIT)
        assert [t.result() for t in ts[1:]] == list(range(1, 40))
        assert d.backend.busy() == 0


def test_abandoned_worker_hands_its_chunk_to_the_pool():
    import time

    with shut_down_after(nbfrost.Dispatcher(workers=2, grace=0.1)) as d:
        def item(x: int) -> int:
            if x == 0:
                time.sleep(1.0)  # a blocking C call: the interrupt waits
            return x

        ts = queue_held_chunk(d, item, 30, chunksize=30)
        ts[0].cancel(interrupt=True)
        # The rest of the chunk runs on the replacement worker before the
        # stuck job's sleep returns.
        assert d.wait(ts[1:], timeout=0.8)
        assert [t.result() for t in ts[1:]] == list(range(1, 30))


def test_shrink_mid_chunk_requeues_the_rest():
    with shut_down_after(nbfrost.Dispatcher(workers=2)) as d:
        gate = threading.Event()
        item = held_at(0, gate)

        ts = queue_held_chunk(d, item, 50, chunksize=50)
        d.resize(1)
        gate.set()
        assert d.wait(ts, timeout=WAIT)
        assert [t.result() for t in ts] == list(range(50))
        eventually(lambda: len(d.backend.threads()) == 1)


def test_listeners_timeouts_and_max_queue_still_see_every_job():
    with shut_down_after(nbfrost.Dispatcher(workers=2, max_queue=8)) as d:
        seen = []
        unsubscribe = d.on_finish(lambda t: seen.append(t.id))
        ts = d._queue_many(square, [(i,) for i in range(100)], chunksize=64)
        assert d.wait(ts, timeout=WAIT)
        eventually(lambda: len(seen) == 100)
        assert sorted(seen) == [t.id for t in ts]
        unsubscribe()


def test_coroutine_items(dispatcher):
    import asyncio

    async def twice(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    ts = dispatcher._queue_many(twice, [(i,) for i in range(50)], chunksize=10)
    assert [t.result(timeout=WAIT) for t in ts] == [2 * i for i in range(50)]


def test_empty_and_bad_chunksize(dispatcher):
    assert dispatcher._queue_many(square, []) == []
    with pytest.raises(ValueError, match="chunksize"):
        dispatcher._queue_many(square, [(1,)], chunksize=0)
    assert len(dispatcher.registry) == 0


def test_auto_chunksize():
    assert auto_chunksize(8, 4) == 1          # few items: one per chunk, like queue()
    assert auto_chunksize(100, 4) == 6        # every worker gets at least four chunks
    assert auto_chunksize(200_000, 4) == MAX_AUTO_CHUNK
    assert auto_chunksize(0, 4) == 1


def test_waiting_on_chunk_jobs_while_they_run_never_hangs(dispatcher):
    """A waiter added while the worker goes through the chunk is still woken."""
    for _ in range(5):
        ts = dispatcher._queue_many(square, [(i,) for i in range(3000)], chunksize=256)
        assert dispatcher.wait(ts, timeout=WAIT)
        assert dispatcher.wait(timeout=WAIT)
        assert [t.result() for t in ts[:5]] == [0, 1, 4, 9, 16]


def test_map_with_few_slow_items_uses_every_worker():
    import time

    with shut_down_after(nbfrost.Dispatcher(workers=4)) as d:
        def slow(x: int) -> int:
            time.sleep(0.05)
            return x

        assert list(d.map(slow, range(8), timeout=WAIT)) == list(range(8))
        assert len({s.worker for s in d.jobs()}) == 4  # chunks of one: spread out


def test_map_jobs_reach_the_history(tmp_path):
    path = tmp_path / "h.sqlite"
    with shut_down_after(nbfrost.Dispatcher(workers=2, history=path)) as d:
        assert list(d.map(square, range(600))) == [i * i for i in range(600)]
        assert d.flush_history(timeout=WAIT)
    frame = nbfrost.history(path)
    assert len(frame) == 600
    assert set(frame["state"].astype(str)) == {"succeeded"}


# -- the chunk loop (Registry.run_chunk) and the results taken a run at a time


def test_a_waiter_on_an_item_mid_chunk_is_woken():
    gate = threading.Event()
    item = held_at(0, gate)

    with shut_down_after(nbfrost.Dispatcher(workers=1), gate) as d:
        ts = queue_held_chunk(d, item, 200, chunksize=200)
        woken = []
        waiter = threading.Thread(target=lambda: woken.append(ts[100].wait(WAIT)))
        waiter.start()
        eventually(lambda: ts[100]._details is not None)  # it waits now
        gate.set()
        waiter.join(WAIT)
        assert woken == [True]
        assert ts[100].result() == 100
        assert d.wait(ts, timeout=WAIT)
        assert {t.status().state for t in ts} == {JobState.SUCCEEDED}


def test_items_of_a_chunk_record_their_own_times_and_worker():
    import time

    def item(x: int) -> int:
        time.sleep(0.002)
        return x

    with shut_down_after(nbfrost.Dispatcher(workers=1)) as d:
        ts = d._queue_many(item, [(i,) for i in range(20)], chunksize=20)
        assert d.wait(ts, timeout=WAIT)
        snaps = [t.status() for t in ts]
        for a, b in itertools.pairwise(snaps):
            assert a.started_at < a.finished_at <= b.started_at < b.finished_at
        assert all(s.duration >= 0.0015 for s in snaps)
        assert {s.worker for s in snaps} == {"worker-0"}
        assert {s.attempts for s in snaps} == {1}


def test_frames_and_counts_stay_consistent_while_chunks_run():
    with shut_down_after(nbfrost.Dispatcher(workers=2, expiry=None)) as d:
        it = d.map(square, range(20_000))
        seen_running = 0
        while d.registry.active:
            frame = d.to_frame()
            counts = d.registry.counts()
            assert sum(counts.values()) == len(d.registry)
            states = frame["state"].astype(str)
            running = frame[states == "running"]
            seen_running = max(seen_running, len(running))
            assert len(running) <= 2  # one running job per worker, never a whole chunk
            assert running["started_at"].notna().all()
            done = frame[states == "succeeded"]
            assert done["finished_at"].notna().all()
            assert (done["finished_at"] >= done["started_at"]).all()
            queued = frame[states == "queued"]
            assert queued["started_at"].isna().all()
        assert list(it) == [i * i for i in range(20_000)]
        assert d.registry.counts()["succeeded"] == 20_000


def test_a_listener_subscribed_mid_chunk_sees_the_rest():
    gate = threading.Event()
    item = held_at(0, gate)

    with shut_down_after(nbfrost.Dispatcher(workers=1), gate) as d:
        ts = queue_held_chunk(d, item, 100, chunksize=100)
        seen = []
        d.on_finish(lambda t: seen.append(t.id))
        gate.set()
        assert d.wait(ts, timeout=WAIT)
        assert seen == [t.id for t in ts]


def test_a_chunk_runs_in_one_copy_of_the_callers_context():
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")

    def item(x: int) -> str:
        seen = var.get()
        var.set(f"item-{x}")
        return seen

    with shut_down_after(nbfrost.Dispatcher(workers=1)) as d:
        out = list(d.map(item, range(4), chunksize=2))
        # The caller's value reaches the first item of each chunk; a set()
        # is seen by the later items of its chunk, never by the caller.
        assert out == ["caller", "item-0", "caller", "item-2"]
        assert var.get() == "caller"

        def loud(x: int) -> str:  # printing sends each item through the worker's own path
            print(x)
            return item(x)

        assert list(d.map(loud, range(3), chunksize=3)) == ["caller", "item-0", "item-1"]


def test_map_failure_mid_chunk_raises_at_its_position_and_hands_results_over():
    import weakref

    class Box:
        pass

    boxes: dict[int, weakref.ref] = {}  # by item: two chunks run at once, in no set order

    def item(x: int) -> Box:
        if x == 300:
            raise ValueError("three hundred")
        box = Box()
        boxes[x] = weakref.ref(box)
        return box

    with shut_down_after(nbfrost.Dispatcher(workers=2)) as d:
        it = d.map(item, range(600), chunksize=256)
        for _ in range(300):
            next(it)  # each result dropped at once
        assert all(boxes[x]() is None for x in range(300))  # not kept by anyone
        with pytest.raises(ValueError, match="three hundred"):
            next(it)
        assert d.wait(timeout=WAIT)
        states = [s.state for s in d.jobs()]
        assert states.count(JobState.FAILED) == 1
        assert set(states) <= {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


def test_map_timeout_waits_per_chunk_and_names_the_late_item():
    import concurrent.futures

    gate = threading.Event()
    item = held_at(3, gate)

    with shut_down_after(nbfrost.Dispatcher(workers=1), gate) as d:
        it = d.map(item, range(10), chunksize=5, timeout=0.2)
        assert [next(it) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(concurrent.futures.TimeoutError, match=r"job 3 \(.*item\)"):
            next(it)
