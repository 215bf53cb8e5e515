"""Dashboard ids and actions in a real JupyterLab (Debian's Chromium).

12,000 jobs: the id column shows 5-digit ids whole (and has room for 10
digits), an id typed into the id box chooses job 0 (far past the first
page), "Clear finished" asks before removing, and job 0, cleared, says
*cleared*.  A screenshot goes to the artifacts folder only.
"""

from __future__ import annotations

import shutil

import frontends
import nbformat
import pytest

pytestmark = [pytest.mark.timeout(240)]

CELLS = [
    "import nbfrost\n"
    "d = nbfrost.Dispatcher(workers=2, expiry=3600)\n"
    "results = list(d.map(abs, range(-12_000, 0)))\n"
    "print('jobs done', len(results))",
    "nbfrost.Dashboard(d, page_size=20)",
]


@pytest.fixture
def lab(tmp_path):
    frontends.require_chromium()
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "ids.ipynb")
    with frontends.lab(root, tmp_path / "home", log=tmp_path / "jupyter-lab.log") as server:
        yield server


def test_long_ids_show_whole_and_any_job_is_reachable(lab, tmp_path):
    from playwright.sync_api import expect

    with frontends.chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(lab.url("lab/tree/ids.ipynb"))
        frontends.dismiss_news_toast(page)
        frontends.wait_for_kernel_idle(page, lab)
        page.locator(".jp-Notebook .jp-Cell").first.click()
        frontends.run_all_cells(page)
        dash = page.locator(".jp-OutputArea-output .nbf-dashboard")
        expect(dash).to_be_visible(timeout=90_000)
        succeeded = frontends.dashboard_counter(dash, "succeeded")
        expect(succeeded).to_have_text("12,000", timeout=60_000)

        # The newest id (5 digits) is shown whole: no ellipsis, nothing cut.
        first = dash.locator(".nbf-table tbody tr").first.locator("td.nbf-col-id")
        expect(first).to_have_text("11999")
        cut = first.evaluate("td => td.scrollWidth > td.clientWidth")
        assert not cut, "the id column cuts a 5-digit id"
        # The column is sized for the page's longest id (a page with 10-digit
        # ids gets a 10-digit column: tests/unit/test_dashboard.py), so short
        # ids leave their room to the text columns.
        header = dash.locator(".nbf-table th.nbf-col-id")
        assert "5ch" in (header.get_attribute("style") or ""), header.get_attribute("style")

        # Job 0 is on page 600: type its id.
        box = dash.locator(".nbf-id-box input")
        box.fill("0")
        box.press("Enter")
        details = dash.locator(".nbf-details-widget")
        expect(details).to_contain_text("Job 0 · status JSON", timeout=20_000)
        page.screenshot(path=str(tmp_path / "ids.png"))
        shutil.copy(tmp_path / "ids.png", frontends.artifacts_dir() / "dashboard-ids.png")

        # Clear finished asks first; Keep keeps everything.
        dash.locator("button.nbf-clear").click()
        confirm = dash.locator(".nbf-clear-confirm")
        expect(confirm).to_contain_text("Remove 12,000 finished jobs from the registry?",
                                        timeout=10_000)
        dash.locator("button.nbf-clear-no").click()
        expect(dash.locator(".nbf-msg")).to_contain_text("nothing cleared", timeout=10_000)
        expect(confirm).to_be_hidden()
        expect(succeeded).to_have_text("12,000")
        dash.locator("button.nbf-clear").click()
        dash.locator("button.nbf-clear-yes").click()
        frontends.expect_counts(dash, 30_000, succeeded=0)
        expect(details).to_contain_text("job 0 finished and was cleared from the registry",
                                        timeout=20_000)
        assert "raise Dispatcher(expiry" not in details.inner_text()
