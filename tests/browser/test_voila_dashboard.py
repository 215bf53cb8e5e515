"""Several ``%%frost`` cells and the dashboard together in Voila, in headless Chromium.

Voila renders ``tests/notebooks/frontends_frost.ipynb`` (see ``test_frontends.py``
for its cells) once for the module: the dashboard is live and its Cancel
button works, the badges of jobs that end after Voila executed their cell
reach their final state, and what they print later shows under their cell
(``test_voila.py`` checks the badge's progress and the late-output area).

A module of its own: its page (and Playwright's sync API, which allows one
instance per thread) lives for the whole module.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import frontends
import pytest

pytestmark = [pytest.mark.timeout(300)]

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "frontends_frost.ipynb"
PRINTER, FAILING, LAST = 1, 2, 4   # the cells (see test_frontends.py)
VIEWPORT = {"width": 1400, "height": 1600}


# --------------------------------------------------------------------- Voila
@pytest.fixture(scope="module")
def voila_page(tmp_path_factory):
    """The notebook rendered by Voila, in Chromium: (page, output-of-cell function)."""
    from playwright.sync_api import expect

    tmp = tmp_path_factory.mktemp("voila")
    (tmp / "root").mkdir()
    nb = Path(shutil.copy(NOTEBOOK, tmp / "root" / NOTEBOOK.name))
    with frontends.voila(nb, tmp / "home") as server, frontends.chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        dialogs = frontends.DialogRecorder(page)
        # The page appears once Voila has executed every cell.
        page.goto(server.url(), timeout=120_000)
        cells = page.locator(".jp-Cell")
        expect(cells).to_have_count(6, timeout=60_000)
        expect(page.locator(".nbf-dashboard")).to_be_visible(timeout=60_000)

        def output(i: int):
            return cells.nth(i).locator(".jp-Cell-outputArea").first

        yield page, output
        page.screenshot(path=str(frontends.artifacts_dir() / "frontends-voila.png"), full_page=True)
        assert dialogs.seen == []


def test_voila_dashboard_is_live_and_cancels(voila_page):
    from playwright.sync_api import expect

    page, output = voila_page
    dash = page.locator(".nbf-dashboard")

    # The jobs end after Voila served the page; the dashboard follows them.
    frontends.expect_counts(dash, succeeded=1, failed=1, running=1)
    frontends.cancel_from_dashboard(page, dash, "train-model")
    # What ran while Voila executed the cell is there.
    expect(output(LAST)).to_have_text("the last cell ran")


def test_voila_badges_reach_their_final_state(voila_page):
    from playwright.sync_api import expect

    _page, output = voila_page
    expect(output(PRINTER)).to_contain_text(re.compile(r"job \d+ printer succeeded"),
                                            timeout=15_000)
    expect(output(FAILING)).to_contain_text(re.compile(r"job \d+ failing failed"),
                                            timeout=15_000)


def test_voila_late_output_shows_under_its_cell(voila_page):
    from playwright.sync_api import expect

    _page, output = voila_page
    expect(output(PRINTER)).to_contain_text("printer line 3", timeout=15_000)
    expect(output(FAILING)).to_contain_text("ValueError: boom from failing", timeout=15_000)
    assert "printer line" not in output(LAST).inner_text()
