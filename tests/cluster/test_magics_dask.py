"""`%%frost` cells on the Dask backend with pushed variables, on a real LocalCluster."""

from __future__ import annotations

import re
import threading

import pytest
from IPython.core.error import UsageError

from nbfrost.notebook.magics import FrostMagics

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def shell(ip, thread_baseline):
    """The shell with nbfrost loaded; unloaded again (threads checked) after."""
    run(ip, "%load_ext nbfrost")
    ip.user_ns["ev"] = threading.Event()
    yield ip
    ip.user_ns["ev"].set()
    run(ip, "%unload_ext nbfrost")
    assert "FrostMagics" not in ip.magics_manager.registry
    reset_config(ip)
    for key in [k for k in ip.user_ns if k.startswith("t_")]:
        del ip.user_ns[key]


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


@pytest.mark.timeout(120)
def test_dask_backend_runs_cells_with_pushed_variables(ip):
    from distributed import LocalCluster

    run(ip, "%load_ext nbfrost")
    try:
        with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0",
                          worker_dashboard_address="127.0.0.1:0") as cluster:
            ok(ip, "%config FrostMagics.backend = 'dask'")
            ok(ip, f"%config FrostMagics.dask_address = {cluster.scheduler_address!r}")
            d = disp(ip)
            assert d.backend.name == "dask"
            ip.user_ns["base"] = 20
            before = d.registry.version
            result = run(ip, "%%frost --push base,nope\nbase")
            assert isinstance(result.error_in_exec, UsageError)
            assert "'nope'" in str(result.error_in_exec)
            result = run(ip, "%%frost --push base\nbase = (\n")
            assert isinstance(result.error_in_exec, SyntaxError) and result.error_in_exec.lineno == 2
            assert d.registry.version == before

            t = ok(ip, "%%frost -n remote -o doubled --push base\ny = base * 2\ny + 2")
            ok(ip, f"%frost wait {t.id} --timeout 60")  # also waits for the -o binding
            assert ip.user_ns["doubled"] == 42
            assert t.result() == 42
            assert "y" not in ip.user_ns  # it ran in a fresh namespace on the worker
            run(ip, "%unload_ext nbfrost")
            assert d.closed
    finally:
        run(ip, "%unload_ext nbfrost")
        reset_config(ip)
        ip.user_ns.pop("doubled", None)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("nbfrost")]

