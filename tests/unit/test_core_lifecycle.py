"""Core behaviour: queue limit, expiry, cancel (cooperative and interrupting),
timeouts (Python loops and blocking C calls), retries, dependencies, output
capture, progress; faults the pool must survive; bad inputs; threads."""

from __future__ import annotations

import functools
import logging
import math
import sys
import threading
import time

import pytest
from helpers import WAIT, concurrency_probe, eventually, fill_pool, live_threads, running, wait_for_threads

import nbfrost
from nbfrost import JobCancelled, JobFailed, JobState, JobTimeout, QueueFull, Tracker


def _value(x: object) -> object:
    return x


def _raise(exc: BaseException) -> None:
    raise exc


@pytest.fixture
def thread_errors(monkeypatch):
    """Exceptions that escaped any thread (a worker that died, say)."""
    errors: list[str] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        errors.append(f"{args.thread.name if args.thread else '?'}: {args.exc_value!r}")

    monkeypatch.setattr(threading, "excepthook", hook)
    yield errors
    assert not errors, f"exceptions escaped threads: {errors}"


@pytest.fixture
def small(clock, thread_baseline, thread_errors, caplog):
    """Two workers, a short grace, a small output cap; checks at the end
    that no worker died (a replacement logs a warning)."""
    caplog.set_level(logging.WARNING, logger="nbfrost")
    d = nbfrost.Dispatcher(workers=2, expiry=60.0, grace=0.2, output_cap=1000, clock=clock)
    yield d
    d.shutdown(wait=True, cancel_pending=True, timeout=10)
    died = [r.getMessage() for r in caplog.records if "died" in r.getMessage()]
    assert not died, died


def assert_pool_serves(d: nbfrost.Dispatcher, workers: int) -> None:
    """The pool still runs jobs, and exactly *workers* of them at once."""
    assert d.queue(_value, "still here").result(WAIT) == "still here"
    assert d.workers == workers and d.stats()["workers"] == workers
    assert concurrency_probe(d, workers + 2, workers) == workers


# ------------------------------------------------------------- queue limit
def test_max_queue_blocks_or_raises_queue_full(clock, thread_baseline):
    d = nbfrost.Dispatcher(workers=1, max_queue=2, clock=clock)
    try:
        gate = threading.Event()
        head = d.queue(gate.wait, WAIT)
        running(head)  # a running job does not count as waiting
        q1 = d.queue(int)
        d.queue(int)
        held, submitted = len(d.registry), d.stats()["submitted"]
        with pytest.raises(QueueFull, match="max_queue=2"):
            d.queue(int, block=False)
        t0 = time.monotonic()
        with pytest.raises(QueueFull):
            d.queue(int, queue_timeout=0.05)
        assert time.monotonic() - t0 >= 0.04
        assert (len(d.registry), d.stats()["submitted"]) == (held, submitted)

        # Blocking (the default) waits until a slot frees.
        returned: list[Tracker] = []
        blocked = threading.Thread(target=lambda: returned.append(d.queue(_value, "late")))
        blocked.start()
        blocked.join(0.1)
        assert blocked.is_alive() and not returned
        assert q1.cancel()  # leaving the queue frees its slot
        blocked.join(WAIT)
        assert not blocked.is_alive() and len(returned) == 1
        gate.set()
        assert returned[0].result(WAIT) == "late"
        # Once the queue drains there is room again, without blocking.
        assert d.wait(timeout=WAIT)
        more = [d.queue(int, block=False) for _ in range(2)]
        assert d.wait(more, timeout=WAIT)
    finally:
        d.shutdown(cancel_pending=True)


# ------------------------------------------------------------------ expiry
def test_only_finished_jobs_expire(small, clock):
    d = small
    done = d.queue(int)
    assert done.wait(WAIT)
    gate, (run1, run2) = fill_pool(d, 2)
    waiting = d.queue(int)
    clock.advance(1e9)  # far beyond any expiry
    assert d.sweep() == 1
    assert [s.id for s in d.jobs()] == [run1.id, run2.id, waiting.id]
    assert d.status(run1.id).state is JobState.RUNNING
    assert d.status(waiting.id).state is JobState.QUEUED
    gate.set()
    assert d.wait(timeout=WAIT)
    clock.advance(59.9)
    assert len(d.jobs()) == 3  # finished 59.9 s ago, expiry 60 s
    clock.advance(0.2)
    assert d.jobs() == [] and len(d.registry) == 0
    assert waiting.result() == 0  # trackers outlive their records


def test_lookup_and_listing_agree_at_the_expiry_boundary(small, clock):
    """Exactly ``expiry`` seconds after finishing, a job is gone for every
    query alike: status() must not return what jobs() already purged."""
    d = small  # expiry=60
    t = d.queue(int)
    assert t.wait(WAIT)
    clock.advance(60)
    with pytest.raises(nbfrost.JobNotFound, match="expired"):
        d.status(t.id)
    assert d.jobs() == []
    u = d.queue(int)
    assert u.wait(WAIT)
    clock.advance(59.5)
    assert d.status(u.id).id == u.id and [s.id for s in d.jobs()] == [u.id]


