"""The core's public API: the Bifröst story, ids, names, status snapshots,
JSON, frames, reprs, futures, asyncio, callbacks, result semantics,
JobNotFound, waiting, stats, on_finish, retry, clear, resize, shutdown.

Everything that needs time to pass uses the injectable ``clock`` fixture;
everything that needs a job to be "in the middle" blocks it on an Event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from helpers import WAIT, concurrency_probe, fill_pool, running

import nbfrost
from nbfrost import JobCancelled, JobFailed, JobNotFound, JobState, JobStatus, Tracker

UTC = timezone.utc


# --------------------------------------------------------------- Bifröst
class Runner:
    """Bifröst's JobRunner: an object with a run() method."""

    def __init__(self) -> None:
        self.ran = threading.Event()

    def run(self) -> str:
        self.ran.set()
        return "ran"


def test_bifrost_story(clock, thread_baseline):
    """BIFROST.md's example, step by step, with the same observable results."""
    d = nbfrost.Dispatcher(workers=4, expiry=0.001, clock=clock)
    gate = threading.Event()

    def first() -> str:
        assert gate.wait(WAIT)
        return "first"

    runner = Runner()
    t1 = d.queue(first)
    t2 = d.queue(runner)
    assert (t1.id, t2.id) == (0, 1)
    assert t2.name == "Runner"

    # Not complete yet: no Success, no Finish, in the snapshot and in JSON.
    s = t1.status()
    assert s.id == 0 and not s.complete and s.success is None and s.finished_at is None
    as_json = json.loads(s.to_json())
    assert as_json["complete"] is False
    assert "success" not in as_json and "finished_at" not in as_json

    gate.set()
    assert t1.wait(WAIT)
    s = t1.status()
    assert s.complete and s.success is True and s.finished_at is not None
    as_json = json.loads(s.to_json())
    assert as_json["complete"] is True and as_json["success"] is True
    assert datetime.fromisoformat(as_json["finished_at"]) == s.finished_at
    assert t2.result(WAIT) == "ran" and runner.ran.is_set()

    def failing() -> None:
        raise Exception("Failed")

    t3 = d.queue(failing)
    assert t3.wait(WAIT)
    s3 = t3.status()
    assert s3.complete and s3.success is False and s3.error == "Failed"
    as_json = json.loads(s3.to_json())
    assert as_json["success"] is False and as_json["error"] == "Failed"
    assert "finished_at" in as_json

    # Lookup by id gives the same status.
    assert d.status(t3.id) == s3
    assert d.status(t3.id).to_json() == s3.to_json()

    assert [j.id for j in d.jobs()] == [0, 1, 2]
    clock.advance(0.005)  # "sleep a few ms"
    assert d.jobs() == []
    with pytest.raises(JobNotFound, match="expired"):
        d.status(t3.id)
    d.shutdown()
    assert d.closed


# ------------------------------------------------------------- ids, names
def test_ids_start_at_zero_increase_and_are_never_reused(dispatcher, clock):
    d = dispatcher
    ids = [d.queue(int).id for _ in range(5)]
    assert ids == [0, 1, 2, 3, 4]
    assert d.wait(timeout=WAIT)
    d.clear()
    clock.advance(1000)
    assert len(d.registry) == 0
    # Even after everything was cleared and expired, ids keep counting.
    assert d.queue(int).id == 5
    t = d.queue(int)
    assert t.id == 6 and isinstance(t.id, int)


def _named(x: int = 0) -> int:
    return x


def test_names_default_to_the_callable_and_can_be_given(dispatcher):
    d = dispatcher
    assert d.queue(_named).name == "_named"
    assert d.queue(lambda: None).name.endswith("<lambda>")  # the qualname
    assert d.queue(functools.partial(_named, 1)).name == "_named"
    assert d.queue(Runner()).name == "Runner"
    assert d.queue(Runner().run).name == "Runner"
    t = d.queue(_named, name="load data")
    assert t.name == "load data"
    assert d.wait(timeout=WAIT)
    assert t.status().name == "load data"
    assert [s.id for s in d.jobs(name="load data")] == [t.id]
    assert [s.name for s in d.jobs(name="load*")] == ["load data"]
    assert len(d.jobs(name="_named")) == 2


