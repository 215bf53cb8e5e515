"""The one-line failure notice under the queuing cell (``failure_notices``).

Only a notebook shows it: `Dispatcher` turns it on when an IPython shell
runs the process (`in_ipython`) and hands `failure_notice` to the backend,
which calls it when a job queued with ``queue`` fails for good.  It lives
in the engine, not in `nbfrost.notebook`, because the engine never imports
the notebook surface; it needs only the output forwarding of `forward`.
"""

from __future__ import annotations

import contextvars
import sys
from typing import TYPE_CHECKING

from . import capture, forward

if TYPE_CHECKING:
    from .job import Job

__all__ = ["in_ipython", "failure_notice"]


def in_ipython() -> bool:
    """Whether an IPython shell runs this process (without importing IPython)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get is not None and get() is not None


def failure_notice(job: Job, ctx: contextvars.Context) -> None:
    """Say under the queuing cell that an API job failed (see ``failure_notices``)."""
    if not job.echo or getattr(job._fn, "reports_failures", False):
        return  # quiet, or a %%frost cell, which shows its own traceback
    error = job._error
    text = str(error).strip().splitlines()
    what = type(error).__name__ + (f": {text[0]}" if text else "")
    line = f"\u2718 job {job._id} {job.display_name!r} failed: {what} \u2014 %frost status {job._id}\n"

    def summary(n: int) -> str:
        return (f"\u2718 {n} more job(s) failed (notices coalesced) \u2014 "
                "%frost jobs --state failed\n")

    forward.notice(ctx, capture.real_stream("stderr"), line, summary)
