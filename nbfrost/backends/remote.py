"""What every backend that runs jobs outside this process shares.

The Dask backend and the process pool both run a job somewhere else and
bring back its outcome: the error must survive pickling, its traceback is
the worker's (shown as the error's cause), and the job's output is kept in
the same `OutputBuffer` as a thread job's.  Both import these helpers from
here instead of keeping copies.
"""

from __future__ import annotations

import asyncio
import linecache
import pickle
import traceback
from collections.abc import Callable
from types import CodeType
from typing import Any

from ..capture import OutputBuffer
from ..cells import CompiledCell, compile_cell
from ..coroutines import close_loop, run_coroutine_job
from ..errors import RemoteJobError

__all__ = ["CellJob", "RemoteTraceback", "WorkerJob", "format_remote_tb", "portable_error",
           "run_coroutine_watched"]


def portable_error(exc: BaseException) -> BaseException:
    """*exc*, or a `RemoteJobError` if it would not survive pickling."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RemoteJobError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")


def run_coroutine_watched(coro: Any, cancelled: Callable[[], bool], interval: float, *,
                          blocking: bool = False) -> Any:
    """Run an ``async def`` job's coroutine to completion on a loop of its
    own, in a worker; once *cancelled()* turns true (asked every *interval*
    seconds) its task is cancelled, so ``CancelledError`` is raised at the
    coroutine's current ``await``.  With *blocking*, *cancelled* is called in
    the loop's executor (a check that blocks, such as a call to a scheduler).
    """
    loop = asyncio.new_event_loop()

    async def watch(task: asyncio.Task) -> None:
        while not task.done():
            await asyncio.sleep(interval)
            if await loop.run_in_executor(None, cancelled) if blocking else cancelled():
                task.cancel()
                return

    watchers: list[asyncio.Task] = []  # the loop keeps only weak references to tasks

    def publish(task: asyncio.Task | None) -> None:
        if task is not None:
            watchers.append(loop.create_task(watch(task)))

    try:
        return run_coroutine_job(loop, coro, None, publish)
    finally:
        close_loop(loop)


def format_remote_tb(exc: BaseException, skip: CodeType | None = None) -> str:
    """*exc*'s formatted traceback; a first frame running *skip* (the
    worker's own wrapper) is left out, so it starts at the user's code."""
    tb = exc.__traceback__
    if skip is not None and tb is not None and tb.tb_frame.f_code is skip:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as the ``__cause__`` of a
    job's error, so ``JobStatus.traceback`` shows where on the worker it
    failed."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f"\n\"\"\"\n{self.tb}\"\"\""


class WorkerJob:
    """The worker-side stand-in for a job record: the fields that a
    `JobContext` and the output capture touch."""

    __slots__ = ("id", "out", "progress", "message", "_cancel_requested")

    def __init__(self, job_id: int) -> None:
        self.id = job_id
        self.out = OutputBuffer()
        self.progress: float | None = None
        self.message: str | None = None
        self._cancel_requested = False  # named as in the record (JobContext reads it)

    def set_progress(self, fraction: float | None, message: str | None) -> None:
        """Record a progress report, as `Job.set_progress` does."""
        if fraction is not None:
            self.progress = fraction
        if message is not None:
            self.message = message

    def write_output(self, text: str, cap: int) -> bool:
        """Keep up to *cap* characters; never echo on the worker (the
        client echoes the output in the queuing cell)."""
        self.out.write(text, cap)
        return False

    @property
    def output(self) -> str:
        return self.out.getvalue()



class CellJob:
    """A ``%%frost`` cell body to run out of process, in a fresh namespace.

    The namespace holds only the pushed variables (they travel with this
    object, pickled by cloudpickle; the class itself by reference, so this
    module is importable wherever it runs).  Calling it runs the body and
    returns the value of a trailing expression (``None`` if there is none).
    Each backend says what a `NameError` for a name that was not pushed
    means (`_hint`).

    Raises:
        SyntaxError: when built, if the source does not compile.
    """

    def __init__(self, source: str, filename: str, push: dict[str, Any]) -> None:
        if not isinstance(source, str):
            raise TypeError(f"source must be a str, got {type(source).__name__}")
        self.source = source
        self.filename = filename
        self.push = dict(push)
        self._compile()  # a syntax error shows now, before anything is queued

    def _compile(self) -> CompiledCell:
        # Compiled again where it runs: only the source travels with the job.
        return compile_cell(self.source, self.filename)

    def __call__(self) -> Any:
        # Tracebacks on the worker show the cell's lines, as in the notebook.
        linecache.cache[self.filename] = (len(self.source), None,
                                          self.source.splitlines(True), self.filename)
        body, tail = self._compile()
        ns: dict[str, Any] = {"__name__": "__nbfrost_cell__", "__builtins__": __builtins__}
        ns.update(self.push)
        try:
            exec(body, ns)
            return eval(tail, ns) if tail is not None else None
        except NameError as exc:
            name = getattr(exc, "name", None)
            hinted = None if name is None or name in self.push else self._hint(exc, name)
            if hinted is None:
                raise
            raise hinted from None

    def _hint(self, exc: NameError, name: str) -> NameError | None:
        """The error to raise instead of *exc* for a name that was not
        pushed (None: raise *exc* itself)."""
        return None

    def __repr__(self) -> str:
        first = self.source.strip().splitlines()[0] if self.source.strip() else ""
        return f"<nbfrost cell job {first[:40]!r} push={sorted(self.push)}>"
