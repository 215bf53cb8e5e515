"""``%%frost --process`` cells: the cell body, and the notebook globals it reads.

A worker process has no notebook namespace.  Unlike Dask's ``--push``, the
magic finds by itself which notebook globals the body reads (`names_read`:
every name the source loads, in any scope of the cell) and sends those
that exist with the job; the worker compiles and runs the body in a fresh
namespace that holds only them.  Names the body assigns stay in the worker
(the namespace is dropped when the job ends); the value of its last
expression comes back as the job's result.
"""

from __future__ import annotations

import ast
import sys
import traceback
from typing import Any

from ... import forward
from ...errors import JobCancelled
from ..remote import CellJob

__all__ = ["ProcessCellJob", "names_read"]


def names_read(source: str) -> list[str]:
    """The names *source* reads (loads, deletes, or declares ``global``), in
    the order they first appear.  Attribute names are not names.

    Raises:
        SyntaxError: *source* does not parse.
    """
    seen: dict[str, None] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
            seen.setdefault(node.id, None)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                seen.setdefault(name, None)
    return list(seen)


class ProcessCellJob(CellJob):
    """A ``%%frost --process`` cell body to run in a worker process.

    Like any `CellJob` it runs the body in a fresh namespace holding the
    pushed variables and returns the last expression's value.  A failure
    is printed on the job's stderr (a traceback with the cell's lines),
    which reaches the notebook under the cell, as for a thread cell.

    *gate* (not sent to the worker) holds the job's output back until the
    cell's badge is shown.

    Raises:
        SyntaxError: when built, if the source does not compile.
    """

    #: It prints its own traceback; the dispatcher adds no failure notice.
    reports_failures = True

    def __init__(self, source: str, filename: str, push: dict[str, Any],
                 gate: forward.Gate | None = None) -> None:
        super().__init__(source, filename, push)
        self.gate = gate

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("gate", None)  # stays in the notebook's process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.gate = None

    def __call__(self) -> Any:
        try:
            return super().__call__()
        except BaseException as exc:
            if not isinstance(exc, (JobCancelled, KeyboardInterrupt)):
                tb = exc.__traceback__
                # Start at the cell's own frames, not this wrapper's.
                while tb is not None and tb.tb_frame.f_code.co_filename != self.filename:
                    tb = tb.tb_next
                sys.stderr.write("".join(traceback.format_exception(
                    type(exc), exc, tb if tb is not None else exc.__traceback__)))
            raise
