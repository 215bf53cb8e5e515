"""`%%frost` cells on the Dask backend with pushed variables, on a real LocalCluster."""

from __future__ import annotations

import threading

import pytest
from IPython.core.error import UsageError
from magics_helpers import disp, ok, reset_config, run


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

