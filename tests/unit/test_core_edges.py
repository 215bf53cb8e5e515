"""Edge cases found in review: shutdown from inside a job, cleared ids with
expiry=None, empty tags."""

from __future__ import annotations

from typing import cast

import pytest
from helpers import eventually

import nbfrost
from nbfrost.backends.threads import ThreadBackend


def test_shutdown_from_inside_a_job_does_not_hang(thread_baseline):
    d = nbfrost.Dispatcher(workers=2, expiry=None)
    t = d.queue(d.shutdown)  # wait=True by default: would wait for itself
    assert t.wait(10)
    assert t.state is nbfrost.JobState.SUCCEEDED
    assert d.closed
    with pytest.raises(RuntimeError, match="shut down"):
        d.queue(int)


def test_cleared_id_with_no_expiry_says_cleared():
    with nbfrost.Dispatcher(workers=1, expiry=None) as d:
        t = d.queue(int)
        t.wait()
        assert d.clear() == 1
        with pytest.raises(nbfrost.JobNotFound, match="cleared"):
            d.status(t.id)
        with pytest.raises(nbfrost.JobNotFound, match="never existed"):
            d.status(t.id + 1)
        with pytest.raises(TypeError, match="ids are ints, got list"):
            d.status([1])  # type: ignore[arg-type]


@pytest.mark.parametrize("tags", ["", ["a", ""], 0, [None]])
def test_bad_tags_are_refused_before_queueing(tags):
    with nbfrost.Dispatcher(workers=1) as d:
        with pytest.raises((TypeError, ValueError)):
            d.queue(int, tags=tags)
        assert len(d.registry) == 0 and d.stats()["submitted"] == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_that_dies_outside_a_job_is_replaced(thread_baseline):
    """A worker killed by an exception outside any job (here: injected while
    it is idle) is replaced, and the pool keeps its size and keeps serving."""
    import ctypes

    d = nbfrost.Dispatcher(workers=2, expiry=None)
    try:
        backend = cast(ThreadBackend, d.backend)
        victim = backend._workers[0]
        before = {w.thread for w in backend._workers}
        eventually(lambda: victim.ident != 0, what="the victim to reach its loop")
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(victim.ident),
                                                   ctypes.py_object(SystemExit))
        # The exception lands only when the victim's get() returns, and any
        # idle worker may take a wake-up: wake them until the victim has one.
        for _ in range(1000):
            backend._queue.put(None)
            victim.thread.join(0.01)
            if not victim.thread.is_alive():
                break
        assert not victim.thread.is_alive()
        threads = backend.threads()
        assert len(threads) == 2 and set(threads) != before
        assert [d.queue(pow, 2, i).result(timeout=10) for i in range(4)] == [1, 2, 4, 8]
    finally:
        d.shutdown()


def test_workers_has_a_documented_upper_bound(thread_baseline):
    from nbfrost import defaults

    with pytest.raises(ValueError, match=r"at most 1024 \(nbfrost.defaults.MAX_WORKERS\)"):
        nbfrost.Dispatcher(workers=defaults.MAX_WORKERS + 1)
    with nbfrost.Dispatcher(workers=1) as d:
        with pytest.raises(ValueError, match="MAX_WORKERS"):
            d.resize(defaults.MAX_WORKERS + 1)
        assert d.workers == 1
