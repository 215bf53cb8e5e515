"""The bulk path behind `Dispatcher.map`: many jobs queued a chunk at a time.

Every call is a job of its own (an id, a status, a place in the registry),
but the records are made by `bulk_jobs` and handed to the registry and the
backend *chunksize* at a time: one lock acquisition per chunk, and a worker
takes a whole chunk and runs its jobs one after another, so ``workers``
still bounds them.  The facade (`Dispatcher.map`) checks the arguments;
this module only queues.
"""

from __future__ import annotations

import contextvars
import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import capture
from .arguments import NO_KWARGS
from .checks import check_count
from .job import Job, bulk_jobs

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

__all__ = ["MAX_AUTO_CHUNK", "auto_chunksize", "queue_chunks"]

#: The largest chunk `auto_chunksize` picks: long enough to amortize the
#: hand-over, short enough that the first results come soon.
MAX_AUTO_CHUNK = 256


def auto_chunksize(n: int, workers: int) -> int:
    """The chunk size ``map()`` uses when none is given: every worker gets
    at least four chunks (so that uneven jobs still spread over all of
    them), and no chunk is longer than `MAX_AUTO_CHUNK`.  Few items give
    chunks of 1, exactly as ``queue()`` would."""
    return max(1, min(MAX_AUTO_CHUNK, n // (4 * max(1, workers))))


def queue_chunks(owner: Dispatcher, run: Callable[..., Any], items: list[tuple],
                 chunksize: int | None, label: str,
                 caller_context: Callable[[], contextvars.Context]) -> tuple[list[Job], int]:
    """Queue ``run(*args)`` for every tuple of *items* on *owner*'s registry
    and backend.  Returns the jobs (their own trackers), in order, and the
    chunk size used.

    The ids are consecutive, and the jobs start in order.  *chunksize* None
    means `auto_chunksize`; with ``max_queue`` a chunk is never longer than
    the queue.  *label* names the jobs, *caller_context* gives the context
    they run in (read once, when there is something to queue).

    Raises:
        TypeError, ValueError: a bad *chunksize*; nothing is queued.
        RuntimeError: the dispatcher got shut down meanwhile; the jobs
            queued so far are cancelled if they have not started.
    """
    n = len(items)
    backend = owner.backend
    max_queue = owner.max_queue
    if chunksize is None:
        chunksize = auto_chunksize(n, backend.workers)
    else:
        chunksize = check_count("chunksize", chunksize, minimum=1)
    if max_queue:  # a chunk may not need more slots than there are
        chunksize = min(chunksize, max_queue)
    if not n:
        return [], chunksize
    registry = owner.registry
    capture.ensure_installed()
    ctx = caller_context()
    first = registry.reserve_ids(n)
    make, clock = bulk_jobs, registry.clock
    out: list[Job] = []
    # The cyclic GC is paused while the records are made (it would scan
    # them again and again), but not with max_queue: reserve() may block
    # for as long as the workers take, and user code must not run that
    # long without the collector.
    paused = gc.isenabled() and not max_queue
    if paused:
        gc.disable()
    try:
        for lo in range(0, n, chunksize):
            if owner.closed:
                raise RuntimeError(
                    f"the dispatcher was shut down while map() queued its jobs "
                    f"({lo} of {n} were queued; those that had not started are cancelled)")
            chunk = make(run, items[lo:lo + chunksize], NO_KWARGS, label, first + lo,
                         clock(), ctx, owner)
            if max_queue:
                for _ in chunk:
                    registry.reserve(True, None)
            registry.add_many(chunk)
            out += chunk
            backend.submit_many(chunk)
    except BaseException:
        for job in out:
            registry.cancel(job, queued_only=True)
        raise
    finally:
        if paused:
            gc.enable()
    return out, chunksize