def test_tags_and_filters(dispatcher):
    d = dispatcher
    a = d.queue(int, tags="etl")
    b = d.queue(int, tags=["etl", "nightly"])
    c = d.queue(int, tags=("adhoc",))
    e = d.queue(int)
    assert d.wait(timeout=WAIT)
    assert a.tags == ("etl",) and b.tags == ("etl", "nightly") and e.tags == ()
    assert b.status().tags == ("etl", "nightly")
    assert [s.id for s in d.jobs(tag="etl")] == [a.id, b.id]
    assert [s.id for s in d.jobs(tag="adhoc")] == [c.id]
    assert d.jobs(tag="missing") == []
    assert len(d.jobs(state="succeeded")) == 4
    assert len(d.jobs(state=["failed", "cancelled"])) == 0
    with pytest.raises(ValueError, match="valid states"):
        d.jobs(state="finished")


# ---------------------------------------------------------------- status
STATUS_FIELDS = {"id", "name", "state", "complete", "success", "error", "traceback",
                 "queued_at", "started_at", "finished_at", "duration", "worker",
                 "progress", "message", "tags", "attempts"}


def test_status_fields_through_the_lifecycle(dispatcher, clock):
    d = dispatcher
    started, release = threading.Event(), threading.Event()

    def job() -> int:
        started.set()
        assert release.wait(WAIT)
        return 7

    gate, _ = fill_pool(d, 4)
    t = d.queue(job, name="j", tags=("x",))
    q = t.status()
    assert isinstance(q, JobStatus)
    assert STATUS_FIELDS <= set(q.__dataclass_fields__)
    assert q.state is JobState.QUEUED and q.state == "queued"
    assert (q.complete, q.success, q.error, q.traceback) == (False, None, None, None)
    assert q.queued_at == datetime.fromtimestamp(clock.now, UTC)
    assert q.queued_at.tzinfo is not None and q.queued_at.utcoffset() == timedelta(0)
    assert (q.started_at, q.finished_at, q.duration, q.worker) == (None, None, None, None)
    assert (q.progress, q.message, q.tags, q.attempts) == (None, None, ("x",), 0)
    with pytest.raises(AttributeError):  # frozen: a snapshot never changes
        q.state = JobState.RUNNING  # type: ignore[misc]

    clock.advance(2)
    gate.set()  # the blockers finish and free the pool
    assert started.wait(WAIT)
    r = t.status()
    assert r.state is JobState.RUNNING and not r.complete and r.success is None
    assert r.started_at is not None and r.started_at >= q.queued_at
    assert r.worker is not None and r.worker.startswith("worker-")
    assert r.attempts == 1 and r.duration is not None and r.duration >= 0
    release.set()
    assert t.result(WAIT) == 7
    clock.advance(3)
    f = t.status()
    assert f.state is JobState.SUCCEEDED and f.complete and f.success is True
    assert f.finished_at is not None and f.queued_at <= f.started_at <= f.finished_at
    assert f.duration == pytest.approx((f.finished_at - f.started_at).total_seconds())
    assert f.error is None and f.error_type is None
    assert t.status() is f or t.status() == f  # terminal snapshots never change


def test_failed_status_has_error_type_and_traceback(dispatcher):
    def broken() -> None:
        raise ValueError("bad value <x>")

    t = dispatcher.queue(broken)
    assert t.wait(WAIT)
    s = t.status()
    assert s.state is JobState.FAILED and s.success is False
    assert s.error == "bad value <x>" and s.error_type == "ValueError"
    assert "Traceback" in s.traceback and "broken" in s.traceback
    assert "ValueError: bad value <x>" in s.traceback
    # The traceback starts at the user's code, not in nbfrost's worker loop.
    assert "backends/threads.py" not in s.traceback

    t2 = dispatcher.queue(lambda: 1 / 0)
    assert t2.wait(WAIT)
    assert t2.status().error == "division by zero"
    t3 = dispatcher.queue(functools.partial(_raise, RuntimeError()))
    assert t3.wait(WAIT)
    assert t3.status().error == "RuntimeError"  # an empty message still says something


