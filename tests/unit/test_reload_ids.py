"""``%reload_ext nbfrost`` in a real IPython InteractiveShell: one line says
what it cancelled, and the new dispatcher's ids go on from the old one's, so
an id never means two jobs in one process."""

from __future__ import annotations

import threading

import pytest
from helpers import running
from IPython.core.error import UsageError

import nbfrost
from nbfrost.notebook.magics import find_magics


@pytest.fixture
def shell(ip, thread_baseline):
    ip.run_cell("%load_ext nbfrost")
    ip.user_ns["gate"] = threading.Event()
    yield ip
    ip.user_ns["gate"].set()
    ip.run_cell("%unload_ext nbfrost")


def test_reload_says_what_it_cancelled_and_ids_stay_unique(shell, capfd):
    d = nbfrost.get_dispatcher()
    gate = shell.user_ns["gate"]
    first = d.queue(lambda: 1, name="done")
    first.wait(10)

    def train():
        while not gate.wait(0.01):  # Python-level: an interrupt stops it
            pass

    busy = d.queue(train, name="train")
    waiting = d.queue(int, name="later", after=[busy])
    running(busy)
    find_magics(shell).grace = 0.2   # the running job gets 0.2 s, then an interrupt
    capfd.readouterr()
    result = shell.run_cell("%reload_ext nbfrost")
    assert result.success
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("nbfrost:")]
    assert lines == [f"nbfrost: unloading cancelled 2 unfinished jobs (jobs {busy.id} 'train', "
                     f"{waiting.id} 'later'); new jobs get new ids"], err
    assert busy.state is nbfrost.JobState.CANCELLED

    d2 = nbfrost.get_dispatcher()
    assert d2 is not d
    again = d2.queue(lambda: 2, name="after reload")
    assert again.id == waiting.id + 1           # not 0 again
    assert d2.stats()["submitted"] == 1
    assert [s.id for s in d2.jobs()] == [again.id]
    with pytest.raises(UsageError, match=rf"job {first.id} belonged to an earlier dispatcher "
                                         rf"of this process .* start at {again.id}"):
        shell.run_line_magic("frost", f"status {first.id}")
    again.wait(10)


def test_reload_with_nothing_running_says_nothing(shell, capfd):
    d = nbfrost.get_dispatcher()
    d.queue(lambda: 1).wait(10)
    capfd.readouterr()
    assert shell.run_cell("%reload_ext nbfrost").success
    assert "nbfrost:" not in capfd.readouterr().err
