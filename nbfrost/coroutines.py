"""Running a coroutine job to completion on an event loop nbfrost owns.

A job whose callable returns a coroutine (an ``async def`` function, a
partial of one, a lambda that calls one) is an async job: the backend runs
that coroutine as an asyncio task and the job's result is its return value.
The thread backend keeps one loop per worker thread, made on the worker's
first async job and closed when the worker exits; a Dask worker runs each
async job on a loop made for it.  Either way, cancelling the job cancels
the task, so ``CancelledError`` is raised at the coroutine's current
``await`` and its ``finally`` blocks run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["cancel_all_tasks", "close_loop", "run_coroutine_job"]

log = logging.getLogger("nbfrost")


def cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every task left on *loop* and run them until they end
    (what ``asyncio.run`` does before it closes its loop)."""
    pending = asyncio.all_tasks(loop)
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            log.warning("nbfrost: a task left behind by a coroutine job raised %r",
                        task.exception())


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close a worker's event loop as ``asyncio.run`` would: leftover tasks
    cancelled, async generators finalized, the default executor's threads
    joined."""
    try:
        cancel_all_tasks(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    except BaseException:
        log.warning("nbfrost: closing a worker's event loop failed", exc_info=True)
    finally:
        loop.close()


def run_coroutine_job(loop: asyncio.AbstractEventLoop, coro: Any, ctx: Any,
                      publish: Callable[[asyncio.Task | None], None]) -> Any:
    """Run *coro* to completion on *loop* (not running) and return its value.

    The task runs in a copy of the `contextvars.Context` *ctx* (or the
    current one).  ``publish(task)`` is called once the task exists, before
    the loop runs it, and ``publish(None)`` after the loop stopped for the
    last time, so that a canceller knows which task to cancel.  Tasks the
    coroutine left behind are cancelled and run out before this returns,
    so the next job finds the loop empty.
    """
    task = None
    try:
        task = loop.create_task(coro) if ctx is None else ctx.run(loop.create_task, coro)
        publish(task)
        return loop.run_until_complete(task)
    finally:
        try:
            if task is None:
                coro.close()  # never started: no "never awaited" warning
            cancel_all_tasks(loop)
        finally:
            publish(None)
