"""Every exception nbfrost raises, in one place.

Messages say what happened *and* what to do next, because in a notebook the
message is usually all the user reads.
"""

from __future__ import annotations

import concurrent.futures

__all__ = [
    "NbfrostError",
    "JobNotFound",
    "JobFailed",
    "JobCancelled",
    "JobTimeout",
    "QueueFull",
    "RemoteJobError",
]


class NbfrostError(Exception):
    """Base class of nbfrost's own errors (except `JobCancelled`, see there)."""


class JobNotFound(NbfrostError, KeyError):
    """No job with this id is in the registry.

    The message says whether the id was never issued or whether the job
    finished and expired, and how long ago when that is known.
    """

    def __init__(self, job_id: object, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class JobFailed(NbfrostError):
    """Raised by `Tracker.result()` when the job raised.

    The original exception is chained as ``__cause__`` and kept as
    `original`; the job's formatted traceback is in `job_traceback`.
    """

    def __init__(self, message: str, *, job_id: int | None = None,
                 original: BaseException | None = None,
                 job_traceback: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.original = original
        self.job_traceback = job_traceback


class JobCancelled(concurrent.futures.CancelledError):
    """The job was cancelled.

    Raised by `Tracker.result()` for a cancelled job, by `nbfrost.progress()`
    inside a job once a cancel was requested, and asynchronously inside the
    worker thread by ``cancel(interrupt=True)``.  It subclasses
    `concurrent.futures.CancelledError`, so code written for futures catches
    it too.
    """


class JobTimeout(NbfrostError, TimeoutError):
    """The job ran longer than its ``timeout=`` and was failed.

    It is the recorded error of a timed-out job (so ``result()`` raises
    `JobFailed` chained from it), and it is raised asynchronously inside the
    job's thread to stop it.
    """


class QueueFull(NbfrostError):
    """``queue()`` could not add a job: ``max_queue`` jobs are already waiting.

    Raised with ``block=False``, or when ``queue_timeout`` runs out.
    """


class RemoteJobError(NbfrostError):
    """Stands in for a job's exception that could not be pickled back from a
    Dask worker; its message names the original type and repeats its text.
    """