def test_expiry_none_keeps_everything(clock, thread_baseline):
    with nbfrost.Dispatcher(workers=2, expiry=None, clock=clock) as d:
        ts = [d.queue(int) for _ in range(5)]
        assert d.wait(ts, timeout=WAIT)
        clock.advance(1e12)
        assert d.sweep() == 0 and len(d.jobs()) == 5


def test_expiry_can_be_changed(small, clock):
    d = small
    t = d.queue(int)
    assert t.wait(WAIT)
    clock.advance(10)
    d.expiry = 5
    assert d.jobs() == []
    with pytest.raises(ValueError, match="expiry must be >= 0"):
        d.expiry = -1
    assert d.expiry == 5


class _Payload:
    """A result object whose lifetime the tests watch through a weakref."""


@pytest.mark.parametrize("expiry", [None, 300.0])
def test_clear_lets_go_of_finished_jobs(expiry, clock, thread_baseline):
    """clear() is how a user frees memory now; the registry must not keep the
    cleared records (and their results) alive elsewhere, e.g. in the
    expiry queue, which with expiry=None is never swept."""
    import gc
    import weakref

    with nbfrost.Dispatcher(workers=2, expiry=expiry, clock=clock) as d:
        ts = [d.queue(_Payload) for _ in range(50)]
        assert d.wait(ts, timeout=WAIT)
        refs = [weakref.ref(t.result()) for t in ts]
        kept = ts[0]  # a tracker the user still holds keeps its own job
        del ts
        assert d.clear() == 50 and len(d.registry) == 0
        gc.collect()
        alive = sum(r() is not None for r in refs)
        # The kept one, plus at most the last job each worker ran (a local
        # of its loop until it takes the next job).
        assert alive <= 1 + d.workers, f"{alive - 1} cleared results are still referenced"
        assert isinstance(kept.result(), _Payload)
        # Jobs finishing after a clear still expire normally.
        later = d.queue(int)
        assert later.wait(WAIT)
        if expiry is not None:
            clock.advance(expiry + 1)
            assert d.jobs() == []


# ------------------------------------------------------------------ cancel
def test_cancel_a_queued_job_at_once(small):
    d = small
    gate = threading.Event()
    blockers = [d.queue(gate.wait, WAIT) for _ in range(2)]
    ran = threading.Event()
    t = d.queue(ran.set)
    assert t.cancel() is True
    assert t.state is JobState.CANCELLED and t.done() and t.wait(0)
    s = t.status()
    assert s.success is False and s.started_at is None and s.finished_at is not None
    assert "before it started" in s.error and s.error_type == "JobCancelled"
    assert d.cancel(t.id) is False  # already finished
    gate.set()
    assert all(b.result(WAIT) for b in blockers)
    assert d.wait(timeout=WAIT) and not ran.is_set()


def test_cancel_running_is_cooperative(small):
    d = small
    started, stopped = threading.Event(), threading.Event()

    def polite() -> str:
        assert not nbfrost.cancelled()
        started.set()
        while not nbfrost.cancelled():
            time.sleep(0.001)
        stopped.set()
        return "stopped early"

    t = d.queue(polite)
    assert started.wait(WAIT)
    assert t.cancel() is True
    assert t.wait(WAIT) and stopped.is_set()
    s = t.status()
    assert s.state is JobState.CANCELLED and s.success is False
    with pytest.raises(JobCancelled):
        t.result()
    assert not nbfrost.cancelled()  # outside a job: always False
    assert_pool_serves(d, 2)


def test_cancel_running_stops_progress_at_the_next_step(small):
    d = small
    at_three, resume = threading.Event(), threading.Event()
    seen: list[int] = []

    def steps() -> None:
        for i in nbfrost.progress(range(100)):
            seen.append(i)
            if i == 3:
                at_three.set()
                assert resume.wait(WAIT)

    t = d.queue(steps)
    assert at_three.wait(WAIT)
    assert t.cancel() is True
    resume.set()
    assert t.wait(WAIT)
    assert seen == [0, 1, 2, 3]
    s = t.status()
    assert s.state is JobState.CANCELLED and s.error_type == "JobCancelled"
    assert "cancelled after 4 items" in s.error
    assert s.progress == pytest.approx(0.03)  # the last step it reported


