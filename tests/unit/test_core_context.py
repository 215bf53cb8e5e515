"""Each job runs in the queuing thread's context as it was at queue() time.

The dispatcher reuses one context snapshot for jobs queued while the
context does not change (see `Dispatcher._caller_context`); these tests pin down
that the reuse is invisible to jobs.
"""

from __future__ import annotations

import contextvars
import threading

import nbfrost

VAR: contextvars.ContextVar = contextvars.ContextVar("nbfrost_test_var", default="unset")


def test_jobs_see_the_context_of_their_queue_call(dispatcher):
    seen = []
    token = VAR.set("first")
    try:
        a = dispatcher.queue(lambda: VAR.get())
        b = dispatcher.queue(lambda: VAR.get())  # same context: the snapshot is shared
        VAR.set("second")
        c = dispatcher.queue(lambda: VAR.get())
    finally:
        VAR.reset(token)
    seen = [t.result(timeout=10) for t in (a, b, c)]
    assert seen == ["first", "first", "second"]
    assert VAR.get() == "unset"


def test_a_job_setting_a_var_does_not_leak_into_jobs_sharing_its_snapshot():
    with nbfrost.Dispatcher(workers=1, expiry=None) as d:
        gate = threading.Event()

        def setter() -> str:
            VAR.set("set by the job")
            gate.wait(10)
            return VAR.get()

        token = VAR.set("queued")
        try:
            first = d.queue(setter)
            second = d.queue(lambda: VAR.get())  # same snapshot as `first`
        finally:
            VAR.reset(token)
        gate.set()
        assert first.result(timeout=10) == "set by the job"
        assert second.result(timeout=10) == "queued"


def test_concurrent_jobs_can_share_a_snapshot():
    # Four jobs from one unchanged context run at once: each must enter a
    # context of its own (a Context cannot be entered by two threads).
    with nbfrost.Dispatcher(workers=4, expiry=None) as d:
        barrier = threading.Barrier(4, timeout=10)

        def job(i: int) -> str:
            barrier.wait()
            VAR.set(f"job {i}")
            barrier.wait()
            return VAR.get()

        trackers = [d.queue(job, i) for i in range(4)]
        assert [t.result(timeout=20) for t in trackers] == [f"job {i}" for i in range(4)]


class _NoEquality:
    def __eq__(self, other: object) -> bool:
        raise ValueError("ambiguous")

    __hash__ = object.__hash__


def test_a_context_value_whose_equality_raises_is_handled(dispatcher):
    first, second = _NoEquality(), _NoEquality()
    token = VAR.set(first)
    try:
        a = dispatcher.queue(lambda: VAR.get())
        VAR.set(second)  # comparing the snapshots calls _NoEquality.__eq__
        b = dispatcher.queue(lambda: VAR.get())
    finally:
        VAR.reset(token)
    assert a.result(timeout=10) is first
    assert b.result(timeout=10) is second
