"""Stress: 8 producer threads queue 50k no-op jobs each while 2 threads query
statuses, cancel random ids and build frames.  Afterwards every id is held
exactly once, in exactly one terminal state, the counts add up, every job
whose cancel() said True ended cancelled, and every status read mid-run
matches the JSON Schema."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from importlib import resources

import jsonschema
import pytest

import nbfrost
from nbfrost import JobNotFound, JobState

PRODUCERS = 8
PER_PRODUCER = 50_000
TOTAL = PRODUCERS * PER_PRODUCER


def _noop() -> None:
    return None


def _check_rows(frame) -> None:
    """Each row is consistent in itself, although jobs start and end while
    the frame is built."""
    queued = frame[frame["state"] == "queued"]
    bad = queued[queued["started_at"].notna() | queued["worker"].notna()
                 | (queued["attempts"] != 0) | queued["error"].notna()]
    assert bad.empty, f"queued rows with start fields:\n{bad.head()}"
    done = frame[frame["state"].isin(["succeeded", "failed", "cancelled"])]
    bad = done[done["finished_at"].isna() | done["success"].isna()]
    assert bad.empty, f"finished rows without finish fields:\n{bad.head()}"
    live = frame[frame["state"].isin(["queued", "running"])]
    bad = live[live["finished_at"].notna() | live["success"].notna()]
    assert bad.empty, f"live rows with finish fields:\n{bad.head()}"


@pytest.mark.timeout(240)
def test_producers_and_queriers_at_once(thread_baseline):
    d = nbfrost.Dispatcher(workers=4, expiry=None)
    try:
        _run(d)
    finally:
        d.shutdown(wait=True, cancel_pending=True, timeout=30)


def _run(d: nbfrost.Dispatcher) -> None:  # noqa: C901 - one scenario; its threads share its counters
    start = threading.Barrier(PRODUCERS + 2)
    producing = threading.Event()
    errors: list[BaseException] = []
    issued: list[list[int]] = [[] for _ in range(PRODUCERS)]
    cancelled_ok: set[int] = set()
    queries: Counter[str] = Counter()

    def produce(k: int) -> None:
        try:
            start.wait()
            ids = issued[k]
            q = d.queue
            for _ in range(PER_PRODUCER):
                ids.append(q(_noop, quiet=True).id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    schema = json.loads(resources.files("nbfrost").joinpath("schema/status.schema.json")
                        .read_text("utf-8"))
    validator = jsonschema.Draft202012Validator(schema)

    def query(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            n = 0
            last_full = 0.0
            while producing.is_set() or n < 50:
                n += 1
                hi = d.stats()["submitted"]
                job_id = rng.randrange(hi + 10) if hi else 0
                try:
                    s = d.status(job_id)
                    assert s.id == job_id
                    assert s.complete == (s.state in nbfrost.TERMINAL)
                    validator.validate(s.to_dict())  # consistent even mid-transition
                    queries["status"] += 1
                except JobNotFound as exc:
                    # expiry=None: only ids not issued yet can be missing
                    assert "never existed" in str(exc) and job_id >= hi  # noqa: PT017 - a thread's loop
                    queries["missing"] += 1
                # One id anywhere, and the newest (likely still queued or running).
                newest_id = max(0, d.stats()["submitted"] - 1)
                for victim in (rng.randrange(max(hi, 1)), newest_id):
                    try:
                        if d.cancel(victim):
                            cancelled_ok.add(victim)
                        queries["cancel"] += 1
                    except JobNotFound:  # only before job 0 exists
                        assert victim == 0
                f = d.to_frame(newest=50)
                assert len(f) <= 50 and f.index.is_monotonic_decreasing
                queries["newest"] += 1
                if time.monotonic() - last_full > 3.0:  # a full frame now and then
                    full = d.to_frame()
                    assert full.index.is_unique and full.index.is_monotonic_increasing
                    _check_rows(full)
                    queries["full"] += 1
                    last_full = time.monotonic()
                if n % 1000 == 0:
                    assert all(s.state is JobState.CANCELLED for s in d.jobs(state="cancelled"))
        except BaseException as exc:
            errors.append(exc)

    producing.set()
    producers = [threading.Thread(target=produce, args=(k,), name=f"producer-{k}")
                 for k in range(PRODUCERS)]
    queriers = [threading.Thread(target=query, args=(k,), name=f"querier-{k}") for k in range(2)]
    t0 = time.monotonic()
    for t in producers + queriers:
        t.start()
    for t in producers:
        t.join()
    queued_s = time.monotonic() - t0
    producing.clear()
    for t in queriers:
        t.join()
    assert d.wait(timeout=120)
    total_s = time.monotonic() - t0
    assert not errors, errors

    # Every id issued exactly once, and they are 0 .. TOTAL-1.
    all_ids = [i for ids in issued for i in ids]
    assert len(all_ids) == TOTAL and sorted(all_ids) == list(range(TOTAL))
    for ids in issued:  # each producer saw increasing ids
        assert ids == sorted(ids)

    statuses = d.jobs()
    assert [s.id for s in statuses] == list(range(TOTAL))
    by_state = Counter(s.state for s in statuses)
    assert set(by_state) <= {JobState.SUCCEEDED, JobState.CANCELLED}
    assert all(s.complete and s.finished_at is not None for s in statuses)
    cancelled = {s.id for s in statuses if s.state is JobState.CANCELLED}
    # cancel() returned True exactly for the jobs that ended cancelled (some
    # ids were also cancelled through the unrecorded first cancel call).
    assert cancelled_ok <= cancelled

    stats = d.stats()
    assert stats["submitted"] == TOTAL and stats["held"] == TOTAL and stats["active"] == 0
    counts = stats["counts"]
    assert counts["queued"] == counts["running"] == counts["failed"] == 0
    assert counts["succeeded"] == by_state[JobState.SUCCEEDED]
    assert counts["cancelled"] == by_state[JobState.CANCELLED] == len(cancelled)
    assert sum(counts.values()) == TOTAL
    assert stats["finished"] == {"succeeded": counts["succeeded"], "failed": 0,
                                 "cancelled": counts["cancelled"]}
    frame = d.to_frame()
    assert len(frame) == TOTAL and frame.index.is_unique
    assert frame["state"].value_counts()["cancelled"] == len(cancelled)
    _check_rows(frame)
    assert queries["newest"] >= 100 and queries["full"] >= 2 and queries["cancel"] >= 90
    print(f"\nstress: {TOTAL} jobs queued in {queued_s:.1f} s, all done in {total_s:.1f} s; "
          f"{dict(queries)}; {len(cancelled)} cancelled")
