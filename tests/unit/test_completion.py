"""Tab completion of ``%frost`` and ``%%frost``.

In a real IPython InteractiveShell through ``Completer.completions`` (what
ipykernel's completion uses) and ``shell.complete`` (the legacy API), and in
a real kernel through ``complete_request``, where the job's state and name
travel as the completion's type in ``metadata._jupyter_types_experimental``.
"""

from __future__ import annotations

import threading

import pytest
from IPython.core.completer import provisionalcompleter

import nbfrost
from nbfrost.notebook.completion import IDENTIFIER, FrostMatcher
from nbfrost.notebook.magics import _SUBCOMMANDS, FrostMagics


@pytest.fixture
def shell(ip, thread_baseline):
    ip.run_line_magic("load_ext", "nbfrost")
    yield ip
    ip.run_line_magic("unload_ext", "nbfrost")


@pytest.fixture
def jobs(shell):
    """Three jobs: 0 'sleeper' running, 1 'quick' succeeded, 2 'later' queued behind 0
    on a one-worker dispatcher."""
    shell.run_line_magic("config", "FrostMagics.workers = 1")
    d = nbfrost.get_dispatcher()
    gate = threading.Event()
    quick = d.queue(lambda: 1, name="quick")
    quick.wait(10)
    started = threading.Event()

    def sleeper() -> None:
        started.set()
        gate.wait(30)

    running = d.queue(sleeper, name="sleeper")
    assert started.wait(10)
    queued = d.queue(lambda: 2, name="later")
    yield {"quick": quick.id, "sleeper": running.id, "later": queued.id}
    gate.set()
    d.wait(timeout=10)
    shell.config.pop("FrostMagics", None)


def complete(shell, code: str, cursor: int | None = None) -> list:
    cursor = len(code) if cursor is None else cursor
    with provisionalcompleter():
        return list(shell.Completer.completions(code, cursor))


def texts(shell, code: str) -> list[str]:
    return [c.text for c in complete(shell, code)]


def test_subcommands_complete_and_store_does_not(shell):
    got = complete(shell, "%frost st")
    assert [c.text for c in got] == ["status"]  # not %store
    assert got[0].start == len("%frost ") and got[0].end == len("%frost st")
    assert got[0].type == "subcommand"
    assert texts(shell, "%frost ") == sorted(_SUBCOMMANDS)
    assert texts(shell, "%frost re") == ["result", "resume", "retry"]
    # the legacy API (ipykernel without Jedi-style completions) agrees
    assert shell.complete("", "%frost st", len("%frost st")) == ("st", ["status"])


def test_job_ids_carry_their_state_as_a_short_type(shell, jobs):
    q, s, later = jobs["quick"], jobs["sleeper"], jobs["later"]
    for sub in ("status", "output", "result"):
        got = complete(shell, f"%frost {sub} ")
        assert [(c.text, c.type) for c in got] == [  # newest first
            (str(later), "queued"), (str(s), "running"), (str(q), "succeeded")], sub
    # only the jobs the command can act on
    assert texts(shell, "%frost cancel ") == [str(later), str(s)]
    assert texts(shell, "%frost wait ") == [str(later), str(s)]
    assert texts(shell, f"%frost wait {later} ") == [str(s)]  # given ids are not offered again
    assert texts(shell, "%frost retry ") == [str(q)]
    # a prefix filters; a complete positional takes nothing more
    assert texts(shell, f"%frost status {q}") == [str(q)]
    assert texts(shell, f"%frost status {q} ") == ["--json"]
    # the right-hand side of an assignment, and a line inside a bigger cell
    assert texts(shell, "x = %frost result ")[0] == str(later)
    code = "a = 1\n%frost status "
    assert next(c.text for c in complete(shell, code)) == str(later)


def test_states_and_options_come_from_the_parsers(shell):
    states = [s.value for s in nbfrost.JobState]
    assert texts(shell, "%frost jobs --state ") == sorted(states)
    got = complete(shell, "%frost jobs --state=ru")
    assert [(c.text, c.type) for c in got] == [("running", "state")]
    assert got[0].start == len("%frost jobs --state=")
    assert texts(shell, "%frost jobs --state running --state f") == ["failed"]
    assert texts(shell, "%frost status -") == ["--json"]
    assert "--json" not in texts(shell, "%frost status --json -")  # given: not offered again
    assert "--tag" in texts(shell, "%%frost --tag a --tag b --")  # may repeat
    assert "--name" not in texts(shell, "%%frost --name a --")
    assert "-n" not in texts(shell, "%%frost --name a -")
    assert texts(shell, "%frost jobs --") == ["--name", "--state", "--tag"]

    parser = FrostMagics.frost_cell.parser
    options = sorted(o for a in parser._actions for o in a.option_strings)
    assert "--timeout" in options and "-n" in options
    assert sorted(texts(shell, "%%frost -")) == options
    got = complete(shell, "%%frost -n x --ti")
    assert [(c.text, c.type) for c in got] == [("--timeout", "option")]
    assert got[0].start == len("%%frost -n x ")
    # only on the cell's first line; the body is Python
    assert "--timeout" not in texts(shell, "%%frost\nx = 1\n--ti")


def test_long_names_stay_out_of_the_type_and_errors_stay_quiet(shell, monkeypatch, capsys):
    d = nbfrost.get_dispatcher()
    t = d.queue(lambda: 1, name="x" * 100)
    t.wait(10)
    (got,) = complete(shell, f"%frost status {t.id}")
    assert got.type == "succeeded"  # one short word: fits JupyterLab's type column

    def broken(*args, **kwargs):
        raise RuntimeError("registry on fire")

    monkeypatch.setattr(type(d.registry), "select", broken)
    assert not any(t.isdigit() for t in texts(shell, "%frost status "))
    assert "registry on fire" not in capsys.readouterr().err


def test_after_completes_job_ids(shell, jobs):
    assert texts(shell, "%%frost --after ")[-1] == str(jobs["quick"])


def test_no_dispatcher_no_ids_and_none_made(shell):
    magics = shell.magics_manager.registry["FrostMagics"]
    assert magics._dispatcher is None
    assert not any(t.isdigit() for t in texts(shell, "%frost status "))
    assert magics._dispatcher is None  # completion never starts a pool


def test_other_code_is_left_alone(shell):
    shell.user_ns["frosty_value"] = 1
    assert "frosty_value" in texts(shell, "frosty_v")
    assert "%timeit" in texts(shell, "%tim")


def test_load_and_unload_mirror_each_other(ip):
    def ours() -> list:
        return [m for m in ip.Completer.custom_matchers
                if getattr(m, "matcher_identifier", None) == IDENTIFIER]

    before = list(ip.Completer.custom_matchers)
    ip.run_line_magic("load_ext", "nbfrost")
    assert len(ours()) == 1 and isinstance(ours()[0], FrostMatcher)
    ip.run_line_magic("load_ext", "nbfrost")  # already loaded: nothing happens
    assert len(ours()) == 1
    for _ in range(3):
        ip.run_line_magic("reload_ext", "nbfrost")
    assert len(ours()) == 1
    assert texts(ip, "%frost st") == ["status"]
    ip.run_line_magic("unload_ext", "nbfrost")
    assert ours() == []
    assert ip.Completer.custom_matchers == before
    assert "status" not in texts(ip, "%frost st")
