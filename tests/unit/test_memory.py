"""Nothing is kept that nobody needs.

Succeeded jobs drop their callable and arguments, released results are
gone, finished jobs' output stays within ``output_budget``, and output cut
at ``output_cap`` always carries a marker.
"""

from __future__ import annotations

import functools
import gc
import threading
import time
import weakref

import pytest
from helpers import WAIT, eventually

import nbfrost
from nbfrost import TERMINAL, JobFailed, JobState, ResultReleased
from nbfrost.capture import OutputBuffer

MARK = "\n[nbfrost: output truncated at 10 characters]\n"


@pytest.mark.parametrize("writes, kept", [
    (["0123456789"], "0123456789"),                       # exactly the cap: nothing dropped
    (["0123456789", ""], "0123456789"),                   # an empty write drops nothing
    (["0123456789", "x"], "0123456789" + MARK),           # the bug: full, then more
    (["01234", "56789", "x", "y"], "0123456789" + MARK),  # one marker only
    (["01234567", "89abc"], "0123456789" + MARK),         # the write that crosses the cap
    (["0123456789abc", "x"], "0123456789" + MARK),
])
def test_output_buffer_marks_whatever_it_drops(writes, kept):
    buf = OutputBuffer()
    for text in writes:
        buf.write(text, 10)
    assert buf.getvalue() == kept
    assert buf.chars() == len(kept)


def test_output_buffer_with_no_room_at_all():
    buf = OutputBuffer()
    buf.write("", 0)
    assert buf.getvalue() == ""
    buf.write("x", 0)
    assert buf.getvalue() == "\n[nbfrost: output truncated at 0 characters]\n"


def test_dropped_buffer_keeps_only_its_note():
    buf = OutputBuffer()
    buf.write("hello", 10)
    assert buf.drop("[gone]") == 5
    buf.write("more", 10)
    assert buf.getvalue() == "[gone]" and buf.chars() == 6


# ------------------------------------------- what a finished job lets go of
class Big:
    """Stands in for a large argument (a DataFrame, say)."""


def _process(big: Big, *, also: Big) -> str:
    return "done"


def _fail(big: Big) -> None:
    raise ValueError("no")


def test_a_succeeded_job_drops_its_callable_and_arguments(dispatcher):
    d = dispatcher
    big, also, held = Big(), Big(), Big()
    refs = [weakref.ref(big), weakref.ref(also)]
    fn = functools.partial(_process, held)  # the callable itself can hold data
    fn_ref, held_ref = weakref.ref(fn), weakref.ref(held)
    t = d.queue(fn, also=also, tags="x")
    del big, also, held, fn
    assert t.result(WAIT) == "done"
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert fn_ref() is None and held_ref() is None
    # The name was taken when the job was queued.
    assert t.name == "partial" or t.name == "_process"
    assert t.status().name == t.name and d.to_frame().loc[t.id, "name"] == t.name
    assert repr(t).startswith(f"<Tracker job {t.id} {t.name!r} succeeded")


def test_failed_and_cancelled_jobs_keep_them_for_retry(dispatcher, clock):
    d = dispatcher
    big = Big()
    ref = weakref.ref(big)
    failed = d.queue(_fail, big)
    assert failed.wait(WAIT) and failed.state is JobState.FAILED
    cancelled = d.queue(_fail, big, after=failed)
    assert cancelled.state is JobState.CANCELLED
    del big
    gc.collect()
    assert ref() is not None
    again = d.retry(failed)
    assert again.wait(WAIT) and again.state is JobState.FAILED
    # Once they expire (and nobody holds their trackers) they are freed.
    del failed, cancelled, again
    clock.advance(61)
    assert d.sweep() == 3
    gc.collect()
    assert ref() is None


def test_retrying_a_succeeded_job_says_why_not(dispatcher):
    t = dispatcher.queue(_process, Big(), also=Big(), name="proc")
    assert t.result(WAIT) == "done"
    with pytest.raises(ValueError, match=r"job \d+ \(proc\) succeeded and has no callable.*"
                       "only failed or cancelled"):
        dispatcher.retry(t.id)


def test_release_result_keeps_the_status(dispatcher):
    d = dispatcher
    t = d.queue(Big)
    value = t.result(WAIT)
    ref = weakref.ref(value)
    del value
    assert d.registry.release(t._job, value=True) is not None
    gc.collect()
    assert ref() is None
    assert t.state is JobState.SUCCEEDED and d.status(t.id).success
    with pytest.raises(ResultReleased, match="released"):
        t.result()
    # Only a succeeded job's result can be released.
    failed = d.queue(_fail, Big())
    assert failed.wait(WAIT) and d.registry.release(failed._job, value=True) is None
    with pytest.raises(JobFailed):
        failed.result()


# ------------------------------------------------------------ output budget
def _say(i: int) -> None:
    print(f"job {i:03d} " + "abcdefghij"[i % 10] * 1990)


def _kept(d: nbfrost.Dispatcher) -> int:
    return sum(len(d.tracker(j.id).output) for j in d.jobs(state=TERMINAL))


