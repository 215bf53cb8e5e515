"""pytest-jupyter's server fixtures (``jp_serverapp``, ``jp_fetch``, ...)
for the tests of this folder only: its autouse fixtures (an event loop per
test, a server cleanup) stay out of the rest of the suite."""

from __future__ import annotations

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403


@pytest.fixture  # type: ignore[no-redef]  # replaces pytest-jupyter's
def jp_server_config():
    # Until the package data enables the extension on install, the tests
    # enable it explicitly (the same setting as
    # jupyter-config/jupyter_server_config.d/nbfrost.json).
    return {"ServerApp": {"jpserver_extensions": {"nbfrost": True}}}
