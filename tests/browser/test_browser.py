"""The dashboard in a real JupyterLab, driven through Debian's Chromium.

Starts ``jupyter lab`` (``tests/frontends.py``: 127.0.0.1, a token, a temporary HOME), opens
``tests/notebooks/dashboard_browser.ipynb``, runs all cells through the Run
menu, waits for the live dashboard to show the jobs, reads a failed job's
traceback in it, cancels the running job from it, and checks that no job
name turned into markup (no dialog opened, the names show as text).

The screenshots are saved under the test's tmp path and copied to the
artifacts folder (``$ARTIFACTS`` or ``test-artifacts/``), never into the
repository: ``make screenshots`` runs this test and copies ``dashboard.png``
and ``dashboard-timeline.png`` from there into ``docs/``, where the README and the docs show them.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

import frontends
import pytest

pytestmark = [pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "tests" / "notebooks" / "dashboard_browser.ipynb"
FLOOD_NOTEBOOK = REPO / "tests" / "notebooks" / "flood_browser.ipynb"
CHROMIUM, CHROMIUM_ARGS = frontends.CHROMIUM, frontends.CHROMIUM_ARGS
XSS = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server serving a copy of the test notebook: (base url, token)."""
    frontends.require_chromium()
    root = tmp_path / "root"
    root.mkdir()
    for notebook in (NOTEBOOK, FLOOD_NOTEBOOK):
        shutil.copy(notebook, root / notebook.name)
    with frontends.lab(root, tmp_path / "home", log=tmp_path / "jupyter-lab.log") as server:
        yield server.base, server.token


artifacts_dir = frontends.artifacts_dir


def test_dashboard_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, token = lab
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def on_dialog(dialog) -> None:
                dialogs.append(f"{dialog.type}: {dialog.message}")
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")

            # The news toast of a fresh HOME ("No" is its button's title).
            no = page.locator("button[title='No']")
            with contextlib.suppress(Exception):  # the toast is optional: carry on without it
                no.first.click(timeout=20_000)
            # The kernel must be attached and idle before running cells.
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
                   ).to_be_visible(timeout=60_000)
            expect(page.locator(".jp-Toolbar-kernelName").first).not_to_have_text(
                "No Kernel", timeout=30_000)

            # More room for the dashboard: clicking the open sidebar tab (the
            # file browser) collapses the left panel.
            current = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
            if current.count():
                current.first.click()
            # "Run All Cells" applies to the widget with the focus: without
            # this click it sometimes ran nothing (every cell stayed [ ]).
            page.locator(".jp-Notebook .jp-Cell").first.click()
            frontends.run_all_cells(page)

            dash = page.locator(".jp-OutputArea-output .nbf-dashboard")
            expect(dash).to_be_visible(timeout=60_000)
            frontends.expect_counts(dash, 60_000, succeeded=6)
            frontends.expect_counts(dash, failed=3, running=2)
            expect(dash.locator(".nbf-table td", has_text="square-5").first).to_be_visible()
            expect(dash.locator(".nbf-workers")).to_contain_text("2/3")
            # Hostile names are shown as text, not markup.
            for evil in XSS:
                expect(dash.locator(".nbf-table td", has_text=evil).first).to_be_visible()

            # Details: a failed job's error and traceback.
            select = dash.locator(".nbf-job-select select")
            select.select_option(index=frontends.option_index(select, "load-data"))
            details = dash.locator(".nbf-details")
            expect(details).to_contain_text("FileNotFoundError: no such file: data/2026-11.csv",
                                            timeout=20_000)
            expect(details).to_contain_text("Traceback")
            expect(details).to_contain_text("reading data/2026-11.csv")
            # A finished job: Cancel is disabled and looks it (grey, not a
            # paler orange that still invites a click).
            cancel = dash.locator("button.nbf-cancel")
            expect(cancel).to_be_disabled()
            rgb = cancel.evaluate("b => getComputedStyle(b).backgroundColor")
            red, green, blue = (int(x) for x in re.findall(r"\d+", rgb)[:3])
            assert max(red, green, blue) - min(red, green, blue) < 40, f"not grey: {rgb}"
            # Let the progress bars move a little, then take the picture.
            expect(dash.locator(".nbf-table td", has_text="epoch").first).to_be_visible(timeout=20_000)
            page.wait_for_timeout(1500)
            shot = tmp_path / "dashboard.png"
            dash.screenshot(path=str(shot))
            page.screenshot(path=str(tmp_path / "jupyterlab.png"))
            out = artifacts_dir()
            shutil.copy(shot, out / "dashboard.png")
            shutil.copy(tmp_path / "jupyterlab.png", out / "jupyterlab.png")
            assert shot.stat().st_size > 20_000

            # Cancel the long-running job from the dashboard.
            frontends.cancel_from_dashboard(page, dash, "train-model")
            expect(dash.locator(".nbf-banner")).to_contain_text("train-model", timeout=10_000)
            expect(details).to_contain_text('"state": "cancelled"', timeout=10_000)
            page.screenshot(path=str(tmp_path / "after-cancel.png"))
            shutil.copy(tmp_path / "after-cancel.png", out / "dashboard-after-cancel.png")

            # The timeline tab: one lane per worker, bars with escaped tooltips.
            dash.locator(".lm-TabBar-tab", has_text="Timeline").click()
            svg = dash.locator(".nbf-timeline-widget svg")
            expect(svg).to_be_visible(timeout=20_000)
            expect(svg.locator("g.bar")).to_have_count(11)
            titles = svg.locator("g.bar > title").all_text_contents()
            assert any(XSS[0] in t for t in titles)  # shown as text in the tooltip
            dash.screenshot(path=str(tmp_path / "timeline.png"))
            shutil.copy(tmp_path / "timeline.png", out / "dashboard-timeline.png")
        finally:
            browser.close()
    assert dialogs == [], f"a job name or output ran as script: {dialogs}"


