"""Every notebook in notebooks/ runs top to bottom on a fresh kernel, with no
error, within its time budget.  (``distributed.ipynb`` is run by the Dask
tests, against a real LocalCluster.)

The kernel runs this interpreter (``sys.executable``), through a kernelspec
written for the test, and its working directory is a fresh tmp dir, so a
notebook cannot lean on files left in the repository.  The notebooks' own
cells assert what they show.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SKIP = {"distributed.ipynb"}  # tests/test_dask.py runs it on a real cluster
BUDGET_S = 45.0               # "well under a minute", on a loaded 2-core machine
EXPECTED = {"quickstart.ipynb", "bulk_insert.ipynb"}

PATHS = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if p.name not in SKIP)


def test_the_notebooks_are_there():
    assert EXPECTED <= {p.name for p in PATHS}


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernelspec that runs this very interpreter."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / "nbfrost-test"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "nbfrost test", "language": "python"}))
    return root


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_top_to_bottom(path, kernel_dir, tmp_path):
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    assert any(c.cell_type == "code" for c in nb.cells)
    # First, prove which interpreter runs the notebook.
    probe = nbformat.v4.new_code_cell("import sys; print(sys.executable)")
    nb.cells.insert(0, probe)
    km = KernelManager(kernel_name="nbfrost-test",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = NotebookClient(nb, km=km, timeout=120, allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.monotonic()
    client.execute()  # raises CellExecutionError, with the cell, on any error
    took = time.monotonic() - t0
    assert probe.outputs[0]["text"].strip() == sys.executable
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert took < BUDGET_S, f"{path.name} took {took:.1f} s (budget {BUDGET_S:.0f} s)"
    assert list(tmp_path.iterdir()) == [], "a notebook left files in its working directory"
