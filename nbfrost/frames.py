"""Turning job records into a pandas DataFrame (pandas is imported here only).

Columns are built one at a time from the records, not row by row through
dicts: that is what keeps ``to_frame()`` faster than
``pandas.DataFrame(list_of_dicts)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .job import QUEUED, TERMINAL, JobState

if TYPE_CHECKING:
    import pandas as pd

    from .job import Job

__all__ = ["jobs_to_frame", "COLUMNS"]

COLUMNS = ("name", "state", "tags", "queued_at", "started_at", "finished_at",
           "duration", "worker", "attempts", "progress", "message", "success",
           "error", "error_type", "traceback")

_NAN = math.nan
STATE_ORDER = [s.value for s in JobState]


def _times(values: list[float | None]) -> pd.DatetimeIndex:
    import numpy as np
    import pandas as pd

    arr = np.array([_NAN if v is None else v for v in values], dtype="float64")
    return pd.to_datetime(arr, unit="s", utc=True)


def jobs_to_frame(jobs: Sequence[Job], now: float) -> pd.DataFrame:
    """One row per job, indexed by ``id``.

    ``state`` is categorical (ordered by lifecycle), the three times are
    ``datetime64[ns, UTC]``, ``duration`` is float seconds (so far, for a
    running job), and ``success`` is a nullable boolean.

    Read without the registry lock: each record's state is read first, and
    the other fields are used only as far as they belong to that state
    (writers set them before they publish a new state).
    """
    import numpy as np
    import pandas as pd

    states = [j.state for j in jobs]
    terminal = [s in TERMINAL for s in states]
    # A job read as queued may start while the frame is built: show only
    # what belongs to the state that was read, so every row is consistent.
    ran = [s is not QUEUED for s in states]
    started = [j.started_at if r else None for j, r in zip(jobs, ran)]
    finished = [j.finished_at if t else None for j, t in zip(jobs, terminal)]
    duration = np.array([
        _NAN if s is None else (f - s if f is not None else max(0.0, now - s))
        for s, f in zip(started, finished)], dtype="float64")
    success = pd.array(
        [(st is JobState.SUCCEEDED) if t else None for st, t in zip(states, terminal)],
        dtype="boolean")
    # Likewise no error on a row read as queued (a cancel may land meanwhile).
    errors = [j.error if r else None for j, r in zip(jobs, ran)]
    data = {
        "name": [j.display_name for j in jobs],
        "state": pd.Categorical([s.value for s in states], categories=STATE_ORDER),
        "tags": [j.tags for j in jobs],
        "queued_at": _times([j.queued_at for j in jobs]),
        "started_at": _times(started),
        "finished_at": _times(finished),
        "duration": duration,
        "worker": [j.worker if r else None for j, r in zip(jobs, ran)],
        "attempts": np.array([j.attempts if r else 0 for j, r in zip(jobs, ran)], dtype="int64"),
        "progress": np.array([_NAN if j.progress is None else j.progress for j in jobs],
                             dtype="float64"),
        "message": [j.message for j in jobs],
        "success": success,
        "error": [None if e is None else (str(e) or type(e).__name__) for e in errors],
        "error_type": [None if e is None else type(e).__name__ for e in errors],
        "traceback": [None if e is None else j.traceback for j, e in zip(jobs, errors)],
    }
    index = pd.Index(np.array([j.id for j in jobs], dtype="int64"), name="id")
    return pd.DataFrame(data, index=index, columns=list(COLUMNS))