def test_cancel_with_interrupt_stops_a_python_loop(small, thread_errors):
    d = small
    started, caught = threading.Event(), threading.Event()
    workers_before = set(d.backend.threads())

    def spin() -> None:
        started.set()
        try:
            n = 0
            while True:
                n += 1
        except JobCancelled:
            caught.set()
            raise

    t = d.queue(spin)
    assert started.wait(WAIT)
    woke = threading.Event()
    waiter = threading.Thread(target=lambda: t.wait(WAIT) and woke.set())
    waiter.start()
    assert t.cancel(interrupt=True) is True
    assert t.state is JobState.CANCELLED  # at once, not when the loop ends
    assert "interrupted" in t.status().error
    waiter.join(WAIT)
    assert woke.is_set()
    assert caught.wait(WAIT)  # JobCancelled really landed in the loop
    eventually(lambda: d.stats()["busy"] == 0, what="the worker to leave the job")
    assert_pool_serves(d, 2)
    # The same worker threads serve on: none died and was replaced.
    assert set(d.backend.threads()) == workers_before


def test_interrupt_cannot_break_a_blocking_c_call_but_capacity_stays(small, caplog):
    """Documented limit: the interrupt lands at the next bytecode, so a job
    blocked in C keeps its thread; it is cancelled at once anyway, and after
    the grace period the pool replaces the thread."""
    d = small
    stuck = threading.Event()
    t = d.queue(stuck.wait)  # Event.wait() without a timeout blocks in C
    running(t)
    try:
        assert t.cancel(interrupt=True) is True
        assert t.state is JobState.CANCELLED and t.wait(0)
        assert concurrency_probe(d, 4, 2) == 2  # a replacement took its place
        assert any("abandoned" in r.getMessage() for r in caplog.records)
    finally:
        stuck.set()
    eventually(lambda: len(d.backend.threads()) == 2, what="the abandoned thread to exit")
    assert t.state is JobState.CANCELLED  # its late return changes nothing


# ---------------------------------------------------------------- timeouts
def test_timeout_fails_and_interrupts_a_python_loop(small, thread_errors):
    d = small
    caught: list[BaseException] = []
    started = threading.Event()

    def spin() -> None:
        started.set()
        try:
            while True:
                pass
        except BaseException as exc:
            caught.append(exc)
            raise

    t = d.queue(spin, timeout=0.2)
    assert started.wait(WAIT)
    woke = threading.Event()
    waiter = threading.Thread(target=lambda: t.wait(WAIT) and woke.set())
    waiter.start()
    waiter.join(WAIT)
    assert woke.is_set() and t.state is JobState.FAILED
    s = t.status()
    assert s.error_type == "JobTimeout" and "timeout of 0.2 s" in s.error
    assert isinstance(t.exception(), JobTimeout) and isinstance(t.exception(), TimeoutError)
    with pytest.raises(JobFailed) as info:
        t.result()
    assert isinstance(info.value.__cause__, JobTimeout)
    eventually(lambda: bool(caught), what="the interrupt to land")
    assert isinstance(caught[0], JobTimeout)
    assert_pool_serves(d, 2)


def test_a_job_that_ends_before_its_timeout_succeeds(small):
    t = small.queue(_value, 1, timeout=30)
    assert t.result(WAIT) == 1 and t.status().error is None


def test_timeout_of_a_blocking_c_call_replaces_the_worker(small, caplog):
    """Event.wait() without a timeout blocks in C (a lock acquire), where an
    asynchronous exception cannot land; after the grace period the pool
    abandons that thread and starts another, so capacity stays 2."""
    d = small
    stuck = threading.Event()
    t = d.queue(stuck.wait, timeout=0.1)
    try:
        assert t.wait(WAIT)
        assert t.state is JobState.FAILED and t.status().error_type == "JobTimeout"
        # Two more jobs run at once although one thread is still blocked.
        assert concurrency_probe(d, 4, 2) == 2
        assert any("abandoned" in r.getMessage() for r in caplog.records)
        assert d.queue(_value, 3).result(WAIT) == 3
    finally:
        stuck.set()  # let the abandoned thread return and exit
    eventually(lambda: len(d.backend.threads()) == 2, what="the abandoned thread to exit")
    assert_pool_serves(d, 2)


# ----------------------------------------------------------------- retries
def test_retries_count_attempts(small):
    d = small
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError(f"attempt {len(calls)}")
        return len(calls)

    t = d.queue(flaky, retries=5)
    assert t.result(WAIT) == 3
    s = t.status()
    assert s.attempts == 3 and s.error is None and s.success is True

    n = [0]

    def always() -> None:
        n[0] += 1
        raise ValueError(f"attempt {n[0]}")

    f = d.queue(always, retries=2)
    assert f.wait(WAIT)
    s = f.status()
    assert s.state is JobState.FAILED and s.attempts == 3 and n[0] == 3
    assert s.error == "attempt 3"
    once = d.queue(_raise, ValueError())
    assert once.wait(WAIT) and once.status().attempts == 1


