"""The JupyterLab Jobs panel against a real JupyterLab (and Notebook 7) in
Chromium: jobs of several kernels, live; cancel reaching a kernel busy in a
foreground cell; a kernel killed with SIGKILL; a papermill run started from a
terminal; a job name made of markup; the screenshot for the docs.

Kernels are started by the server (its sessions give the notebook paths)
and publish into the server's runtime dir (a temporary HOME per module)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import frontends
import nbformat
import pytest
from helpers import eventually
from playwright.sync_api import expect

PANEL_TAB = '[data-id="nbfrost-jobs-panel"]'
PANEL = "#nbfrost-jobs-panel"
XSS = "<img src=x onerror=alert(1)>"

# A job that reports progress each 0.1 s until cancelled, or until a flag file exists.
WORKER = '''%load_ext nbfrost
import os, time, nbfrost
d = nbfrost.get_dispatcher()

def crunch(steps, flag=None):
    for i in range(steps):
        if nbfrost.cancelled() or (flag and os.path.exists(flag)):
            return i
        nbfrost.report(i / steps, f"step {i} of {steps}")
        time.sleep(0.1)
    return steps
'''


def _notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _api(server, path: str):
    with urllib.request.urlopen(server.url(f"nbfrost/api/{path}"), timeout=10) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    frontends.require_chromium()
    base = tmp_path_factory.mktemp("panel")
    root = base / "root"
    root.mkdir()
    with frontends.lab(root, base / "home") as server, frontends.chromium() as browser:
        # One page shows the panel; each notebook runs in a page of its own
        # (leaving a page with a running notebook asks the user first).
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        dialogs = frontends.DialogRecorder(page)
        page.goto(server.url("lab/workspaces/panel"))
        frontends.dismiss_news_toast(page)
        yield server, page, dialogs, base, browser


def _open_and_run(server, browser, path: str):
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    # A workspace per page: pages of one workspace restore each other's layout.
    page.goto(server.url(f"lab/workspaces/{Path(path).stem}/tree/{path}"))
    frontends.dismiss_news_toast(page, timeout_ms=5000)
    frontends.wait_for_kernel_idle(page, server)
    frontends.run_all_cells(page)
    return page


def _show_panel(page):
    panel = page.locator(PANEL)
    if not panel.is_visible():
        page.locator(PANEL_TAB).click()
    expect(panel).to_be_visible()
    return panel


def _row(panel, path: str | None, name: str, state: str | None = None):
    """The row of the job called *name* (in *path*'s group, in *state*)."""
    group = ".nbfrost-group" + (f'[data-path="{path}"]' if path else "")
    job = ".nbfrost-job" + (f'[data-state="{state}"]' if state else "")
    name_cell = panel.page.locator(".nbfrost-job-name", has_text=name)
    return panel.locator(f"{group} {job}").filter(has=name_cell).first


def _run_from_palette(page, label: str) -> None:
    """View ▸ Activate Command Palette, then the command labelled *label*.  On
    a loaded machine a menu click made while the page settles can do nothing;
    it is retried until the palette shows."""
    search = page.locator(".lm-CommandPalette-input")
    for attempt in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text="View").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Activate Command Palette").first.click()
        try:
            expect(search).to_be_visible(timeout=5_000)
            break
        except AssertionError:
            page.keyboard.press("Escape")
            if attempt == 2:
                raise
    search.fill(label)
    item = page.locator(".lm-CommandPalette-item", has_text=label).first
    expect(item).to_be_visible()
    item.click()