def _raise(exc: BaseException) -> None:
    raise exc


def test_to_dict_and_to_json_rules(dispatcher, clock):
    d = dispatcher
    gate = threading.Event()
    t = d.queue(gate.wait, WAIT, name="n", tags=["a", "b"])
    running(t)
    dd = t.status().to_dict()
    assert "success" not in dd and "finished_at" not in dd
    assert dd["state"] == "running" and dd["complete"] is False
    assert dd["tags"] == ["a", "b"] and dd["attempts"] == 1
    assert dd["started_at"] is not None and dd["error"] is None
    assert json.loads(t.status().to_json()) == dd
    gate.set()
    assert t.wait(WAIT)
    clock.advance(1.5)
    s = t.status()
    dd = s.to_dict()
    assert dd["success"] is True and dd["state"] == "succeeded" and dd["complete"] is True
    for key in ("queued_at", "started_at", "finished_at"):
        parsed = datetime.fromisoformat(dd[key])
        assert parsed.utcoffset() == timedelta(0)
        assert parsed == getattr(s, key)
    assert dd["queued_at"].startswith("2023-11-14T22:13:20")  # the fixture's clock
    assert json.loads(s.to_json(indent=2)) == dd
    assert json.loads(d.jobs().to_json()) == [dd]


# ----------------------------------------------------------------- frames
def test_to_frame_columns_types_and_filters(dispatcher, clock):
    import pandas as pd

    d = dispatcher
    gate = threading.Event()

    def reporter() -> None:
        nbfrost.report(0.25, "a quarter")
        assert gate.wait(WAIT)

    ok = d.queue(int, name="ok", tags="t1")
    bad = d.queue(_raise, ValueError("nope"), name="bad")
    assert ok.wait(WAIT) and bad.wait(WAIT)
    clock.advance(1)
    rep = d.queue(reporter, name="rep", tags=("t1", "t2"))
    running(rep)
    deadline = time.monotonic() + WAIT
    while rep.status().progress is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)

    f = d.to_frame()
    assert list(f.index) == [0, 1, 2] and f.index.name == "id"
    assert isinstance(f["state"].dtype, pd.CategoricalDtype)
    # Every job state, and "lost", which only history() reports (one dtype for both).
    assert list(f["state"].cat.categories) == [s.value for s in JobState] + ["lost"]
    assert list(f["state"]) == ["succeeded", "failed", "running"]
    for col in ("queued_at", "started_at", "finished_at"):
        assert isinstance(f[col].dtype, pd.DatetimeTZDtype), col
        assert str(f[col].dtype.tz) == "UTC"
    assert f["duration"].dtype == "float64"
    assert pd.isna(f.loc[2, "finished_at"])
    assert f.loc[0, "queued_at"] == pd.Timestamp(ok.status().queued_at)
    assert f.loc[2, "progress"] == 0.25 and f.loc[2, "message"] == "a quarter"
    assert f.loc[1, "error"] == "nope" and f.loc[1, "error_type"] == "ValueError"
    assert bool(f.loc[0, "success"]) is True and bool(f.loc[1, "success"]) is False
    assert pd.isna(f.loc[2, "success"])
    assert f.loc[2, "duration"] >= 0

    newest = d.to_frame(newest=2)
    assert list(newest.index) == [2, 1]
    assert list(d.to_frame(newest=10).index) == [2, 1, 0]
    assert list(d.to_frame(newest=0).index) == []
    assert list(d.to_frame(state="succeeded").index) == [0]
    assert list(d.to_frame(tag="t1").index) == [0, 2]
    assert list(d.to_frame(tag="t1", newest=1).index) == [2]
    assert list(d.to_frame(name="b*").index) == [1]
    with pytest.raises(ValueError, match="newest must be >= 0"):
        d.to_frame(newest=-1)
    gate.set()
    assert rep.wait(WAIT)


