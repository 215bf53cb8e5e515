"""The opt-in SQLite job history: the file's contents, lost jobs after a real
SIGKILL (of a plain process and of a Jupyter kernel), bad files, write
failures, and thread cleanup."""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from history_helpers import check_lost, child_code, committed, entries, pd_nat, row, us, wait_until

import nbfrost
from nbfrost.history import format as history_format
from nbfrost.history import history, reader
from nbfrost.history import writer as history_writer


# ------------------------------------------------------------ contents
def test_every_transition_is_recorded_with_its_time(tmp_path, thread_baseline):
    path = tmp_path / "jobs.sqlite"
    gate_a, gate_b = threading.Event(), threading.Event()
    with nbfrost.Dispatcher(workers=1, history=path) as d:
        a = d.queue(gate_a.wait, 10, name="a", tags=["x", "<y>"])
        b = d.queue(gate_b.wait, 10, name="b")
        wait_until(lambda: a.state is nbfrost.JobState.RUNNING, what="a running")
        assert d.flush_history(10)
        live = history(path)
        assert row(live, a.id)["state"] == "running"      # a live session keeps its states
        assert row(live, b.id)["state"] == "queued"
        assert row(live, a.id)["tags"] == ("x", "<y>")
        gate_a.set()
        wait_until(lambda: b.state is nbfrost.JobState.RUNNING, what="b running")
        assert d.flush_history(10)
        gate_b.set()
        assert b.wait(10)
        assert d.flush_history(10)
        sa, sb = a.status(), b.status()
    got = [e for e in entries(path) if e[0] == b.id]
    # b was seen queued, running and succeeded, each with its own time.
    assert [e[1] for e in got] == ["queued", "running", "succeeded"]
    want = [us(sb.queued_at), us(sb.started_at), us(sb.finished_at)]
    assert all(abs(e[2] - w) <= 1 for e, w in zip(got, want)), (got, want)
    frame = history(path)
    for s in (sa, sb):
        r = row(frame, s.id)
        assert r["state"] == "succeeded" and bool(r["success"]) is True
        assert r["name"] == s.name and r["worker"] == s.worker and r["attempts"] == 1
        assert abs(r["started_at"].timestamp() - s.started_at.timestamp()) < 2e-6
        assert abs(r["finished_at"].timestamp() - s.finished_at.timestamp()) < 2e-6
        assert abs(r["duration"] - s.duration) < 2e-6
    assert list(frame.columns) == list(history_format.HISTORY_COLUMNS)
    assert (frame["pid"] == os.getpid()).all()


def test_outcomes_errors_retries_and_cancellations(tmp_path, thread_baseline):
    path = tmp_path / "jobs.sqlite"
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    def boom():
        raise ValueError("bad <value>")

    gate = threading.Event()
    with nbfrost.Dispatcher(workers=2, history=path) as d:
        ok = d.queue(flaky, retries=2)
        bad = d.queue(boom)
        dep = d.queue(len, "x", after=bad)                 # cancelled: its dependency failed
        slow = d.queue(gate.wait, 30, timeout=0.2, name="slow")  # fails with JobTimeout
        for t in (ok, bad, dep, slow):
            t.wait(10)
        gate.set()
        assert d.flush_history(10)
    frame = history(path)
    r = row(frame, ok.id)
    assert r["state"] == "succeeded" and r["attempts"] == 2 and r["name"] == ok.name
    r = row(frame, bad.id)
    assert r["state"] == "failed" and bool(r["success"]) is False
    assert r["error"] == "bad <value>" and r["error_type"] == "ValueError"
    assert "in boom" in r["traceback"] and "ValueError: bad <value>" in r["traceback"]
    r = row(frame, dep.id)
    assert r["state"] == "cancelled" and r["error_type"] == "JobCancelled"
    assert "dependency job" in r["error"] and r["started_at"] is pd_nat()
    r = row(frame, slow.id)
    assert r["state"] == "failed" and r["error_type"] == "JobTimeout"
    assert str(frame["state"].dtype) == "category"
    assert set(frame["state"].cat.categories) >= {"queued", "running", "succeeded", "failed",
                                                  "cancelled", "lost"}




def test_reading_in_the_same_process_sees_a_job_that_just_ended(tmp_path, thread_baseline):
    path = tmp_path / "jobs.sqlite"
    with nbfrost.Dispatcher(workers=2, history=path) as d:
        for i in range(10):
            t = d.queue(int, i)
            assert t.wait(5)
            # No flush_history(): history() flushes this process's writers of the file.
            assert row(history(path), t.id)["state"] == "succeeded"


def test_sessions_accumulate_and_ids_restart(tmp_path, thread_baseline):
    path = tmp_path / "jobs.sqlite"
    for n in (2, 3):
        with nbfrost.Dispatcher(workers=2, history=path) as d:
            for i in range(n):
                d.queue(int, i)
            d.wait()
    frame = history(path)
    assert frame.groupby("session")["id"].apply(list).to_dict() == {1: [0, 1], 2: [0, 1, 2]}
    assert (frame["state"] == "succeeded").all()


