"""A Dispatcher() whose start fails half-way undoes it; a dispatcher in a
process forked from its own says it cannot run jobs there."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest
from helpers import live_threads

import nbfrost

WAIT = 20


def test_a_start_that_fails_half_way_rolls_back(tmp_path, monkeypatch, thread_baseline):
    stdout, stderr = sys.stdout, sys.stderr
    real_start = threading.Thread.start
    started: list[str] = []

    def start(self: threading.Thread) -> None:
        # The third worker thread cannot start (as when the system is out
        # of threads); the history writer and two workers already run.
        if self.name.startswith("nbfrost-") and "history" not in self.name:
            if len(started) == 2:
                raise RuntimeError("can't start new thread")
            started.append(self.name)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    path = tmp_path / "jobs.sqlite"
    with pytest.raises(RuntimeError, match="can't start new thread"):
        nbfrost.Dispatcher(workers=4, history=path)
    monkeypatch.undo()
    assert len(started) == 2  # it did fail half-way
    assert sys.stdout is stdout and sys.stderr is stderr  # the routers are gone
    leftover = [t.name for t in live_threads() - thread_baseline if t.name.startswith("nbfrost")]
    for t in live_threads() - thread_baseline:
        t.join(WAIT)
    assert not [t for t in live_threads() - thread_baseline], leftover
    # The history session it opened is closed, and the file works for the next one.
    with nbfrost.Dispatcher(workers=1, history=path) as d:
        assert d.queue(pow, 2, 3).result(WAIT) == 8
    assert sys.stdout is stdout


_FORKED = textwrap.dedent("""
    import os, sys, warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads
    import nbfrost
    d = nbfrost.Dispatcher(workers=2)
    assert d.queue(pow, 2, 5).result(10) == 32
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            d.queue(pow, 2, 2)
            said = "queued"
        except RuntimeError as exc:
            said = f"refused: {exc}"
        try:
            list(d.map(pow, [1], [1]))
            said += "\\nmap: ran"
        except RuntimeError as exc:
            said += "\\nmap: refused"
        d.shutdown()  # nothing to stop here: returns at once
        fresh = nbfrost.Dispatcher(workers=1)
        said += f"\\nfresh: {fresh.queue(pow, 3, 3).result(10)}"
        fresh.shutdown()
        os.write(w, said.encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    print(b"".join(chunks).decode())
    print(f"child exit: {status}")
    print(f"parent: {d.queue(pow, 2, 6).result(10)}")
    d.shutdown()
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_process_is_told_its_dispatcher_cannot_run_jobs_there():
    out = subprocess.run([sys.executable, "-c", _FORKED], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "NBFROST_PUBLISH": "0"})
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "refused: this dispatcher was started in process" in text, text
    assert "is a fork of it" in text and "create a new nbfrost.Dispatcher()" in text
    assert "map: refused" in text
    assert "fresh: 27" in text  # a new dispatcher in the child works
    assert "child exit: 0" in text
    assert "parent: 64" in text  # the parent's dispatcher is untouched