def test_to_frame_of_an_empty_registry(dispatcher):
    import pandas as pd

    for f in (dispatcher.to_frame(), dispatcher.to_frame(newest=50)):
        assert len(f) == 0 and f.index.name == "id"
        assert "state" in f.columns and "duration" in f.columns
        assert isinstance(f["state"].dtype, pd.CategoricalDtype)
        assert isinstance(f["queued_at"].dtype, pd.DatetimeTZDtype)


# ------------------------------------------------------------------ reprs
EVIL = '<script>alert("x")</script>'


def test_reprs_escape_html(dispatcher):
    d = dispatcher

    def evil() -> None:
        nbfrost.report(0.5, EVIL)
        raise ValueError(EVIL)

    t = d.queue(evil, name=EVIL, tags=[EVIL])
    assert t.wait(WAIT)
    for html in (t.status()._repr_html_(), d.jobs()._repr_html_(), t._repr_html_()):
        assert "<script>" not in html
        assert "&lt;script&gt;" in html
        assert "failed" in html
    assert "<table" in d.jobs()._repr_html_()
    # Text fallbacks.
    assert repr(t).startswith("<Tracker job 0") and "failed" in repr(t)
    assert "state=failed" in repr(t.status()) and "id=0" in repr(t.status())
    assert "nbfrost.Dispatcher" in repr(d)


# ------------------------------------------------ futures, asyncio, callbacks
def test_future_view_with_wait_and_as_completed(dispatcher):
    d = dispatcher
    gate = threading.Event()
    slow = d.queue(gate.wait, WAIT)
    fast = [d.queue(_named, i) for i in range(3)]
    bad = d.queue(_raise, KeyError("k"))
    done, not_done = concurrent.futures.wait(
        [t.future for t in [*fast, bad]], timeout=WAIT)
    assert len(done) == 4 and not not_done
    assert sorted(t.future.result() for t in fast) == [0, 1, 2]
    assert isinstance(bad.future.exception(), KeyError)  # the original exception
    assert slow.future is slow.future  # made once

    _, pending = concurrent.futures.wait([slow.future], timeout=0.01)
    assert pending == {slow.future}
    gate.set()
    got = [f.result() for f in concurrent.futures.as_completed([slow.future], timeout=WAIT)]
    assert got == [True]

    # A future asked for after completion is settled at once.
    assert fast[0].future.done() and fast[0].future.result() == 0


def test_cancelling_the_future_cancels_the_job(dispatcher):
    d = dispatcher
    gate = threading.Event()
    blockers = [d.queue(gate.wait, WAIT) for _ in range(4)]
    queued = d.queue(int)
    assert queued.future.cancel() is True
    assert queued.state is JobState.CANCELLED and queued.future.cancelled()
    gate.set()
    for b in blockers:
        assert b.result(WAIT) is True


def test_await_tracker_in_asyncio(dispatcher):
    d = dispatcher
    gate = threading.Event()

    async def main() -> tuple:
        t = d.queue(gate.wait, WAIT)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while not t.done():
                ticks += 1
                if ticks == 3:
                    gate.set()  # release only once the loop was proven free
                await asyncio.sleep(0.001)

        ticker = asyncio.ensure_future(tick())
        value = await t
        await ticker
        with pytest.raises(JobFailed):
            await d.queue(_raise, ValueError("x"))
        already = d.queue(_named, 5)
        assert already.wait(WAIT)
        return value, ticks, await already

    value, ticks, again = asyncio.run(main())
    assert value is True and ticks >= 3 and again == 5


def test_done_callbacks_before_and_after_and_raising(dispatcher, caplog):
    d = dispatcher
    gate = threading.Event()
    seen: list[tuple[str, int, str]] = []
    t = d.queue(gate.wait, WAIT)

    def good(tr: Tracker) -> None:
        seen.append(("good", tr.id, tr.state.value))

    def bad(tr: Tracker) -> None:
        raise RuntimeError("callback boom")

    t.add_done_callback(bad)
    t.add_done_callback(good)
    assert seen == []
    with caplog.at_level(logging.ERROR, logger="nbfrost"):
        gate.set()
        assert t.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while not seen:  # callbacks run in the worker right after waking waiters
            assert time.monotonic() < deadline
            time.sleep(0.001)
        t.add_done_callback(good)  # after completion: runs at once, here
        t.add_done_callback(bad)   # ... and is logged too
    assert seen == [("good", 0, "succeeded"), ("good", 0, "succeeded")]
    errors = [r for r in caplog.records if r.name == "nbfrost" and r.exc_info]
    assert len(errors) == 2
    assert all("callback boom" in str(r.exc_info[1]) for r in errors)
    # Nothing died: the pool serves and keeps its size.
    assert d.queue(_named, 3).result(WAIT) == 3
    assert d.stats()["workers"] == 4 and len(d.backend.threads()) == 4
    with pytest.raises(TypeError, match="callable"):
        t.add_done_callback("not callable")


