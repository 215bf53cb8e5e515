"""The job history: every job's transitions, kept in a file that outlives the kernel.

One feature, one vocabulary:

* the **history file** is an SQLite database whose layout, and its
  version, are described once in `nbfrost.history.format`;
* the registry puts each transition in its **history inbox**
  (`Registry.history_inbox`), a plain dict it fills under its lock;
* the **history writer** (`nbfrost.history.writer.HistoryWriter`) empties
  the inbox every few milliseconds and commits what changed;
* the **history reader** (`nbfrost.history.reader`) reads the file back,
  and `history` below is its public entry point, ``nbfrost.history(path)``.

Turned on with ``Dispatcher(history="jobs.sqlite")`` (or ``%config
FrostMagics.history``).  This package's ``__init__`` imports nothing heavy:
sqlite3 and pandas are loaded when a writer opens or `history` reads.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["history"]


def history(path: str | os.PathLike) -> pd.DataFrame:
    """Every job recorded in the history file *path*, as a DataFrame.

    One row per job and session (a session is one dispatcher's lifetime),
    ordered by session then job id, with the columns in
    `nbfrost.history.format.HISTORY_COLUMNS`: ``session``, ``pid`` and
    ``id`` identify the job (int64); the rest have the dtypes of
    ``Dispatcher.to_frame()`` (see `nbfrost.frames.frame_dtypes`: text is
    ``string``, ``state`` the same categorical, times ``datetime64[ns,
    UTC]``, ``duration`` seconds, ``success`` a nullable boolean).

    A job that had not ended when its process died, or when its session
    closed, has state ``"lost"`` and keeps its last known times
    (``queued_at``, and ``started_at`` if it had started).  The jobs of a
    process that is still running keep their state (``queued`` or
    ``running``).  History writers of *this* process that write *path* are
    flushed first; of other processes, what they committed is read (see
    `nbfrost.history.writer` on durability).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an nbfrost history, or is corrupt.
    """
    from .reader import read_history

    return read_history(path)
