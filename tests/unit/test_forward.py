"""`nbfrost.forward`: whole lines, batches, gates and budgets, without a kernel.

A recording stream stands in for ipykernel's: every ``write()`` it receives
is one batch, so "whole lines, never mixed" means every recorded write is
whole lines of one job.  The real-kernel tests are in test_output_kernel.py.
"""

from __future__ import annotations

import threading

import pytest

import nbfrost
from nbfrost import defaults, forward


class Recorder:
    """A real stream stand-in that records each write (one batch)."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.cond = threading.Condition()

    def write(self, text: str) -> int:
        with self.cond:
            self.writes.append(text)
            self.cond.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    def wait_for(self, predicate, timeout: float = 10.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate("".join(self.writes)), timeout)


class FakeJob:
    def __init__(self, job_id: int, budget: int = defaults.FORWARD_BUDGET) -> None:
        self.id = job_id
        self.name = f"job-{job_id}"
        self._owner = type("D", (), {"forward_budget": budget,
                                     "forward_bucket": forward.Bucket(1e9, 1e9)})()


@pytest.fixture
def flusher(thread_baseline):
    forward.stop()  # a fresh notice window, whatever ran before in this process
    yield
    forward.stop()  # what the last dispatcher's shutdown does


def test_batches_are_whole_lines_of_one_job(flusher):
    out = Recorder()
    lanes = [forward.Lane(FakeJob(n)) for n in range(4)]
    go = threading.Barrier(4)

    def job(n: int) -> None:
        go.wait()
        for i in range(500):
            for piece in (f"j{n}", " ", str(i), " ", "x", "\n"):  # print(a, b, c)
                lanes[n].put(out, piece)
        forward.end(lanes[n])

    threads = [threading.Thread(target=job, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for batch in out.writes:
        assert batch.endswith("\n"), batch[-20:]
        assert len({line.split()[0] for line in batch.splitlines()}) == 1
    lines = "".join(out.writes).splitlines()
    assert sorted(lines) == sorted(f"j{n} {i} x" for n in range(4) for i in range(500))
    assert len(out.writes) < 4 * 500  # batched


def test_a_partial_line_goes_out_after_a_short_delay_and_ends_with_the_job(flusher):
    out = Recorder()
    lane = forward.Lane(FakeJob(1))
    lane.put(out, "\r 50%")
    out.wait_for(lambda text: text == "\r 50%", timeout=2 * forward.PARTIAL_DELAY + 5)
    lane.put(out, "\r100%")
    forward.end(lane)
    assert "".join(out.writes) == "\r 50%\r100%\n"  # the job's end closes its line


def test_a_gate_holds_output_and_notices_until_it_opens(flusher):
    out = Recorder()
    gate = forward.Gate()
    lane = forward.Lane(FakeJob(2), gate)
    lane.put(out, "first\n")
    forward.end(lane)
    forward.emit(None, out, "notice\n", gate)
    assert out.writes == []
    gate.open()
    assert "".join(out.writes) == "first\nnotice\n"
    forward.emit(None, out, "later\n", gate)
    assert out.writes[-1] == "later\n"


def test_flush_waits_for_the_gate_then_forwards_everything(flusher):
    out = Recorder()
    gate = forward.Gate()
    lane = forward.Lane(FakeJob(3), gate)
    lane.put(out, "half")
    opener = threading.Timer(0.05, gate.open)
    opener.start()
    assert forward.flush(lane, gate) == [out]  # returned only once the gate opened
    assert gate.is_open and "".join(out.writes) == "half"
    opener.join()
    forward.end(lane)


def test_over_the_budget_whole_lines_then_one_marker(flusher):
    out = Recorder()
    lane = forward.Lane(FakeJob(7, budget=100))
    for i in range(1000):
        lane.put(out, str(i))
        lane.put(out, "\n")
    forward.end(lane)
    text = "".join(out.writes)
    *lines, marker = text.splitlines()
    assert lines == [str(i) for i in range(len(lines))]
    assert len("\n".join(lines)) <= 100 + 5  # the budget, plus the end of a cut line
    assert text.count("[nbfrost:") == 1
    dropped = sum(len(str(i)) + 1 for i in range(len(lines), 1000))
    assert (f"job 7 'job-7' went over its notebook budget (100 characters); {dropped:,} "
            f"characters ({1000 - len(lines):,} lines) of its output were not shown here; "
            "read all of it with %frost output 7 or in the dashboard]") in marker


def test_failure_notices_are_coalesced(flusher):
    out = Recorder()
    for i in range(forward.NOTICE_LIMIT + 5):
        forward.notice(None, out, f"failed {i}\n", lambda n: f"{n} more\n")
    forward.stop()  # closes the window: the summary is written
    assert out.writes == [f"failed {i}\n" for i in range(forward.NOTICE_LIMIT)] + ["5 more\n"]


def test_the_notice_window_closes_when_the_last_dispatcher_stops(flusher):
    """The next dispatcher's first notices are shown, however many the
    last one wrote just before (the window is not carried over)."""
    before, after = Recorder(), Recorder()
    for i in range(3):
        forward.notice(None, before, f"old {i}\n", lambda n: f"{n} more\n")
    forward.stop()
    for i in range(forward.NOTICE_LIMIT):
        forward.notice(None, after, f"new {i}\n", lambda n: f"{n} more\n")
    assert after.writes == [f"new {i}\n" for i in range(forward.NOTICE_LIMIT)]


def test_a_printing_job_leaves_no_thread_after_shutdown(dispatcher, capsys):
    t = dispatcher.queue(print, "hello from a job")
    t.result(timeout=10)
    assert any(th.name == "nbfrost-forward" for th in threading.enumerate())
    assert t.output == "hello from a job\n"
    # The dispatcher fixture shuts down and checks the thread baseline.


@pytest.mark.parametrize("kwargs, exc", [
    ({"forward_budget": -1}, ValueError), ({"forward_budget": 1.5}, TypeError),
    ({"forward_rate": 0}, ValueError), ({"forward_rate": "fast"}, TypeError)])
def test_bad_budgets_raise_before_anything_starts(kwargs, exc, thread_baseline):
    with pytest.raises(exc):
        nbfrost.Dispatcher(**kwargs)


def test_the_dispatcher_rate_bounds_all_its_jobs_together(flusher):
    """Jobs of one dispatcher share a bucket: once it is deep in debt, what a
    job still holds at its end goes into its marker instead of the notebook."""
    out = Recorder()
    bucket = forward.Bucket(rate=1, burst=100)  # about nothing refills during the test
    shown = []
    for n in range(4):
        job = FakeJob(n)
        job._owner.forward_bucket = bucket
        lane = forward.Lane(job)
        lane.put(out, "x" * 99 + "\n")
        forward.end(lane)
        shown.append("".join(out.writes))
        out.writes.clear()
    # From the burst, then into debt down to -burst (a job's end never waits) ...
    assert shown[:3] == ["x" * 99 + "\n"] * 3
    # ... then the rest goes into the job's marker.
    assert shown[3].startswith("[nbfrost: job 3 'job-3' went over its dispatcher's "
                               "notebook rate (1 characters/s)")
    assert "100 characters (1 lines) of its output were not shown here" in shown[3]


def test_jobs_run_in_chunks_end_their_lanes(dispatcher):
    """map() hands jobs over in chunks: each job's output still ends with
    the job (no lane left open, none shared with the next job)."""
    def shout(i: int) -> int:
        print("item", i, end="" if i % 2 else "\n")
        return i

    assert list(dispatcher.map(shout, range(200), chunksize=50)) == list(range(200))
    assert not forward._lanes
