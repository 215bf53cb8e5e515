"""Shared fixtures, and the markers of each test folder: the helpers the
fixtures use live in ``helpers.py``, which tests import directly.

Tests sit in folders by kind, and the folder sets the markers
(``FOLDER_MARKERS``): ``unit/`` (no kernel, browser or cluster; what
``make test-fast`` runs), ``kernel/`` (real Jupyter kernels), ``browser/``
(JupyterLab, Notebook 7, Voila in Chromium), ``cluster/`` (a real Dask
``LocalCluster``), ``stress/`` (hundreds of thousands of jobs) and ``package/``
(the wheel built and installed into a fresh venv).  Every
folder but ``unit/`` is also ``slow``; ``make test`` runs them all."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import FakeClock, assert_no_leaked_threads, live_threads

import nbfrost

# Every Dispatcher publishes its jobs to the Jupyter runtime dir
# (nbfrost.publisher): the run gets a private one, not the user's.
os.environ["JUPYTER_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="nbfrost-test-runtime-")
atexit.register(shutil.rmtree, os.environ["JUPYTER_RUNTIME_DIR"], ignore_errors=True)


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


#: The markers a test gets from the folder it sits in.
FOLDER_MARKERS: dict[str, tuple[str, ...]] = {
    "unit": (),
    "kernel": ("slow", "kernel"),
    "browser": ("slow", "browser"),
    "cluster": ("slow", "cluster"),
    "stress": ("slow", "stress"),
    "package": ("slow",),
}
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = Path(str(item.fspath)).resolve().relative_to(_HERE).parts[0]
        if folder not in FOLDER_MARKERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of the folders "
                                    f"{sorted(FOLDER_MARKERS)} of tests/, which set their markers")
        for name in FOLDER_MARKERS[folder]:
            item.add_marker(name)


def pytest_sessionfinish(session, exitstatus):
    """A dispatcher a test left with unfinished jobs would make this process
    wait at exit (nbfrost.exits, as a script would): name it instead."""
    from nbfrost import exits

    for d in exits.forget_all():
        print(f"\nnbfrost: a test left {d!r} with unfinished jobs; not waiting for them")
