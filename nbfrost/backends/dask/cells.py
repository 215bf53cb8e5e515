"""``%%frost`` cells on Dask: the cell body as a self-contained, picklable job.

A worker has no notebook namespace, so the magic ships the cell's source
with the variables named by ``--push``; the worker compiles and runs it in a
fresh namespace.  Cloudpickle ships a `CellJob` by reference to this class,
so this module is importable on the workers (it needs nothing but nbfrost).
"""

from __future__ import annotations

import linecache
from typing import Any

from ...cells import CompiledCell, compile_cell

__all__ = ["CellJob"]


class CellJob:
    """A ``%%frost`` cell body to run on a Dask worker, in a fresh namespace.

    The namespace holds only the pushed variables (they travel with this
    object, pickled by cloudpickle).  Calling it runs the body and returns
    the value of a trailing expression (``None`` if there is none).  A
    `NameError` for a name that was not pushed is raised again with a hint
    to add ``--push name``.

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
            if name is None or name in self.push:
                raise
            raise NameError(
                f"{exc}: the cell runs on a Dask worker in a fresh namespace; add "
                f"--push {name} to ship it from the notebook", name=name) from None

    def __repr__(self) -> str:
        first = self.source.strip().splitlines()[0] if self.source.strip() else ""
        return f"<nbfrost cell job {first[:40]!r} push={sorted(self.push)}>"
