"""Every code example in README.md and in the docs runs, so they cannot drift from the code.

Rules for authors of README.md and of every page under docs/ (``*.md``):
  * ```python blocks are plain Python (they must parse with `ast`);
  * ```ipython blocks may use magics (``%load_ext nbfrost``, ``%%frost``, ...);
  * the blocks of one page run, in order, in one namespace, in a real IPython
    ``InteractiveShell`` in a fresh process whose working directory is an
    empty tmp dir, so a later block may use what an earlier one on the same
    page defined; each page starts from nothing;
  * a block should assert what it claims (``assert t.result() == 6``);
  * blocks in other languages (```bash, ```text, plain ```) are shown, not run.
Nothing is skipped: a README without a single python block fails.  This
module sits in tests/cluster because the Dask page starts a LocalCluster.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RUN_LANGS = {"python", "ipython"}
TIMEOUT_S = 240


def pages() -> list[Path]:
    """README.md, then every Markdown page of the docs (the notebooks' link excluded)."""
    found = [p for p in sorted(DOCS.rglob("*.md")) if "notebooks" not in p.relative_to(DOCS).parts]
    return [README, *found]


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


# A fenced block: ``` or ~~~ at the start of a line, an info string, the body,
# and the same fence again.
_FENCE = re.compile(r"^(?P<fence>```|~~~)[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                    re.M | re.S)


def code_blocks(text: str) -> list[dict]:
    """The runnable blocks of a Markdown text: index, language, line, source."""
    blocks: list[dict] = []
    for m in _FENCE.finditer(text):
        info = m.group("info").strip().split()
        lang = info[0].lower() if info else ""
        if lang in RUN_LANGS:
            line = text.count("\n", 0, m.start()) + 1
            blocks.append({"index": len(blocks), "lang": lang, "line": line,
                           "source": m.group("body")})
    return blocks


def test_fence_parser_finds_blocks_in_order():
    text = ("intro\n```python\nx = 1\n```\n```bash\nmake test\n```\n"
            "~~~ipython\n%load_ext nbfrost\n~~~\n```\nplain\n```\n```Python title\ny = x\n```\n")
    got = [(b["lang"], b["line"], b["source"]) for b in code_blocks(text)]
    assert got == [("python", 2, "x = 1\n"), ("ipython", 8, "%load_ext nbfrost\n"),
                   ("python", 14, "y = x\n")]


_RUNNER = r"""
import json, sys, traceback
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

blocks = json.loads(sys.stdin.read())
cfg = Config()
cfg.HistoryManager.enabled = False
shell = InteractiveShell.instance(config=cfg)
report = []
for b in blocks:
    result = shell.run_cell(b["source"], store_history=True)
    error = result.error_in_exec or result.error_before_exec
    entry = {"index": b["index"], "ok": bool(result.success), "error": None}
    if error is not None:
        entry["error"] = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    report.append(entry)
    if not result.success:
        break
# Leave nothing running: shut down what the examples started.
import nbfrost
for value in list(shell.user_ns.values()):
    if isinstance(value, nbfrost.Dispatcher):
        value.shutdown(wait=True, cancel_pending=True, timeout=10)
if "nbfrost" in shell.extension_manager.loaded:
    shell.run_line_magic("unload_ext", "nbfrost")
sys.stdout.write("\nNBFROST-README-REPORT " + json.dumps(report) + "\n")
sys.stdout.flush()
"""


def test_readme_has_runnable_examples():
    blocks = code_blocks(README.read_text(encoding="utf-8"))
    assert any(b["lang"] == "python" for b in blocks), (
        "README.md has no ```python example; every example must be a ```python "
        "(or ```ipython) block so that this test runs it")


def test_the_docs_pages_are_found():
    names = {page_id(p) for p in pages()}
    assert {"README.md", "docs/getting-started.md", "docs/guide/api.md"} <= names


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_python_blocks_are_plain_python(page):
    for b in code_blocks(page.read_text(encoding="utf-8")):
        if b["lang"] != "python":
            continue
        try:
            ast.parse(b["source"])
        except SyntaxError as exc:
            pytest.fail(f"{page_id(page)} line {b['line']}: this ```python block is not plain "
                        f"Python ({exc.msg}, block line {exc.lineno}); mark it ```ipython if "
                        "it uses magics")


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_every_example_of_the_page_runs(page, tmp_path):
    blocks = code_blocks(page.read_text(encoding="utf-8"))
    if not blocks:
        return  # a page without examples has nothing to run
    proc = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps(blocks),
                          capture_output=True, text=True, cwd=tmp_path, timeout=TIMEOUT_S)
    marker = "NBFROST-README-REPORT "
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(marker)]
    assert proc.returncode == 0 and lines, (
        f"the example runner crashed on {page_id(page)} (exit {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    report = json.loads(lines[-1][len(marker):])
    for entry in report:
        if not entry["ok"]:
            b = blocks[entry["index"]]
            pytest.fail(f"{page_id(page)}: the example at line {b['line']} ({b['lang']}) failed:\n"
                        f"{b['source']}\n{entry['error'] or proc.stdout[-2000:]}")
    assert len(report) == len(blocks), f"not every example of {page_id(page)} ran"
