"""The quickstart after Run ▸ Run All Cells in a real JupyterLab (Debian's
Chromium): both dashboards are there, one finished (its pool shut down) and
one live, and no failure notice of a job that fails on purpose shows.

The screenshot of the two dashboards goes to the artifacts folder
(``quickstart.png``); ``make screenshots`` copies it into ``docs/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import frontends
import pytest

pytestmark = [pytest.mark.timeout(300)]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


@pytest.fixture
def lab(tmp_path):
    frontends.require_chromium()
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    with frontends.lab(root, tmp_path / "home", log=tmp_path / "jupyter-lab.log") as server:
        yield server


def test_run_all_leaves_a_finished_and_a_live_dashboard(lab, tmp_path):
    from playwright.sync_api import expect

    with frontends.chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(lab.url(f"lab/tree/{NOTEBOOK.name}"))
        frontends.dismiss_news_toast(page)
        frontends.wait_for_kernel_idle(page, lab)
        # More room for the notebook: collapse the file browser.
        current = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if current.count():
            current.first.click()
        page.locator(".jp-Notebook .jp-Cell").first.click()
        frontends.run_all_cells(page)
        outputs = page.locator(".jp-OutputArea-output")
        expect(outputs.filter(has_text="pool is shut down")).to_have_count(1, timeout=120_000)
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
               ).to_be_visible(timeout=60_000)

        dashboards = page.locator(".jp-OutputArea-output .nbf-dashboard")
        expect(dashboards).to_have_count(2, timeout=30_000)
        finished, live = dashboards.nth(0), dashboards.nth(1)
        expect(finished.locator(".nbf-live")).to_have_text("dispatcher shut down", timeout=30_000)
        expect(finished.locator(".nbf-table td", has_text="nap-7").first).to_be_attached()
        expect(live.locator(".nbf-live")).to_contain_text("live ·")
        expect(live.locator(".nbf-table td", has_text="slow-sum").first).to_be_attached()
        # The jobs that fail on purpose are quiet: no red notice anywhere.
        expect(outputs.filter(has_text="✘ job")).to_have_count(0)
        expect(outputs.filter(has_text="failed as expected")).to_have_count(1)

        # Both dashboards in one picture.
        finished.scroll_into_view_if_needed()
        page.evaluate("el => el.scrollIntoView({block: 'start'})", finished.element_handle())
        expect(finished).to_be_in_viewport()
        expect(live).to_be_in_viewport()
        top = finished.bounding_box()
        bottom = live.bounding_box()
        assert top is not None and bottom is not None
        x = min(top["x"], bottom["x"]) - 8
        y = top["y"] - 8
        width = max(top["x"] + top["width"], bottom["x"] + bottom["width"]) - x + 8
        height = bottom["y"] + bottom["height"] - y + 8
        shot = tmp_path / "quickstart.png"
        page.screenshot(path=str(shot), clip={"x": x, "y": y, "width": width, "height": height})
        page.screenshot(path=str(tmp_path / "quickstart-page.png"))
        out = frontends.artifacts_dir()
        shutil.copy(shot, out / "quickstart.png")
        shutil.copy(tmp_path / "quickstart-page.png", out / "quickstart-page.png")
        assert shot.stat().st_size > 20_000
