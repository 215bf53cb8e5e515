"""The version matrix: the fast tests (tests/unit) on each Python nbfrost
claims that this machine has, and once on the oldest Python at the declared
floors of nbfrost's runtime dependencies.

``make test`` runs it (``make matrix``); ``nox -l`` lists the sessions.  Each
session has its own venv under ``test-artifacts/nox`` (made with uv, reused
by the next run, so a warm run only runs the tests).  A Python this machine
lacks is said and skipped, never an error: the line ``matrix: skipped:`` in
the output names it.

Floors: ``floors`` installs every runtime dependency at exactly the version
pyproject.toml's ``>=`` names (a constraints file made from
``[project] dependencies``), so a floor that does not pass cannot stay."""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent
ARTIFACTS = Path(os.environ.get("ARTIFACTS", ROOT / "test-artifacts")).resolve()

#: The Pythons the matrix runs the fast tests on: every minor nbfrost claims
#: (``requires-python = ">=3.10"``) that has been released, but the one the
#: main test run uses (``make test-fast`` runs there).
PYTHONS = ["3.10", "3.12", "3.13"]
#: The oldest claimed Python: where the declared floors are tested.
OLDEST = PYTHONS[0]
#: What tests/unit needs beyond nbfrost itself (the rest of the test extra is
#: for kernels, browsers and clusters).
UNIT_TOOLS = ["pytest>=7", "pytest-timeout", "hypothesis", "jsonschema", "packaging",
              "tomli; python_version < '3.11'"]
#: The server extension's tests (tests/unit/serverext) also need a Jupyter
#: server; jupyter_server is not a runtime dependency of nbfrost, and its own
#: floors (traitlets>=5.6, ...) would lift nbfrost's, so the floors session
#: leaves them out and says so.
SERVER_TOOLS = ["pytest-jupyter[server]"]
SERVER_TESTS = "tests/unit/serverext"

nox.options.envdir = str(ARTIFACTS / "nox")
nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "uv"
# uv must never fetch a Python of its own: a missing one is skipped instead.
os.environ["UV_PYTHON_DOWNLOADS"] = "never"


def _interpreter(version: str) -> str | None:
    """The path of a Python ``version`` on this machine: ``pythonX.Y`` on
    PATH, else pyenv's newest ``X.Y.*`` (pyenv's shims answer only for the
    active version, so they are not trusted)."""
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    for root in filter(None, roots):
        found = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"),
                       key=lambda p: [int(n) for n in re.findall(r"\d+", Path(p).parts[-3])])
        if found:
            return found[-1]
    path = shutil.which(f"python{version}")
    if path and "shims" not in Path(path).parts:
        return path
    return None


INTERPRETERS = {v: _interpreter(v) for v in PYTHONS}


def _skip_missing(session: nox.Session, version: str) -> None:
    if INTERPRETERS[version] is None:
        session.skip(f"matrix: skipped: no Python {version} on this machine "
                     "(not on PATH, not in pyenv); the fast tests did not run there")


def _run_unit_tests(session: nox.Session, *pytest_args: str) -> None:
    session.run("python", "-c", "import sys, IPython, pandas, traitlets, ipywidgets; "
                "print('versions:', sys.version.split()[0], 'IPython', IPython.__version__, "
                "'pandas', pandas.__version__, 'traitlets', traitlets.__version__, "
                "'ipywidgets', ipywidgets.__version__)", silent=False)
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-ra",
                f"--basetemp={ARTIFACTS}/tmp-{session.name}", "tests/unit", *pytest_args,
                *session.posargs,
                env={"ARTIFACTS": str(ARTIFACTS),
                     "HYPOTHESIS_STORAGE_DIRECTORY": str(ARTIFACTS / "hypothesis")})


def floors() -> list[str]:
    """``name==version`` for each runtime dependency's ``>=`` floor."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    out = []
    for dep in deps:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][^,;\s]*)", dep.strip())
        if match is None:
            raise ValueError(f"pyproject.toml: {dep!r} has no plain >= floor the matrix can test")
        out.append(f"{match[1]}=={match[2]}")
    return out


def _unit(version: str):
    def unit(session: nox.Session) -> None:
        _skip_missing(session, version)
        session.install("-e", ".[dask]", *UNIT_TOOLS, *SERVER_TOOLS)
        _run_unit_tests(session)
    unit.__doc__ = f"The fast tests on Python {version}, with the newest allowed dependencies."
    return unit


def _floors(session: nox.Session) -> None:
    _skip_missing(session, OLDEST)
    constraints = ARTIFACTS / "nox" / "floors.txt"
    constraints.parent.mkdir(parents=True, exist_ok=True)
    constraints.write_text("\n".join(floors()) + "\n")
    session.log("floors: " + ", ".join(floors()))
    session.install("-e", ".", *UNIT_TOOLS, "--constraint", str(constraints))
    session.log(f"floors: {SERVER_TESTS} left out: they need jupyter_server, which is not a "
                "runtime dependency and whose own floors are above nbfrost's")
    _run_unit_tests(session, f"--ignore={SERVER_TESTS}")


_floors.__doc__ = f"The fast tests on Python {OLDEST} with every runtime dependency at its declared floor."

# One session per Python (named by version, not by the interpreter's path); a
# missing Python gets a session without a venv that says so and skips.
for _version in PYTHONS:
    nox.session(python=INTERPRETERS[_version] or False, name=f"unit-{_version}")(_unit(_version))
nox.session(python=INTERPRETERS[OLDEST] or False, name=f"floors-{OLDEST}")(_floors)