# ------------------------------------------------------------ dependencies
def test_dependencies_run_in_order_after_success(small):
    d = small
    gate = threading.Event()
    order: list[str] = []

    def step(name: str) -> str:
        order.append(name)
        return name

    a = d.queue(lambda: gate.wait(WAIT) and step("a"))
    b = d.queue(step, "b", after=a)
    c = d.queue(step, "c", after=[a, b.id])
    running(a)
    assert b.state is JobState.QUEUED and c.state is JobState.QUEUED
    # The free worker does not take b: it waits for a.
    assert not b.wait(0.05)
    gate.set()
    assert c.result(WAIT) == "c"
    assert order == ["a", "b", "c"]
    assert b.status().started_at >= a.status().finished_at
    # A dependency that already succeeded is no obstacle.
    assert d.queue(step, "d", after=(a, b, c)).result(WAIT) == "d"


def test_after_job_zero_is_a_real_dependency(small):
    """Job id 0 is falsy; ``after=0`` must still wait for job 0."""
    d = small
    gate = threading.Event()
    first = d.queue(gate.wait, WAIT)
    assert first.id == 0
    child = d.queue(_value, "child", after=0)
    running(first)
    assert not child.wait(0.05) and child.state is JobState.QUEUED
    gate.set()
    assert child.result(WAIT) == "child"
    assert child.status().started_at >= first.status().finished_at


def test_a_failed_dependency_cancels_dependents_and_cascades(small):
    d = small
    gate = threading.Event()

    def fails() -> None:
        assert gate.wait(WAIT)
        raise ValueError("boom")

    f = d.queue(fails, name="loader")
    g = d.queue(int, after=f, name="g")
    h = d.queue(int, after=g, name="h")
    gate.set()
    assert h.wait(WAIT) and g.wait(WAIT)
    assert f.state is JobState.FAILED
    sg, sh = g.status(), h.status()
    assert sg.state is JobState.CANCELLED and sg.started_at is None
    assert f"dependency job {f.id} (loader) failed" in sg.error and "boom" in sg.error
    assert sh.state is JobState.CANCELLED
    assert f"dependency job {g.id} (g) cancelled" in sh.error
    with pytest.raises(JobCancelled, match="loader"):
        g.result()
    # Queuing after an already failed job cancels at once.
    late = d.queue(int, after=f.id)
    assert late.state is JobState.CANCELLED and "loader" in late.status().error
    assert_pool_serves(d, 2)


def test_a_cancelled_dependency_cancels_dependents(small):
    d = small
    gate = threading.Event()
    dep = d.queue(gate.wait, WAIT, name="dep")
    child = d.queue(int, after=dep)
    running(dep)
    assert dep.cancel(interrupt=False)
    gate.set()
    assert child.wait(WAIT)
    assert dep.state is JobState.CANCELLED and child.state is JobState.CANCELLED
    assert f"dependency job {dep.id} (dep) cancelled" in child.status().error


def test_cancelling_a_waiting_dependent_leaves_the_dependency_alone(small):
    d = small
    gate = threading.Event()
    dep = d.queue(gate.wait, WAIT)
    child = d.queue(int, after=dep)
    assert child.cancel() and child.state is JobState.CANCELLED
    gate.set()
    assert dep.result(WAIT) is True
    assert child.state is JobState.CANCELLED


# ------------------------------------------------------------------ output
def test_output_is_captured_in_order_and_echoed(clock, thread_baseline, capsys):
    def chatty() -> None:
        print("one")
        print("two", file=sys.stderr)
        sys.stdout.write("three\n")
        sys.stderr.writelines(["four", "\n"])

    from nbfrost import capture

    outer, users = sys.stdout, capture._users
    with nbfrost.Dispatcher(workers=2, clock=clock) as d:
        assert isinstance(sys.stdout, capture.StreamRouter)
        t = d.queue(chatty)
        q = d.queue(functools.partial(print, "hushed"), quiet=True)
        assert t.wait(WAIT) and q.wait(WAIT)
        print("from the test")  # not a job: goes straight through
    assert t.output == "one\ntwo\nthree\nfour\n"
    assert q.output == "hushed\n"
    out, err = capsys.readouterr()
    assert "one\n" in out and "three\n" in out and "from the test" in out
    assert "two\n" in err and "four\n" in err
    assert "hushed" not in out + err
    assert t.output not in ("",) and "from the test" not in t.output
    # The streams are as they were once this dispatcher is gone (the real
    # ones, unless another dispatcher of the session still uses the router).
    assert capture._users == users
    if users == 0:
        assert sys.stdout is outer


def test_output_cap_with_a_visible_marker(small):
    d = small  # output_cap=1000

    def flood() -> None:
        sys.stdout.write("x" * 10_000_000)
        print("after the flood")

    t = d.queue(flood, quiet=True)
    assert t.result(WAIT) is None
    out = t.output
    assert out.startswith("x" * 1000) and "x" * 1001 not in out
    assert "truncated at 1000 characters" in out
    assert "after the flood" not in out and len(out) < 1200
    assert d.queue(functools.partial(print, "ok"), quiet=True).result(WAIT) is None


