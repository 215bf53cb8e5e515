"""Schedules in a real JupyterLab, through Debian's Chromium: a ``%%frost --every``
cell shows one badge whose buttons work, and the dashboard's Schedules tab
shows the schedule running and pauses it.

The notebook is written by the test (nbformat) into the server's tmp root.
A screenshot of the tab goes to the artifacts folder.
"""

from __future__ import annotations

import re
import shutil

import frontends
import nbformat
import pytest

pytestmark = [pytest.mark.timeout(240)]

XSS = "<img src=x onerror=alert(1)>"
CELLS = [
    "%load_ext nbfrost\nimport time, nbfrost\nd = nbfrost.get_dispatcher()",
    "%%frost --every 1s -n poll\nprint('tick', time.strftime('%H:%M:%S'))",
    f"d.every(3600, print, name={XSS!r})",
    "nbfrost.Dashboard(d)",
]


@pytest.fixture
def lab(tmp_path):
    frontends.require_chromium()
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nbformat.write(nb, root / "schedules.ipynb")
    with frontends.lab(root, tmp_path / "home", log=tmp_path / "jupyter-lab.log") as server:
        yield server


def test_schedule_badge_and_schedules_tab_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import expect

    with frontends.chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        dialogs = frontends.DialogRecorder(page)
        page.goto(lab.url("lab/tree/schedules.ipynb"))
        frontends.dismiss_news_toast(page)
        frontends.wait_for_kernel_idle(page, lab)
        frontends.run_all_cells(page)

        # The scheduled cell: one badge, runs coming, the latest run's output only.
        cell = page.locator(".jp-Notebook .jp-CodeCell").nth(1)
        badge = cell.locator(".nbfrost-schedule-badge")
        expect(badge).to_have_count(1, timeout=60_000)
        expect(badge).to_contain_text("every 1 s", timeout=30_000)
        expect(badge).to_contain_text(re.compile(r"runs [3-9]"), timeout=60_000)
        expect(cell.locator(".jp-OutputArea-output", has_text="tick")).to_have_count(1)

        # The dashboard's Schedules tab shows it running.
        dash = page.locator(".nbf-dashboard").first
        expect(dash).to_be_visible(timeout=60_000)
        dash.locator(".lm-TabBar-tab", has_text="Schedules").click()
        table = dash.locator(".nbf-schedules")
        expect(table).to_contain_text("every 1 s", timeout=30_000)
        row = table.locator("tr.nbf-schedule-row[data-schedule='0']")
        expect(row).to_contain_text("active")
        expect(row).to_contain_text("succeeded", timeout=30_000)
        expect(table).to_contain_text(XSS)  # a name with markup stays text

        # Pause from the dashboard: the row and the cell's badge say so.
        select = dash.locator(".nbf-schedule-select select")
        select.select_option(value=None, index=1)
        pause = dash.locator("button.nbf-schedule-pause")
        expect(pause).to_be_enabled(timeout=10_000)
        pause.click()
        expect(row).to_contain_text("paused", timeout=20_000)
        expect(badge.locator("button.nbfrost-schedule-pause")).to_contain_text("Resume", timeout=20_000)
        runs = int(re.search(r"runs (\d+)", badge.inner_text()).group(1))
        dash.screenshot(path=str(tmp_path / "schedules-tab.png"))
        shutil.copy(tmp_path / "schedules-tab.png", frontends.artifacts_dir() / "dashboard-schedules.png")

        # Resume from the badge: the row turns active and runs come again.
        badge.locator("button.nbfrost-schedule-pause").click()
        expect(row).to_contain_text("active", timeout=20_000)
        expect(badge).to_contain_text(re.compile(rf"runs ({runs + 1}|{runs + 2}|{runs + 3})"),
                                      timeout=30_000)
        # Unschedule from the badge ends it.
        badge.locator("button.nbfrost-schedule-cancel").click()
        expect(row).to_contain_text("ended", timeout=20_000)
        assert dialogs.seen == []
