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

from .dispatcher import Dispatcher
from .errors import JobCancelled, JobFailed, JobNotFound, JobTimeout, NbfrostError, QueueFull
from .job import TERMINAL, JobState, JobStatus
from .progress import cancelled, progress, report
from .tracker import Tracker

__version__ = "0.1.0"

__all__ = [
    "Dispatcher",
    "Tracker",
    "JobState",
    "JobStatus",
    "TERMINAL",
    "progress",
    "report",
    "cancelled",
    "NbfrostError",
    "JobNotFound",
    "JobFailed",
    "JobCancelled",
    "JobTimeout",
    "QueueFull",
]