def test_output_interleaves_per_job(small):
    d = small
    ping, pong = threading.Event(), threading.Event()

    def a() -> None:
        print("a1")
        ping.set()
        assert pong.wait(WAIT)
        print("a2")

    def b() -> None:
        assert ping.wait(WAIT)
        print("b1")
        pong.set()

    ta, tb = d.queue(a, quiet=True), d.queue(b, quiet=True)
    assert ta.wait(WAIT) and tb.wait(WAIT)
    assert (ta.output, tb.output) == ("a1\na2\n", "b1\n")


# ---------------------------------------------------------------- progress
def test_progress_and_report_show_in_status_and_frames(small):
    d = small
    reported, gate = threading.Event(), threading.Event()

    def job() -> None:
        nbfrost.report(0.3, "loading")
        reported.set()
        assert gate.wait(WAIT)
        nbfrost.report(message="almost")
        nbfrost.report(0.9)

    t = d.queue(job)
    assert reported.wait(WAIT)
    s = t.status()
    assert (s.progress, s.message) == (0.3, "loading")
    f = d.to_frame()
    assert f.loc[t.id, "progress"] == 0.3 and f.loc[t.id, "message"] == "loading"
    gate.set()
    assert t.wait(WAIT)
    assert (t.status().progress, t.status().message) == (0.9, "almost")

    def counted() -> int:
        return sum(nbfrost.progress(range(4), message="rows"))

    c = d.queue(counted)
    assert c.result(WAIT) == 6
    assert (c.status().progress, c.status().message) == (1.0, "rows 4/4")

    def uncounted() -> int:
        return sum(nbfrost.progress(x for x in range(5)))

    u = d.queue(uncounted)
    assert u.result(WAIT) == 10
    assert u.status().progress is None and u.status().message == "5 done"


@pytest.mark.parametrize("bad, exc", [
    (1.5, ValueError), (-0.1, ValueError), (math.nan, ValueError),
    ("half", ValueError), (object(), TypeError),
])
def test_report_validates_its_fraction(bad, exc, small):
    with pytest.raises(exc):
        nbfrost.report(bad)
    # Inside a job the same mistake fails the job, with that error.
    t = small.queue(nbfrost.report, bad)
    assert t.wait(WAIT) and t.status().error_type == exc.__name__


def test_progress_helpers_outside_a_job_are_harmless():
    nbfrost.report(0.5, "nowhere")
    nbfrost.report(message=123)  # type: ignore[arg-type]
    assert list(nbfrost.progress([1, 2, 3])) == [1, 2, 3]
    assert nbfrost.cancelled() is False


# ------------------------------------------------------------------ faults
def _hang_with_timeout(d: nbfrost.Dispatcher, release: threading.Event) -> Tracker:
    return d.queue(release.wait, timeout=0.1)


def _flood(d: nbfrost.Dispatcher, release: threading.Event) -> Tracker:
    return d.queue(lambda: sys.stdout.write("y" * 10_000_000), quiet=True)


def _raising_callback(d: nbfrost.Dispatcher, release: threading.Event) -> Tracker:
    t = d.queue(release.wait, WAIT)
    t.add_done_callback(lambda tr: _raise(RuntimeError("callback")))
    release.set()
    return t


def _failing_dependency(d: nbfrost.Dispatcher, release: threading.Event) -> Tracker:
    dep = d.queue(lambda: release.wait(WAIT) and _raise(ValueError("dep")))
    child = d.queue(int, after=dep)
    release.set()
    return child


