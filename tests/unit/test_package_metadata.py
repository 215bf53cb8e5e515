"""The package's metadata agrees with itself: one version (nbfrost/_version.py,
read by hatch, and package.json kept in step), the wheel's shared data points
at files that exist, the server extension is enabled by the config the wheel
installs, and what the JupyterLab extension build writes is gitignored."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nbfrost

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_JSON = json.loads((ROOT / "package.json").read_text())


def test_the_version_is_written_once_and_package_json_follows_it():
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "nbfrost/_version.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", nbfrost.__version__)
    assert PACKAGE_JSON["version"] == nbfrost.__version__, (
        "package.json's version must equal nbfrost/_version.py's")


def test_build_uses_hatchling_and_the_jupyter_builder():
    build = PYPROJECT["build-system"]
    assert build["build-backend"] == "hatchling.build"
    assert any(r.startswith("hatch-jupyter-builder") for r in build["requires"])
    hook = PYPROJECT["tool"]["hatch"]["build"]["hooks"]["jupyter-builder"]
    assert hook["build-function"] == "hatch_jupyter_builder.npm_builder"
    assert "nbfrost/labextension/package.json" in hook["ensured-targets"]
    assert PACKAGE_JSON["jupyterlab"]["outputDir"] == "nbfrost/labextension"
    assert PACKAGE_JSON["name"] == "nbfrost"


def test_project_urls_are_in_the_metadata():
    urls = PYPROJECT["project"]["urls"]
    assert set(urls) >= {"Documentation", "Source", "Changelog"}


def test_wheel_shared_data_installs_the_lab_extension_and_enables_the_server_extension():
    shared = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared["nbfrost/labextension"] == "share/jupyter/labextensions/nbfrost"
    assert shared["install.json"] == "share/jupyter/labextensions/nbfrost/install.json"
    config_dir = "jupyter-config/jupyter_server_config.d"
    assert shared[config_dir] == "etc/jupyter/jupyter_server_config.d"
    config = json.loads((ROOT / config_dir / "nbfrost.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"nbfrost": True}}}
    install = json.loads((ROOT / "install.json").read_text())
    assert install["packageName"] == "nbfrost"


def test_labextension_paths_name_the_built_folder():
    assert nbfrost._jupyter_labextension_paths() == [{"src": "labextension", "dest": "nbfrost"}]


@pytest.mark.parametrize("path", [
    "node_modules/x", "lib/index.js", "nbfrost/labextension/package.json", "tsconfig.tsbuildinfo",
    ".yarn/install-state.gz",
])
def test_what_the_extension_build_writes_is_gitignored(path):
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert done.returncode == 0, f"{path} is not gitignored"


@pytest.mark.parametrize("path", ["src/index.ts", "package.json", "yarn.lock", "style/base.css"])
def test_the_extension_sources_are_not_gitignored(path):
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert done.returncode == 1, f"{path} is gitignored"