def test_panel_shows_two_notebooks_jobs_live_and_names_stay_text(lab):
    server, page, dialogs, _base, browser = lab
    root = server.cwd
    _notebook(root / "alpha.ipynb", WORKER, 't = d.queue(crunch, 3000, name="crunch-alpha", tags=["panel"])')
    _notebook(root / "beta.ipynb", WORKER,
              't = d.queue(crunch, 3000, name="crunch-beta", tags=["panel", "beta"])\n'
              f'x = d.queue(crunch, 3000, name={XSS!r})')
    _open_and_run(server, browser, "alpha.ipynb")
    _open_and_run(server, browser, "beta.ipynb")
    panel = _show_panel(page)

    alpha = _row(panel, "alpha.ipynb", "crunch-alpha", "running")
    beta = _row(panel, "beta.ipynb", "crunch-beta", "running")
    expect(alpha).to_be_visible(timeout=30_000)
    expect(beta).to_be_visible(timeout=30_000)
    expect(beta.locator(".nbfrost-tag")).to_have_text(["panel", "beta"])
    # Live: the progress message moves on while the panel is open.
    message = alpha.locator(".nbfrost-message")
    expect(message).to_have_text(re.compile(r"step \d+ of 3000"))
    first = message.text_content()
    expect(message).not_to_have_text(first, timeout=10_000)
    expect(alpha.locator(".nbfrost-progress-fill")).to_have_attribute("style", re.compile(r"width"))
    # The status bar counts the running jobs of both kernels.
    expect(page.locator(".nbfrost-statusbar")).to_have_text("nbfrost: 3 running", timeout=10_000)

    # Markup in a job name is text: the exact characters, no element made, no alert.
    xss = _row(panel, "beta.ipynb", "<img", "running")
    expect(xss.locator(".nbfrost-job-name")).to_have_text(XSS)
    assert panel.locator("img").count() == 0
    assert dialogs.seen == []

    # Filters: by text and by state.
    panel.locator(".nbfrost-text-filter").fill("alpha")
    expect(panel.locator(".nbfrost-job")).to_have_count(1)
    panel.locator(".nbfrost-text-filter").fill("")
    panel.locator(".nbfrost-state-filter").select_option("succeeded")
    expect(panel.locator(".nbfrost-empty")).to_have_text("No job matches the filters.")
    panel.locator(".nbfrost-state-filter").select_option("")
    expect(panel.locator(".nbfrost-job")).to_have_count(3)

    # A row opens to its details; clicking a notebook's name opens the notebook.
    alpha.locator(".nbfrost-job-summary").click()
    expect(alpha.locator(".nbfrost-facts")).to_contain_text("attempts")
    # Wider than the default sidebar for the docs' screenshot (make screenshots).
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 180, box["y"] + 200, steps=5)
    page.mouse.up()
    page.screenshot(path=str(frontends.artifacts_dir() / "jobs-panel.png"))
    panel.locator('.nbfrost-group[data-path="alpha.ipynb"] .nbfrost-process-name').click()
    current = page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current")
    expect(current).to_contain_text("alpha.ipynb")

    # The palette command cancels one notebook's jobs.
    _run_from_palette(page, "Cancel This Notebook's nbfrost Jobs")
    expect(_row(panel, "alpha.ipynb", "crunch-alpha")).to_have_attribute("data-state", "cancelled",
                                                                          timeout=15_000)
    expect(beta).to_have_attribute("data-state", "running")
    for name in ("crunch-beta", "<img"):
        _row(panel, "beta.ipynb", name, "running").locator(".nbfrost-cancel").click()
    expect(panel.locator('.nbfrost-job[data-state="running"]')).to_have_count(0, timeout=15_000)
    assert dialogs.seen == []