FAULTS = {
    "exception": (lambda d, r: d.queue(_raise, RuntimeError("x")), "failed", "RuntimeError"),
    "system-exit": (lambda d, r: d.queue(sys.exit, 3), "failed", "SystemExit"),
    "keyboard-interrupt": (lambda d, r: d.queue(_raise, KeyboardInterrupt()), "failed",
                           "KeyboardInterrupt"),
    "base-exception": (lambda d, r: d.queue(_raise, BaseException("raw")), "failed",
                       "BaseException"),
    "hung-with-timeout": (_hang_with_timeout, "failed", "JobTimeout"),
    "10-mb-output": (_flood, "succeeded", None),
    "raising-callback": (_raising_callback, "succeeded", None),
    "failing-dependency": (_failing_dependency, "cancelled", "JobCancelled"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_pool_keeps_serving_after(fault, small):
    d = small
    make, state, error_type = FAULTS[fault]
    release = threading.Event()
    try:
        t = make(d, release)
        assert t.wait(WAIT)
        s = t.status()
        assert s.state == state and s.error_type == error_type
        assert_pool_serves(d, 2)
    finally:
        release.set()
    eventually(lambda: len(d.backend.threads()) == 2, what="abandoned threads to exit")


def test_system_exit_is_recorded_not_raised(small):
    t = small.queue(sys.exit, "bye")
    with pytest.raises(JobFailed) as info:
        t.result(WAIT)
    assert isinstance(info.value.__cause__, SystemExit)
    assert t.status().error == "bye"


# -------------------------------------------------------------- bad inputs
BAD_QUEUE_CALLS = {
    "non-callable": (lambda d: d.queue(42), TypeError, "callable"),
    "object-without-run": (lambda d: d.queue(object()), TypeError, "run()"),
    "timeout=-1": (lambda d: d.queue(int, timeout=-1), ValueError, "timeout"),
    "timeout=0": (lambda d: d.queue(int, timeout=0), ValueError, "timeout"),
    "timeout='1'": (lambda d: d.queue(int, timeout="1"), TypeError, "timeout"),
    "retries=-1": (lambda d: d.queue(int, retries=-1), ValueError, "retries"),
    "retries=1.5": (lambda d: d.queue(int, retries=1.5), TypeError, "retries"),
    "tags=[1]": (lambda d: d.queue(int, tags=[1]), TypeError, "tag"),
    "tags=5": (lambda d: d.queue(int, tags=5), TypeError, "tags"),
    "name=3": (lambda d: d.queue(int, name=3), TypeError, "name"),
    "after=unknown-id": (lambda d: d.queue(int, after=999), ValueError, "never existed"),
    "after=['x']": (lambda d: d.queue(int, after=["x"]), TypeError, "after="),
    "queue_timeout=-1": (lambda d: d.queue(int, queue_timeout=-1), ValueError, "queue_timeout"),
}


@pytest.mark.parametrize("case", list(BAD_QUEUE_CALLS))
def test_bad_queue_arguments_queue_nothing(case, dispatcher):
    d = dispatcher
    first = d.queue(int)
    assert first.wait(WAIT)
    before = (len(d.registry), d.stats()["submitted"], d.stats()["counts"])
    call, exc, words = BAD_QUEUE_CALLS[case]
    with pytest.raises(exc) as info:
        call(d)
    assert words in str(info.value)
    assert (len(d.registry), d.stats()["submitted"], d.stats()["counts"]) == before
    assert d.queue(int).id == first.id + 1  # no id was used up


def test_after_a_tracker_of_another_dispatcher_is_refused(dispatcher, clock):
    with nbfrost.Dispatcher(workers=1, clock=clock) as other:
        foreign = other.queue(int)
        with pytest.raises(ValueError, match="another dispatcher"):
            dispatcher.queue(int, after=foreign)
    assert len(dispatcher.registry) == 0


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"workers": 0}, ValueError, "workers"),
    ({"workers": -1}, ValueError, "workers"),
    ({"workers": "4"}, TypeError, "workers"),
    ({"workers": 2.0}, TypeError, "workers"),
    ({"workers": True}, TypeError, "workers"),
    ({"expiry": -1}, ValueError, "expiry"),
    ({"expiry": "5"}, TypeError, "expiry"),
    ({"max_queue": -1}, ValueError, "max_queue"),
    ({"output_cap": -1}, ValueError, "output_cap"),
    ({"grace": -1}, ValueError, "grace"),
    ({"clock": 5}, TypeError, "clock"),
    ({"backend": "fibers"}, ValueError, "backend"),
    ({"process_workers": 0}, ValueError, "process_workers"),
    ({"bogus": 1}, TypeError, "bogus"),
])
def test_bad_dispatcher_arguments_start_nothing(kwargs, exc, words, thread_baseline):
    from nbfrost import capture

    before = live_threads()
    streams, users = (sys.stdout, sys.stderr), capture._users
    with pytest.raises(exc) as info:
        nbfrost.Dispatcher(**kwargs)
    assert words in str(info.value)
    assert live_threads() == before
    assert (sys.stdout, sys.stderr) == streams and capture._users == users


# ----------------------------------------------------------------- threads
def test_shutdown_returns_to_the_thread_baseline():
    baseline = live_threads()
    d = nbfrost.Dispatcher(workers=3, grace=0.2)
    t = d.queue(time.sleep, 0.01, timeout=5)  # starts the timer thread too
    assert t.result(WAIT) is None
    # three workers, the timer, and the publisher (nbfrost.publisher; one per process)
    assert len(live_threads() - baseline) == 5
    d.shutdown()
    assert wait_for_threads(baseline) == set()


