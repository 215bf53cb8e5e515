"""A tracker shows its API and nothing else: ``dir()`` and tab completion list
only what a user may use, no field of the record behind it can be set, and
the record reaches its owner (the dispatcher) and the registry reaches a
worker only through the named protocols."""

from __future__ import annotations

import pytest
from helpers import WAIT

import nbfrost
from nbfrost.backends.threads import ThreadBackend
from nbfrost.job import Job
from nbfrost.notebook.badge import LiveTracker
from nbfrost.protocols import JobOwner, WorkerSlot

#: Everything a user may use on a tracker.
API = {"id", "name", "tags", "state", "dispatcher", "status", "done", "running",
       "cancelled", "output", "wait", "result", "exception", "cancel",
       "add_done_callback", "future"}

#: The record's fields and the engine's helpers, by the names a user might try.
INTERNALS = {"fn", "args", "kwargs", "label", "value", "error", "worker", "attempts",
             "queued_at", "started_at", "finished_at", "caller_context", "cancel_requested",
             "details", "final_status", "snapshot", "ensure_details", "write_output",
             "set_progress", "check_transition", "display_name", "error_text", "traceback",
             "timeout", "retries", "echo", "interrupted", "progress", "message"}


def test_dir_lists_the_api_and_nothing_of_the_record(dispatcher):
    t = dispatcher.queue(int, "7", name="seven", tags="x")
    assert t.result(WAIT) == 7
    assert set(dir(t)) == API
    assert isinstance(t, Job)  # still the record itself: no second object per job
    assert set(dir(LiveTracker(t._job))) == API


@pytest.mark.parametrize("use_jedi", [True, False])
def test_tab_completion_offers_only_the_api(ip, dispatcher, use_jedi):
    from IPython.core.completer import provisionalcompleter

    t = dispatcher.queue(int)
    t.wait(WAIT)
    ip.user_ns["t"] = t
    saved = ip.Completer.use_jedi
    ip.Completer.use_jedi = use_jedi
    try:
        with provisionalcompleter():
            # IPython 8.6 (the floor) gives some completions with their "t." prefix
            offered = {c.text.rsplit(".", 1)[-1] for c in ip.Completer.completions("t.", 2)}
    finally:
        ip.Completer.use_jedi = saved
        del ip.user_ns["t"]
    assert offered == API


@pytest.mark.parametrize("name", sorted({"id", "name", "tags", "state", "dispatcher",
                                         "output", "future"}))
def test_the_api_properties_cannot_be_set_and_say_why(dispatcher, name):
    t = dispatcher.queue(int)
    t.wait(WAIT)
    before = getattr(t, name)
    with pytest.raises(AttributeError, match=rf"tracker\.{name} is read-only: \w+"):
        setattr(t, name, "x")
    assert getattr(t, name) == before


def test_setting_state_names_what_to_do_instead(dispatcher):
    t = dispatcher.queue(int)
    t.wait(WAIT)
    with pytest.raises(AttributeError, match=r"tracker\.cancel\(\).*Dispatcher\.retry\(\)"):
        t.state = "cancelled"
    assert t.state is nbfrost.JobState.SUCCEEDED


@pytest.mark.parametrize("name", sorted(INTERNALS | {"anything_new"}))
def test_no_field_of_the_record_can_be_set(dispatcher, name):
    t = dispatcher.queue(int, "3")
    t.wait(WAIT)
    with pytest.raises(AttributeError):
        setattr(t, name, "x")
    assert t.result() == 3 and t.state is nbfrost.JobState.SUCCEEDED
    status = t.status()
    assert status.state is nbfrost.JobState.SUCCEEDED and status.error is None


def test_the_record_fields_are_not_attributes_of_the_tracker(dispatcher):
    t = dispatcher.queue(int)
    t.wait(WAIT)
    for name in ("fn", "args", "kwargs", "label", "value", "error", "worker", "attempts",
                 "details", "final_status", "caller_context", "cancel_requested"):
        assert not hasattr(t, name), name


def test_a_dispatcher_is_the_owner_its_jobs_ask(dispatcher: nbfrost.Dispatcher):
    assert isinstance(dispatcher, JobOwner)
    t = dispatcher.queue(int)
    assert t._job._owner is dispatcher and t.dispatcher is dispatcher
    assert t.wait(WAIT) and dispatcher.clock() == dispatcher.registry.clock()
    assert dispatcher.release_result(t._job, forget=False) == 0
    assert t.result() == 0  # not forgotten


def test_the_thread_workers_are_what_run_chunk_needs(thread_baseline):
    # mypy checks it statically (the end of backends/threads.py); here the
    # members are looked up at run time on a live worker.
    backend = ThreadBackend(1)
    with nbfrost.Dispatcher(workers=1, backend=backend) as d:
        assert d.queue(int).wait(WAIT)
        (worker,) = backend._workers
        assert isinstance(worker, WorkerSlot)


@pytest.mark.parametrize("name", ["value", "error", "fn", "args", "attempts", "started_at",
                                  "details", "progress", "traceback", "display_name"])
def test_a_field_of_the_record_says_what_to_use_instead(dispatcher, name):
    t = dispatcher.queue(int)
    t.wait(WAIT)
    with pytest.raises(AttributeError, match=rf"tracker\.{name} (is read-only|cannot be set)"
                                             r".*tracker\.\w+"):
        setattr(t, name, "x")
