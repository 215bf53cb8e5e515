"""Real Jupyter front ends for tests: JupyterLab, Notebook 7 and Voila servers,
and headless Chromium through Playwright.

Every server listens on 127.0.0.1 on a free port, runs with a temporary HOME
(and Jupyter config, data, runtime and IPython dirs inside it, so settings
never leak between runs), logs to a file, and is stopped by SIGTERM to the
PID this module started (its kernels stop with it)::

    with frontends.notebook(root=tmp_path / "root", home=tmp_path / "home") as srv:
        with frontends.chromium() as browser:
            page = browser.new_page()
            page.goto(srv.url("notebooks/x.ipynb"))

Kernels started by these servers run the ``python3`` kernel of this venv,
with this process's environment (so ``PYTHONPATH`` reaches them).  See
``../shared/docs/TESTING-NOTES.md`` for what each front end does.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    """A port nothing listens on now (a stale server would answer silently)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is already in use"
    return port


def isolated_env(home: Path) -> dict[str, str]:
    """This process's environment with HOME and every Jupyter/IPython dir under *home*."""
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_DATA_DIR=str(home / ".local/share/jupyter"),
               JUPYTER_RUNTIME_DIR=str(home / ".local/share/jupyter/runtime"),
               IPYTHONDIR=str(home / ".ipython"))
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_TOKEN", None)
    return env


def artifacts_dir() -> Path:
    """Where screenshots go: ``$ARTIFACTS`` or ``test-artifacts/`` (never the source tree)."""
    path = Path(os.environ.get("ARTIFACTS", REPO / "test-artifacts"))
    if not path.is_absolute():
        path = REPO / path
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Server:
    """A running front-end server: its process, base URL, token and log; used
    in a ``with`` block, it is stopped when the block ends."""

    kind: str
    proc: subprocess.Popen
    base: str
    token: str
    log: Path
    cwd: Path
    _stopped: bool = field(default=False, repr=False)

    def url(self, path: str = "") -> str:
        """``base/path`` with the token (when the server has one)."""
        url = f"{self.base}/{path.lstrip('/')}"
        if self.token:
            url += ("&" if "?" in url else "?") + f"token={self.token}"
        return url

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_for_kernel(self, timeout: float = 90.0) -> None:
        """Until the server has started a kernel and it is idle (``/api/kernels``)."""
        import json

        deadline = time.monotonic() + timeout
        kernels: list = []
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url("api/kernels"), timeout=5) as resp:
                    kernels = json.loads(resp.read())
            except OSError:
                kernels = []
            if kernels and all(k.get("execution_state") == "idle" for k in kernels):
                return
            time.sleep(0.25)
        pytest.fail(f"no idle kernel after {timeout} s: {kernels}\n{self.log_tail()}")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the PID started here; SIGKILL if it does not exit in *timeout* s."""
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _start(kind: str, argv: list[str], cwd: Path, home: Path, log: Path, base: str,
           token: str, ready_path: str | None, timeout: float) -> Server:
    env = isolated_env(home)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    server = Server(kind, proc, base, token, log, cwd)
    try:
        _wait_until_up(server, ready_path, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_up(server: Server, ready_path: str | None, timeout: float) -> None:
    """Until *ready_path* answers 200 (or, with None, the port accepts connections)."""
    host, port = server.base.rsplit("//", 1)[1].split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"{server.kind} exited with {server.proc.returncode}:\n{server.log_tail()}")
        if ready_path is None:
            with socket.socket() as s:
                if s.connect_ex((host, int(port))) == 0:
                    return
        else:
            try:
                with urllib.request.urlopen(server.url(ready_path), timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
        time.sleep(0.25)
    pytest.fail(f"{server.kind} did not answer within {timeout} s:\n{server.log_tail()}")


def _root_flag() -> list[str]:
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def start_jupyter(app: str, root: Path, home: Path, log: Path | None = None,
                  timeout: float = 90.0) -> Server:
    """``jupyter lab`` or ``jupyter notebook`` (*app*) serving *root*."""
    assert app in ("lab", "notebook"), app
    root.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    argv = [sys.executable, "-m", "jupyter", app, "--no-browser", "--ip=127.0.0.1",
            f"--port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={root}", *_root_flag()]
    log = log or home.parent / f"jupyter-{app}.log"
    return _start(f"jupyter {app}", argv, root, home, log, f"http://127.0.0.1:{port}", token,
                  "api/status", timeout)


def start_voila(notebook: Path, home: Path, log: Path | None = None,
                timeout: float = 90.0) -> Server:
    """``voila NOTEBOOK`` run in the notebook's folder.  Its page appears only
    once every cell has executed, so readiness is the port accepting connections."""
    port = free_port()
    argv = [str(BIN / "voila"), notebook.name, "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", "--Voila.port_retries=0"]
    log = log or home.parent / "voila.log"
    return _start("voila", argv, notebook.parent, home, log, f"http://127.0.0.1:{port}", "",
                  None, timeout)


def lab(root: Path, home: Path, log: Path | None = None) -> Server:
    """A JupyterLab server, stopped at the end of its ``with`` block; open
    ``server.url('lab/tree/PATH')``."""
    return start_jupyter("lab", root, home, log)


def notebook(root: Path, home: Path, log: Path | None = None) -> Server:
    """A Notebook 7 server, stopped at the end of its ``with`` block; open
    ``server.url('notebooks/PATH')``."""
    return start_jupyter("notebook", root, home, log)


def voila(notebook: Path, home: Path, log: Path | None = None) -> Server:
    """A Voila server rendering *notebook*, stopped at the end of its ``with``
    block; open ``server.url()``."""
    return start_voila(notebook, home, log)


def require_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium "
                    "(`make chromium` or `apt-get install -y chromium`)")


@contextlib.contextmanager
def chromium() -> Iterator:
    """Headless Debian Chromium through Playwright (never ``playwright install``)."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class DialogRecorder:
    """Records and dismisses every dialog a page opens (an ``alert`` from a
    job name means markup ran)."""

    def __init__(self, page) -> None:
        self.seen: list[str] = []
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog) -> None:
        self.seen.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


