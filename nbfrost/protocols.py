"""Who may call what: the typed edges between the engine's layers.

A job's record (`nbfrost.job.Job`, which is also its `Tracker`) lives in
the model layer, below the dispatcher that owns it; the registry lives
below the backends whose workers run its chunks.  Where a lower layer needs
something from a higher one, it asks for it through a `Protocol` named
here, never through the higher layer's private parts, and mypy checks that
the higher layer provides it (see the ``TYPE_CHECKING`` blocks at the end
of ``dispatcher.py`` and ``backends/threads.py``).

The members are public so that the edges are visible, but they are not the
user's API: like ``Future.set_result`` in CPython's ``concurrent.futures``,
they are there for trackers, futures, backends and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .forward import Bucket, Lane
    from .job import Job

__all__ = ["JobOwner", "WorkerSlot"]


@runtime_checkable
class JobOwner(Protocol):
    """What a job, its tracker and its future need from the dispatcher
    that owns the job: the clock, waiting, done callbacks, cancelling, the
    result hand-over, and the output forwarding limits.

    `nbfrost.Dispatcher` provides it; each job holds its owner (``_owner``).
    """

    #: Characters of one job's output shown in the notebook (see `nbfrost.forward`).
    forward_budget: int
    #: The output rate all jobs of this owner share (see `nbfrost.forward`).
    forward_bucket: Bucket

    def clock(self) -> float:
        """Now, in epoch seconds, on the owner's (injectable) clock."""

    def wait_for_job(self, job: Job, timeout: float | None) -> bool:
        """Block until *job* ends or *timeout* seconds pass; True if it ended."""

    def add_job_callback(self, job: Job, fn: Callable[[Job], None]) -> bool:
        """Call ``fn(job)`` when *job* ends; False (and no call) if it already has."""

    def cancel_job(self, job: Job, interrupt: bool = False, *, queued_only: bool = False) -> bool:
        """Cancel *job* (see `Tracker.cancel`); with *queued_only* only while
        it is queued (``Future.cancel``'s rule).  True if it is, or will
        end, cancelled."""

    def release_result(self, job: Job, *, forget: bool) -> Any:
        """A succeeded *job*'s result (None otherwise); with *forget*, the
        owner keeps it no longer (``map()`` hands it over)."""


@runtime_checkable
class WorkerSlot(Protocol):
    """What `Registry.run_chunk` needs from the worker that runs a chunk.

    The thread backend's worker provides it (``backends/threads.py``).
    """

    #: The job the worker runs now, where an interrupt looks for it; the
    #: registry sets it, under its lock, when a job of the chunk starts.
    job: Job | None
    #: The running job's output lane, set once the job printed: the
    #: registry then hands the job back, for its output to go out first.
    lane: Lane | None

    def clear_interrupt(self) -> None:
        """Take back an asynchronous exception sent to the worker's thread
        and not raised yet.  Called under the registry's lock."""
