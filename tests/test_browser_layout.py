"""The dashboard's layout in a real JupyterLab at 1400 px (issue 10 §10).

``tests/notebooks/dashboard_layout.ipynb`` holds 111 ``load-*`` jobs among
121, and one failed job whose name, tags and error are long.  In Chromium
at 1400 × 1000: typing ``load`` in the filter shows ``1–50 of 111``; the
``live · HH:MM:SS`` clock and the error column sit inside the output area
(bounding boxes, not clipped by a scroller); the long error is cut with an
ellipsis and its full text is the cell's ``title`` tooltip.  A screenshot
goes to the artifacts folder only.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    JUPYTER,
    artifacts_dir,
    free_port,
    wait_for_server,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(240)]

NOTEBOOK = Path(__file__).resolve().parent / "notebooks" / "dashboard_layout.ipynb"
LONG_ERROR = ("ValueError: could not parse data/2026-11-a-rather-long-file-name.csv: "
              + "row 12 has 11 columns, expected 12; " * 8 + "<end>")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 serving a copy of the layout notebook: (url, token)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium")
    home, root = tmp_path / "home", tmp_path / "root"
    home.mkdir()
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_DATA_DIR=str(home / ".local/share/jupyter"),
               JUPYTER_RUNTIME_DIR=str(home / ".local/share/jupyter/runtime"),
               IPYTHONDIR=str(home / ".ipython"))
    env.pop("JUPYTER_PATH", None)
    log = tmp_path / "jupyter-lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(JUPYTER), "lab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
             f"--ServerApp.token={token}", "--allow-root", f"--ServerApp.root_dir={root}",
             "--ServerApp.port_retries=0"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield base, token
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def inside(inner: dict, outer: dict, slack: float = 0.5) -> bool:
    return (inner["x"] >= outer["x"] - slack and inner["y"] >= outer["y"] - slack
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack)


def test_dashboard_fits_1400px_with_totals_and_tooltips(lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, token = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            try:
                page.locator("button[title='No']").first.click(timeout=20_000)
            except Exception:  # the news toast is optional
                pass
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
                   ).to_be_visible(timeout=60_000)
            expect(page.locator(".jp-Toolbar-kernelName").first).not_to_have_text(
                "No Kernel", timeout=30_000)
            # The file browser stays open, as a new user has it; the notebook
            # must have the focus for "Run All Cells" to apply to it.
            page.locator(".jp-Notebook .jp-MarkdownCell").first.click()
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            dash = page.locator(".jp-OutputArea-output .nbf-dashboard")
            try:
                expect(dash).to_be_visible(timeout=90_000)
            except AssertionError:
                page.screenshot(path=str(artifacts_dir() / "dashboard-1400-failed.png"))
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
            shutil.copy(shot, artifacts_dir() / "dashboard-1400.png")
        finally:
            browser.close()
