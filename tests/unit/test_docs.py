"""The docs match the code: the module map in docs/architecture.md, and the README's links.

Every module under ``nbfrost/`` has a row, every row names a module that
exists, and each row's imports column lists exactly the nbfrost modules
that module imports (the import graph of ``test_structure.py``, read from
the source).
"""

from __future__ import annotations

import re
from pathlib import Path

from test_structure import PACKAGE_DIR, package_graph

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
_ROW = re.compile(r"^\| `(?P<path>[^`]+\.py)` \|(?P<owns>.*)\| (?P<imports>[^|]*) \|$")


def module_of(path: str) -> str:
    """``notebook/badge.py`` -> ``nbfrost.notebook.badge``; ``__init__.py`` -> its package."""
    parts = ["nbfrost", *Path(path).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_map() -> dict[str, set[str]]:
    """Module -> the modules its row says it imports, from the page's module map."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines():
        m = _ROW.match(line)
        if m is None:
            continue
        module = module_of(m["path"])
        assert module not in rows, f"{m['path']} has two rows in the module map"
        cell = m["imports"].strip()
        rows[module] = set() if cell == "—" else {f"nbfrost.{n.strip()}" for n in cell.split(",")}
    return rows


def short(modules: set[str]) -> str:
    return ", ".join(sorted(m.removeprefix("nbfrost.") for m in modules)) or "—"


def test_the_map_reads_its_rows():
    rows = module_map()
    assert rows["nbfrost.registry"] >= {"nbfrost.job", "nbfrost.states"}
    assert rows["nbfrost.defaults"] == set()
    assert "nbfrost.notebook.dashboard" in rows  # notebook/dashboard/__init__.py


def test_every_module_has_a_row_and_every_row_a_module():
    code = set(package_graph())
    documented = set(module_map())
    missing = sorted(code - documented)
    gone = sorted(documented - code)
    files = {m: str(p.relative_to(PACKAGE_DIR)) for m, p in
             ((".".join(["nbfrost", *p.relative_to(PACKAGE_DIR).with_suffix("").parts])
               .removesuffix(".__init__"), p) for p in PACKAGE_DIR.rglob("*.py"))}
    assert not missing, ("add a row to the module map in docs/architecture.md for: "
                         + ", ".join(files.get(m, m) for m in missing))
    assert not gone, f"the module map in docs/architecture.md names modules that do not exist: {gone}"


def test_each_row_lists_the_modules_it_imports():
    graph = package_graph()
    wrong = [f"{module}: the page says {short(said)}; the code imports {short(graph[module])}"
             for module, said in sorted(module_map().items())
             if module in graph and said != graph[module]]
    assert not wrong, "fix the imports column of docs/architecture.md's module map:\n" + "\n".join(wrong)


# ------------------------------------------------------------ the landing page
README = ROOT / "README.md"


def test_the_readme_is_a_short_landing_page_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200, "README.md is a landing page; the rest belongs in docs/"
    assert "make demo" in text and "make test" in text


def test_the_readmes_relative_links_point_at_files_that_exist():
    text = README.read_text(encoding="utf-8")
    targets = [t.split("#", 1)[0] for t in re.findall(r"\]\(([^)\s]+)\)", text)
               if "://" not in t and not t.startswith("#")]
    assert targets, "README.md links into the docs"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


# ------------------------------------------------------ the configuration page
CONFIGURATION = ROOT / "docs" / "configuration.md"
_TRAIT_ROW = re.compile(r"^\| `(?P<name>\w+)` \| (?P<default>[^|]+) \|")


def documented_traits() -> dict[str, str]:
    section = CONFIGURATION.read_text(encoding="utf-8").split("## The magics' settings", 1)[1]
    section = section.split("\n## ", 1)[0]
    return {m["name"]: m["default"].strip() for m in map(_TRAIT_ROW.match, section.splitlines()) if m}


def test_the_configuration_table_names_every_setting_with_its_default():
    from nbfrost.notebook.magics import FrostMagics

    traits = FrostMagics.class_traits(config=True)
    documented = documented_traits()
    assert sorted(documented) == sorted(traits), (
        "docs/configuration.md's table of FrostMagics settings differs from the traits: "
        f"missing {sorted(set(traits) - set(documented))}, "
        f"not traits {sorted(set(documented) - set(traits))}")
    for name, cell in documented.items():
        try:
            number = float(cell)
        except ValueError:
            continue  # words ("one per core") or strings, read by people
        assert number == float(traits[name].default_value), (
            f"docs/configuration.md: {name} defaults to {traits[name].default_value!r}, "
            f"the table says {cell}")