# ---------------------------------------------------------------- results
def test_result_and_exception_semantics(dispatcher):
    d = dispatcher
    ok = d.queue(_named, 4)
    assert ok.result(WAIT) == 4 and ok.exception() is None

    original = ValueError("the cause")
    bad = d.queue(_raise, original)
    with pytest.raises(JobFailed) as info:
        bad.result(WAIT)
    assert info.value.__cause__ is original and info.value.original is original
    assert info.value.job_id == bad.id and "the cause" in str(info.value)
    assert "ValueError" in info.value.job_traceback
    assert bad.exception() is original

    gate = threading.Event()
    blockers = [d.queue(gate.wait, WAIT) for _ in range(4)]
    waiting = d.queue(int)
    with pytest.raises(TimeoutError) as tinfo:
        waiting.result(timeout=0.01)
    assert not isinstance(tinfo.value, JobFailed)
    assert "still queued" in str(tinfo.value)
    with pytest.raises(TimeoutError):
        waiting.exception(timeout=0.01)
    assert waiting.wait(0) is False
    assert waiting.cancel() is True
    with pytest.raises(JobCancelled):
        waiting.result()
    with pytest.raises(JobCancelled):
        waiting.exception()
    assert isinstance(JobCancelled(), concurrent.futures.CancelledError)
    gate.set()
    assert all(b.result(WAIT) for b in blockers)
    assert waiting.cancel() is False  # already finished


def test_job_not_found_never_existed_vs_expired(clock, thread_baseline):
    with nbfrost.Dispatcher(workers=2, expiry=30, clock=clock) as d:
        for _ in range(13):
            d.queue(int)
        assert d.wait(timeout=WAIT)
        t12 = d.tracker(12)
        clock.advance(40)
        with pytest.raises(JobNotFound) as info:
            d.status(12)
        assert isinstance(info.value, KeyError)
        assert str(info.value).startswith("job 12 finished 40 s ago and expired (expiry=30 s)")
        assert info.value.job_id == 12
        with pytest.raises(KeyError, match="never existed"):
            d.status(13)
        with pytest.raises(JobNotFound, match="never existed"):
            d.status(-1)
        with pytest.raises(JobNotFound, match="never existed"):
            d.tracker(10_000)
        with pytest.raises(JobNotFound, match="expired"):
            d.tracker(0)
        # A numeric string is the wrong type, not an unknown id.
        with pytest.raises(TypeError, match=r"job ids are ints, got the str '3': pass 3, "
                                            r"as in d\.status\(3\)"):
            d.status("3")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"job ids are ints, got float 3\.0"):
            d.cancel(3.0)  # type: ignore[arg-type]

        # The tracker the user still holds keeps working.
        assert t12.done() and t12.wait(0) and t12.result() == 0
        assert t12.status().state is JobState.SUCCEEDED
        assert t12.exception() is None and t12.output == ""
        got: list[int] = []
        t12.add_done_callback(lambda tr: got.append(tr.id))
        assert got == [12]
        # and can even be a dependency
        assert d.queue(int, after=t12).result(WAIT) == 0


def test_job_not_found_message_with_fractional_seconds(clock, dispatcher):
    d = dispatcher
    d.expiry = 2
    t = d.queue(int)
    assert t.wait(WAIT)
    clock.advance(3.5)
    with pytest.raises(JobNotFound, match=r"finished 3.5 s ago and expired \(expiry=2 s\)"):
        d.status(t.id)


