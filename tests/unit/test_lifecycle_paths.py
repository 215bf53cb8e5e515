"""One job lifecycle on every in-process path: the scenario table of
``tests/lifecycle.py`` through ``queue()``, ``submit()``, ``map()`` and
``map()`` with ``max_queue`` (the Dask backend runs it in
``tests/cluster/test_lifecycle_dask.py``), and the bulk path's records made
the way ``Job.__init__`` makes them."""

from __future__ import annotations

import contextvars

import pytest
from lifecycle import SCENARIOS, FileSync, ThreadSync, in_process_paths, play, process_path

from nbfrost.job import Job, bulk_jobs

PATHS = in_process_paths()


@pytest.mark.parametrize("path", PATHS, ids=repr)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=repr)
def test_every_path_ends_a_scenario_the_same_way(scenario, path, thread_baseline):
    assert play(scenario, path, ThreadSync()) == scenario.expected


def _slots(job: Job) -> dict[str, object]:
    names = [n for n in Job.__slots__ if n != "__weakref__"]
    missing = [n for n in names if not hasattr(job, n)]
    assert not missing, f"left unset: {missing}"
    return {n: getattr(job, n) for n in names}


def test_bulk_jobs_fill_every_field_that_job_init_fills():
    """Field by field, over every slot of the record: a slot added to
    `Job.__init__` and forgotten in `bulk_jobs` fails here."""

    def fn(x: int) -> int:
        return x

    ctx = contextvars.copy_context()
    owner = object()
    made = Job(fn, (1,), {}, "label", (), None, 0, ctx, 5.0, owner)  # type: ignore[arg-type]
    made._id = 7  # given by Registry.add; bulk_jobs takes ids from reserve_ids
    (bulk,) = bulk_jobs(fn, [(1,)], {}, "label", 7, 5.0, ctx, owner)  # type: ignore[arg-type]
    assert _slots(bulk) == _slots(made)
    assert type(bulk) is Job


@pytest.mark.parametrize("scenario", SCENARIOS, ids=repr)
def test_the_process_pool_ends_a_scenario_the_same_way(scenario, tmp_path, thread_baseline):
    assert play(scenario, process_path(), FileSync(str(tmp_path))) == scenario.expected
