"""``%%frost`` bodies on the thread backend: compiled like a cell, run in the user namespace.

`compile_shell_cell` compiles the body the way the shell compiles a cell
(input transformers, AST transformers, top-level ``await``), so that
tracebacks read ``Cell In[N], line L``; `CellRunner` is the callable the job
runs.  The Dask backend ships the source instead (``backends/dask/cells.py``).
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import functools
import inspect
import sys
import threading
from typing import TYPE_CHECKING, Any

from .. import forward
from ..capture import CURRENT
from ..cells import compile_cell
from ..errors import JobCancelled
from ..states import RUNNING

if TYPE_CHECKING:
    from .badge import Badge

__all__ = ["ShellCell", "CellRunner", "cell_number", "colors_argument", "compile_shell_cell"]

_CO_COROUTINE = inspect.CO_COROUTINE


@functools.cache
def colors_argument() -> str:
    """The name under which IPython's traceback formatters take the colour
    scheme: ``theme_name`` from IPython 9 on, ``color_scheme`` in IPython 8
    (``shell.colors`` holds a valid value for either)."""
    from IPython.core import ultratb

    params = inspect.signature(ultratb.AutoFormattedTB.__init__).parameters
    return "theme_name" if "theme_name" in params else "color_scheme"


class ShellCell:
    """A ``%%frost`` body compiled like IPython compiles a cell."""

    __slots__ = ("filename", "source", "body", "last")

    def __init__(self, filename: str, source: str, body: Any, last: Any) -> None:
        self.filename = filename
        self.source = source   # transformed Python, line 1 blank (the %%frost line)
        self.body = body       # code object of everything but a trailing expression
        self.last = last       # code object of the trailing expression, or None


def cell_number(shell: Any) -> int:
    result = getattr(shell.displayhook, "exec_result", None)
    count = getattr(result, "execution_count", None)
    return count if isinstance(count, int) else shell.execution_count


def compile_shell_cell(shell: Any, line: str, cell: str) -> ShellCell:
    """Transform and compile *cell* as line 2 onwards of an ``In[N]`` cell.

    The source is cached in linecache under an ``<ipython-input-N-…>`` name,
    so tracebacks read ``Cell In[N], line L`` with the cell's own line
    numbers (line 1 is the ``%%frost`` line).  Top-level ``await`` is
    allowed, as in a normal cell.

    Raises:
        SyntaxError: with ``filename`` and ``lineno`` pointing into the cell.
    """
    number = cell_number(shell)
    try:
        transformed = shell.transform_cell(cell)
    except SyntaxError as exc:
        if exc.lineno:
            exc.lineno += 1
        raise
    source = "\n" + transformed
    filename = shell.compile.cache(f"%%frost {line}\n{transformed}", number,
                                   raw_code=f"%%frost {line}\n{cell}")
    tree = shell.compile.ast_parse(source, filename=filename)
    tree = shell.transform_ast(tree)
    flags = shell.compile.flags | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    body, tail = compile_cell(tree, filename, flags, dont_inherit=True)
    return ShellCell(filename, source, body, tail)


class CellRunner:
    """The callable a thread-backend ``%%frost`` job runs.

    It executes the compiled body in the shell's user namespace and
    returns the value of the trailing expression.  On success it binds
    ``-o VAR`` *before* the job is marked succeeded, so code that waited
    for the job sees the variable.  A failure is printed as an
    IPython-formatted traceback on stderr (captured with the job's output,
    and shown under the queuing cell unless the job is quiet).
    """

    __slots__ = ("shell", "code", "out_var", "route", "gate", "_badges", "_lock")

    #: The runner prints its own traceback; the dispatcher adds no failure notice.
    reports_failures = True

    def __init__(self, shell: Any, code: ShellCell, out_var: str | None, route: bool,
                 gate: forward.Gate | None = None) -> None:
        self.shell = shell
        self.code = code
        self.out_var = out_var
        self.route = route
        # Holds the job's output until the cell's badge is shown (see LiveTracker).
        self.gate = gate if gate is not None else forward.Gate()
        self._badges: dict[int, list[Badge]] = {}
        self._lock = threading.Lock()  # guards _badges

    def watch(self, job_id: int, badge: Badge) -> None:
        with self._lock:
            self._badges.setdefault(job_id, []).append(badge)

    def unwatch(self, job_id: int) -> None:
        with self._lock:
            self._badges.pop(job_id, None)

    def __call__(self) -> Any:
        ctx = getattr(CURRENT, "ctx", None)
        job = None if ctx is None else ctx.job
        if job is not None and self._badges:
            with self._lock:
                badges = list(self._badges.get(job.id, ()))
            for badge in badges:
                badge.update(job)
        if ctx is not None:
            ctx.gate = self.gate  # the job's output waits for the cell's badge
        if job is not None and self._is_async():
            # Top-level await: hand the worker a coroutine, which it runs
            # on its own event loop like any async def job, so a cancel or
            # timeout cancels the cell's task at its current await.
            coro = self._run_async(job) if self.route else \
                self._in_empty_context(self._run_async(job))
            return self._ungate_after(coro, ctx)
        try:
            if self.route:
                return self._run(job)
            # Routing off: an empty context has no parent header, so ipykernel
            # falls back to the most recent request, like any plain thread.
            return contextvars.Context().run(self._run, job)
        finally:
            if ctx is not None:
                ctx.gate = None

    @staticmethod
    async def _ungate_after(coro: Any, ctx: Any) -> Any:
        """Await *coro*, then drop the gate from the worker's job context."""
        try:
            return await coro
        finally:
            if ctx is not None:
                ctx.gate = None

    def _is_async(self) -> bool:
        body, last = self.code.body, self.code.last
        return bool(body.co_flags & _CO_COROUTINE
                    or (last is not None and last.co_flags & _CO_COROUTINE))

    @staticmethod
    async def _in_empty_context(coro: Any) -> Any:
        """Await *coro* as a task of its own in an empty context (routing
        off); cancelling this coroutine cancels that task too."""
        loop = asyncio.get_running_loop()
        # A task copies the context current when it is made: an empty one.
        return await contextvars.Context().run(loop.create_task, coro)

    async def _run_async(self, job: Any) -> Any:
        """`_run` for a body with top-level await."""
        shell = self.shell
        globals_, locals_ = shell.user_global_ns, shell.user_ns
        code = self.code
        try:
            ran = eval(code.body, globals_, locals_)
            if inspect.iscoroutine(ran):
                await ran
            value = None if code.last is None else eval(code.last, globals_, locals_)
            if inspect.iscoroutine(value) and code.last.co_flags & _CO_COROUTINE:
                value = await value
        except BaseException as exc:
            self._report(exc, job)
            raise
        if self.out_var is not None and job.state is RUNNING and not job._cancel_requested:
            shell.user_ns[self.out_var] = value
        return value

    def _run(self, job: Any) -> Any:
        shell = self.shell
        try:
            value = self._execute(shell.user_global_ns, shell.user_ns)
        except BaseException as exc:
            self._report(exc, job)
            raise
        if self.out_var is not None and (
                job is None or (job.state is RUNNING and not job._cancel_requested)):
            shell.user_ns[self.out_var] = value
        return value

    def _execute(self, globals_: dict, locals_: dict) -> Any:
        code = self.code
        body, last = code.body, code.last
        if not (body.co_flags & _CO_COROUTINE or (last is not None and last.co_flags & _CO_COROUTINE)):
            exec(body, globals_, locals_)
            return None if last is None else eval(last, globals_, locals_)
        # Top-level await: one event loop for the whole body, on this worker.
        loop = asyncio.new_event_loop()
        try:
            ran = eval(body, globals_, locals_)
            if inspect.iscoroutine(ran):
                loop.run_until_complete(ran)
            value = None if last is None else eval(last, globals_, locals_)
            if inspect.iscoroutine(value) and last is not None and last.co_flags & _CO_COROUTINE:
                value = loop.run_until_complete(value)
            loop.run_until_complete(loop.shutdown_asyncgens())
            return value
        finally:
            loop.close()

    def _report(self, exc: BaseException, job: Any) -> None:
        """Print the failure on stderr (so it is captured, and routed)."""
        if isinstance(exc, (JobCancelled, asyncio.CancelledError)):
            return  # the badge and the job's state say it; a traceback is noise
        err = sys.stderr
        if job is not None and job._attempts <= job.retries and job.state is RUNNING:
            err.write(f"nbfrost: job {job.id} attempt {job._attempts} failed "
                      f"({type(exc).__name__}: {exc}); retrying\n")
            return
        try:
            text = self._format(exc)
        except Exception as problem:  # formatting must never hide the real error
            import traceback
            text = (f"nbfrost: IPython could not format this traceback "
                    f"({type(problem).__name__}: {problem}); the plain one follows\n"
                    + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        err.write(text + "\n")

    def _format(self, exc: BaseException) -> str:
        from IPython.core import ultratb

        tb = exc.__traceback__
        first = tb
        while first is not None and first.tb_frame.f_code.co_filename != self.code.filename:
            first = first.tb_next
        shell = self.shell
        # A private formatter: the shell's InteractiveTB keeps the last
        # traceback for %debug and is not meant to be shared across threads.
        fmt = ultratb.AutoFormattedTB(mode=shell.xmode, tb_offset=0,
                                      **{colors_argument(): shell.colors})
        stb = fmt.structured_traceback(type(exc), exc, first if first is not None else tb)
        return fmt.stb2text(stb)
