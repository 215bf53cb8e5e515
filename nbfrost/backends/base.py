"""What a backend is: something that runs jobs and reports transitions.

A backend never changes a job's state itself; it calls the registry's
`start`, `finish` and `restart`, which own every rule.  That is why the
thread pool and Dask behave the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..job import Job
    from ..registry import Registry


class Backend(Protocol):
    #: Short name shown in config and the dashboard ("threads", "dask").
    name: str

    def start(self, registry: Registry) -> None:
        """Start the workers; from now on `submit` may be called."""

    @property
    def workers(self) -> int:
        """How many jobs may run at once."""

    def busy(self) -> int:
        """How many workers are running a job right now."""

    def submit(self, job: Job) -> None:
        """Run *job* when a worker is free (call ``registry.start`` first)."""

    def interrupt(self, job: Job, exc_type: type[BaseException]) -> None:
        """Stop a running job now.  Called under the registry lock: be quick."""

    def grace_expired(self, job: Job) -> None:
        """*job* was interrupted a while ago; if it still holds a worker, free one."""

    def resize(self, workers: int) -> None:
        """Change how many jobs may run at once."""

    def stop(self, wait: bool) -> None:
        """Stop the workers once the registry has no queued or running job."""