def test_many_fast_jobs_all_arrive(tmp_path, thread_baseline):
    path = tmp_path / "jobs.sqlite"
    with nbfrost.Dispatcher(workers=4, history=path) as d:
        for i in range(3000):
            d.queue(abs, i)
        d.wait()
    frame = history(path)  # shutdown committed everything
    assert len(frame) == 3000 and (frame["state"] == "succeeded").all()
    assert frame["id"].tolist() == list(range(3000))


def test_nbfrost_history_is_the_function_whatever_was_imported_first(tmp_path):
    path = tmp_path / "jobs.sqlite"
    with nbfrost.Dispatcher(workers=1, history=path) as d:
        d.queue(int)
    # Importing the subpackage nbfrost.history's modules does not shadow the function.
    importlib.import_module("nbfrost.history.writer")
    importlib.import_module("nbfrost.history.reader")
    assert nbfrost.history is history and callable(nbfrost.history)
    assert nbfrost.history(path).equals(reader.read_history(path))


def test_history_of_missing_or_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="Dispatcher\\(history="):
        history(tmp_path / "nope.sqlite")
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match="not an nbfrost job history"):
        history(other)


# ----------------------------------------------------------- bad files
@pytest.mark.parametrize("junk", [b"not a database at all\n" * 50, bytes(range(256)) * 8,
                                  b"SQLite format 3\x00" + b"\xff" * 4080])
def test_corrupt_file_is_a_clear_error_at_start(tmp_path, thread_baseline, junk):
    path = tmp_path / "jobs.sqlite"
    path.write_bytes(junk)
    with pytest.raises(ValueError) as info:  # noqa: PT011 - the message is checked below, part by part
        nbfrost.Dispatcher(workers=2, history=path)
    msg = str(info.value)
    assert str(path) in msg and "is not an nbfrost job history" in msg
    assert "Pass another path to Dispatcher(history=...)" in msg and "delete" not in msg
    assert path.read_bytes() == junk  # left untouched


def test_reading_a_file_that_is_not_a_history_says_so_and_leaves_it(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import nbfrost\nprint('hello')\n" * 20)
    before = script.read_bytes()
    with pytest.raises(ValueError) as info:  # noqa: PT011 - the message is checked below, part by part
        history(script)
    msg = str(info.value)
    assert msg.startswith(f"{str(script)!r} is not an nbfrost job history: it is not an "
                          "SQLite database")
    assert "Dispatcher(history=...)" in msg
    assert "delete" not in msg and "Move it away" not in msg
    assert script.read_bytes() == before


def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path, thread_baseline):
    path = tmp_path / "app.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ValueError, match="not an nbfrost job history"):
        nbfrost.Dispatcher(history=path)
    assert path.read_bytes() == before