# ---------------------------------------------------------- wait, stats
def test_dispatcher_wait(dispatcher):
    d = dispatcher
    gate = threading.Event()
    a = d.queue(gate.wait, WAIT)
    b = d.queue(int)
    assert b.wait(WAIT)
    assert d.wait(timeout=0.01) is False
    assert d.wait([b], timeout=0.01) is True
    assert d.wait([b.id], timeout=0) is True
    assert d.wait([a, b.id], timeout=0.01) is False
    gate.set()
    assert d.wait([a.id], timeout=WAIT) is True
    assert d.wait() is True
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        d.wait(timeout=-1)


def test_stats_counts_add_up(dispatcher, clock):
    d = dispatcher
    gate, _ = fill_pool(d, 4)
    q = [d.queue(int) for _ in range(3)]
    q[0].cancel()
    bad = d.queue(_raise, ValueError())
    s = d.stats()
    assert s["counts"] == {"queued": 3, "running": 4, "succeeded": 0, "failed": 0, "cancelled": 1}
    assert s["submitted"] == 8 and s["held"] == 8 and s["active"] == 7
    assert s["workers"] == 4 and s["busy"] == 4 and s["backend"] == "threads"
    assert s["expiry"] == 60.0
    gate.set()
    assert bad.wait(WAIT) and d.wait(timeout=WAIT)
    s = d.stats()
    assert s["counts"] == {"queued": 0, "running": 0, "succeeded": 6, "failed": 1, "cancelled": 1}
    assert s["finished"] == {"succeeded": 6, "failed": 1, "cancelled": 1}
    assert s["active"] == 0 and s["busy"] == 0
    assert s["throughput"] >= 0
    clock.advance(2)
    assert 0 < d.stats()["throughput"] <= 8  # 8 jobs ended within the last window
    assert sum(s["finished"].values()) + s["active"] == s["submitted"]


def test_on_finish_and_unsubscribe(dispatcher):
    d = dispatcher
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()

    def cb(tr: Tracker) -> None:
        assert isinstance(tr, Tracker)
        with lock:
            seen.append((tr.id, tr.state.value))

    unsubscribe = d.on_finish(cb)
    a = d.queue(int)
    b = d.queue(_raise, ValueError())
    assert d.wait([a, b], timeout=WAIT)
    deadline = time.monotonic() + WAIT
    while len(seen) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert sorted(seen) == [(0, "succeeded"), (1, "failed")]
    unsubscribe()
    c = d.queue(int)
    d.queue(int, after=c).wait(WAIT)
    assert len(seen) == 2
    with pytest.raises(TypeError):
        d.on_finish(42)