def test_shutdown_wait_finishes_every_queued_job(thread_baseline):
    d = nbfrost.Dispatcher(workers=2)
    gate = threading.Event()
    blockers = [d.queue(gate.wait, WAIT) for _ in range(2)]
    queued = [d.queue(_value, i) for i in range(20)]
    assert queued[-1].state is JobState.QUEUED
    releaser = threading.Timer(0.05, gate.set)
    releaser.start()
    d.shutdown(wait=True)
    releaser.join()
    assert all(t.state is JobState.SUCCEEDED for t in blockers + queued)
    assert [t.result() for t in queued] == list(range(20))
    assert [s.id for s in d.jobs()] == list(range(22))  # nothing vanished


def test_shutdown_cancel_pending_marks_queued_jobs_cancelled(thread_baseline):
    d = nbfrost.Dispatcher(workers=2)
    gate, blockers = fill_pool(d, 2)
    queued = [d.queue(int) for _ in range(10)]
    waiting_on = d.queue(int, after=blockers[0])
    releaser = threading.Timer(0.05, gate.set)
    releaser.start()
    d.shutdown(wait=True, cancel_pending=True)
    releaser.join()
    assert all(b.result() is True for b in blockers)
    for t in [*queued, waiting_on]:
        assert t.state is JobState.CANCELLED
        assert "shutdown" in t.status().error
    statuses = d.jobs()
    assert [s.id for s in statuses] == list(range(13))
    assert all(s.complete for s in statuses)
    counts = d.stats()["counts"]
    assert counts == {"queued": 0, "running": 0, "succeeded": 2, "failed": 0, "cancelled": 11}


def test_shutdown_without_wait_lets_jobs_finish_then_threads_exit(thread_baseline):
    d = nbfrost.Dispatcher(workers=2)
    gate = threading.Event()
    blockers = [d.queue(gate.wait, WAIT) for _ in range(2)]
    queued = [d.queue(_value, i) for i in range(5)]
    t0 = time.monotonic()
    d.shutdown(wait=False)
    assert time.monotonic() - t0 < 1.0 and d.closed
    assert not queued[-1].done()
    with pytest.raises(RuntimeError, match="shut down"):
        d.queue(int)
    gate.set()
    assert d.wait(blockers + queued, timeout=WAIT)
    assert [t.result() for t in queued] == list(range(5))
    # thread_baseline checks that the workers then exit.


def test_shutdown_timeout_interrupts_running_jobs(thread_baseline):
    d = nbfrost.Dispatcher(workers=1, grace=0.2)
    started = threading.Event()

    def spin() -> None:
        started.set()
        while True:
            pass

    t = d.queue(spin)
    assert started.wait(WAIT)
    d.shutdown(wait=True, timeout=0.1)
    assert t.state is JobState.CANCELLED and "interrupted" in t.status().error


# ------------------------------------------------------------------- races
def test_first_output_and_first_waiter_at_once_keep_the_event(dispatcher, monkeypatch):
    """A job's rarely used fields live in a record made on first use.  If
    the worker makes it (first output) while another thread makes it too
    (first wait() creates the Event), one of them must not be lost: a lost
    Event means a waiter that never wakes.  The worker is paused inside the
    record's construction to open that window deterministically."""
    import nbfrost.job as jobmod

    real = jobmod._JobDetails
    paused, proceed = threading.Event(), threading.Event()

    class PausingExtra(real):  # type: ignore[misc, valid-type]
        __slots__ = ()

        def __init__(self) -> None:
            super().__init__()
            if threading.current_thread().name.startswith("nbfrost-") and not paused.is_set():
                paused.set()
                proceed.wait(WAIT)

    monkeypatch.setattr(jobmod, "_JobDetails", PausingExtra)
    t = dispatcher.queue(print, "first words")  # not quiet: no record made at queue()
    assert paused.wait(WAIT)  # the worker is making the record for its output
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(t.wait(3.0)))
    waiter.start()
    try:
        # Give the waiter the chance to make its own record (without the
        # fix it does so at once; with it, it waits for the worker's).
        deadline = time.monotonic() + 0.3
        while t._job._details is None and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        proceed.set()
    waiter.join(WAIT)
    assert woke == [True], "the waiter's Event was lost"
    assert t.output == "first words\n"