def test_cancel_from_the_panel_reaches_a_kernel_busy_in_a_foreground_cell(lab):
    server, page, _dialogs, _base, browser = lab
    _notebook(server.cwd / "busy.ipynb", WORKER,
              't = d.queue(crunch, 100_000, name="spin-busy")',
              "time.sleep(30)\nprint('foreground done')")
    notebook = _open_and_run(server, browser, "busy.ipynb")
    panel = _show_panel(page)
    row = _row(panel, "busy.ipynb", "spin-busy", "running")
    expect(row).to_be_visible(timeout=30_000)
    # The kernel is busy in time.sleep(30) (the second cell has started).
    expect(notebook.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt").nth(2)).to_have_text("[*]:")
    row.locator(".nbfrost-cancel").click()
    expect(_row(panel, "busy.ipynb", "spin-busy")).to_have_attribute("data-state", "cancelled",
                                                                     timeout=10_000)
    # Retry runs it again as a new job; Interrupt stops that one, the kernel still busy.
    _row(panel, "busy.ipynb", "spin-busy", "cancelled").locator(".nbfrost-retry").click()
    again = _row(panel, "busy.ipynb", "spin-busy", "running")
    expect(again).to_be_visible(timeout=10_000)
    again.locator(".nbfrost-interrupt").click()
    cancelled = panel.locator('.nbfrost-group[data-path="busy.ipynb"] .nbfrost-job[data-state="cancelled"]')
    expect(cancelled).to_have_count(2, timeout=10_000)
    # Long before the foreground cell ends.
    assert "foreground done" not in notebook.locator(".jp-OutputArea-output").all_text_contents()
    notebook.close()


def test_cancel_all_ends_every_job_of_a_notebook_even_beyond_the_published_ones(lab):
    """The group's Cancel all sends one command: the kernel cancels every
    queued and running job, also the queued ones beyond the newest 500 it
    publishes (which the panel never listed)."""
    server, page, _dialogs, _base, browser = lab
    _notebook(server.cwd / "many.ipynb", WORKER,
              'jobs = [d.queue(crunch, 100_000, name=f"many-{i}") for i in range(1502)]')
    notebook = _open_and_run(server, browser, "many.ipynb")
    panel = _show_panel(page)
    group = panel.locator('.nbfrost-group[data-path="many.ipynb"]')
    expect(group.locator(".nbfrost-counts")).to_contain_text("queued", timeout=30_000)
    button = group.locator(".nbfrost-cancel-all")
    expect(button).to_be_visible(timeout=10_000)
    button.click()
    [process] = [p for p in _api(server, "processes")["processes"] if p["path"] == "many.ipynb"]

    def active() -> int:
        [p] = [p for p in _api(server, "processes")["processes"] if p["id"] == process["id"]]
        return p["counts"].get("queued", 0) + p["counts"].get("running", 0)

    eventually(lambda: active() == 0, 15, "every job of many.ipynb to end")
    [p] = [p for p in _api(server, "processes")["processes"] if p["id"] == process["id"]]
    assert p["counts"].get("cancelled", 0) == 1502, p["counts"]
    expect(button).to_be_hidden(timeout=10_000)
    notebook.close()


def test_the_panel_lists_a_notebooks_schedules_and_names_stay_text(lab):
    server, page, dialogs, _base, browser = lab
    _notebook(server.cwd / "timed.ipynb", WORKER,
              f'poll = d.every("5m", int, name={XSS!r})\n'
              'hourly = d.cron("0 * * * *", int, name="hourly-report")\n'
              'hourly.pause()\n'
              'gone = d.every("1h", int, name="ended-one")\n'
              'gone.cancel()')
    notebook = _open_and_run(server, browser, "timed.ipynb")
    panel = _show_panel(page)
    lines = panel.locator(".nbfrost-schedules .nbfrost-schedule")
    expect(lines.filter(has_text="hourly-report")).to_have_attribute("data-state", "paused",
                                                                      timeout=30_000)
    poll = lines.filter(has_text=XSS)
    expect(poll).to_have_attribute("data-state", "active")
    expect(poll).to_contain_text("every 5 min")
    expect(poll).to_contain_text("timed.ipynb")
    expect(lines.filter(has_text="ended-one")).to_have_count(0)
    assert dialogs.seen == [], dialogs.seen
    panel.screenshot(path=str(frontends.artifacts_dir() / "jobs-panel-schedules.png"))
    # Steered from the panel: the kernel's schedule changes within a second.
    [process] = [p for p in _api(server, "processes")["processes"] if p["path"] == "timed.ipynb"]

    def state_of(name: str) -> str | None:
        [p] = [p for p in _api(server, "processes")["processes"] if p["id"] == process["id"]]
        return next((s["state"] for s in p["schedules"] if s["name"] == name), None)

    poll.locator(".nbfrost-pause").click()
    expect(poll).to_have_attribute("data-state", "paused", timeout=10_000)
    assert state_of(XSS) == "paused"
    poll.locator(".nbfrost-resume").click()
    expect(poll).to_have_attribute("data-state", "active", timeout=10_000)
    lines.filter(has_text="hourly-report").locator(".nbfrost-unschedule").click()
    expect(lines.filter(has_text="hourly-report")).to_have_count(0, timeout=10_000)
    assert state_of("hourly-report") == "ended"
    notebook.close()


def test_a_kernel_killed_with_sigkill_shows_its_running_jobs_as_lost(lab):
    server, page, _dialogs, _base, browser = lab
    _notebook(server.cwd / "doomed.ipynb", WORKER, 't = d.queue(crunch, 100_000, name="doomed-job")')
    _open_and_run(server, browser, "doomed.ipynb").close()
    panel = _show_panel(page)
    expect(_row(panel, "doomed.ipynb", "doomed-job", "running")).to_be_visible(timeout=30_000)
    [process] = [p for p in _api(server, "processes")["processes"] if p["path"] == "doomed.ipynb"]
    os.kill(process["pid"], signal.SIGKILL)
    row = _row(panel, None, "doomed-job")
    expect(row).to_have_attribute("data-state", "lost", timeout=30_000)
    expect(row.locator(".nbfrost-cancel")).to_be_hidden()


def test_a_papermill_run_from_a_terminal_shows_while_it_runs(lab):
    _server, page, _dialogs, base, _browser = lab
    work = base / "terminal"
    flag = work / "stop-flag"
    source = _notebook(work / "report.ipynb", WORKER,
                       f't = d.queue(crunch, 100_000, {str(flag)!r}, name="papermill-job")\nt.result()')
    env = frontends.isolated_env(base / "home")
    run = subprocess.Popen([str(frontends.BIN / "papermill"), str(source), str(work / "out.ipynb")],
                           cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        panel = _show_panel(page)
        row = _row(panel, None, "papermill-job", "running")
        expect(row).to_be_visible(timeout=60_000)
        expect(row.locator(".nbfrost-message")).to_have_text(re.compile(r"step \d+"))
        flag.touch()
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0, out.decode(errors="replace")[-3000:]
        expect(_row(panel, None, "papermill-job")).to_have_attribute("data-state", "succeeded",
                                                                     timeout=15_000)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


# A plain script with a Dispatcher that publishes all of its 100,000 jobs.
MANY = """
import os, sys, time, nbfrost
d = nbfrost.Dispatcher(workers=2)
for _ in d.map(abs, range(100_000), chunksize=1000):
    pass
print("done", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
d.shutdown()
"""


def test_panel_pages_100000_jobs_and_renders_one_page(lab):
    _server, page, _dialogs, base = lab[:4]
    flag = base / "many-stop"
    env = frontends.isolated_env(base / "home")
    env["NBFROST_PUBLISH_JOBS"] = "100000"
    run = subprocess.Popen([sys.executable, "-c", MANY, str(flag)], cwd=base, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        panel = _show_panel(page)
        panel.locator(".nbfrost-text-filter").fill("abs")
        label = panel.locator(".nbfrost-page-label")
        expect(label).to_have_text("1–200 of 100,000", timeout=120_000)
        # One page in the DOM, whatever the total.
        expect(panel.locator(".nbfrost-job")).to_have_count(200)
        newest = panel.locator(".nbfrost-job").first.get_attribute("data-job-id")
        panel.locator(".nbfrost-next").click()
        expect(label).to_have_text("201–400 of 100,000")
        expect(panel.locator(".nbfrost-job")).to_have_count(200)
        assert panel.locator(".nbfrost-job").first.get_attribute("data-job-id") != newest
        panel.locator(".nbfrost-prev").click()
        expect(label).to_have_text("1–200 of 100,000")
        panel.locator(".nbfrost-text-filter").fill("")
    finally:
        flag.touch()
        try:
            run.wait(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()


def test_notebook7_shows_the_jobs_panel(lab, tmp_path):
    browser = lab[4]  # one Playwright per thread: this module's browser
    root = tmp_path / "root"
    _notebook(root / "seven.ipynb", WORKER, 't = d.queue(crunch, 100_000, name="seven-job")')
    with frontends.notebook(root, tmp_path / "home") as server:
        page = browser.new_page(viewport={"width": 1300, "height": 850})
        page.goto(server.url("notebooks/seven.ipynb"))
        frontends.wait_for_kernel_idle(page, server)
        frontends.run_all_cells(page)
        page.locator(".lm-MenuBar-itemLabel", has_text="View").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Left Sidebar").first.hover()
        page.locator(".lm-Menu-itemLabel", has_text="Show nbfrost Jobs").first.click()
        panel = page.locator(PANEL)
        expect(panel).to_be_visible(timeout=10_000)
        row = _row(panel, "seven.ipynb", "seven-job", "running")
        expect(row).to_be_visible(timeout=30_000)
        page.screenshot(path=str(frontends.artifacts_dir() / "jobs-panel-notebook7.png"))
        row.locator(".nbfrost-cancel").click()
        expect(_row(panel, "seven.ipynb", "seven-job")).to_have_attribute("data-state", "cancelled",
                                                                          timeout=15_000)