def test_a_raising_on_finish_listener_is_logged_and_harmless(dispatcher, caplog):
    d = dispatcher
    d.on_finish(lambda tr: _raise(RuntimeError("listener boom")))
    with caplog.at_level(logging.ERROR, logger="nbfrost"):
        assert d.queue(_named, 1).result(WAIT) == 1
        assert d.queue(_named, 2).result(WAIT) == 2
        deadline = time.monotonic() + WAIT
        while len([r for r in caplog.records if r.exc_info]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.001)
    assert all("listener boom" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    assert concurrency_probe(d, 6, 4) == 4


def _raise_now() -> None:
    raise RuntimeError("a failed dependency")


def test_retry_requeues_a_finished_job(dispatcher):
    d = dispatcher
    calls: list[int] = []

    def flaky(x: int, *, y: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise ValueError("first time")
        return x + y

    t = d.queue(flaky, 1, y=2, name="flaky", tags="r")
    assert t.wait(WAIT) and t.state is JobState.FAILED
    t2 = d.retry(t.id)
    assert t2.id == t.id + 1 and t2.name == "flaky" and t2.tags == ("r",)
    assert t2.result(WAIT) == 3
    assert calls == [1, 1]
    # A succeeded job let go of its callable and arguments: no retry.
    with pytest.raises(ValueError, match="only failed or cancelled jobs can be retried"):
        d.retry(t2)
    cancelled = d.queue(flaky, 5, y=1, after=d.queue(_raise_now))
    assert cancelled.wait(WAIT) and cancelled.state is JobState.CANCELLED
    t3 = d.retry(cancelled)  # a tracker works too, and cancelled jobs keep their arguments
    assert t3.result(WAIT) == 6
    gate = threading.Event()
    busy = d.queue(gate.wait, WAIT)
    with pytest.raises(ValueError, match="still"):
        d.retry(busy)
    gate.set()
    assert busy.wait(WAIT)


def test_clear_removes_only_finished_jobs(dispatcher):
    d = dispatcher
    gate = threading.Event()
    done = [d.queue(int) for _ in range(3)]
    assert d.wait(done, timeout=WAIT)
    live = d.queue(gate.wait, WAIT)
    running(live)
    assert d.clear() == 3
    assert [s.id for s in d.jobs()] == [live.id]
    with pytest.raises(JobNotFound, match="job 0 finished and was cleared from the registry"):
        d.status(0)
    assert done[0].result() == 0  # trackers survive clear
    gate.set()
    assert live.wait(WAIT)
    assert d.clear(["failed"]) == 0
    assert d.clear(["succeeded"]) == 1 and len(d.registry) == 0


def test_a_cleared_job_says_cleared_and_an_expired_one_expired(dispatcher, clock):
    d = dispatcher  # expiry=60 s
    old = d.queue(int)
    assert old.wait(WAIT)
    clock.advance(61.0)
    d.registry.sweep()
    gate = threading.Event()
    kept = d.queue(gate.wait, WAIT)
    running(kept)
    cleared = [d.queue(int) for _ in range(3)]
    assert d.wait(cleared, timeout=WAIT)
    clock.advance(5.0)
    assert d.clear() == 3
    clock.advance(7.0)
    with pytest.raises(JobNotFound, match=r"job 0 finished 73 s ago and expired"):
        d.status(old.id)
    for t in cleared:
        with pytest.raises(JobNotFound, match=rf"job {t.id} finished and was cleared from "
                                              r"the registry 7 s ago"):
            d.status(t.id)
    assert d.status(kept.id).state is JobState.RUNNING
    gate.set()
    # Memory stays bounded: each clear of one job (failed ones kept) is one run.
    from nbfrost import defaults
    for _ in range(defaults.CLEARED_RUNS + 10):
        a, b = d.queue(int), d.queue(int, "not a number")
        assert d.wait([a, b], timeout=WAIT)
        d.clear(["succeeded"])
    assert len(d.registry._cleared) == defaults.CLEARED_RUNS


def test_exactly_workers_jobs_run_at_once(dispatcher):
    assert concurrency_probe(dispatcher, 10, 4) == 4


def test_resize_grows_and_shrinks_the_pool(dispatcher):
    d = dispatcher
    d.resize(6)
    assert d.workers == 6 and d.stats()["workers"] == 6
    assert concurrency_probe(d, 12, 6) == 6
    d.resize(2)
    assert d.workers == 2
    assert concurrency_probe(d, 8, 2) == 2
    deadline = time.monotonic() + WAIT
    while len(d.backend.threads()) != 2:  # retired workers leave when idle
        assert time.monotonic() < deadline, d.backend.threads()
        time.sleep(0.005)
    d.resize(3)
    assert concurrency_probe(d, 6, 3) == 3
    with pytest.raises(ValueError, match="workers must be >= 1"):
        d.resize(0)
    with pytest.raises(TypeError):
        d.resize("2")
    assert d.workers == 3


def test_context_manager_waits_and_cleans_up(thread_baseline):
    gate = threading.Event()
    with nbfrost.Dispatcher(workers=2) as d:
        ts = [d.queue(_named, i) for i in range(10)]
        slow = d.queue(gate.wait, WAIT)
        gate.set()
    assert d.closed
    assert [t.result(0) for t in ts] == list(range(10)) and slow.result(0) is True
    with pytest.raises(RuntimeError, match="shut down"):
        d.queue(int)


def test_shutdown_twice_is_safe(thread_baseline):
    d = nbfrost.Dispatcher(workers=2)
    t = d.queue(_named, 1)
    d.shutdown()
    d.shutdown()
    d.shutdown(wait=False, cancel_pending=True)
    assert t.result(0) == 1 and d.closed
