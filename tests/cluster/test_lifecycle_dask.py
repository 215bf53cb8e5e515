"""One job lifecycle on the Dask backend: the scenario table of
``tests/lifecycle.py`` on a real ``LocalCluster`` (127.0.0.1, worker
processes), with the same outcomes as every in-process path."""

from __future__ import annotations

import sys

import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import lifecycle  # noqa: E402
import test_dask  # noqa: E402
from lifecycle import SCENARIOS, Path, play, queue_launch  # noqa: E402

import nbfrost  # noqa: E402

# The scenarios' jobs run in the workers' processes, which cannot import
# the tests' modules: ship them by value.
cloudpickle.register_pickle_by_value(sys.modules[lifecycle.__name__])

pytestmark = [pytest.mark.timeout(120)]

# The Dask tests' fixtures: a two-worker LocalCluster on 127.0.0.1 for this
# module, and a warmed-up client of it.
cluster = test_dask.cluster
client = test_dask.client


def dask_path(client) -> Path:
    """The Dask backend, through ``queue()``: every option, and one blocker
    per worker of the two-worker cluster (its tasks go to the cluster at
    once, so the dispatcher's ``workers`` does not hold them back)."""
    return Path("dask", lambda: nbfrost.Dispatcher(1, backend="dask", client=client),
                queue_launch, frozenset({"retries", "timeout", "after"}), blockers=2)


@pytest.fixture
def sync(client):
    kit = test_dask.Kit("dask", client)  # distributed Events and Queues; close() opens every gate
    yield kit
    kit.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=repr)
def test_dask_ends_a_scenario_as_every_path_does(scenario, client, sync):
    assert play(scenario, dask_path(client), sync) == scenario.expected
