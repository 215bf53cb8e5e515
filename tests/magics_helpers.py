"""Helpers for tests that drive the magics in a real IPython
``InteractiveShell`` (the ``ip`` fixture of conftest.py): run a cell, insist
it succeeded, reach the shell's FrostMagics and dispatcher, strip colours."""

from __future__ import annotations

import re

from nbfrost.notebook.magics import FrostMagics

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def reset_config(ip) -> None:
    """%config also writes into the shell's config, which a new FrostMagics
    inherits (so settings survive %reload_ext); tests start from defaults."""
    ip.config.pop("FrostMagics", None)


def run(ip, source: str):
    return ip.run_cell(source, store_history=True)


def ok(ip, source: str):
    result = run(ip, source)
    assert result.success, (result.error_before_exec, result.error_in_exec)
    return result.result


def magics(ip) -> FrostMagics:
    return ip.magics_manager.registry["FrostMagics"]


def disp(ip):
    return magics(ip).get_dispatcher()


def plain(text: str) -> str:
    return ANSI.sub("", text)

