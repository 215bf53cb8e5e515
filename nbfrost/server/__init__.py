"""nbfrost's Jupyter server extension: every publishing process's jobs, over REST.

Enabled by the data file ``jupyter-config/jupyter_server_config.d/nbfrost.json``
(installed to ``etc/jupyter/jupyter_server_config.d/``), found through
``nbfrost._jupyter_server_extension_points``.  It reads the files that
processes publish (`nbfrost.published`) and writes commands into their
inboxes; it never imports the engine (dispatcher, registry), and opens no
port of its own: its handlers live in the server under ``/nbfrost/api/``.

REST API (JSON; every handler needs Jupyter's authentication and the
``nbfrost`` authorization resource; POSTs from browsers carry the XSRF
token), described in docs/panel.md:

* ``GET  /nbfrost/api/processes``
* ``GET  /nbfrost/api/jobs?state=&process=&name=&tag=&newest=&offset=``
* ``POST /nbfrost/api/processes/{process}/jobs/{job}/cancel`` ``{"interrupt": bool}``
* ``POST /nbfrost/api/processes/{process}/jobs/{job}/retry``
* ``POST /nbfrost/api/processes/{process}/cancel`` ``{"interrupt": bool}``: all its jobs
* ``POST /nbfrost/api/processes/{process}/schedules/{schedule}/pause`` (``resume``, ``unschedule``)
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbfrost.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the handlers on *serverapp* (a ``jupyter_server`` ``ServerApp``)."""
    from .handlers import setup_handlers

    setup_handlers(serverapp)
