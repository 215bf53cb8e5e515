"""The dashboard's layout in a real JupyterLab at 1400 px.

``tests/notebooks/dashboard_layout.ipynb`` holds 111 ``load-*`` jobs among
121, and one failed job whose name, tags and error are long.  In Chromium
at 1400 × 1000: typing ``load`` in the filter shows ``1–50 of 111``; the
``live · HH:MM:SS`` clock and the error column sit inside the output area
(bounding boxes, not clipped by a scroller); the long error is cut with an
ellipsis and its full text is the cell's ``title`` tooltip.  A screenshot
goes to the artifacts folder only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import frontends
import pytest

pytestmark = [pytest.mark.timeout(240)]

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "dashboard_layout.ipynb"
LONG_ERROR = ("ValueError: could not parse data/2026-11-a-rather-long-file-name.csv: "
              + "row 12 has 11 columns, expected 12; " * 8 + "<end>")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab (tests/frontends.py) serving a copy of the layout notebook."""
    frontends.require_chromium()
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    with frontends.lab(root, tmp_path / "home", log=tmp_path / "jupyter-lab.log") as server:
        yield server


def inside(inner: dict, outer: dict, slack: float = 0.5) -> bool:
    return (inner["x"] >= outer["x"] - slack and inner["y"] >= outer["y"] - slack
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack)


def test_dashboard_fits_1400px_with_totals_and_tooltips(lab, tmp_path):
    from playwright.sync_api import expect

    with frontends.chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(lab.url(f"lab/tree/{NOTEBOOK.name}"))
        frontends.dismiss_news_toast(page)
        frontends.wait_for_kernel_idle(page, lab)
        # The file browser stays open, as a new user has it; the notebook
        # must have the focus for "Run All Cells" to apply to it.
        page.locator(".jp-Notebook .jp-MarkdownCell").first.click()
        frontends.run_all_cells(page)

        dash = page.locator(".jp-OutputArea-output .nbf-dashboard")
        try:
            expect(dash).to_be_visible(timeout=90_000)
        except AssertionError:
            page.screenshot(path=str(frontends.artifacts_dir() / "dashboard-1400-failed.png"))
            raise
        expect(dash.locator(".nbf-count-failed b")).to_have_text("1", timeout=30_000)
        pager = dash.locator(".nbf-note").first
        expect(pager).to_have_text("1–50 of 121", timeout=20_000)
        dash.locator(".nbf-text-filter input").fill("load")
        expect(pager).to_have_text("1–50 of 111", timeout=20_000)
        # A state is never cut ("succeeded" is among the longest).
        expect(dash.locator(".nbf-table td.nbf-col-state").first).to_have_text("succeeded")
        cut = dash.locator(".nbf-table td.nbf-col-state").evaluate_all(
            "cells => cells.filter(e => e.scrollWidth > e.clientWidth).length")
        assert cut == 0
        dash.locator(".nbf-text-filter input").fill("parse")
        expect(pager).to_have_text("1–1 of 1", timeout=20_000)
        expect(dash.locator(".nbf-live")).to_contain_text("live ·", timeout=20_000)
        page.wait_for_timeout(500)

        area = dash.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')][1]")
        area_box = area.bounding_box()
        assert area_box is not None
        viewport = {"x": 0, "y": 0, "width": 1400, "height": 10_000}
        # The clock is inside the output area and the window.
        clock_box = dash.locator(".nbf-live").bounding_box()
        assert clock_box and inside(clock_box, area_box) and inside(clock_box, viewport), (
            clock_box, area_box)
        # The error column: inside its scroller, which is inside the output
        # area; nothing to scroll sideways.
        scroller = dash.locator(".nbf-scroll")
        scroll_box = scroller.bounding_box()
        assert scroll_box and inside(scroll_box, area_box), (scroll_box, area_box)
        assert scroller.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), \
            scroller.evaluate("e => [e.scrollWidth, e.clientWidth]")
        error_cell = dash.locator(".nbf-table td.nbf-col-error").first
        cell_box = error_cell.bounding_box()
        assert cell_box and inside(cell_box, scroll_box), (cell_box, scroll_box)
        # Wide enough to read the start of the message, at this width
        # even with the file browser open.
        assert cell_box["width"] >= 120, cell_box
        assert error_cell.evaluate("e => e.clientWidth") >= 100
        # Cut with an ellipsis; the full text is its tooltip (escaped).
        assert error_cell.evaluate("e => e.scrollWidth > e.clientWidth")
        assert error_cell.get_attribute("title") == LONG_ERROR
        name_cell = dash.locator(".nbf-table td.nbf-col-name").first
        assert name_cell.get_attribute("title") == "parse-" + "quarterly-report-" * 4
        shot = tmp_path / "dashboard-1400.png"
        page.screenshot(path=str(shot))
        shutil.copy(shot, frontends.artifacts_dir() / "dashboard-1400.png")
