"""What a backend is: something that runs jobs and reports transitions.

A backend never changes a job's state itself; it calls the registry's
`start`, `finish` and `restart`, which own every rule.  That is why the
thread pool and Dask behave the same.

`Backend` lists everything the dispatcher and the magics ask of a backend,
so they never need to know which one they hold.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..job import Job
    from ..registry import Registry

__all__ = ["Backend"]


@runtime_checkable
class Backend(Protocol):
    """The interface between a `Dispatcher` and whatever runs its jobs."""

    #: Short name shown in config, stats and the dashboard ("threads", "dask").
    name: str

    #: True if jobs run in this process, so a ``%%frost`` cell can run in the
    #: notebook's own namespace.  False if a cell must travel as the
    #: self-contained job that `make_cell_job` builds.
    shares_namespace: bool

    def start(self, registry: Registry) -> None:
        """Start the workers; from now on `submit` may be called."""

    @property
    def workers(self) -> int:
        """How many jobs may run at once."""

    def busy(self) -> int:
        """How many workers are running a job right now."""

    def threads(self) -> list[threading.Thread]:
        """The live threads this backend started in this process (for tests
        and diagnostics)."""

    def submit(self, job: Job) -> None:
        """Run *job* when a worker is free (call ``registry.start`` first)."""

    def submit_many(self, jobs: list[Job]) -> None:
        """Run *jobs* in order, as one chunk of work where the backend can
        (the bulk path of ``map()``); each is still started and finished
        through the registry."""

    def request_cancel(self, job: Job) -> None:
        """A cooperative cancel of running *job* was recorded (its
        ``cancel_requested`` is set); make ``nbfrost.cancelled()`` see it
        where the job runs."""

    def interrupt(self, job: Job, exc_type: type[BaseException]) -> None:
        """Stop a running job now.  Called under the registry lock: be quick."""

    def grace_expired(self, job: Job) -> None:
        """*job* was interrupted a while ago; if it still holds a worker, free one."""

    def make_cell_job(self, source: str, filename: str,
                      push: dict[str, Any]) -> Callable[[], Any]:
        """A self-contained job that runs a ``%%frost`` cell body in a fresh
        namespace holding only *push*; for backends that do not share the
        notebook's namespace (see `shares_namespace`).

        Raises:
            SyntaxError: *source* does not compile.
            RuntimeError: the backend runs cells in the notebook's
                namespace instead.
        """

    def resize(self, workers: int) -> None:
        """Change how many jobs may run at once."""

    def stop(self, wait: bool) -> None:
        """Stop the workers once the registry has no queued or running job."""