def test_unwritable_paths_are_clear_errors_at_start(tmp_path, thread_baseline):
    with pytest.raises(IsADirectoryError, match="is a directory; pass a file path"):
        nbfrost.Dispatcher(history=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist; create it"):
        nbfrost.Dispatcher(history=tmp_path / "missing" / "jobs.sqlite")
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nbfrost.Dispatcher(history=afile / "jobs.sqlite")
    with pytest.raises(TypeError, match="history must be a file path"):
        nbfrost.Dispatcher(history=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path of a file"):
        nbfrost.Dispatcher(history=":memory:")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores file permissions; the other unwritable cases run as root too")
def test_read_only_folder_is_a_clear_error(tmp_path, thread_baseline):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OSError, match="cannot write the job history file"):
            nbfrost.Dispatcher(history=folder / "jobs.sqlite")
    finally:
        folder.chmod(0o700)


def test_a_locked_file_never_crashes_a_job(tmp_path, thread_baseline, monkeypatch, caplog):
    """Another process holds the write lock: jobs still run and succeed, the
    writer warns, and once the lock is gone the entries are written."""
    path = tmp_path / "jobs.sqlite"
    monkeypatch.setattr(history_writer, "BUSY_TIMEOUT", 0.05)
    caplog.set_level(logging.WARNING, logger="nbfrost")
    with nbfrost.Dispatcher(workers=2, history=path) as d:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
        try:
            trackers = [d.queue(pow, i, 2) for i in range(50)]
            assert [t.result(10) for t in trackers] == [i * i for i in range(50)]
            wait_until(lambda: d._history_writer.error is not None, what="a failed write")
            assert not d.flush_history(0.3)  # nothing committed while the lock is held
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert d.flush_history(10)
    assert "could not write" in caplog.text and "database is locked" in caplog.text
    frame = history(path)
    assert len(frame) == 50 and (frame["state"] == "succeeded").all()
    assert d._history_writer.dropped == 0


# ------------------------------------------------- threads and lifecycle
def test_threads_and_files_are_cleaned_up(tmp_path, thread_baseline):
    path = tmp_path / "jobs.sqlite"
    d = nbfrost.Dispatcher(workers=3, history=path)
    assert any(t.name == "nbfrost-history" for t in threading.enumerate())
    d.queue(int).wait(10)
    d.shutdown()
    d.shutdown()  # twice is fine
    assert d.flush_history(0)  # closed: nothing left to wait for
    assert not [t for t in threading.enumerate() if t.name == "nbfrost-history"]
    # The last connection closed cleanly: SQLite folded the WAL back in.
    assert not (tmp_path / "jobs.sqlite-wal").exists()
    conn = sqlite3.connect(path)
    closed = conn.execute("SELECT closed_at FROM sessions").fetchall()
    conn.close()
    assert len(closed) == 1 and closed[0][0] is not None


def test_failed_backend_closes_the_history_writer(tmp_path, thread_baseline):
    with pytest.raises(ValueError, match="backend must be one of"):
        nbfrost.Dispatcher(history=tmp_path / "jobs.sqlite", backend="nope")
    assert history(tmp_path / "jobs.sqlite").empty


# ------------------------------------------------------- lost, for real






def test_sigkill_of_a_process_leaves_finished_jobs_and_lost_ones(tmp_path):
    path = tmp_path / "jobs.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", child_code(path, "sleep")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().split()[0] == "ready"
        # No flush: the writer commits on its own, promptly.
        live = wait_until(lambda: committed(path), what="the history to show the ended jobs")
        assert live.set_index("name").loc["waiting", "state"] == "queued"  # process alive
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    check_lost(history(path), proc.pid)


def test_exit_without_shutdown_commits_and_marks_in_flight_jobs_lost(tmp_path):
    path = tmp_path / "jobs.sqlite"
    proc = subprocess.run([sys.executable, "-c", child_code(path, "exit")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    pid = int(proc.stdout.split()[1])
    check_lost(history(path), pid)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT closed_at FROM sessions").fetchone()[0] is not None
    conn.close()




def test_shutdown_completes_even_if_the_file_stays_locked(tmp_path, thread_baseline,
                                                          monkeypatch, caplog):
    path = tmp_path / "jobs.sqlite"
    monkeypatch.setattr(history_writer, "BUSY_TIMEOUT", 0.05)
    caplog.set_level(logging.WARNING, logger="nbfrost")
    d = nbfrost.Dispatcher(workers=2, history=path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert [d.queue(abs, -i).result(10) for i in range(5)] == list(range(5))
        t0 = time.monotonic()
        d.shutdown()
        assert time.monotonic() - t0 < 10
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert d._history_writer.dropped == 5
    assert "could not be written" in caplog.text
    assert history(path).empty  # nothing was committed, and reading still works


# ---------------------------------------------------------------- schedules
def test_the_history_shows_which_schedule_each_run_belonged_to(tmp_path, thread_baseline):
    from helpers import FakeClock

    path = tmp_path / "h.sqlite"
    clock = FakeClock()
    with nbfrost.Dispatcher(history=path, clock=clock) as d:
        s = d.every("1m", lambda: None, name="poll")
        plain = d.queue(lambda: None)
        for _ in range(2):
            clock.advance(60)
            d._scheduler.tick()
            assert s.last.wait(10)
        assert plain.wait(10)
        runs = [t.id for t in s.runs()]
    frame = history(path)
    assert list(frame.columns) == list(history_format.HISTORY_COLUMNS)
    assert str(frame["schedule"].dtype) == "Int64"
    for run in runs:
        r = row(frame, run)
        assert r["schedule"] == s.id and r["schedule_rule"] == "every 1 min"
    assert frame.loc[frame["id"] == plain.id, "schedule"].isna().all()
    conn = sqlite3.connect(path)
    try:
        (name, rule, expression, reason), = conn.execute(
            "SELECT name, rule, expression, reason FROM schedules").fetchall()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == history_format.SCHEMA_VERSION
        assert {r[0] for r in conn.execute("SELECT schedule FROM entries")} == {None, s.id}
    finally:
        conn.close()
    assert (name, rule, expression, reason) == ("poll", "every 1 min", "every 60 s",
                                                "the dispatcher shut down")


def test_a_version_1_history_file_is_read_and_moved_to_version_2(tmp_path, thread_baseline):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    old_schema = history_format.SCHEMA.split("CREATE TABLE schedules")[0] + "CREATE VIEW entries AS " \
        "SELECT b.session AS session FROM batches AS b"
    conn.executescript(old_schema)
    conn.execute(f"PRAGMA application_id={history_format.APPLICATION_ID}")
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO sessions(pid, host, opened_at, closed_at) VALUES (1, 'h', 1.0, 2.0)")
    conn.execute("INSERT INTO batches VALUES (1, 2.0, ?)",
                 (json.dumps([[0, "succeeded", 2_000_000, "old", None, "w", 1, 1_500_000, 1_000_000]]),))
    conn.commit()
    conn.close()
    frame = history(path)  # a version 1 file reads as it is
    assert frame["schedule"].isna().all() and row(frame, 0)["name"] == "old"
    with nbfrost.Dispatcher(history=path) as d:
        d.queue(lambda: None).wait(10)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM schedules").fetchone()[0] == 0
    finally:
        conn.close()
    assert len(history(path)) == 2
