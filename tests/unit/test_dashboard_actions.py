"""The dashboard's actions reach every job: an id typed in the id box picks
a job on any page, "Clear finished" asks first, and a chosen job that was
cleared says so (no front end: widget values are set as a browser would)."""

from __future__ import annotations

import pytest

import nbfrost
from nbfrost.notebook.dashboard import Dashboard

WAIT = 10.0


@pytest.fixture
def d(clock, thread_baseline):
    d = nbfrost.Dispatcher(workers=2, expiry=300.0, clock=clock)
    yield d
    d.shutdown(wait=True, cancel_pending=True, timeout=10)


@pytest.fixture
def dash(d):
    dash = Dashboard(d, refresh=None, page_size=10)
    yield dash
    dash.close()


def test_a_typed_id_chooses_a_job_on_another_page(d, dash):
    jobs = [d.queue(abs, -i, name=f"job-{i}") for i in range(60)]
    d.wait(jobs, timeout=WAIT)
    dash.refresh_now()
    assert 0 not in dash._ids                  # page 1 shows the 10 newest
    dash.id_box.value = "0"                    # what Enter in the box sends
    assert dash.selected == 0
    assert "Job 0 · status JSON" in dash.details.value
    assert dash.id_box.value == ""             # ready for the next id
    dash.id_box.value = "#7"
    assert dash.selected == 7
    dash.id_box.value = "seven"
    assert dash.selected == 7
    assert "a job id is a number" in dash.message.value
    dash.id_box.value = "999"
    assert dash.selected == 999
    assert "job 999 never existed" in dash.details.value


def test_clear_finished_asks_first(d, dash):
    d.wait([d.queue(abs, -i) for i in range(5)], timeout=WAIT)
    dash.refresh_now()
    dash.clear_button.click()
    assert dash.clear_confirm.layout.display == "flex"
    assert dash.clear_button.layout.display == "none"
    assert "Remove 5 finished jobs from the registry?" in dash.clear_question.value
    assert len(d.registry) == 5                # nothing removed yet
    dash.clear_no.click()
    assert len(d.registry) == 5 and "nothing cleared" in dash.message.value
    assert dash.clear_confirm.layout.display == "none"
    dash.clear_button.click()
    dash.clear_yes.click()
    assert len(d.registry) == 0 and "cleared 5 finished jobs" in dash.message.value
    dash.clear_button.click()                  # nothing left: no question
    assert dash.clear_confirm.layout.display == "none"
    assert "no finished jobs to clear" in dash.message.value


def test_a_chosen_job_that_was_cleared_says_cleared(d, dash, clock):
    t = d.queue(abs, -3, name="three")
    assert t.wait(WAIT)
    dash.refresh_now()
    dash.select(t.id)
    assert "Job 0 · status JSON" in dash.details.value
    dash.clear_button.click()
    clock.advance(3.0)
    dash.clear_yes.click()
    assert "job 0 finished and was cleared from the registry" in dash.details.value
    assert "raise expiry" not in dash.details.value and "expired" not in dash.details.value