def test_finished_output_stays_within_the_budget_oldest_dropped_first(clock, thread_baseline):
    budget = 100_000
    with nbfrost.Dispatcher(workers=2, expiry=60.0, clock=clock, output_budget=budget) as d:
        gate = threading.Event()

        def running_job() -> None:
            print("r" * 20_000)
            gate.wait(WAIT)
            print("r" * 20_000)

        long = d.queue(running_job, quiet=True)
        eventually(lambda: len(long.output) >= 20_000, what="the running job's output")
        # One worker: the 300 jobs finish in order.
        ts = []
        for i in range(300):
            ts.append(d.queue(_say, i, quiet=True))
            assert ts[-1].wait(WAIT)
        assert _kept(d) <= budget == d.stats()["output_budget"]
        assert d.stats()["output_kept"] == _kept(d)
        outputs = [t.output for t in ts]
        dropped = [i for i, out in enumerate(outputs) if out.startswith("[nbfrost: output dropped")]
        kept = [i for i, out in enumerate(outputs) if out.startswith(f"job {i:03d} ")]
        assert len(dropped) + len(kept) == 300
        assert dropped == list(range(len(dropped))) and kept  # oldest first
        # Only what was needed went: one more job's output would not fit.
        note = len(outputs[0])
        assert len(kept) >= 25 and _kept(d) + len(outputs[kept[0]]) - note > budget
        assert "output_budget=100,000" in outputs[0]
        assert outputs[kept[0]] == f"job {kept[0]:03d} " + "abcdefghij"[kept[0] % 10] * 1990 + "\n"
        # The running job is never cut by the budget, only by its cap.
        assert long.output == "r" * 20_000 + "\n"
        gate.set()
        assert long.wait(WAIT) and long.output == ("r" * 20_000 + "\n") * 2
        # Finishing, it counts like any other: the oldest output goes.
        assert _kept(d) <= budget and outputs[kept[0]] != ts[kept[0]].output


def test_expired_and_cleared_jobs_give_their_share_back(clock, thread_baseline):
    with nbfrost.Dispatcher(workers=1, expiry=60.0, clock=clock, output_budget=10_000) as d:
        first = [d.queue(print, "x" * 999, quiet=True) for _ in range(5)]
        assert d.wait(first, WAIT)
        assert d.registry.output_kept == 5_000
        clock.advance(61)
        d.sweep()
        assert d.registry.output_kept == 0
        second = [d.queue(print, "y" * 999, quiet=True) for _ in range(10)]
        assert d.wait(second, WAIT)
        assert d.registry.output_kept == 10_000
        assert all(t.output == "y" * 999 + "\n" for t in second)  # nothing dropped
        assert d.clear() == 10 and d.registry.output_kept == 0


def test_setting_a_smaller_budget_applies_at_once(dispatcher):
    d = dispatcher
    # One at a time: the budget drops the oldest *finished* jobs' output
    # first, and four jobs on four workers finish in no set order.
    ts = []
    for i in range(4):
        ts.append(d.queue(print, str(i) * 1000, quiet=True))
        assert ts[-1].wait(WAIT)
    assert d.registry.output_kept == 4004
    d.output_budget = 2500
    assert d.registry.output_kept == _kept(d) <= 2500
    assert [t.output.startswith("[nbfrost: output dropped") for t in ts] == [True, True, False, False]
    assert "output_budget=2,500," in ts[0].output
    with pytest.raises(ValueError, match="output_budget"):
        d.output_budget = -1
    d.output_budget = None
    assert d.registry.output_kept == 0


def test_map_jobs_let_go_of_arguments_and_handed_over_results(dispatcher):
    """The chunked map() path: each item's argument goes when its job
    succeeds, and a yielded result is kept by neither the iterator nor the
    registry (its job's status stays)."""
    d = dispatcher
    items = [Big() for _ in range(600)]
    arg_refs = [weakref.ref(b) for b in items]
    results = d.map(_echo, items)
    del items
    ids = [s.id for s in d.jobs()]
    first = next(results)
    result_ref = weakref.ref(first)
    del first
    rest = list(results)
    gc.collect()
    assert result_ref() is None  # the first result: yielded, then nobody's
    del rest
    gc.collect()
    assert all(r() is None for r in arg_refs)
    assert [d.status(i).state for i in ids] == [JobState.SUCCEEDED] * 600
    with pytest.raises(ResultReleased):
        d.tracker(ids[0]).result()


def _echo(big: Big) -> Big:
    return big


class _Result(bytearray):
    """A result that can be watched: bytearray itself takes no weakref."""


def test_a_large_result_is_freed_when_its_job_expires_not_at_the_next_lookup(thread_baseline):
    # 500 MB, zero-filled: the pages are not touched, so it costs address
    # space, not memory; its finalizer says when nbfrost let go of it.
    freed = threading.Event()
    freed_at: list[float] = []

    def big() -> _Result:
        value = _Result(500 * 2**20)
        weakref.finalize(value, lambda: (freed_at.append(time.time()), freed.set()))
        return value

    expiry = 1.0
    with nbfrost.Dispatcher(workers=1, expiry=expiry) as d:
        t = d.queue(big)
        assert t.wait(WAIT)
        finished = t.status().finished_at.timestamp()
        del t  # nothing else holds it; no call reaches the registry from here on
        assert freed.wait(WAIT), "the result was not freed when its job expired"
        assert d.registry.counts()["succeeded"] == 0
    late = freed_at[0] - (finished + expiry)
    assert -0.01 <= late < 2.0, f"freed {late:+.2f} s after its expiry"
