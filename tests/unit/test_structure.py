"""The shape of the package: no import cycles, and imports point down the layers.

The import graph is read from the source with `ast`, so it sees every
``import`` and ``from … import``, also those inside functions (a lazy
import is still a dependency).  Imports under ``if TYPE_CHECKING:`` are left
out: they never run.  See docs/architecture.md for the layers.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import nbfrost

PACKAGE_DIR = Path(nbfrost.__file__).parent

#: Layers, bottom first.  A module may import modules of its own layer and of
#: the layers below, never above.  A module belongs to the entry that is the
#: longest prefix of its dotted name (``nbfrost.backends`` covers
#: ``nbfrost.backends.dask`` and whatever lives under it).  A new module must
#: be added here: where it sits is a design decision worth making explicitly.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("leaves", ("nbfrost._version", "nbfrost.defaults", "nbfrost.errors", "nbfrost.states",
                "nbfrost.checks", "nbfrost.formatting", "nbfrost.timeouts", "nbfrost.capture",
                "nbfrost.progress", "nbfrost.cells", "nbfrost.coroutines",
                "nbfrost.tracebacks", "nbfrost.forward", "nbfrost.budget", "nbfrost.filters",
                "nbfrost.arguments", "nbfrost.notices", "nbfrost.rules",
                "nbfrost.published", "nbfrost.protocols", "nbfrost.exits")),
    ("model", ("nbfrost.job", "nbfrost.tracker")),
    ("state", ("nbfrost.registry", "nbfrost.frames", "nbfrost.history", "nbfrost.publisher")),
    ("running", ("nbfrost.backends",)),
    ("facade", ("nbfrost.dispatcher", "nbfrost.executor", "nbfrost.bulk", "nbfrost.schedules")),
    ("shell", ("nbfrost.notebook.shell",)),
    # The notebook surface: every other module of nbfrost.notebook.
    ("surface", ("nbfrost.notebook",)),
    # The package __init__ re-exports the public names, so it is above all
    # (this entry covers the __init__ only, not the modules inside).
    ("package", ("nbfrost",)),
    # Outside the kernel: the Jupyter server extension reads what publishers
    # write (nbfrost.published) and never imports the engine (a test below).
    ("server", ("nbfrost.server",)),
]
PACKAGE = "nbfrost"


# ----------------------------------------------------------------- the graph
def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """The package modules one module imports (resolved to known module names)."""

    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module = module
        self.is_package = is_package
        self.known = known
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _add(self, name: str) -> None:
        """Add the longest known module that *name* is, or is inside of."""
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in self.known:
                if candidate != self.module:
                    self.found.add(candidate)
                return

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".")
            if not self.is_package:
                base = base[:-1]
            base = base[:len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        for alias in node.names:
            submodule = f"{origin}.{alias.name}"
            if submodule in self.known:  # "from . import capture" names a module
                if submodule != self.module:
                    self.found.add(submodule)
            else:
                self._add(origin)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module name -> the package modules it imports, for the package at *root*."""
    files = {module_name(root, f): f for f in sorted(root.rglob("*.py"))}
    graph = {}
    for module, path in files.items():
        visitor = _Imports(module, path.name == "__init__.py", set(files))
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        graph[module] = visitor.found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, as the path that closes it (first module repeated at the end)."""
    found: list[list[str]] = []
    seen_cycles: set[frozenset[str]] = set()
    done: set[str] = set()

    def walk(module: str, path: list[str], on_path: set[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in on_path:
                loop = [*path[path.index(target):], target]
                if frozenset(loop) not in seen_cycles:
                    seen_cycles.add(frozenset(loop))
                    found.append(loop)
            elif target not in done:
                on_path.add(target)
                walk(target, [*path, target], on_path)
                on_path.discard(target)
        done.add(module)

    for start in sorted(graph):
        if start not in done:
            walk(start, [start], {start})
    return found


@functools.lru_cache(maxsize=1)
def package_graph() -> dict[str, set[str]]:
    return import_graph(PACKAGE_DIR)


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module.startswith(prefix + ".") and prefix != PACKAGE
            if (module == prefix or inside) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


# -------------------------------------------------------------------- tests
def test_the_graph_sees_imports_in_functions_and_skips_type_checking(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from .c import C\n"
                              "else:\n    import pkg.sub.d\n")
    (pkg / "c.py").write_text("from .a import f\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import a\n")
    (pkg / "sub" / "d.py").write_text("def g():\n    from ..a import f\n")
    graph = import_graph(pkg)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.sub.d"},
                     "pkg.c": {"pkg.a"}, "pkg.sub": {"pkg.a"}, "pkg.sub.d": {"pkg.a"}}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.d", "pkg.a"]]


def test_no_import_cycles():
    graph = package_graph()
    # The graph really is read from function bodies: magics imports the
    # dashboard only when %frost shows it.
    assert "nbfrost.notebook.dashboard.widget" in graph["nbfrost.notebook.magics"]
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_every_module_has_a_layer():
    missing = [m for m in package_graph() if layer_of(m) < 0]
    assert not missing, (f"add {missing} to LAYERS in {Path(__file__).name}: every module "
                         "sits in one layer of the package")


@pytest.mark.parametrize("module", sorted(package_graph()))
def test_imports_point_down(module):
    graph = package_graph()
    mine = layer_of(module)
    upward = [f"{target} ({LAYERS[layer_of(target)][0]})" for target in sorted(graph[module])
              if layer_of(target) > mine]
    assert not upward, (f"{module} ({LAYERS[mine][0]}) imports from a higher layer: "
                        f"{', '.join(upward)}")


def test_the_server_extension_reads_files_and_never_imports_the_engine():
    """nbfrost.server sees processes only through what they publish."""
    graph = package_graph()
    server = [m for m in graph if m == "nbfrost.server" or m.startswith("nbfrost.server.")]
    assert server
    reached: set[str] = set()
    todo = list(server)
    while todo:
        for target in graph[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert reached - set(server) == {"nbfrost.published", "nbfrost.defaults"}
