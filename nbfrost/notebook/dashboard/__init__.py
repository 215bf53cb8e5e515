"""The live dashboard: ``nbfrost.Dashboard(d)``, an ipywidgets view of a dispatcher.

- `render`: the HTML (table, timeline, header, banner, details) as pure
  functions, testable without widgets;
- `hub`: the refresh thread shared by the dashboards of one dispatcher;
- `widget`: the `Dashboard` widget itself.

``Dashboard`` is imported lazily, so that importing `render` does not need
ipywidgets.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Dashboard"]


def __getattr__(name: str) -> Any:
    if name == "Dashboard":
        from .widget import Dashboard

        globals()[name] = Dashboard
        return Dashboard
    raise AttributeError(f"module 'nbfrost.dashboard' has no attribute {name!r}")