def test_a_flood_stays_calm_in_jupyterlab(lab, tmp_path):
    """A %%frost job prints 200k lines: the next cell answers within 3 s, the
    notebook is idle within 5 s of the job's end, and one marker line says
    what was not shown."""
    import time

    from playwright.sync_api import expect, sync_playwright

    base, token = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/{FLOOD_NOTEBOOK.name}?token={token}")
            frontends.dismiss_news_toast(page)
            frontends.wait_for_kernel_idle(page)
            outputs = page.locator(".jp-OutputArea-output")
            page.locator(".jp-Notebook .jp-Cell").first.click()  # Run All needs the focus
            frontends.run_all_cells(page)
            # A cold start can be slow on a loaded machine; the timed part starts here.
            expect(outputs.filter(has_text="ready")).to_have_count(1, timeout=90_000)
            started = time.monotonic()
            expect(outputs.filter(has_text="next cell output 42")).to_have_count(1, timeout=30_000)
            next_cell = time.monotonic() - started
            after = outputs.filter(has_text="after the flood")
            expect(after).to_have_count(1, timeout=60_000)
            flood_end = float(after.inner_text().split()[-1])
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
                   ).to_be_visible(timeout=30_000)
            idle_after_end = time.time() - flood_end
            marker = outputs.filter(has_text="went over its notebook budget")
            expect(marker).to_have_count(1, timeout=10_000)
            expect(marker).to_contain_text("%frost output")
            page.screenshot(path=str(tmp_path / "flood.png"))
            shutil.copy(tmp_path / "flood.png", artifacts_dir() / "jupyterlab-flood.png")
        finally:
            browser.close()
    print(f"flood in JupyterLab: next cell after {next_cell:.2f} s, "
          f"idle {idle_after_end:.2f} s after the job ended")
    assert next_cell < 3.0, next_cell
    assert idle_after_end < 5.0, idle_after_end