class _PausingName:
    """A job whose name lookup can pause, to hold a snapshot half-read.

    The name is fixed when the job is queued, so the pause is in
    ``Job.display_name``, which readers use after they read the state.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from nbfrost.job import Job

        self.armed_for: threading.Thread | None = None
        self.paused, self.proceed = threading.Event(), threading.Event()
        plain = Job.display_name

        def display_name(job: Job) -> str:
            if threading.current_thread() is self.armed_for and not self.paused.is_set():
                self.paused.set()
                self.proceed.wait(WAIT)
            return plain.fget(job)  # type: ignore[attr-defined]

        monkeypatch.setattr(Job, "display_name", property(display_name))

    def __call__(self) -> str:
        return "ran"



def _status(d: nbfrost.Dispatcher, t: Tracker) -> nbfrost.JobStatus:
    return t.status()


def _frame(d: nbfrost.Dispatcher, t: Tracker):
    return d.to_frame()


def _start_it(t: Tracker, gate: threading.Event) -> None:
    gate.set()
    eventually(lambda: t.state is not JobState.QUEUED, what="the job to start")


def _cancel_it(t: Tracker, gate: threading.Event) -> None:
    assert t.cancel() and t.state is JobState.CANCELLED


def _ran(t: Tracker) -> bool:
    return t.result(WAIT) == "ran"


def _was_cancelled(t: Tracker) -> bool:
    return t.state is JobState.CANCELLED


def _queued_snapshot_without_start_fields(s: nbfrost.JobStatus, t: Tracker, blocker: Tracker) -> None:
    import json
    from importlib import resources

    import jsonschema

    assert s.state is JobState.QUEUED
    assert (s.started_at, s.worker, s.attempts, s.duration) == (None, None, 0, None)
    schema = json.loads(resources.files("nbfrost").joinpath("schema/status.schema.json")
                        .read_text("utf-8"))
    jsonschema.validate(s.to_dict(), schema)


def _queued_row_without_start_fields(frame, t: Tracker, blocker: Tracker) -> None:
    import pandas

    row = frame.loc[t.id]
    assert row["state"] == "queued"
    assert (pandas.isna(row["worker"]), row["attempts"]) == (True, 0)
    assert pandas.isna(row["started_at"]) and pandas.isna(row["duration"])


def _queued_row_without_error(frame, t: Tracker, blocker: Tracker) -> None:
    import pandas

    row = frame.loc[t.id]
    assert row["state"] == "queued"
    assert pandas.isna(row["error"]) and pandas.isna(row["error_type"])
    assert pandas.isna(row["traceback"])
    assert frame.loc[blocker.id, "state"] == "running"


@pytest.mark.parametrize("read, race, outcome, check", [
    # status() reads the state first; fields that a concurrent start() writes
    # later must not leak into a 'queued' snapshot (worker, attempts,
    # started_at), or the snapshot contradicts itself and the JSON Schema.
    pytest.param(_status, _start_it, _ran, _queued_snapshot_without_start_fields,
                 id="status-while-the-job-starts"),
    # to_frame() reads the states first and the other columns after; a job
    # that starts in between must not show up as 'queued' with a worker.
    pytest.param(_frame, _start_it, _ran, _queued_row_without_start_fields,
                 id="frame-while-the-job-starts"),
    # Same for a cancel landing between the states and the error column: a
    # row read as 'queued' carries no error.
    pytest.param(_frame, _cancel_it, _was_cancelled, _queued_row_without_error,
                 id="frame-while-the-queued-job-is-cancelled"),
])
def test_a_view_read_while_the_job_changes_state_is_consistent(read, race, outcome, check,
                                                               clock, thread_baseline,
                                                               monkeypatch):
    """A snapshot or frame is read while the job changes state between the
    reader's read of the state and of the later fields (the reader is held
    there by ``Job.display_name``): what it returns must agree with the
    state it read."""
    import pandas  # noqa: F401 - imported here, not while the reader is paused

    with nbfrost.Dispatcher(workers=1, clock=clock) as d:
        gate = threading.Event()
        blocker = d.queue(gate.wait, WAIT)
        running(blocker)
        fn = _PausingName(monkeypatch)
        t = d.queue(fn)
        got: list = []
        reader = threading.Thread(target=lambda: got.append(read(d, t)))
        fn.armed_for = reader
        reader.start()
        try:
            assert fn.paused.wait(WAIT)  # state read as queued, the name not yet
            race(t, gate)
        finally:
            fn.proceed.set()
            gate.set()
        reader.join(WAIT)
        assert outcome(t)
    check(got[0], t, blocker)


def test_shutdown_timeout_does_not_hang_on_a_job_blocked_in_c(thread_baseline, caplog):
    """shutdown(timeout=) interrupts what is still running; a thread stuck in
    a C call cannot be interrupted, so after the grace period it is
    abandoned (as during normal running) instead of joined forever."""
    d = nbfrost.Dispatcher(workers=2, grace=0.2)
    stuck = threading.Event()
    t = d.queue(stuck.wait)  # Event.wait() without a timeout blocks in C
    other = d.queue(_value, "other")
    running(t)
    try:
        returned = threading.Event()
        closer = threading.Thread(target=lambda: (d.shutdown(wait=True, timeout=0.1),
                                                  returned.set()))
        closer.start()
        assert returned.wait(5.0), "shutdown(timeout=0.1) hung on a thread blocked in C"
        assert t.state is JobState.CANCELLED and other.result(0) == "other"
        assert any("abandoned" in r.getMessage() for r in caplog.records)
    finally:
        stuck.set()  # the abandoned thread returns and exits
    closer.join(WAIT)
