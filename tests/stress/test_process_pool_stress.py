"""Stress: the process pool under recalls and cancels.  Three processes run
bursts of short and long jobs; the queue drains again and again (so jobs
sent ahead to busy processes are recalled and moved to idle ones, some
back to the process that gave them back), while random jobs are cancelled,
cooperatively or by killing their process.  Afterwards every job ended in
exactly one terminal state, none ran twice, every succeeded job ran and
returned its own value, and every job whose cancel() said True ended
cancelled."""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest

import nbfrost
from nbfrost import JobState

JOBS = 1500
WAIT = 120.0


def record(log: str, i: int, seconds: float) -> int:
    """The job: sleep, then append its number to *log* (one write)."""
    time.sleep(seconds)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{i}\n".encode())
    finally:
        os.close(fd)
    return i


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_process_job_runs_at_most_once_and_ends_once_under_recalls_and_cancels(
        tmp_path, seed):
    rng = random.Random(seed)
    log = str(tmp_path / "ran.log")
    cancelled: set[int] = set()
    with nbfrost.Dispatcher(workers=1, process_workers=3, expiry=None) as d:
        ts = []
        for i in range(JOBS):
            seconds = rng.choice([0, 0, 0, 0.0005, 0.002, 0.02]) if rng.random() > 0.01 else 0.3
            ts.append(d.queue(record, log, i, seconds, process=True))
            if rng.random() < 0.08:
                ts[-1].wait(WAIT)  # the queue drains: idle processes recall jobs sent ahead
            if rng.random() < 0.03:
                victim = rng.choice(ts)
                if victim.cancel(interrupt=rng.random() < 0.3):
                    cancelled.add(victim.id)
        for t in ts:
            assert t.wait(WAIT), f"job {t.id} did not end"
        states = {t.id: t.state for t in ts}
    with open(log) as f:
        ran = Counter(int(x) for x in f.read().split())
    assert [i for i, n in ran.items() if n > 1] == [], "jobs that ran twice"
    assert set(states.values()) <= {JobState.SUCCEEDED, JobState.CANCELLED}, Counter(states.values())
    for i, t in enumerate(ts):
        if states[t.id] is JobState.SUCCEEDED:
            assert ran[i] == 1 and t.result() == i
    assert all(states[i] is JobState.CANCELLED for i in cancelled)
    assert d.registry.active == 0


def echo_after(blob: bytes, seconds: float) -> bytes:
    time.sleep(seconds)
    return blob


def test_large_arguments_and_results_both_ways_under_recalls_never_stall():
    """Payloads larger than a pipe's buffer go both ways while idle
    processes recall jobs sent ahead: every job ends, each with its own
    payload back.  A guard more than a reproduction: the stall it guards
    against (a worker's reader waiting to answer a recall while its main
    thread writes a large result and the notebook's reader writes a large
    task to it) needs the recall to arrive in a narrow window; the design
    rules it out (the worker's reader never writes)."""
    rng = random.Random(7)
    blobs = [bytes([i % 251]) * (1 << 20) for i in range(6)]  # 1 MiB each, 16x a pipe
    with nbfrost.Dispatcher(workers=1, process_workers=2, expiry=None) as d:
        ts = []
        for i in range(240):
            ts.append((i, d.queue(echo_after, blobs[i % 6], rng.choice([0, 0, 0.001, 0.01]),
                                  process=True)))
            if rng.random() < 0.15:
                ts[-1][1].wait(WAIT)  # drains: recalls of jobs sent ahead
        for i, t in ts:
            assert t.wait(WAIT), f"job {t.id} stalled"
            assert t.result() == blobs[i % 6]
        d.clear()
