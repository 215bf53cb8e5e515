"""Shared fixtures, and only fixtures: the helpers they use live in
``helpers.py``, which tests import directly.  Slow tests (real kernel,
browser, cluster) carry the ``slow`` marker; ``make test`` runs everything."""

from __future__ import annotations

import pytest
from helpers import FakeClock, assert_no_leaked_threads, live_threads

import nbfrost


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def thread_baseline():
    """Asserts that a test leaves no thread behind."""
    baseline = live_threads()
    yield baseline
    assert_no_leaked_threads(baseline)


@pytest.fixture
def dispatcher(clock, thread_baseline):
    d = nbfrost.Dispatcher(workers=4, expiry=60.0, clock=clock)
    yield d
    d.shutdown(wait=True, cancel_pending=True, timeout=10)


@pytest.fixture(scope="module")
def ip():
    """One real IPython ``InteractiveShell`` for the module (no history
    thread, so thread counts are exact); nbfrost unloaded and the instance
    cleared after."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    cfg = Config()
    cfg.HistoryManager.enabled = False
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=cfg)
    yield shell
    nbfrost.unload_ipython_extension(shell)
    InteractiveShell.clear_instance()
