"""A stateful property test of the registry's rules (hypothesis).

The machine decides when each job finishes: every job blocks on its own
Event, and the ``finish`` rule releases one (to succeed or to fail).  Time
moves only through the injectable clock.  After every step the pool is
allowed to settle (the jobs that can start have started), and the
dispatcher is compared with a plain model:

* ids are issued 0, 1, 2, ... and every held id is below the next one;
* exactly the jobs that are not finished-and-older-than-expiry (and not
  cleared) are held; queued and running jobs never expire;
* each held job is in the model's state; terminal jobs have ``finished_at``;
* the counts per state, the totals and ``submitted`` match;
* the running jobs are the oldest unfinished ones, never more than workers;
* a missing id says "never existed" or "expired", correctly;
* a tracker keeps answering after its job was purged.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
from helpers import WAIT, FakeClock, eventually
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import nbfrost
from nbfrost import JobNotFound, JobState, Tracker

WORKERS = 2
EXPIRY = 10.0
# Multiples of 0.5 are exact in binary floating point, so the machine can
# land exactly on the expiry boundary.
STEPS = st.sampled_from([0.5, 1.0, 2.5, 5.0, 9.5, 10.0, 10.5, 25.0])


def _work(release: threading.Event, outcome: list[str]) -> str:
    if not release.wait(WAIT):
        raise RuntimeError("the state machine never released this job")
    if outcome[0] == "fail":
        raise ValueError("planned failure")
    return "done"


@dataclass
class ModelJob:
    id: int
    tracker: Tracker
    release: threading.Event
    outcome: list[str] = field(default_factory=lambda: ["succeed"])
    state: JobState = JobState.QUEUED  # QUEUED stands for "not finished"
    finished_at: float | None = None
    cancel_requested: bool = False


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.d = nbfrost.Dispatcher(workers=WORKERS, expiry=EXPIRY, clock=self.clock)
        self.jobs: list[ModelJob] = []
        self.cleared: set[int] = set()
        self.purged: set[int] = set()  # what the registry has swept so far

    # -------------------------------------------------------------- model
    def unfinished(self) -> list[ModelJob]:
        return [j for j in self.jobs if j.finished_at is None]

    def expected_running(self) -> list[int]:
        # Jobs start in FIFO order and leave only when released, so the
        # running ones are always the oldest unfinished ones.
        return [j.id for j in self.unfinished()][:WORKERS]

    def expired(self, j: ModelJob) -> bool:
        return j.finished_at is not None and j.finished_at <= self.clock.now - EXPIRY

    def held(self) -> list[ModelJob]:
        return [j for j in self.jobs if not self.expired(j) and j.id not in self.cleared]

    def settle(self) -> None:
        """Wait until every job that can run is running (workers are
        asynchronous); every sweep-by-query then purges what expired."""
        want = len(self.expected_running())
        eventually(lambda: self.d.stats()["counts"]["running"] == want,
                   what=f"{want} jobs running")
        self.purged |= {j.id for j in self.jobs if self.expired(j)}

    def finish_model(self, j: ModelJob, state: JobState) -> None:
        j.state = state
        j.finished_at = self.clock.now

    # -------------------------------------------------------------- rules
    @rule(fail=st.booleans())
    def queue(self, fail: bool) -> None:
        release = threading.Event()
        outcome = ["fail" if fail else "succeed"]
        t = self.d.queue(_work, release, outcome, quiet=True)
        assert t.id == len(self.jobs)
        self.jobs.append(ModelJob(t.id, t, release, outcome))
        self.settle()

    @precondition(lambda self: self.unfinished())
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        j = data.draw(st.sampled_from(self.unfinished()))
        was_running = j.id in self.expected_running()
        assert j.tracker.cancel() is True
        if was_running:
            # Cooperative: it ends cancelled once it returns.
            assert j.tracker.state is JobState.RUNNING
            j.cancel_requested = True
        else:
            assert j.tracker.state is JobState.CANCELLED
            self.finish_model(j, JobState.CANCELLED)
        self.settle()

    @precondition(lambda self: self.unfinished())
    @rule(data=st.data(), fail=st.booleans())
    def finish(self, data: st.DataObject, fail: bool) -> None:
        running = [j for j in self.jobs if j.id in self.expected_running()]
        j = data.draw(st.sampled_from(running))
        j.outcome[0] = "fail" if fail else "succeed"
        j.release.set()
        assert j.tracker.wait(WAIT)
        if j.cancel_requested:  # noqa: SIM108 - a nested conditional expression reads worse
            state = JobState.CANCELLED
        else:
            state = JobState.FAILED if fail else JobState.SUCCEEDED
        self.finish_model(j, state)
        self.settle()

    @rule(seconds=STEPS)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)  # no query: the next one sweeps

    @rule(seconds=STEPS)
    def advance_and_sweep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        newly = {j.id for j in self.jobs if self.expired(j)} - self.purged - self.cleared
        assert self.d.sweep() == len(newly)
        self.purged |= newly
        assert self.d.sweep() == 0

    @rule(seconds=STEPS, data=st.data())
    def advance_and_query(self, seconds: float, data: st.DataObject) -> None:
        # A lookup by id right after time moved, before anything swept.
        self.clock.advance(seconds)
        self.query(data)

    @rule()
    def clear(self) -> None:
        finished = {j.id for j in self.held() if j.finished_at is not None}
        assert self.d.clear() == len(finished)
        self.cleared |= finished
        self.settle()

    @rule(data=st.data())
    def query(self, data: st.DataObject) -> None:
        job_id = data.draw(st.integers(min_value=0, max_value=len(self.jobs) + 2), label="id")
        held = {j.id for j in self.held()}
        if job_id >= len(self.jobs):
            with pytest.raises(JobNotFound, match=f"job {job_id} never existed"):
                self.d.status(job_id)
            return
        j = self.jobs[job_id]
        if job_id in held:
            s = self.d.status(job_id)
            assert s.id == job_id and s.state is j.tracker.state
            return
        with pytest.raises(JobNotFound) as info:
            self.d.status(job_id)
        msg = str(info.value)
        assert "expired" in msg and "never existed" not in msg, msg
        assert f"expiry={EXPIRY:g} s" in msg
        if job_id not in self.cleared:
            ago = self.clock.now - j.finished_at
            assert f"finished {ago:.0f} s ago" in msg or f"finished {ago:.3g} s ago" in msg, msg
        self.purged |= {x.id for x in self.jobs if self.expired(x)}

    # --------------------------------------------------------- invariants
    @invariant()
    def registry_matches_the_model(self) -> None:
        d = self.d
        held = self.held()
        statuses = d.jobs()
        self.purged |= {j.id for j in self.jobs if self.expired(j)}
        assert [s.id for s in statuses] == [j.id for j in held]
        next_id = len(self.jobs)
        assert all(s.id < next_id for s in statuses)
        for s, j in zip(statuses, held):
            if j.finished_at is None:
                assert s.state in (JobState.QUEUED, JobState.RUNNING)
                assert not s.complete and s.finished_at is None and s.success is None
            else:
                assert s.state is j.state and s.complete
                assert s.finished_at is not None
                assert s.finished_at.timestamp() == pytest.approx(j.finished_at)
                assert s.success is (j.state is JobState.SUCCEEDED)
        running = [s.id for s in statuses if s.state is JobState.RUNNING]
        assert running == self.expected_running()
        assert len(running) <= WORKERS

        stats = d.stats()
        expect = {s.value: 0 for s in JobState}
        for j in held:
            key = JobState.RUNNING if j.id in running else (
                JobState.QUEUED if j.finished_at is None else j.state)
            expect[key.value] += 1
        assert stats["counts"] == expect
        totals = {s.value: 0 for s in nbfrost.TERMINAL}
        for j in self.jobs:
            if j.finished_at is not None:
                totals[j.state.value] += 1
        assert stats["finished"] == totals
        assert stats["submitted"] == next_id and stats["held"] == len(held)
        assert stats["active"] == len(self.unfinished())

    @invariant()
    def trackers_outlive_their_records(self) -> None:
        for j in self.jobs:
            if j.finished_at is not None:
                assert j.tracker.done() and j.tracker.state is j.state
                assert j.tracker.status().finished_at is not None

    def teardown(self) -> None:
        for j in self.jobs:
            j.release.set()
        self.d.shutdown(wait=True, cancel_pending=True, timeout=WAIT)


RegistryMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=30, deadline=None, derandomize=True,
    database=None, suppress_health_check=[HealthCheck.too_slow],
)
test_registry_state_machine = pytest.mark.timeout(240)(RegistryMachine.TestCase)
