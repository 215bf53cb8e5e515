"""Publishing: the file format, its reader, the bounds, commands back, and
what is left after a dispatcher ends (nbfrost.published, nbfrost.publisher).

Most tests drive one `Publication` by hand (``publish()``,
``poll_commands()``, ``close()``) against a dispatcher made with
``publish=False``, so nothing depends on the publisher thread's timing; a
few run the real thread and check its bounds.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest
from helpers import eventually

import nbfrost
from nbfrost import defaults, published, publisher


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A private Jupyter runtime dir; the nbfrost folder inside it."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    return tmp_path / "runtime" / "nbfrost"


@pytest.fixture
def quiet(thread_baseline):
    """A dispatcher that does not publish by itself (tests drive a Publication)."""
    d = nbfrost.Dispatcher(workers=2, publish=False)
    yield d
    d.shutdown(wait=True, cancel_pending=True, timeout=10)


def read(path):
    return published.read_jobs_file(path)


# ------------------------------------------------------------------ format
def test_a_publication_writes_a_versioned_private_file_the_reader_accepts(quiet, runtime):
    pub = publisher.Publication(quiet, root=runtime)
    assert not pub.publish(), "nothing happened yet: no file"
    assert not (runtime / "live").exists()
    for i in range(3):
        quiet.queue(lambda i=i: i, name=f"job-{i}", tags=["t"]).wait(10)
    assert pub.publish()
    info = read(pub.live_path)
    assert info["format"] == "nbfrost-jobs" and info["version"] == 1
    assert info["id"] == pub.id and published.ID_PATTERN.fullmatch(pub.id)
    assert info["pid"] == os.getpid() and info["host"] == published.this_host()
    assert info["kind"] == "script" and info["kernel_id"] is None and info["exited"] is None
    assert info["counts"]["succeeded"] == 3 and info["held"] == 3
    assert [j["name"] for j in info["jobs"]] == ["job-2", "job-1", "job-0"]  # newest first
    job = info["jobs"][0]
    assert job == {**quiet.status(job["id"]).to_dict(), "output_tail": ""}
    assert mode(pub.live_path) == 0o600
    for folder in (runtime, runtime / "live", runtime / "inbox", pub.inbox):
        assert mode(folder) == 0o700, folder
    assert not [p for p in (runtime / "live").iterdir() if p.name.startswith(".")], "no temp left"


def test_without_a_change_publish_writes_nothing(quiet, runtime):
    pub = publisher.Publication(quiet, root=runtime)
    quiet.queue(int).wait(10)
    assert pub.publish()
    before = os.stat(pub.live_path).st_mtime_ns, pub.writes
    for _ in range(100):
        assert not pub.publish()
    assert (os.stat(pub.live_path).st_mtime_ns, pub.writes) == before
    quiet.queue(int).wait(10)
    assert pub.publish() and pub.writes == before[1] + 1


def test_the_reader_rejects_what_it_does_not_understand(tmp_path):
    good = {"format": "nbfrost-jobs", "version": 1, "id": "h-1-2-0", "pid": 1, "host": "h",
            "started": 1.0, "updated": 2.0, "jobs": [], "counts": {}}
    cases = {
        "newer.json": ({**good, "version": 2}, "version 2, but this nbfrost reads version 1"),
        "other.json": ({**good, "format": "something"}, "not an nbfrost-jobs file"),
        "nojobs.json": ({k: v for k, v in good.items() if k != "jobs"}, "'jobs' is missing"),
        "badid.json": ({**good, "id": "../../etc"}, "bad process id"),
        "badjob.json": ({**good, "jobs": [{"id": "x"}]}, "a job entry lacks"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_text(json.dumps(data))
        with pytest.raises(published.PublishedFormatError, match=message):
            read(tmp_path / name)
    (tmp_path / "torn.json").write_text('{"format": "nbfrost-jobs", "vers')
    with pytest.raises(published.PublishedFormatError, match="not JSON"):
        read(tmp_path / "torn.json")
    (tmp_path / "good.json").write_text(json.dumps(good))
    assert read(tmp_path / "good.json")["id"] == "h-1-2-0"
    command = published.make_command("cancel", 3, interrupt=True)
    (tmp_path / "c.json").write_text(json.dumps({**command, "version": 9}))
    with pytest.raises(published.PublishedFormatError, match="nbfrost-command version 9"):
        published.read_command_file(tmp_path / "c.json")
    with pytest.raises(ValueError, match="action must be one of"):
        published.make_command("delete", 3)
    with pytest.raises(TypeError, match="non-negative int"):
        published.make_command("cancel", True)


# ------------------------------------------------------------------ bounds
def test_the_list_holds_the_newest_jobs_and_every_running_one(quiet, runtime):
    gate = threading.Event()
    old = quiet.queue(gate.wait, 10, name="old-running")
    eventually(lambda: old.state == "running", what="the old job runs")
    for i in range(20):
        quiet.queue(int, name=f"quick-{i}").wait(10)
    pub = publisher.Publication(quiet, root=runtime, jobs=5)
    pub.publish()
    names = [j["name"] for j in read(pub.live_path)["jobs"]]
    assert names == [f"quick-{i}" for i in (19, 18, 17, 16, 15)] + ["old-running"]
    assert read(pub.live_path)["counts"] == {"queued": 0, "running": 1, "succeeded": 20,
                                            "failed": 0, "cancelled": 0}
    gate.set()
    old.wait(10)


def test_errors_tracebacks_and_output_are_cut_to_their_tails(quiet, runtime):
    def noisy():
        print("x" * 5000 + "LAST LINE")
        raise ValueError("e" * 5000 + "THE END")

    quiet.queue(noisy, quiet=True).wait(10)
    pub = publisher.Publication(quiet, root=runtime)
    pub.publish()
    job = read(pub.live_path)["jobs"][0]
    limit = defaults.PUBLISH_TEXT
    assert len(job["error"]) == limit and job["error"].startswith("\u2026")
    assert job["error"].endswith("THE END")
    assert len(job["traceback"]) == limit and "THE END" in job["traceback"]
    assert len(job["output_tail"]) == limit and job["output_tail"].endswith("LAST LINE\n")


def test_the_publisher_thread_writes_at_most_its_rate_and_shows_a_change_within_a_second(
        runtime, thread_baseline):
    d = nbfrost.Dispatcher(workers=2)
    try:
        pub = d._publication
        started = time.monotonic()
        first = d.queue(int, name="first")
        eventually(lambda: pub.live_path.exists()
                   and any(j["name"] == "first" for j in read(pub.live_path)["jobs"]),
                   timeout=1.0, what="the job is published within 1 s")
        assert time.monotonic() - started < 1.0
        first.wait(10)
        writes, started = pub.writes, time.monotonic()
        while time.monotonic() - started < 1.5:  # a change every millisecond
            d.queue(int)
            time.sleep(0.001)
        elapsed = time.monotonic() - started
        assert pub.writes - writes <= elapsed * defaults.PUBLISH_RATE + 2
    finally:
        d.shutdown()
    assert not pub.live_path.exists()


# ---------------------------------------------------------------- commands
def send(pub, action, job, interrupt=False, schedule=None):
    command = published.make_command(action, job, interrupt=interrupt, issued=time.time(),
                                      schedule=schedule)
    published.write_atomic(pub.inbox / f"{time.time_ns()}-{command['id']}.json",
                           json.dumps(command).encode())
    return command["id"]


def test_commands_cancel_interrupt_and_retry_jobs(quiet, runtime):
    pub = publisher.Publication(quiet, root=runtime)
    gate = threading.Event()
    cooperative = quiet.queue(lambda: [time.sleep(0.01) for _ in iter(nbfrost.cancelled, True)],
                              name="cooperative")
    stuck = quiet.queue(gate.wait, 30, name="stuck")
    eventually(lambda: stuck.state == "running" and cooperative.state == "running")
    pub.publish()
    c1 = send(pub, "cancel", cooperative.id)
    c2 = send(pub, "cancel", stuck.id, interrupt=True)
    assert pub.poll_commands() == 2
    assert not list(pub.inbox.iterdir()), "commands are consumed"
    assert cooperative.wait(10) and stuck.wait(10)
    assert cooperative.state == "cancelled" and stuck.state == "cancelled"
    c3 = send(pub, "retry", stuck.id)
    c4 = send(pub, "retry", 999)
    pub.poll_commands()
    pub.publish()
    acks = {a["command"]: a for a in read(pub.live_path)["acks"]}
    assert acks[c1]["ok"] and acks[c2]["ok"] and acks[c2]["message"].endswith("interrupted")
    assert acks[c3]["ok"] and "queued again as job" in acks[c3]["message"]
    assert not acks[c4]["ok"] and "999" in acks[c4]["message"]
    gate.set()
    quiet.wait(timeout=10)
    assert [s.name for s in quiet.jobs()].count("stuck") == 2


def test_cancel_all_cancels_every_queued_and_running_job_of_the_process(runtime):
    """One command for the whole process, not one per job: also the queued
    jobs beyond what the process publishes (its newest 500)."""
    d = nbfrost.Dispatcher(workers=2, expiry=None, publish=False)
    try:
        pub = publisher.Publication(d, root=runtime)
        gate = threading.Event()
        running = [d.queue(gate.wait, 30, name=f"busy-{i}") for i in range(2)]
        queued = [d.queue(int) for _ in range(defaults.PUBLISH_JOBS + 100)]
        eventually(lambda: all(t.state == "running" for t in running))
        done = d.queue(int)  # behind the queued ones: cancelled too
        pub.publish()
        command = send(pub, "cancel_all", None, interrupt=True)
        assert pub.poll_commands() == 1
        assert all(t.wait(10) for t in running + queued + [done])
        assert {t.state for t in running + queued + [done]} == {nbfrost.JobState.CANCELLED}
        pub.publish()
        ack = {a["command"]: a for a in read(pub.live_path)["acks"]}[command]
        total = len(queued) + 1
        assert ack["ok"] and ack["message"] == (
            f"{total + 2} job(s) interrupted ({total} queued, 2 running)")
        assert d.queue(lambda: "after").result(10) == "after", "the dispatcher goes on"
    finally:
        gate.set()
        d.shutdown()


def test_schedule_commands_pause_resume_and_end_a_schedule(quiet, runtime):
    pub = publisher.Publication(quiet, root=runtime)
    s = quiet.every("5m", int, name="poll")
    pub.publish()
    sent = [send(pub, "pause", None, schedule=s.id), send(pub, "pause", None, schedule=s.id)]
    assert pub.poll_commands() == 2
    assert s.state.value == "paused"
    sent.append(send(pub, "resume", None, schedule=s.id))
    pub.poll_commands()
    assert s.state.value == "active"
    sent += [send(pub, "unschedule", None, schedule=s.id), send(pub, "pause", None, schedule=99)]
    pub.poll_commands()
    assert s.state.value == "ended"
    pub.publish()
    acks = {a["command"]: a for a in read(pub.live_path)["acks"]}
    said = [(acks[c]["ok"], acks[c]["message"]) for c in sent]
    assert said[:4] == [(True, f"schedule {s.id} paused"),
                        (False, f"schedule {s.id} is paused: not paused"),
                        (True, f"schedule {s.id} resumed"), (True, f"schedule {s.id} ended")]
    assert said[4][0] is False and "99" in said[4][1]


def test_a_process_command_has_no_job_and_a_job_command_needs_one(tmp_path):
    assert published.make_command("cancel_all", None)["job"] is None
    with pytest.raises(TypeError, match="not for a job"):
        published.make_command("cancel_all", 3)
    with pytest.raises(TypeError, match="non-negative int"):
        published.make_command("cancel", None)
    with pytest.raises(ValueError, match="cancel_all"):
        published.make_command("explode", 1)
    path = tmp_path / "c.json"
    bad = published.make_command("cancel", 1) | {"job": None}
    path.write_text(json.dumps(bad))
    with pytest.raises(published.PublishedFormatError, match="null job"):
        published.read_command_file(path)
    path.write_text(json.dumps(published.make_command("cancel_all", None, interrupt=True)))
    assert published.read_command_file(path)["action"] == "cancel_all"
    with pytest.raises(TypeError, match="schedule id"):
        published.make_command("pause", None)
    with pytest.raises(TypeError, match="not for a job"):
        published.make_command("resume", 2, schedule=1)
    path.write_text(json.dumps(published.make_command("pause", None, schedule=4)))
    assert published.read_command_file(path)["schedule"] == 4
    path.write_text(json.dumps(published.make_command("pause", None, schedule=4) | {"schedule": "4"}))
    with pytest.raises(published.PublishedFormatError, match="int schedule"):
        published.read_command_file(path)


def test_a_command_file_that_others_could_write_is_refused(quiet, runtime):
    pub = publisher.Publication(quiet, root=runtime)
    gate = threading.Event()
    job = quiet.queue(gate.wait, 30)
    pub.publish()
    command = published.make_command("cancel", job.id)
    path = pub.inbox / "open.json"
    path.write_text(json.dumps(command))
    os.chmod(path, 0o644)
    (pub.inbox / "junk.json").write_text("not json")
    os.chmod(pub.inbox / "junk.json", 0o600)
    assert pub.poll_commands() == 2
    assert job.state in ("queued", "running"), "not cancelled"
    pub.publish()
    gate.set()
    acks = read(pub.live_path)["acks"]
    assert [a["ok"] for a in acks] == [False, False]
    assert "mode 0600" in acks[1]["message"] and "not JSON" in acks[0]["message"]


# ------------------------------------------------------------ what is left
def test_close_leaves_last_words_and_removes_the_live_entry(quiet, runtime):
    pub = publisher.Publication(quiet, root=runtime, keep=60.0)
    quiet.queue(int, name="done").wait(10)
    pub.publish()
    assert pub.live_path.exists() and pub.inbox.exists()
    pub.close()
    pub.close()  # twice is fine
    assert not pub.live_path.exists() and not pub.inbox.exists()
    last = read(pub.history_path)
    assert last["exited"] is not None and last["keep"] == 60.0
    assert [j["name"] for j in last["jobs"]] == ["done"]
    assert mode(pub.history_path) == 0o600
    assert not pub.publish(force=True), "a closed publication writes nothing"


def test_a_dispatcher_that_never_ran_a_job_leaves_no_file(runtime, thread_baseline):
    d = nbfrost.Dispatcher(workers=1)
    d.shutdown()
    assert not (runtime / "history").exists() and not (runtime / "live").exists()


def test_publishing_is_off_by_keyword_or_environment(runtime, monkeypatch, thread_baseline):
    with nbfrost.Dispatcher(workers=1, publish=False) as d:
        assert d._publication is None
    monkeypatch.setenv("NBFROST_PUBLISH", "0")
    with nbfrost.Dispatcher(workers=1) as d:
        assert d._publication is None
        d.queue(int).wait(10)
    assert not runtime.exists()
    with pytest.raises(TypeError, match="publish must be True, False or None"):
        nbfrost.Dispatcher(workers=1, publish="yes")  # type: ignore[arg-type]
    monkeypatch.setenv("NBFROST_PUBLISH", "1")
    monkeypatch.setenv("NBFROST_PUBLISH_JOBS", "many")
    with pytest.raises(ValueError, match=r"\$NBFROST_PUBLISH_JOBS='many' is not a number"):
        nbfrost.Dispatcher(workers=1)
    monkeypatch.setenv("NBFROST_PUBLISH_JOBS", "7")
    monkeypatch.setenv("NBFROST_PUBLISH_KEEP", "30")
    with nbfrost.Dispatcher(workers=1) as d:
        assert (d._publication.limit, d._publication.keep) == (7, 30.0)


def test_pruning_drops_expired_history_dead_entries_and_orphan_inboxes(tmp_path):
    base = tmp_path
    for folder in ("live", "history", "inbox"):
        (base / folder).mkdir()
    now = time.time()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)

    def entry(name, folder, exited=None, pid=None, keep=100.0, age=0.0):
        pid = os.getpid() if pid is None else pid
        data = {"format": "nbfrost-jobs", "version": 1, "id": name, "pid": pid,
                "host": published.this_host(), "started": now - age, "updated": now - age,
                "exited": exited, "keep": keep, "jobs": [], "counts": {}}
        path = base / folder / f"{name}.json"
        path.write_text(json.dumps(data))
        os.utime(path, (now - age, now - age))
        return path

    old_history = entry("h-old", "history", exited=now - 200)
    new_history = entry("h-new", "history", exited=now - 50)
    alive_old = entry("l-alive", "live", age=500)
    dead_old = entry("l-dead-old", "live", pid=dead_pid, age=500)
    dead_new = entry("l-dead-new", "live", pid=dead_pid, age=50)
    (base / "inbox" / "l-alive").mkdir()
    orphan = base / "inbox" / "gone"
    orphan.mkdir()
    (orphan / "c.json").write_text("{}")
    os.utime(orphan, (now - 100, now - 100))
    tmp = base / "live" / ".x.json.1234.tmp"
    tmp.write_text("half")
    os.utime(tmp, (now - 100, now - 100))
    removed = published.prune(base, now)
    assert sorted(removed) == sorted(["history/h-old.json", "live/l-dead-old.json",
                                      "inbox/gone", "live/.x.json.1234.tmp"])
    assert not old_history.exists() and not dead_old.exists() and not orphan.exists()
    assert new_history.exists() and alive_old.exists() and dead_new.exists()
    assert (base / "inbox" / "l-alive").exists()


def test_liveness_from_pid_start_time_and_heartbeat():
    me = {"host": published.this_host(), "pid": os.getpid(),
          "proc_start": published.proc_start(os.getpid()), "exited": None}
    assert published.process_alive(me, heartbeat_age=10_000)
    assert not published.process_alive({**me, "exited": 1.0}, 0)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    assert not published.process_alive({**me, "pid": int(done.stdout)}, 0)
    if me["proc_start"] is not None:  # Linux: a reused pid is another process
        assert not published.process_alive({**me, "proc_start": "1"}, 0)
    other = {**me, "host": "elsewhere"}
    assert published.process_alive(other, defaults.PUBLISH_STALE - 1)
    assert not published.process_alive(other, defaults.PUBLISH_STALE + 1)


def test_history_is_bounded_to_the_newest_files(tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "PUBLISH_HISTORY_FILES", 3)
    (tmp_path / "history").mkdir()
    now = time.time()
    for i in range(6):
        path = tmp_path / "history" / f"h-{i}.json"
        path.write_text(json.dumps({"format": "nbfrost-jobs", "version": 1, "id": f"h-{i}",
                                    "exited": now - 100 + i, "keep": 3600.0, "jobs": []}))
        os.utime(path, (now - 100 + i, now - 100 + i))
    removed = published.prune(tmp_path, now)
    assert sorted(removed) == ["history/h-0.json", "history/h-1.json", "history/h-2.json"]
    assert sorted(p.name for p in (tmp_path / "history").iterdir()) == [
        "h-3.json", "h-4.json", "h-5.json"]


def test_the_header_is_read_without_the_jobs(quiet, runtime):
    pub = publisher.Publication(quiet, root=runtime)
    for _ in range(50):
        quiet.queue(int, name="x" * 100)
    quiet.wait(timeout=10)
    pub.publish()
    header = published.peek_header(pub.live_path)
    assert header is not None and "jobs" not in header and "acks" not in header
    assert "schedules" not in header
    assert header["id"] == pub.id and header["pid"] == os.getpid()
    assert header == {k: v for k, v in read(pub.live_path).items()
                      if k not in ("jobs", "schedules", "acks")}


def test_schedules_are_published_active_first_and_bounded(quiet, runtime, monkeypatch):
    monkeypatch.setattr(defaults, "PUBLISH_SCHEDULES", 3)
    pub = publisher.Publication(quiet, root=runtime)
    ended = quiet.every("1h", int, name="ended")
    ended.cancel()
    poll = quiet.every("5m", int, name="poll <b>")
    paused = quiet.cron("0 * * * *", int, name="hourly")
    paused.pause()
    quiet.every("1d", int, name="daily")
    pub.publish()
    schedules = read(pub.live_path)["schedules"]
    assert [s["name"] for s in schedules] == ["daily", "hourly", "poll <b>"], "ended ones last"
    assert schedules[2] == poll.status().to_dict()
    assert schedules[1]["state"] == "paused" and schedules[2]["rule"] == "every 5 min"


def test_the_fast_entries_of_queued_and_succeeded_jobs_are_their_status_json(quiet, runtime):
    gate = threading.Event()
    blockers = [quiet.queue(gate.wait, 30) for _ in range(2)]  # both workers busy
    eventually(lambda: all(b.state == "running" for b in blockers))
    queued = [quiet.queue(int, name='"quoted" \u00fcn\u00efcode \u2603', tags=["a", "b"]),
              quiet.queue(print, "x"), quiet.queue(int, name="plain", timeout=5, retries=2)]
    pub = publisher.Publication(quiet, root=runtime)
    pub.publish()
    assert publisher.QUEUED in pub._templates, "the first queued job gave the template"

    def slow(job):
        return {**job.snapshot(quiet.registry.clock()).to_dict(), "output_tail": job.output[-2000:]}

    for job in queued:
        assert job.state == "queued"
        assert publisher._fast_entry(job, job._state, pub._templates[job._state],
                                     defaults.PUBLISH_TEXT) == slow(job)
    published_jobs = {j["id"]: j for j in read(pub.live_path)["jobs"]}
    for job in queued:
        assert published_jobs[job.id] == slow(job)
    gate.set()
    quiet.wait(timeout=10)
    done = [quiet.queue(print, "out", name="printer", tags=["t"], quiet=True),
            quiet.queue(int, name="second")]
    quiet.wait(timeout=10)
    pub.publish()
    assert publisher.SUCCEEDED in pub._templates
    for job in queued + done:
        assert job.state == "succeeded"
        assert publisher._fast_entry(job, job._state, pub._templates[job._state],
                                     defaults.PUBLISH_TEXT) == slow(job), job.name


FORK = """
import json, os, sys, time
import nbfrost
from nbfrost import published

d = nbfrost.Dispatcher(workers=1)
d.queue(int, name="parent-job").wait()
live = published.root() / "live"
mine = lambda pid: [p for p in live.glob(f"*-{pid}-*.json")]
deadline = time.monotonic() + 10
while not mine(os.getpid()) and time.monotonic() < deadline:
    time.sleep(0.02)
parent = os.getpid()
child = os.fork()
if child == 0:
    c = nbfrost.Dispatcher(workers=1)
    c.queue(int, name="child-job").wait()
    deadline = time.monotonic() + 10
    while not mine(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.02)
    ok = bool(mine(os.getpid())) and bool(mine(parent))
    c.shutdown()
    sys.exit(0 if ok else 3)          # a normal exit: atexit handlers run in the child
_, status = os.waitpid(child, 0)
print(json.dumps({"child": os.waitstatus_to_exitcode(status), "parent_live": len(mine(parent))}))
d.shutdown()
"""


def test_a_forked_child_publishes_its_own_and_leaves_the_parents_files(runtime):
    out = subprocess.run([sys.executable, "-c", FORK], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"child": 0, "parent_live": 1}, out.stderr
