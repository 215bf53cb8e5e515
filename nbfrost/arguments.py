"""Checks of what `Dispatcher.queue`, `submit` and `map` are given.

They run before a job exists, so bad input raises `TypeError` or
`ValueError` and nothing is queued.  Numbers are checked in `checks`
(shared with the dashboard); what is checked here is particular to a job:
the thing to run and its tags.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["NO_KWARGS", "runner_of", "check_tags"]

#: Stands for an empty ``**kwargs``: one shared dict, never mutated, so kept
#: records hold one object less for the GC to scan.
NO_KWARGS: dict[str, Any] = {}


def runner_of(fn: Any) -> Callable[..., Any]:
    """A callable for *fn*: itself, or its ``run`` method (a JobRunner)."""
    if callable(fn):
        return fn
    if inspect.iscoroutine(fn):
        name = getattr(fn, "__qualname__", "fn")
        fn.close()  # it will never run: no "never awaited" warning later
        raise TypeError(
            f"queue() got a coroutine object ({name}(...) was already called); pass the "
            f"function and its arguments instead, e.g. d.queue({name}, *args), so that "
            "nbfrost runs it on a worker's event loop (and can run it again on retry)")
    run = getattr(fn, "run", None)
    if callable(run):
        return run
    raise TypeError(
        f"queue() takes a callable or an object with a run() method, got "
        f"{type(fn).__name__} {fn!r:.60}")


def check_tags(tags: Any) -> tuple[str, ...]:
    """*tags* (a string or strings) as a tuple of non-empty strings."""
    if isinstance(tags, str):
        tags = (tags,)
    try:
        out = tuple(tags)
    except TypeError:
        raise TypeError(f"tags must be a string or an iterable of strings, got {tags!r}") from None
    for t in out:
        if not isinstance(t, str):
            raise TypeError(f"every tag must be a str, got {type(t).__name__} {t!r}")
        if not t:
            raise ValueError("tags must be non-empty strings, got ''")
    return out
