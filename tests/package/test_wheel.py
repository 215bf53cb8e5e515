"""The package as a user gets it: ``python -m build`` makes an sdist and a
wheel from a clean copy of the sources (the JupyterLab extension built with
node at that moment), the wheel is installed into a fresh venv (not editable)
and used from another working directory.  The wheel must carry nbfrost, its
data files, the prebuilt Jobs panel and the config that enables the server
extension, and nothing from tests/ or notebooks/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import nbfrost

# Building (node, an isolated build env) and a fresh venv take minutes on a loaded machine.
pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
VERSION = nbfrost.__version__


def _run(args, cwd, timeout=900, env=None):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return ANSI.sub("", done.stdout + done.stderr)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel, sdist) built once from the files git knows (no node_modules, no
    earlier build), in build's isolated environment."""
    base = tmp_path_factory.mktemp("package")
    src = base / "src"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    dist = base / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(src)], cwd=base)
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    assert [w.name for w in wheels] == [f"nbfrost-{VERSION}-py3-none-any.whl"]
    assert [s.name for s in sdists] == [f"nbfrost-{VERSION}.tar.gz"]
    return wheels[0], sdists[0]


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory):
    """A fresh venv with the wheel (and JupyterLab, to list extensions) installed."""
    wheel, _ = built
    where = tmp_path_factory.mktemp("venv") / "v"
    _run([sys.executable, "-m", "venv", str(where)], cwd=where.parent)
    py = where / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel), "jupyterlab", "ipykernel"], cwd=where.parent)
    return where


@pytest.fixture
def elsewhere(tmp_path):
    """Another working directory: nothing of the checkout is importable from it."""
    return tmp_path


def _env(venv):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JUPYTER", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_wheel_holds_the_package_its_data_and_the_lab_extension_but_no_tests(built):
    wheel, _ = built
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    outside = ("notebooks/", "docs/", "benchmarks/")
    assert not [n for n in names if n.endswith(".ipynb") or n.startswith(outside)]
    for name in ["nbfrost/__init__.py", "nbfrost/py.typed", "nbfrost/schema/status.schema.json",
                 "nbfrost/notebook/dashboard/dashboard.css"]:
        assert name in names
    data = f"nbfrost-{VERSION}.data/data/"
    labext = data + "share/jupyter/labextensions/nbfrost/"
    assert labext + "package.json" in names
    assert labext + "install.json" in names
    assert any(re.fullmatch(re.escape(labext) + r"static/remoteEntry\.[0-9a-f]+\.js", n) for n in names)
    assert data + "etc/jupyter/jupyter_server_config.d/nbfrost.json" in names
    assert json.loads(zipfile.ZipFile(wheel).read(labext + "package.json"))["version"] == VERSION
    meta = zipfile.ZipFile(wheel).read(f"nbfrost-{VERSION}.dist-info/METADATA").decode()
    assert f"Version: {VERSION}" in meta
    for label in ("Documentation", "Source", "Changelog"):
        assert f"Project-URL: {label}, " in meta


def test_sdist_carries_the_sources_and_the_built_extension(built):
    _, sdist = built
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    top = f"nbfrost-{VERSION}/"
    for name in ["pyproject.toml", "package.json", "yarn.lock", "src/index.ts", "style/base.css",
                 "nbfrost/labextension/package.json", "jupyter-config/jupyter_server_config.d/nbfrost.json"]:
        assert top + name in names
    assert not [n for n in names if "/node_modules/" in n]


def test_installed_wheel_imports_and_runs_a_frost_cell_in_a_real_shell(venv, elsewhere):
    script = r'''
import json, sys, time
from importlib import resources
import nbfrost
assert "site-packages" in nbfrost.__file__, nbfrost.__file__
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "nbfrost")
result = ip.run_cell("%%frost -n answer -o answer\nx = 6 * 7\nx")
assert result.success, result
tracker = result.result
assert tracker.result(timeout=30) == 42
deadline = time.monotonic() + 10
while ip.user_ns.get("answer") != 42 and time.monotonic() < deadline:
    time.sleep(0.01)
schema = json.loads((resources.files("nbfrost") / "schema" / "status.schema.json").read_text())
css = (resources.files("nbfrost") / "notebook" / "dashboard" / "dashboard.css").read_text()
ip.run_line_magic("unload_ext", "nbfrost")
print(json.dumps({"file": nbfrost.__file__, "answer": ip.user_ns.get("answer"),
                  "schema": schema["title"], "css": len(css), "version": nbfrost.__version__}))
'''
    out = _run([str(venv / "bin" / "python"), "-c", script], cwd=elsewhere, env=_env(venv))
    facts = json.loads(out.strip().splitlines()[-1])
    assert facts["file"].startswith(str(venv))
    assert facts["answer"] == 42
    assert facts["schema"] == "nbfrost JobStatus"
    assert facts["css"] > 0
    assert facts["version"] == VERSION


def test_installed_wheel_enables_the_server_extension_and_the_lab_extension(venv, elsewhere):
    env = _env(venv)
    jupyter = str(venv / "bin" / "jupyter")
    server = _run([jupyter, "server", "extension", "list"], cwd=elsewhere, env=env)
    assert re.search(r"^\s*nbfrost enabled\s*$", server, re.M), server
    assert re.search(rf"^\s*nbfrost {re.escape(VERSION)} OK\s*$", server, re.M), server
    lab = _run([jupyter, "labextension", "list"], cwd=elsewhere, env=env)
    assert re.search(rf"^\s*nbfrost v{re.escape(VERSION)} enabled OK \(python, nbfrost\)", lab, re.M), lab
