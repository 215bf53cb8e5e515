"""Edge cases found in review: shutdown from inside a job, cleared ids with
expiry=None, empty tags."""

from __future__ import annotations

import pytest

import nbfrost


def test_shutdown_from_inside_a_job_does_not_hang(thread_baseline):
    d = nbfrost.Dispatcher(workers=2, expiry=None)
    t = d.queue(d.shutdown)  # wait=True by default: would wait for itself
    assert t.wait(10)
    assert t.state is nbfrost.JobState.SUCCEEDED
    assert d.closed
    with pytest.raises(RuntimeError, match="shut down"):
        d.queue(int)


def test_cleared_id_with_no_expiry_says_cleared():
    with nbfrost.Dispatcher(workers=1, expiry=None) as d:
        t = d.queue(int)
        t.wait()
        assert d.clear() == 1
        with pytest.raises(nbfrost.JobNotFound, match="cleared"):
            d.status(t.id)
        with pytest.raises(nbfrost.JobNotFound, match="never existed"):
            d.status(t.id + 1)
        with pytest.raises(nbfrost.JobNotFound, match="ids are ints"):
            d.status([1])


@pytest.mark.parametrize("tags", ["", ["a", ""], 0, [None]])
def test_bad_tags_are_refused_before_queueing(tags):
    with nbfrost.Dispatcher(workers=1) as d:
        with pytest.raises((TypeError, ValueError)):
            d.queue(int, tags=tags)
        assert len(d.registry) == 0 and d.stats()["submitted"] == 0
