"""Plain-text tracebacks whose notebook frames read ``Cell In[N], line L``.

IPython compiles every cell under a file name such as
``/tmp/ipykernel_14317/504821352.py`` and keeps which cell that was in
``shell.compile``; its own tracebacks print ``Cell In[3], line 4``.  A
job's stored traceback (``JobStatus.traceback``, ``to_json()``,
``%frost status --json``, the dashboard) is formatted here the same way.

A leaf module: IPython is never imported here.  The shell is looked up only
if IPython is already loaded, so plain Python keeps plain file names.
"""

from __future__ import annotations

import re
import sys
import traceback as _tb
from typing import Any

__all__ = ["cell_label", "format_traceback", "name_cells"]

# A frame line of a Python traceback, also inside an exception group's
# ``  | `` margin: ``  File "/tmp/ipykernel_1/2.py", line 4, in f``.
_FRAME = re.compile(r'^(?P<margin>[ |+\-]*)File "(?P<file>[^"\n]+)", line (?P<line>\d+)',
                    re.MULTILINE)


def _shell() -> Any:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    get = getattr(ipython, "get_ipython", None)
    return get() if get is not None else None


def cell_label(filename: str) -> str | None:
    """``"Cell In[3]"`` if *filename* is a cell the running IPython shell
    compiled, else None (no shell, or a real file)."""
    shell = _shell()
    compiler = getattr(shell, "compile", None)
    if compiler is None:
        return None
    try:
        fmt = getattr(compiler, "format_code_name", None)
        if fmt is not None:
            named = fmt(filename)
            return None if named is None else f"{named[0]} {named[1]}"
        number = compiler._filename_map.get(filename)  # IPython before 8.1
    except Exception:  # a traceback must never fail because of a label
        return None
    return None if number is None else f"Cell In[{number}]"


def name_cells(text: str) -> str:
    """*text* (a formatted traceback) with each cell's ``File "…"`` replaced
    by ``Cell In[N]``; other frames are left as they are."""
    if 'File "' not in text or _shell() is None:
        return text
    labels: dict[str, str | None] = {}

    def replace(match: re.Match[str]) -> str:
        name = match["file"]
        if name not in labels:
            labels[name] = cell_label(name)
        label = labels[name]
        if label is None:
            return match[0]
        return f"{match['margin']}{label}, line {match['line']}"

    return _FRAME.sub(replace, text)


def format_traceback(error: BaseException, tb: Any = None) -> str:
    """*error* formatted like Python does (no colours), from *tb* on
    (default: its whole traceback), with cell frames named by their cell."""
    if tb is None:
        tb = error.__traceback__
    return name_cells("".join(_tb.format_exception(type(error), error, tb)))
