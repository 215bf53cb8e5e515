"""Turning job records into a pandas DataFrame (pandas is imported here only).

Columns are built one at a time from the records, not row by row through
dicts: that is what keeps ``to_frame()`` faster than
``pandas.DataFrame(list_of_dicts)``.

Every column has one dtype, whatever the rows hold (none, only queued jobs,
finished ones): `frame_dtypes` is the schema, and ``nbfrost.history()``
uses the same dtypes for the columns it shares.  Text columns are
``pd.StringDtype("python")``: explicit, so pandas 1.5 and 3.x give the
same (pandas 3's default ``str`` dtype differs by version, missing value
and installed pyarrow), missing values are ``pd.NA`` like those of the
``boolean`` column, and no pyarrow is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .job import QUEUED, TERMINAL, JobState

if TYPE_CHECKING:
    import pandas as pd

    from .job import Job

__all__ = ["jobs_to_frame", "frame_dtypes", "COLUMNS", "STATES"]

COLUMNS = ("name", "state", "tags", "queued_at", "started_at", "finished_at",
           "duration", "worker", "attempts", "progress", "message", "success",
           "error", "error_type", "traceback", "schedule")

_NAN = math.nan
#: The categories of the ``state`` column, in lifecycle order: every job
#: state, and ``lost``, which only ``nbfrost.history()`` reports (a job
#: whose process ended before it did).  One list for both, so their frames
#: concatenate without turning ``state`` into object.
STATES = [*(s.value for s in JobState), "lost"]
STATE_ORDER = STATES  # the name used before


def frame_dtypes() -> dict[str, Any]:
    """The schema of ``to_frame()`` (and of the columns ``history()`` shares
    with it): column name -> pandas dtype.  The index, ``id``, is int64."""
    import pandas as pd

    string = pd.StringDtype("python")
    utc = pd.DatetimeTZDtype("ns", "UTC")
    return {
        "name": string,
        "state": pd.CategoricalDtype(STATES),
        "tags": object,  # a tuple of str per row
        "queued_at": utc,
        "started_at": utc,
        "finished_at": utc,
        "duration": "float64",
        "worker": string,
        "attempts": "int64",
        "progress": "float64",
        "message": string,
        "success": "boolean",
        "error": string,
        "error_type": string,
        "traceback": string,
        "schedule": "Int64",  # the schedule a run belongs to (missing: pd.NA)
        # history() only
        "schedule_rule": string,
        "session": "int64",
        "pid": "int64",
        "id": "int64",
    }


def strings(values: list) -> Any:
    """A ``string`` array (missing: ``pd.NA``) from str-or-None values."""
    import pandas as pd

    return pd.array(values, dtype=pd.StringDtype("python"))


def utc_times(values: list, per_second: int) -> Any:
    """UTC ``datetime64[ns]`` values from epoch numbers (None: NaT).

    *per_second* is the numbers' unit: 1 for seconds, 1_000_000 for
    microseconds.  Built from integer nanoseconds, so the unit is ns on
    every pandas version and whatever the values are (none at all too).
    """
    import numpy as np
    import pandas as pd

    arr = np.array([_NAN if v is None else v for v in values], dtype="float64")
    missing = np.isnan(arr)
    ns = np.round(arr * (1_000_000_000 // per_second))
    ns[missing] = 0
    ns = ns.astype("int64")
    ns[missing] = np.iinfo("int64").min  # NaT
    return pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC")


def tuples(values: list) -> Any:
    """An object array holding each tuple as one value (never a 2-D array)."""
    import numpy as np

    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def categories(values: list) -> Any:
    import pandas as pd

    return pd.Categorical(values, dtype=pd.CategoricalDtype(STATES))


def jobs_to_frame(jobs: Sequence[Job], now: float) -> pd.DataFrame:
    """One row per job, indexed by ``id``.

    The dtypes are `frame_dtypes`, whatever the rows hold: text columns
    are ``string`` (missing: ``pd.NA``), ``state`` is categorical (every
    state, in lifecycle order), the three times are
    ``datetime64[ns, UTC]``, ``duration`` is float seconds (so far, for a
    running job), ``attempts`` int64 and ``success`` a nullable boolean.

    Read without the registry lock: each record's state is read first, and
    the other fields are used only as far as they belong to that state
    (writers set them before they publish a new state).
    """
    import numpy as np
    import pandas as pd

    states = [j._state for j in jobs]
    terminal = [s in TERMINAL for s in states]
    # A job read as queued may start while the frame is built: show only
    # what belongs to the state that was read, so every row is consistent.
    ran = [s is not QUEUED for s in states]
    started = [j._started_at if r else None for j, r in zip(jobs, ran)]
    finished = [j._finished_at if t else None for j, t in zip(jobs, terminal)]
    duration = np.array([
        _NAN if s is None else (f - s if f is not None else max(0.0, now - s))
        for s, f in zip(started, finished)], dtype="float64")
    success = pd.array(
        [(st is JobState.SUCCEEDED) if t else None for st, t in zip(states, terminal)],
        dtype="boolean")
    # Likewise no error on a row read as queued (a cancel may land meanwhile).
    errors = [j._error if r else None for j, r in zip(jobs, ran)]
    data = {
        "name": strings([j.display_name for j in jobs]),
        "state": categories([s.value for s in states]),
        "tags": tuples([j._tags for j in jobs]),
        "queued_at": utc_times([j._queued_at for j in jobs], 1),
        "started_at": utc_times(started, 1),
        "finished_at": utc_times(finished, 1),
        "duration": duration,
        "worker": strings([j._worker if r else None for j, r in zip(jobs, ran)]),
        "attempts": np.array([j._attempts if r else 0 for j, r in zip(jobs, ran)], dtype="int64"),
        "progress": np.array([_NAN if j.progress is None else j.progress for j in jobs],
                             dtype="float64"),
        "message": strings([j.message for j in jobs]),
        "success": success,
        "error": strings([None if e is None else (str(e) or type(e).__name__) for e in errors]),
        "error_type": strings([None if e is None else type(e).__name__ for e in errors]),
        "traceback": strings([None if e is None else j.traceback for j, e in zip(jobs, errors)]),
        "schedule": pd.array([j.schedule_id for j in jobs], dtype="Int64"),
    }
    index = pd.Index(np.array([j._id for j in jobs], dtype="int64"), name="id")
    return pd.DataFrame(data, index=index, columns=list(COLUMNS))
