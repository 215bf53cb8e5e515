"""How code inside a job talks back: progress, a message, and cancellation.

All three are no-ops (or False) outside a job, so a function can be written
once and run both in the foreground and as a job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from .capture import CURRENT
from .errors import JobCancelled

__all__ = ["progress", "report", "cancelled"]

T = TypeVar("T")


def report(fraction: float | None = None, message: str | None = None) -> None:
    """Set the running job's progress (0.0–1.0) and/or its status message.

    The values show in ``status()``, ``to_frame()`` and the dashboard.
    Outside a job this does nothing.

    Raises:
        ValueError: *fraction* is outside 0.0–1.0.
    """
    if fraction is not None:
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be between 0.0 and 1.0, got {fraction}")
    if message is not None and not isinstance(message, str):
        message = str(message)
    job_context = getattr(CURRENT, "ctx", None)
    if job_context is not None and job_context.job is not None:
        job_context.report(fraction, message)


def cancelled() -> bool:
    """True once someone asked the running job to stop.

    Long jobs should check it now and then and return (or raise
    `JobCancelled`) when it turns true.  Always False outside a job.
    """
    job_context = getattr(CURRENT, "ctx", None)
    return job_context is not None and job_context.cancelled()


def progress(iterable: Iterable[T], total: int | None = None,
             message: str | None = None) -> Iterator[T]:
    """Iterate like ``tqdm(iterable)``, reporting the job's progress.

    Before each item it checks for cancellation and raises `JobCancelled`
    if a cancel was requested.  *total* defaults to ``len(iterable)`` when
    there is one; without a total only the count is reported, in the
    message.  Outside a job it simply yields the items.
    """
    job_context = getattr(CURRENT, "ctx", None)
    if job_context is None or job_context.job is None:
        yield from iterable
        return
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if total is not None and total <= 0:
        total = None
    label = f"{message} " if message else ""
    done = 0
    for item in iterable:
        if job_context.cancelled():
            raise JobCancelled(f"cancelled after {done} items")
        if total is not None:
            job_context.report(min(done / total, 1.0), f"{label}{done}/{total}")
        else:
            job_context.report(None, f"{label}{done} done")
        yield item
        done += 1
    if total is not None:
        job_context.report(1.0, f"{label}{done}/{total}")
    else:
        job_context.report(None, f"{label}{done} done")
