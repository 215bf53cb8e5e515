"""``%frost`` Tab completion in a real JupyterLab (Debian's Chromium).

A unique match is the only item, and Tab inserts it (``%frost st`` →
``%frost status``; JupyterLab 4 lists a unique match first); the ids
offered after ``%frost status `` carry their state as a one-word type that
fits JupyterLab's type column on one line; JupyterLab's own context words
(``%``, ``frost``, ``status``, from the browser, not the kernel) go away with
the documented setting.  A screenshot of the open completer goes to the
artifacts folder.
"""

from __future__ import annotations

import json
import shutil

import frontends
import nbformat
import pytest

pytestmark = [pytest.mark.timeout(300)]

SETUP = ("%load_ext nbfrost\n"
         "import nbfrost, threading\n"
         "gate = threading.Event()\n"
         "d = nbfrost.get_dispatcher()\n"
         "done = d.queue(lambda: 1, name='etl-load-a-rather-long-job-name'); done.wait(10)\n"
         "busy = d.queue(gate.wait, 120, name='etl-transform')\n"
         "print('ready')")


@pytest.fixture
def lab(tmp_path):
    frontends.require_chromium()
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP),
                                         nbformat.v4.new_code_cell("")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "complete.ipynb")
    with frontends.lab(root, tmp_path / "home", log=tmp_path / "jupyter-lab.log") as server:
        yield server


def _open(page, lab):
    from playwright.sync_api import expect

    page.goto(lab.url("lab/tree/complete.ipynb"))
    frontends.dismiss_news_toast(page)
    frontends.wait_for_kernel_idle(page, lab)
    editor = page.locator(".jp-Notebook .jp-CodeCell .cm-content").nth(1)
    expect(editor).to_be_visible(timeout=30_000)
    return editor


def _items(page) -> list[tuple[str, str]]:
    out = []
    for item in page.locator(".jp-Completer .jp-Completer-item").all():
        label = item.locator(".jp-Completer-match").inner_text().strip()
        kind = item.locator(".jp-Completer-typeExtended")
        out.append((label, kind.inner_text().strip() if kind.count() else ""))
    return out


def test_frost_completion_reads_cleanly_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import expect

    out = frontends.artifacts_dir()
    with frontends.chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        _open(page, lab)
        page.locator(".jp-Notebook .jp-Cell").first.click()
        frontends.run_all_cells(page)
        expect(page.locator(".jp-OutputArea-output", has_text="ready")).to_be_visible(
            timeout=60_000)
        editor = page.locator(".jp-Notebook .jp-CodeCell .cm-content").nth(1)

        # A unique match is the kernel's only answer: JupyterLab 4 lists it,
        # with its one-word type, and the next Tab inserts it.
        editor.click()
        page.keyboard.type("%frost st")
        page.keyboard.press("Tab")
        completer = page.locator(".jp-Completer")
        expect(completer.locator(".jp-Completer-item")).to_have_count(1, timeout=20_000)
        assert _items(page) == [("status", "subcommand")]
        page.keyboard.press("Tab")
        expect(editor).to_have_text("%frost status", timeout=20_000)

        # The ids: one short type each, on one line.
        page.keyboard.type(" ")
        page.keyboard.press("Tab")
        expect(completer).to_be_visible(timeout=20_000)
        expect(completer.locator(".jp-Completer-item").first).to_be_visible()
        items = _items(page)
        assert items[:2] == [("1", "running"), ("0", "succeeded")], items
        heights = completer.locator(".jp-Completer-item").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().height)")
        assert max(heights) - min(heights) < 1.0, heights      # no row wraps
        wraps = completer.locator(".jp-Completer-typeExtended").evaluate_all(
            "els => els.filter(e => e.scrollWidth > e.clientWidth + 1"
            " || e.getClientRects().length > 1).length")
        assert wraps == 0
        page.screenshot(path=str(tmp_path / "completer.png"))
        shutil.copy(tmp_path / "completer.png", out / "jupyterlab-completer.png")
        # The rest is JupyterLab's context provider (words of the cell).
        context = [label for label, _ in items[2:]]
        assert set(context) <= {"%", "frost", "status"}, items
        page.keyboard.press("Escape")

        # With the documented setting, JupyterLab's context words are gone.
        put = page.request.put(
            lab.url("lab/api/settings/@jupyterlab/completer-extension:manager"),
            data=json.dumps({"raw": json.dumps({"availableProviders": {
                "CompletionProvider:context": -1, "CompletionProvider:kernel": 550}})}),
            headers={"Content-Type": "application/json",
                     "Authorization": f"token {lab.token}"})
        assert put.ok, put.text()
        page.reload()
        editor = _open(page, lab)
        editor.click()
        page.keyboard.type("%frost status ")   # the same kernel: its jobs are still there
        page.keyboard.press("Tab")
        expect(completer).to_be_visible(timeout=20_000)
        expect(completer.locator(".jp-Completer-item").first).to_be_visible()
        items = _items(page)
        assert [label for label, _ in items] == ["1", "0"], items
        page.screenshot(path=str(tmp_path / "completer-no-context.png"))
        shutil.copy(tmp_path / "completer-no-context.png", out / "jupyterlab-completer-kernel-only.png")
