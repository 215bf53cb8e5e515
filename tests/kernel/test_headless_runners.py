"""papermill and ``jupyter nbconvert --to notebook --execute`` save a notebook
that ends with ``%frost wait`` in its final state.

``test_headless.py`` runs nbclient itself; both tools run nbclient too, with
their own settings (papermill's engine, nbconvert's ExecutePreprocessor in a
subprocess), so each is run here and the saved JSON read back:

====  ===========================================================
cell  what it does
====  ===========================================================
0     ``%load_ext nbfrost``; an Event ``go`` the jobs wait for
1     ``%%frost -n printer``: waits for ``go``, 1.5 s later prints 3 lines
2     ``%%frost -n failing``: waits for ``go``, 1.5 s later raises ``ValueError``
3     ``%frost``: the dashboard (a widget)
4     ``go.set()``: from here on the jobs' output is late
5     ``%frost wait``
====  ===========================================================
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.timeout(180)]

CELLS = [
    "%load_ext nbfrost\nimport threading\nimport time\n\ngo = threading.Event()",
    "%%frost -n printer\ngo.wait(60)\ntime.sleep(1.5)\n"
    "for i in range(3):\n    print(f'late line {i}')\n'printed'",
    "%%frost -n failing\ngo.wait(60)\ntime.sleep(1.5)\nraise ValueError('boom from failing')",
    "%frost",
    "go.set()",
    "%frost wait",
]
PRINTER, FAILING, DASHBOARD, GO, WAIT = 1, 2, 3, 4, 5


@pytest.fixture(scope="module", params=["papermill", "nbconvert"])
def saved(request, tmp_path_factory):
    """The notebook executed by papermill or ``jupyter nbconvert --to notebook
    --execute``, read back from the saved JSON."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(source) for source in CELLS])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    folder = tmp_path_factory.mktemp(f"headless-{request.param}")
    source, path = folder / "input.ipynb", folder / "executed.ipynb"
    nbformat.write(nb, source)
    if request.param == "papermill":
        import papermill

        papermill.execute_notebook(str(source), str(path), kernel_name="python3",
                                   progress_bar=False, execution_timeout=120)
    else:
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
                        "--execute", "--ExecutePreprocessor.timeout=120", str(source),
                        "--output", str(path)], check=True, capture_output=True, timeout=150)
    return json.loads(path.read_text())


def outputs(saved: dict, i: int) -> list[dict]:
    return saved["cells"][i]["outputs"]


def text_of(output: dict) -> str:
    if output["output_type"] == "stream":
        return "".join(output["text"])
    if output["output_type"] == "error":
        return "\n".join(output["traceback"])
    return "".join(output.get("data", {}).get("text/plain", ""))


def badge(saved: dict, i: int) -> str:
    first = outputs(saved, i)[0]
    assert first["output_type"] == "display_data"
    assert "nbfrost-badge" in "".join(first["data"]["text/html"])
    return text_of(first)


def dashboard_counts(saved: dict) -> dict[str, int]:
    """The state counters of the dashboard, from the saved widget state."""
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    counts: dict[str, int] = {}
    for model in state.values():
        value = model["state"].get("value")
        if isinstance(value, str) and "nbf-count-" in value:
            for name, n in re.findall(r'nbf-count-(\w+)".*?<b>(\d+)</b>', value, re.S):
                counts[name] = int(n)
    assert counts, "no dashboard counters in the saved widget state"
    return counts


def test_the_wait_and_the_widget_state_are_saved(saved):
    # The wait lists the jobs that were still running when it started, all ended.
    waited = text_of(outputs(saved, WAIT)[-1])
    assert "JobStatus(" in waited
    assert not re.search(r"state=(queued|running)", waited), waited
    view = outputs(saved, DASHBOARD)[0]["data"]["application/vnd.jupyter.widget-view+json"]
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert view["model_id"] in state
    # Nothing the jobs printed landed under another cell.
    for i in (DASHBOARD, GO, WAIT):
        assert not any("late line" in text_of(o) or "boom" in text_of(o)
                       for o in outputs(saved, i) if o["output_type"] == "stream"), i


def test_badges_are_saved_in_their_final_state(saved):
    assert re.match(r"job 0 'printer' succeeded", badge(saved, PRINTER))
    assert re.match(r"job 1 'failing' failed", badge(saved, FAILING))


def test_late_output_is_saved_under_its_cell(saved):
    printed = "".join(text_of(o) for o in outputs(saved, PRINTER)[1:])
    assert "late line 0\nlate line 1\nlate line 2\n" in printed
    failed = "".join(text_of(o) for o in outputs(saved, FAILING)[1:])
    assert "ValueError: boom from failing" in re.sub(r"\x1b\[[0-9;]*m", "", failed)


def test_saved_widget_state_is_final(saved):
    counts = dashboard_counts(saved)
    assert counts.get("running") == 0 and counts.get("queued") == 0
    assert counts.get("succeeded") == 1 and counts.get("failed") == 1
