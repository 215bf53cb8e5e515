"""Voila in Chromium: a ``%%frost`` badge reaches its final state and late output shows.

Voila forwards nothing that arrives for a cell after it ran, except widget
messages; under Voila the badge is a widget and the output written after
the cell ended goes to an Output widget (see ``nbfrost/frontends.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from frontends import CHROMIUM, CHROMIUM_ARGS, artifacts_dir, free_port

pytestmark = [pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
VOILA = Path(sys.executable).parent / "voila"
CELLS = [
    "%load_ext nbfrost\nimport nbfrost, time",
    "%%frost -n voila-job\nprint('early v', flush=True)\ntime.sleep(3)\n"
    "nbfrost.report(0.5, 'half <way>')\nprint('late v', flush=True)\ntime.sleep(0.5)",
]


def test_badge_final_and_late_output_in_voila(tmp_path):
    import nbformat
    from playwright.sync_api import expect, sync_playwright

    if not VOILA.exists():
        pytest.skip("voila is not installed in this environment")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nbformat.write(nb, tmp_path / "v.ipynb")
    (tmp_path / "home").mkdir()
    port = free_port()
    env = dict(os.environ, HOME=str(tmp_path / "home"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    log = tmp_path / "voila.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(VOILA), "v.ipynb", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
             "--Voila.port_retries=0"], stdout=out, stderr=subprocess.STDOUT, env=env,
            cwd=tmp_path)
    try:
        for _ in range(240):
            if proc.poll() is not None:
                pytest.fail(f"voila exited: {log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/voila/static/", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                time.sleep(0.25)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM,
                                         args=[*CHROMIUM_ARGS, "--disable-dev-shm-usage"])
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/", timeout=90_000)
                badge = page.locator(".nbfrost-badge").first
                expect(badge).to_be_visible(timeout=60_000)
                expect(page.get_by_text("late v")).to_be_visible(timeout=30_000)
                expect(badge).to_contain_text("succeeded", timeout=30_000)
                assert page.get_by_text("late v").count() == 1
                assert page.get_by_text("early v").count() == 1
                page.screenshot(path=str(artifacts_dir() / "voila-badge.png"))
            finally:
                browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
