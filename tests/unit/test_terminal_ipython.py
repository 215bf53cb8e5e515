"""``%frost`` in terminal IPython (a real ``ipython`` process reading its
input from a pipe): a text summary, not a widget's repr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

IPYTHON = Path(sys.executable).parent / "ipython"

SESSION = """\
%load_ext nbfrost
import nbfrost
d = nbfrost.get_dispatcher()
ok = d.wait([d.queue(abs, -i, name=f"square-{i}") for i in range(3)], timeout=10)
bad = d.queue(int, "x", name="parse"); ok = bad.wait(10)
%frost
%frost bogus
"""


def test_frost_in_terminal_ipython_is_a_text_summary(tmp_path):
    env = {"HOME": str(tmp_path), "IPYTHONDIR": str(tmp_path / ".ipython"),
           "PATH": str(IPYTHON.parent), "NBFROST_PUBLISH": "0", "TERM": "dumb"}
    proc = subprocess.run([str(IPYTHON), "--no-banner", "--colors=NoColor", "--simple-prompt",
                           "--HistoryManager.enabled=False"],
                          input=SESSION, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env)
    out = proc.stdout
    assert "nbfrost.Dashboard" not in out and "VBox(" not in out and "Widget" not in out, out
    assert "nbfrost threads: 0/4 workers busy, throughput " in out, out
    assert "queued 0  running 0  succeeded 3  failed 1  cancelled 0" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert rows[0][:3] == ["3", "failed", "parse"] and rows[0][-1] == "ValueError", out
    assert [r[:3] for r in rows[1:4]] == [["2", "succeeded", "square-2"],
                                          ["1", "succeeded", "square-1"],
                                          ["0", "succeeded", "square-0"]], out
    assert "%frost status ID for one job; %frost help for every subcommand" in out
    # A typo: one line naming the closest subcommand.
    usage = [line for line in (out + proc.stderr).splitlines() if "unknown subcommand" in line]
    assert len(usage) == 1 and "did you mean '%frost " in usage[0], out + proc.stderr