def wait_for_kernel_idle(page, server: Server | None = None, timeout_ms: int = 60_000) -> None:
    """JupyterLab / Notebook 7: the kernel is attached and idle (running
    cells before that opens a "Select Kernel" dialog).  With *server*, its
    REST API must report the kernel idle too."""
    from playwright.sync_api import expect

    if server is not None:
        server.wait_for_kernel(timeout_ms / 1000)

    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
           ).to_be_visible(timeout=timeout_ms)
    kernel_name = page.locator(".jp-Toolbar-kernelName")
    if kernel_name.count():
        expect(kernel_name.first).not_to_have_text("No Kernel", timeout=timeout_ms)


def dismiss_news_toast(page, timeout_ms: int = 20_000) -> None:
    """The "get notified about official Jupyter news?" toast of a fresh HOME
    (JupyterLab; Notebook 7 does not show it)."""
    with contextlib.suppress(Exception):  # the toast is optional
        page.locator("button[title='No']").first.click(timeout=timeout_ms)


def run_all_cells(page, attempts: int = 3, started_ms: int = 20_000) -> None:
    """JupyterLab / Notebook 7: Run ▸ Run All Cells from the menu bar, until the
    first cell has started.

    On a loaded machine a click made while the page is still settling can do
    nothing; it is retried only while no cell has started (so nothing runs twice).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    prompt = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt").first
    for attempt in range(attempts):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            expect(prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=started_ms)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")  # close a menu left open
        except PlaywrightTimeout:  # pragma: no cover - older Playwright raised this
            if attempt == attempts - 1:
                raise


def option_index(select, needle: str) -> int:
    """The index of the dashboard dropdown option (``#id · name``) naming job *needle*."""
    # The widget shows spaces as no-break spaces.
    labels = [t.replace("\xa0", " ") for t in select.locator("option").all_inner_texts()]
    matches = [i for i, label in enumerate(labels) if label.endswith(f" · {needle}")]
    assert matches, f"no job {needle!r} in the dropdown: {labels}"
    return matches[0]


def dashboard_counter(dash, state: str):
    """The dashboard's count of jobs in *state* (its ``<b>`` element)."""
    return dash.locator(f".nbf-count-{state} b")


def expect_counts(dash, timeout_ms: int = 30_000, **counts: int) -> None:
    """Each dashboard counter named in *counts* (``running=1``) comes to read its
    number, waiting up to *timeout_ms* for each."""
    from playwright.sync_api import expect

    for state, n in counts.items():
        expect(dashboard_counter(dash, state)).to_have_text(str(n), timeout=timeout_ms)


def cancel_from_dashboard(page, dash, name: str) -> None:
    """Pick job *name* in the dashboard's dropdown and press Cancel; then its
    row must say ``cancelled`` and the cancelled counter read 1."""
    from playwright.sync_api import expect

    select = dash.locator(".nbf-job-select select")
    select.select_option(index=option_index(select, name))
    cancel = dash.locator("button.nbf-cancel")
    expect(cancel).to_be_enabled(timeout=10_000)
    cancel.click()
    row = dash.locator(".nbf-table tr", has=page.locator("td", has_text=name))
    expect(row.locator("td").nth(3)).to_have_text("cancelled", timeout=30_000)
    expect(dashboard_counter(dash, "cancelled")).to_have_text("1", timeout=10_000)
