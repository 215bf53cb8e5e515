"""nbfrost: a queryable, in-process worker queue for Jupyter notebooks.

    import nbfrost
    d = nbfrost.Dispatcher(workers=4)
    t = d.queue(sum, [1, 2, 3], name="add")
    t.result()         # 6
    d.to_frame()       # every job, as a DataFrame

Heavy dependencies (pandas, ipywidgets, distributed) are imported only when
a feature needs them, so ``import nbfrost`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .dispatcher import Dispatcher
from .errors import (
    JobCancelled,
    JobFailed,
    JobNotFound,
    JobTimeout,
    NbfrostError,
    QueueFull,
    RemoteJobError,
    ResultReleased,
    WaitDeadlock,
    WaitInterrupted,
    WaitTimeout,
    WorkerDied,
)

# Bound eagerly (the package's __init__ is light): a lazy binding would be
# shadowed by the subpackage nbfrost.history once a writer imports it.
from .history import history
from .job import TERMINAL, JobState, JobStatus
from .progress import cancelled, progress, report
from .schedules import Schedule, ScheduleState, ScheduleStatus
from .tracker import Tracker

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .notebook.dashboard.widget import Dashboard
    from .notebook.magics import FrostMagics
    from .notebook.shell import get_dispatcher

# Lazily imported names: module that defines each.  Keeps `import nbfrost`
# free of IPython, ipywidgets, pandas and distributed.
_LAZY = {
    "Dashboard": "nbfrost.notebook.dashboard.widget",
    "FrostMagics": "nbfrost.notebook.magics",
    "get_dispatcher": "nbfrost.notebook.shell",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbfrost' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext nbfrost``: register the ``%%frost``/``%frost`` magics."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """``%unload_ext nbfrost``: remove the magics and shut the pool down."""
    from .notebook.magics import unload_ipython_extension as unload

    unload(ipython)

def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (the Jobs panel), for
    ``jupyter labextension develop``; wheels install it as shared data."""
    return [{"src": "labextension", "dest": "nbfrost"}]


# Spelled out (not built from errors.__all__) so that type checkers and linters
# see the public names.
__all__ = [
    "Dispatcher",
    "Tracker",
    "JobState",
    "JobStatus",
    "TERMINAL",
    "Schedule",
    "ScheduleState",
    "ScheduleStatus",
    "progress",
    "report",
    "cancelled",
    "NbfrostError",
    "JobNotFound",
    "JobFailed",
    "WaitInterrupted",
    "WaitDeadlock",
    "JobCancelled",
    "JobTimeout",
    "WaitTimeout",
    "QueueFull",
    "ResultReleased",
    "RemoteJobError",
    "WorkerDied",
    "Dashboard",
    "FrostMagics",
    "get_dispatcher",
    "history",
]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (`nbfrost.server`), found by jupyter_server."""
    return [{"module": "nbfrost.server"}]
