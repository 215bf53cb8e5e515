"""``%%frost`` cells and the dashboard in real front ends: Notebook 7 and
JupyterLab in headless Chromium, and tab completion in Notebook 7.

All of them open ``tests/notebooks/frontends_frost.ipynb``:

====  ===========================================================
cell  what it does
====  ===========================================================
0     ``%load_ext nbfrost``, three workers
1     ``%%frost -n printer``: prints ``printer line 0..3``, 0.5 s apart
2     ``%%frost -n failing``: raises ``ValueError`` after 1 s
3     ``%%frost -n train-model``: runs until cancelled
4     ``print('the last cell ran')``
5     ``%frost``: the live dashboard
====  ===========================================================

In Notebook 7 and JupyterLab every promise holds today: badges reach their
final state, each job's output (and traceback) is under its own cell, the
dashboard is live and its Cancel button works.  Voila opens the same
notebook in ``test_voila.py``.

Screenshots go to the artifacts folder (``$ARTIFACTS`` or ``test-artifacts/``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import frontends
import pytest

pytestmark = [pytest.mark.timeout(300)]

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "frontends_frost.ipynb"
PRINTER, FAILING, TRAIN, LAST, DASHBOARD = 1, 2, 3, 4, 5
VIEWPORT = {"width": 1400, "height": 1600}


def _copy_notebook(tmp: Path) -> Path:
    root = tmp / "root"
    root.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(NOTEBOOK, root / NOTEBOOK.name))


# ------------------------------------------------------- Notebook 7, JupyterLab
@pytest.mark.parametrize("app", ["notebook", "lab"])
def test_frost_cells_and_dashboard(app, tmp_path):
    from playwright.sync_api import expect

    nb = _copy_notebook(tmp_path)
    start = frontends.notebook if app == "notebook" else frontends.lab
    path = f"notebooks/{nb.name}" if app == "notebook" else f"lab/tree/{nb.name}"
    with start(nb.parent, tmp_path / "home") as server, frontends.chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        dialogs = frontends.DialogRecorder(page)
        page.goto(server.url(path))
        if app == "lab":
            frontends.dismiss_news_toast(page)
        frontends.wait_for_kernel_idle(page, server)
        frontends.run_all_cells(page)

        cells = page.locator(".jp-Notebook .jp-CodeCell")
        expect(cells).to_have_count(6, timeout=30_000)

        def output(i: int):
            return cells.nth(i).locator(".jp-Cell-outputArea").first

        # Badges reach their final state; output and traceback under their own cell.
        expect(output(PRINTER)).to_contain_text("printer line 3", timeout=60_000)
        expect(output(PRINTER)).to_contain_text(re.compile(r"job \d+ printer succeeded"),
                                                timeout=15_000)
        expect(output(FAILING)).to_contain_text(re.compile(r"job \d+ failing failed"),
                                                timeout=15_000)
        expect(output(FAILING)).to_contain_text("ValueError: boom from failing")
        expect(output(FAILING)).to_contain_text("Cell In[3], line 3")
        expect(output(TRAIN)).to_contain_text(re.compile(r"job \d+ train-model running"))
        expect(output(LAST)).to_have_text("the last cell ran")
        # Late output is shown once: live frontends get the stream, never also
        # the headless late-output area.
        printed = output(PRINTER).inner_text()
        assert [printed.count(f"printer line {i}") for i in range(4)] == [1, 1, 1, 1], printed
        for i in (LAST, DASHBOARD):
            assert "printer line" not in output(i).inner_text()

        # The live dashboard.
        dash = output(DASHBOARD).locator(".nbf-dashboard")
        expect(dash).to_be_visible(timeout=60_000)

        frontends.expect_counts(dash, succeeded=1, failed=1, running=1)
        page.screenshot(path=str(frontends.artifacts_dir() / f"frontends-{app}.png"))

        # Cancel from the dashboard: the row, the counter and the cell's badge follow.
        frontends.cancel_from_dashboard(page, dash, "train-model")
        expect(output(TRAIN)).to_contain_text(re.compile(r"job \d+ train-model cancelled"),
                                              timeout=10_000)
        page.screenshot(path=str(frontends.artifacts_dir() / f"frontends-{app}-cancelled.png"))
    assert dialogs.seen == []


# ----------------------------------------------------------- tab completion
def test_tab_completion_in_notebook7_shows_each_jobs_state(tmp_path):
    """In a real front end: Tab after ``%frost status `` lists the job ids with
    their state beside them (the completion's type, short enough for the
    type column; names are read with ``%frost jobs``)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    from playwright.sync_api import expect

    root = tmp_path / "root"
    root.mkdir()
    nb = new_notebook(cells=[
        new_code_cell("%load_ext nbfrost\nimport threading\n\nimport nbfrost\n\n"
                      "gate = threading.Event()\nd = nbfrost.get_dispatcher()\n"
                      "d.queue(lambda: 1, name='quick').wait(10)\n"
                      "d.queue(gate.wait, 120, name='train model');"),
        new_code_cell("")])
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nbformat.write(nb, root / "complete.ipynb")
    with frontends.notebook(root, tmp_path / "home") as server, frontends.chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url("notebooks/complete.ipynb"))
        frontends.wait_for_kernel_idle(page, server)
        frontends.run_all_cells(page)
        cells = page.locator(".jp-Notebook .jp-CodeCell")
        expect(cells.first.locator(".jp-InputArea-prompt")).to_contain_text("[1]", timeout=30_000)
        cells.nth(1).locator(".cm-content").click()
        page.keyboard.type("%frost status ")
        page.keyboard.press("Tab")
        items = page.locator(".jp-Completer .jp-Completer-item")
        expect(items.first).to_be_visible(timeout=20_000)
        running = page.locator(".jp-Completer-item[data-value='1'] .jp-Completer-typeExtended")
        expect(running).to_have_text("running")
        done = page.locator(".jp-Completer-item[data-value='0'] .jp-Completer-typeExtended")
        expect(done).to_have_text("succeeded")
        # newest first
        assert items.nth(0).get_attribute("data-value") == "1"
        page.screenshot(path=str(frontends.artifacts_dir() / "frontends-completion.png"))
