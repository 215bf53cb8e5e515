"""``to_frame()`` has one schema, whatever its rows hold, and
``nbfrost.history()`` shares it for the columns both have."""

from __future__ import annotations

import threading

import pytest
from helpers import WAIT, running

import nbfrost
from nbfrost.frames import COLUMNS, STATES, frame_dtypes

pd = pytest.importorskip("pandas")


def _boom() -> None:
    raise ValueError("boom")


def _empty(d, gate, clock):
    pass


def _queued_only(d, gate, clock):
    d.resize(1)
    blocker = d.queue(gate.wait, WAIT)
    running(blocker)
    d.queue(print, "later", tags="t", quiet=True)
    d.queue(print, "later too", quiet=True)
    return lambda frame: frame.drop(index=blocker.id)


def _running(d, gate, clock):
    t = d.queue(gate.wait, WAIT, tags=("a", "b"))
    running(t)


def _finished_mix(d, gate, clock):
    ok = d.queue(sum, [1, 2], name="ok", tags="x")
    bad = d.queue(_boom)
    assert ok.wait(WAIT) and bad.wait(WAIT)
    queued = d.queue(print, "never", after=bad, quiet=True)  # cancelled
    assert queued.state is nbfrost.JobState.CANCELLED
    t = d.queue(gate.wait, WAIT)
    running(t)


def _after_expiry(d, gate, clock):
    ts = [d.queue(sum, [i]) for i in range(3)]
    assert d.wait(ts, WAIT)
    clock.advance(61)
    d.sweep()


@pytest.mark.parametrize("make", [_empty, _queued_only, _running, _finished_mix, _after_expiry],
                         ids=["empty", "queued-only", "running", "finished-mix", "after-expiry"])
def test_to_frame_has_one_schema(make, dispatcher, clock):
    d = dispatcher
    gate = threading.Event()
    try:
        trim = make(d, gate, clock)
        frame = d.to_frame()
        if trim is not None:
            frame = trim(frame)
        want = frame_dtypes()
        assert list(frame.columns) == list(COLUMNS)
        assert {c: frame[c].dtype for c in COLUMNS} == {c: pd.api.types.pandas_dtype(want[c])
                                                         for c in COLUMNS}
        assert frame.index.name == "id" and frame.index.dtype == "int64"
        assert list(frame["state"].cat.categories) == STATES
        # Missing text is pd.NA, as in the boolean column.
        for column in ("worker", "error", "message"):
            assert all(isinstance(v, str) or v is pd.NA for v in frame[column].tolist())
        # Tags are one tuple per row.
        assert all(isinstance(v, tuple) for v in frame["tags"].tolist())
        if make is _finished_mix:
            row = frame[frame["name"] == "ok"].iloc[0]
            assert row["tags"] == ("x",) and row["success"] and row["state"] == "succeeded"
            failed = frame[frame["state"] == "failed"].iloc[0]
            assert failed["error"] == "boom" and failed["error_type"] == "ValueError"
    finally:
        gate.set()


def test_frames_with_and_without_rows_concatenate_without_changing_dtypes(dispatcher):
    d = dispatcher
    empty = d.to_frame()
    assert d.queue(sum, [1]).wait(WAIT)
    both = pd.concat([empty, d.to_frame()])
    assert (both.dtypes == empty.dtypes).all()


def test_history_shares_the_schema(tmp_path, clock, thread_baseline):
    path = tmp_path / "h.sqlite"
    with nbfrost.Dispatcher(workers=2, clock=clock, history=path) as d:
        assert d.queue(sum, [1], tags="t").wait(WAIT) and d.queue(_boom).wait(WAIT)
        live = d.to_frame()
    frames = [nbfrost.history(path)]
    empty_path = tmp_path / "empty.sqlite"
    nbfrost.Dispatcher(workers=1, history=empty_path).shutdown()
    frames.append(nbfrost.history(empty_path))
    want = frame_dtypes()
    for frame in frames:
        shared = [c for c in frame.columns if c in COLUMNS]
        assert len(shared) == len(frame.columns) - 4  # all but session, pid, id, schedule_rule
        assert {c: frame[c].dtype for c in frame.columns} == {
            c: pd.api.types.pandas_dtype(want[c]) for c in frame.columns}
        assert {c: frame[c].dtype for c in shared} == {c: live[c].dtype for c in shared}
    assert len(frames[0]) == 2 and len(frames[1]) == 0
