"""Compiling a notebook cell the way IPython runs it: a body, then the value
of a trailing expression.

Pure: source (or an already parsed tree) and a filename in, code objects
out.  The ``%%frost`` magic uses it for the shell's cells, and the Dask cell
job for the same body on a worker, so both split a cell alike.
"""

from __future__ import annotations

import ast
from types import CodeType
from typing import NamedTuple

__all__ = ["CompiledCell", "compile_cell"]


class CompiledCell(NamedTuple):
    """A cell split for running: ``exec(body, ns)``, then ``eval(last, ns)``."""

    #: Everything but a trailing expression statement.
    body: CodeType
    #: The trailing expression, whose value is the cell's result, or None.
    last: CodeType | None


def compile_cell(source: str | ast.Module, filename: str, flags: int = 0, *,
                 dont_inherit: bool = False) -> CompiledCell:
    """Compile *source* as a cell, splitting off a trailing expression.

    *source* is the cell's text, or a module tree parsed from it (the caller
    may have run AST transformers on it; the tree is changed in place).
    *flags* and *dont_inherit* are passed to `compile`.

    Raises:
        SyntaxError: the source does not compile (``filename`` and
            ``lineno`` point into it).
    """
    tree = ast.parse(source, filename, "exec") if isinstance(source, str) else source
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        expr = tree.body.pop()
        assert isinstance(expr, ast.Expr)
        last = ast.Expression(expr.value)
    body = compile(tree, filename, "exec", flags, dont_inherit=dont_inherit)
    tail = (compile(last, filename, "eval", flags, dont_inherit=dont_inherit)
            if last is not None else None)
    return CompiledCell(body, tail)
