"""Headless runs (nbclient: papermill, ``jupyter nbconvert --execute``) are saved final.

nbclient keeps only the messages of the cell it executes; nbfrost sends the
badges, the output written after a ``%%frost`` cell ended and the
dashboard's widget state again from the cell that runs (see
``nbfrost/frontends.py``).  A notebook ending with ``%frost wait`` is
executed with nbclient and its saved JSON is read.
"""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.timeout(180)]

CELLS = [
    "%load_ext nbfrost\nimport nbfrost, time",
    "%%frost -n alpha\nprint('early alpha', flush=True)\ntime.sleep(1.0)\n"
    "nbfrost.report(0.5, 'half')\nprint('late alpha', flush=True)\ntime.sleep(0.3)",
    "%%frost -n beta\ntime.sleep(1.2)\nprint('late beta')\nraise ValueError('boom <b>')",
    "%frost",
    "%frost wait",
]


def _join(text: str | list[str]) -> str:
    return text if isinstance(text, str) else "".join(text)  # saved files split lines


def _text(output: dict) -> str:
    if output["output_type"] == "stream":
        return _join(output["text"])
    return _join(output.get("data", {}).get("text/plain", ""))


def test_nbclient_saves_final_badges_late_output_and_widget_state(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    NotebookClient(nb, timeout=60, kernel_name="python3", store_widget_state=True).execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    saved = json.loads(path.read_text())
    cells = saved["cells"]

    def texts(i: int) -> str:
        return "".join(_text(o) for o in cells[i]["outputs"])

    alpha, beta = texts(1), texts(2)
    assert "job 0 'alpha' succeeded in " in alpha and "running" not in alpha
    assert "early alpha" in alpha and alpha.count("late alpha") == 1
    assert "job 1 'beta' failed in " in beta and "ValueError: boom <b>" in beta
    assert "late beta" in beta and "Traceback" in beta
    html = "".join(_join(o.get("data", {}).get("text/html", "")) for o in cells[2]["outputs"])
    assert "boom &lt;b&gt;" in html and "boom <b>" not in html
    for i in (0, 3, 4):
        assert "late" not in texts(i), "late output stays under its own cell"
    # The dashboard's saved widget state is the final one, not "running".
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    headers = [_join(m["state"]["value"]) for m in state.values()
               if "nbf-count-succeeded" in str(m["state"].get("value", ""))]
    assert headers, "no dashboard header in the saved widget state"
    assert all("succeeded <b>1</b>" in h and "failed <b>1</b>" in h and "workers <b>0/" in h
               for h in headers), headers
