"""binder/ holds what mybinder.org needs to launch the quickstart with
nbfrost installed from this repository; its files parse and its dependency
list stays in step with pyproject.toml."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
#: What Binder may install beyond nbfrost's runtime dependencies: the front
#: end (JupyterLab) and the extras the notebooks use.
FRONT_END = {"jupyterlab"}
NOTEBOOK_EXTRAS = ("dask",)


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def requirements() -> dict[str, Requirement]:
    out: dict[str, Requirement] = {}
    for number, line in enumerate((BINDER / "requirements.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"line {number}: pip options belong in postBuild"
        req = Requirement(line)  # raises InvalidRequirement on a bad line
        name = canonicalize_name(req.name)
        assert name not in out, f"line {number}: {req.name} listed twice"
        out[name] = req
    return out


def by_name(specs: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, specs)}


def test_requirements_match_the_runtime_dependencies():
    project = pyproject()["project"]
    runtime = by_name(project["dependencies"])
    reqs = requirements()
    missing = sorted(set(runtime) - set(reqs))
    assert not missing, f"binder/requirements.txt lacks runtime dependencies {missing}"
    for name, req in runtime.items():
        assert SpecifierSet(str(reqs[name].specifier)) == req.specifier, (
            f"{name}: binder pins {reqs[name].specifier}, pyproject says {req.specifier}")
    extras = {}
    for extra in NOTEBOOK_EXTRAS:
        extras.update(by_name(project["optional-dependencies"][extra]))
    for name, req in reqs.items():
        if name in runtime or name in FRONT_END:
            continue
        assert name in extras, (f"binder installs {name}, which is neither a runtime "
                                f"dependency nor in the extras {NOTEBOOK_EXTRAS}")
        assert req.specifier == extras[name].specifier
    assert FRONT_END <= set(reqs)
    assert "nbfrost" not in reqs  # installed from the repository, by postBuild


def test_post_build_installs_nbfrost_from_the_repository():
    post = BINDER / "postBuild"
    text = post.read_text()
    assert text.startswith("#!"), "postBuild needs a shebang"
    assert os.access(post, os.X_OK), "postBuild must be executable"
    assert "set -e" in text  # a failed install fails the Binder build
    assert re.search(r"pip install\b.*(-e\s+\.|\s\.)\s*$", text, re.M), text
    bash = shutil.which("bash")
    assert bash, "bash is needed to check postBuild"
    result = subprocess.run([bash, "-n", str(post)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_runtime_satisfies_requires_python():
    line = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+\.\d+)", line)
    assert match, f"runtime.txt must read like 'python-3.11', got {line!r}"
    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    assert requires.contains(match.group(1) + ".0")


def test_binder_launches_an_existing_notebook():
    assert (ROOT / "notebooks" / "quickstart.ipynb").is_file()


def test_no_binder_link_points_at_a_placeholder_repository():
    """There is no public repository yet: no badge may launch ``OWNER/...``."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for link in re.findall(r"\(https://mybinder\.org/v2/gh/[^)\s]+\)", path.read_text()):
            assert "OWNER" not in link, f"{path.relative_to(ROOT)}: {link} is a placeholder"


def test_the_docs_say_how_to_launch_binder():
    page = (ROOT / "docs" / "getting-started.md").read_text()
    assert "mybinder.org/v2/gh/" in page and "quickstart.ipynb" in page
