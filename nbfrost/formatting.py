"""How nbfrost writes a duration and a one-line job summary, for every surface.

The ``notify`` line of the magics, the badge, and the dashboard's table,
timeline and finish banner all call these, so a job reads the same wherever
it is shown.  Pure functions of plain values: no IPython, widgets or pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .states import JobState

if TYPE_CHECKING:
    from .job import JobStatus

__all__ = ["duration", "rate", "window", "job_summary"]

def duration(seconds: float | None) -> str:
    """``"12.3 s"``, ``"4 m 05 s"`` or ``"2 h 03 m"``; ``""`` for None or NaN.

    One decimal below a minute: finer digits are noise next to the latency
    of a notebook update, and a coarser unit reads faster for long jobs.
    """
    if seconds is None or seconds != seconds:  # None or NaN: never started
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} m {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} m"


def rate(per_second: float) -> str:
    """A throughput: ``"1,234/s"``, ``"2.5/s"``, or per minute below one a second."""
    if per_second >= 10:
        return f"{per_second:,.0f}/s"
    if per_second >= 1:
        return f"{per_second:.1f}/s"
    return f"{per_second * 60:.0f}/min"


def window(seconds: float) -> str:
    """The span a rate is over: ``"60 s"``, ``"4.2 s"``."""
    return f"{seconds:.0f} s" if seconds >= 10 or seconds == 0 else f"{seconds:.1f} s"


#: How much of an error message a one-line summary shows (the rest is in
#: ``%frost status ID`` and the dashboard's details).
SUMMARY_ERROR_CHARS = 160


def _one_line(text: str, limit: int = SUMMARY_ERROR_CHARS) -> str:
    """The first line of *text*, cut to *limit* characters with an ellipsis."""
    first, _, rest = text.partition("\n")
    if len(first) > limit:
        return first[: limit - 1] + "…"
    return first + (" …" if rest.strip() else "")


def job_summary(status: JobStatus, *, notice: bool = True) -> str:
    """One plain-text line about a job.  Callers that write HTML escape it whole.

    As a *notice* (the default), a finished job reads
    ``✔ job 7 'load' finished in 12.3 s``, ``✘ job 8 'x' failed: ValueError: …``
    or ``✘ job 9 'y' cancelled``.  Otherwise, and for a job not finished yet,
    the line names the state: ``job 7 'load' running``,
    ``job 8 'x' failed in 0.2 s: ValueError: …`` (the live badge).  The error
    is cut to its first line and `SUMMARY_ERROR_CHARS` characters.
    """
    state = status.state
    head = f"job {status.id} {status.name!r}"
    took = duration(status.duration) if status.complete else ""
    if notice and state is JobState.SUCCEEDED:
        return f"✔ {head} finished in {took}" if took else f"✔ {head} finished"
    error = _one_line(status.error or "")
    if notice and state is JobState.FAILED:
        return f"✘ {head} failed: {status.error_type}: {error}"
    if notice and state is JobState.CANCELLED:
        return f"✘ {head} cancelled"
    line = f"{head} {state.value}" + (f" in {took}" if took else "")
    if status.error and state is not JobState.SUCCEEDED:
        line += f": {status.error_type}: {error}"
    return line
