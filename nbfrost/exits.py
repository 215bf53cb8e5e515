"""What happens to unfinished jobs when the interpreter exits.

A plain ``python script.py`` that queues jobs and reaches its end waits for
them, as `concurrent.futures.ThreadPoolExecutor` does: nbfrost's workers
are daemon threads (a kernel must never hang on them), so without this hook
the interpreter would drop every queued and running job silently.  The hook
runs where the standard executor's does, in ``threading._shutdown`` before
the ``atexit`` handlers, so a history file (closed by ``atexit``) records
the jobs as they finished.  If the wait lasts longer than
`defaults.EXIT_NOTICE_AFTER` seconds, one line on stderr says what it waits
for and how to skip it; Ctrl-C stops the wait.

It never waits inside a Jupyter kernel: a kernel restart or shutdown drops
its jobs at once, and a history file marks them ``lost``.
``Dispatcher(wait_at_exit=False)`` turns the wait off for one dispatcher.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from . import defaults

__all__ = ["register", "unregister", "forget_all"]

_lock = threading.Lock()        # guards _waiting and _hooked
_waiting: dict[int, Any] = {}   # id -> open dispatcher that waits at exit
_hooked = False


def _forget_in_child() -> None:
    # A forked child (multiprocessing's "fork", ProcessPoolExecutor's default
    # on Linux) inherits the registrations but none of the jobs' threads: it
    # must not wait for its parent's jobs when it exits.
    _waiting.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def register(dispatcher: Any) -> None:
    """Wait for *dispatcher*'s jobs at interpreter exit (until it shuts down)."""
    global _hooked
    with _lock:
        _waiting[id(dispatcher)] = dispatcher
        if _hooked:
            return
        _hooked = True
    hook = getattr(threading, "_register_atexit", None)
    try:
        if hook is None:
            raise RuntimeError
        hook(_wait_for_jobs)
    except RuntimeError:  # an older Python, or the interpreter is already exiting
        import atexit

        atexit.register(_wait_for_jobs)


def unregister(dispatcher: Any) -> None:
    """Forget *dispatcher* (it shut down)."""
    with _lock:
        _waiting.pop(id(dispatcher), None)


def forget_all() -> list[Any]:
    """Stop waiting for every dispatcher at exit; return those that still
    had unfinished jobs (a test runner reports them instead of hanging)."""
    with _lock:
        dispatchers = list(_waiting.values())
        _waiting.clear()
    return [d for d in dispatchers if d.registry.active]


def in_kernel() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a ``kernel``),
    read from ``sys.modules`` without importing IPython."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return getattr(shell, "kernel", None) is not None


def _wait_for_jobs() -> None:
    with _lock:
        dispatchers = list(_waiting.values())
        _waiting.clear()
    if not dispatchers or in_kernel():
        return
    busy = [d for d in dispatchers if d.registry.active]
    if not busy:
        return
    # A moment first, quietly: most scripts' last jobs end within it.
    if all(d.registry.wait_idle(defaults.EXIT_NOTICE_AFTER) for d in busy):
        _shut(busy)
        return
    n = sum(d.registry.active for d in busy)
    print(f"nbfrost: waiting for {n} unfinished job{'s' if n != 1 else ''} before exit "
          "(Ctrl-C stops waiting; Dispatcher(wait_at_exit=False) never waits)",
          file=sys.stderr, flush=True)
    try:
        for d in busy:
            d.registry.wait_idle(None)
    except KeyboardInterrupt:
        left = sum(d.registry.active for d in busy)
        print(f"nbfrost: stopped waiting; {left} unfinished job{'s' if left != 1 else ''} "
              "dropped", file=sys.stderr, flush=True)
        return
    _shut(busy)


def _shut(dispatchers: list[Any]) -> None:
    for d in dispatchers:
        try:
            d.shutdown(wait=True)
        except Exception as exc:  # exit goes on; say why this one did not close cleanly
            print(f"nbfrost: shutdown at exit failed: {exc!r}", file=sys.stderr)
