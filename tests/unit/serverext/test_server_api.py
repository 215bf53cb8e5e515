"""The REST API of the Jupyter server extension (nbfrost.server), against a
real jupyter_server (pytest-jupyter's ``jp_serverapp``/``jp_fetch``) and
real dispatchers of this process publishing into the server's runtime dir.

Each test publishes by hand (``publish(force=True)``) where it needs the
files now; the publisher thread's own timing is the kernel tests' subject.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from helpers import eventually, live_threads
from tornado.httpclient import HTTPClientError

import nbfrost
from nbfrost import published


@pytest.fixture
def publishing(jp_serverapp):
    """Dispatchers made here publish into the server's runtime dir; all shut
    down after, and no nbfrost thread is left (the server's own pool threads
    are the server's business)."""
    baseline = live_threads()
    made = []

    def make(**kwargs):
        d = nbfrost.Dispatcher(workers=2, **kwargs)
        made.append(d)
        return d

    yield make
    for d in made:
        d.shutdown(wait=True, cancel_pending=True, timeout=10)
    ours = [t for t in live_threads() - baseline if t.name.startswith("nbfrost-")]
    for t in ours:
        t.join(10)
    left = [t.name for t in ours if t.is_alive()]
    assert not left, f"leaked threads: {sorted(left)}"


def now_published(*dispatchers):
    for d in dispatchers:
        assert d._publication.publish(force=True)


async def get(jp_fetch, path, **params):
    response = await jp_fetch("nbfrost", "api", path, params=params)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def post(jp_fetch, process, job, action, body=None):
    response = await jp_fetch("nbfrost", "api", "processes", process, "jobs", str(job), action,
                              method="POST", body=json.dumps(body or {}), raise_error=False)
    return response.code, json.loads(response.body)


async def status_of(jp_fetch, path, expected, **kwargs):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*path, **kwargs)
    assert info.value.code == expected, info.value.response.body
    return json.loads(info.value.response.body or b"{}")


# ------------------------------------------------------------------ reading
async def test_processes_lists_each_publishing_dispatcher(jp_fetch, publishing):
    d = publishing()
    gate = threading.Event()
    for i in range(3):
        d.queue(int, name=f"quick-{i}").wait(10)
    slow = d.queue(gate.wait, 30, name="slow")
    eventually(lambda: slow.state == "running")
    now_published(d)
    body = await get(jp_fetch, "processes")
    assert isinstance(body["now"], float)
    (entry,) = body["processes"]
    assert entry["id"] == d._publication.id
    assert entry["pid"] == os.getpid() and entry["host"] == published.this_host()
    assert entry["alive"] is True and entry["exited"] is None
    assert entry["kernel_id"] is None and entry["path"] is None and entry["kind"] == "script"
    assert entry["counts"] == {"queued": 0, "running": 1, "succeeded": 3, "failed": 0,
                               "cancelled": 0, "lost": 0}
    assert entry["published"] == 4 and entry["held"] == 4
    assert entry["started"] <= entry["updated"]
    gate.set()


async def test_each_process_lists_its_schedules(jp_fetch, publishing):
    d = publishing()
    d.every("5m", int, name="poll-api")
    d.cron("0 * * * *", int, name="hourly").pause()
    now_published(d)
    (entry,) = (await get(jp_fetch, "processes"))["processes"]
    assert [(s["name"], s["state"], s["rule"]) for s in entry["schedules"]] == [
        ("hourly", "paused", "at minute 0 of every hour"), ("poll-api", "active", "every 5 min")]
    assert entry["schedules"][1]["next_run"] is not None


async def test_a_schedule_is_paused_resumed_and_ended_through_the_api(jp_fetch, publishing):
    d = publishing()
    s = d.every("5m", int, name="poll-api")
    now_published(d)
    pid = d._publication.id

    async def steer(action: str, schedule: int = s.id) -> int:
        response = await jp_fetch("nbfrost", "api", "processes", pid, "schedules", str(schedule),
                                  action, method="POST", body="{}", raise_error=False)
        return response.code

    assert await steer("pause") == 202
    eventually(lambda: s.state.value == "paused", timeout=1.5, what="paused within a second")
    now_published(d)
    assert await steer("resume") == 202
    eventually(lambda: s.state.value == "active", timeout=1.5, what="resumed")
    assert await steer("unschedule") == 202
    eventually(lambda: s.state.value == "ended", timeout=1.5, what="ended")
    now_published(d)
    assert await steer("pause", 42) == 404, "a schedule the process never published"


async def test_jobs_are_the_status_json_plus_process_and_path_newest_first(jp_fetch, publishing):
    d = publishing()

    def boom():
        raise ValueError("bad input")

    ok = d.queue(int, name="load-a", tags=["etl"])
    ok.wait(10)
    bad = d.queue(boom, name="Load-B", quiet=True)
    bad.wait(10)
    d.queue(int, name="train", tags=["ml"]).wait(10)
    now_published(d)
    body = await get(jp_fetch, "jobs")
    assert body["total"] == 3
    assert [j["name"] for j in body["jobs"]] == ["train", "Load-B", "load-a"]
    first = body["jobs"][2]
    assert first == {**d.status(ok.id).to_dict(), "output_tail": "",
                     "process": d._publication.id, "path": None}
    failed = (await get(jp_fetch, "jobs", state="failed"))["jobs"]
    assert [j["name"] for j in failed] == ["Load-B"] and failed[0]["error"] == "bad input"
    assert "ValueError" in failed[0]["traceback"]
    assert [j["name"] for j in (await get(jp_fetch, "jobs", name="LOAD"))["jobs"]] == ["Load-B", "load-a"]
    assert [j["name"] for j in (await get(jp_fetch, "jobs", tag="ml"))["jobs"]] == ["train"]
    page = await get(jp_fetch, "jobs", newest=1, offset=1)
    assert [j["name"] for j in page["jobs"]] == ["Load-B"] and page["total"] == 3
    assert (await get(jp_fetch, "jobs", process="nobody-1-2-3"))["total"] == 0


async def test_jobs_of_several_processes_merge_newest_first(jp_fetch, publishing):
    a, b = publishing(), publishing()
    order = []
    for i in range(6):
        d = (a, b)[i % 2]
        order.append((d._publication.id, d.queue(int, name=f"job-{i}")))
        order[-1][1].wait(10)
    now_published(a, b)
    assert len((await get(jp_fetch, "processes"))["processes"]) == 2
    jobs = (await get(jp_fetch, "jobs"))["jobs"]
    assert [(j["process"], j["name"]) for j in jobs] == [(p, t.name) for p, t in reversed(order)]
    only_b = (await get(jp_fetch, "jobs", process=b._publication.id))["jobs"]
    assert [j["name"] for j in only_b] == ["job-5", "job-3", "job-1"]


async def test_bad_queries_get_400_with_a_message(jp_fetch, jp_serverapp):
    for params, words in [({"state": "sleeping"}, "unknown state 'sleeping'"),
                          ({"newest": "lots"}, "newest must be an integer"),
                          ({"newest": "5001"}, "newest must be between 0 and 5000"),
                          ({"offset": "-1"}, "offset must be >= 0")]:
        body = await status_of(jp_fetch, ("nbfrost", "api", "jobs"), 400, params=params)
        assert words in body["message"]


async def test_a_process_that_died_shows_its_unfinished_jobs_as_lost(jp_fetch, publishing):
    d = publishing()
    gate = threading.Event()
    d.queue(int, name="done").wait(10)
    running = d.queue(gate.wait, 30, name="was-running")
    eventually(lambda: running.state == "running")
    d.queue(int, name="was-queued", after=[running])
    now_published(d)
    # The same file, as a process that has died would have left it.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    info = json.loads(d._publication.live_path.read_bytes())
    info.update(id="ghost-1-2-0", pid=int(dead.stdout))
    published.write_atomic(d._publication.live_path.with_name("ghost-1-2-0.json"),
                           json.dumps(info).encode())
    processes = {p["id"]: p for p in (await get(jp_fetch, "processes"))["processes"]}
    ghost = processes["ghost-1-2-0"]
    assert ghost["alive"] is False and ghost["exited"] is None
    assert ghost["counts"]["lost"] == 2 and ghost["counts"]["running"] == 0
    lost = (await get(jp_fetch, "jobs", process="ghost-1-2-0", state="lost"))["jobs"]
    assert sorted(j["name"] for j in lost) == ["was-queued", "was-running"]
    mine = (await get(jp_fetch, "jobs", process=d._publication.id, state="running"))["jobs"]
    assert [j["name"] for j in mine] == ["was-running"]
    code, body = await post(jp_fetch, "ghost-1-2-0", running.id, "cancel")
    assert (code, "has ended" in body["message"]) == (409, True)
    gate.set()


async def test_a_clean_exit_leaves_its_finished_jobs_as_history(jp_fetch, publishing):
    d = publishing()
    d.queue(int, name="kept").wait(10)
    now_published(d)
    pid = d._publication.id
    d.shutdown()
    (entry,) = (await get(jp_fetch, "processes"))["processes"]
    assert entry["id"] == pid and entry["alive"] is False and entry["exited"] is not None
    assert [j["name"] for j in (await get(jp_fetch, "jobs"))["jobs"]] == ["kept"]
    code, body = await post(jp_fetch, pid, 0, "retry")
    assert code == 409 and "has ended" in body["message"]


# ----------------------------------------------------------------- commands
async def test_cancel_interrupt_and_retry_reach_the_process_within_a_second(jp_fetch, publishing):
    d = publishing()
    gate = threading.Event()
    coop = d.queue(lambda: [time.sleep(0.01) for _ in iter(nbfrost.cancelled, True)], name="coop")
    stuck = d.queue(gate.wait, 30, name="stuck")
    eventually(lambda: coop.state == "running" and stuck.state == "running")
    now_published(d)
    pid = d._publication.id
    sent = time.monotonic()
    code, body = await post(jp_fetch, pid, coop.id, "cancel", {"interrupt": False})
    assert code == 202 and body["accepted"] is True and body["command"]
    code, _ = await post(jp_fetch, pid, stuck.id, "cancel", {"interrupt": True})
    assert code == 202
    assert coop.wait(1.5) and stuck.wait(1.5), "the publisher thread applies commands within 1 s"
    assert time.monotonic() - sent < 1.5
    assert coop.state == "cancelled" and stuck.state == "cancelled"
    code, _ = await post(jp_fetch, pid, stuck.id, "retry")
    assert code == 202
    eventually(lambda: len(d.jobs(name="stuck")) == 2, timeout=1.5, what="the retry")
    gate.set()
    eventually(lambda: any(a["ok"] and "queued again" in a["message"]
                           for a in json.loads(d._publication.live_path.read_bytes())["acks"]),
               timeout=2.0, what="the ack is published")


async def test_cancel_all_of_a_process_is_one_command_that_ends_all_its_jobs(jp_fetch, publishing):
    d, other = publishing(), publishing()
    gate = threading.Event()
    try:
        running = [d.queue(gate.wait, 30) for _ in range(2)]
        queued = [d.queue(int) for _ in range(20)]
        kept = other.queue(gate.wait, 30)
        eventually(lambda: all(t.state == "running" for t in [*running, kept]))
        now_published(d, other)
        inbox = d._publication.inbox
        response = await jp_fetch("nbfrost", "api", "processes", d._publication.id, "cancel",
                                  method="POST", body=json.dumps({"interrupt": True}))
        body = json.loads(response.body)
        assert response.code == 202 and body["accepted"] is True
        assert all(t.wait(1.5) for t in running + queued), "applied within a second"
        assert {t.state for t in running + queued} == {nbfrost.JobState.CANCELLED}
        assert kept.state == "running", "another process's jobs are not touched"
        assert not list(inbox.iterdir()), "one command, consumed"
        eventually(lambda: any(a["command"] == body["command"] and a["ok"]
                               and a["message"].startswith("22 job(s) interrupted")
                               for a in json.loads(d._publication.live_path.read_bytes())["acks"]),
                   timeout=2.0, what="the ack is published")
        code = (await jp_fetch("nbfrost", "api", "processes", "nobody-1-2-3", "cancel",
                               method="POST", body="{}", raise_error=False)).code
        assert code == 404
    finally:
        gate.set()


async def test_commands_to_unknown_processes_or_jobs_are_404(jp_fetch, publishing):
    d = publishing()
    d.queue(int).wait(10)
    now_published(d)
    code, body = await post(jp_fetch, "nobody-1-2-3", 0, "cancel")
    assert code == 404 and "no process" in body["message"]
    code, body = await post(jp_fetch, d._publication.id, 77, "cancel")
    assert code == 404 and "no job 77" in body["message"]
    body = await status_of(jp_fetch, ("nbfrost", "api", "processes", d._publication.id, "jobs",
                                      "0", "cancel"), 400, method="POST", body="{not json")
    assert "must be JSON" in body["message"]
    body = await status_of(jp_fetch, ("nbfrost", "api", "processes", d._publication.id, "jobs",
                                      "0", "cancel"), 400, method="POST",
                           body=json.dumps({"interrupt": "yes"}))
    assert "interrupt must be true or false" in body["message"]


# --------------------------------------------------------------------- auth
async def test_without_credentials_every_endpoint_refuses_and_reveals_nothing(
        http_server_client, jp_base_url, publishing):
    d = publishing()
    d.queue(int, name="secret-job-name").wait(10)
    now_published(d)
    pid = d._publication.id
    requests = [("GET", "processes", None), ("GET", "jobs", None),
                ("POST", f"processes/{pid}/jobs/0/cancel", "{}"),
                ("POST", f"processes/{pid}/jobs/0/retry", "{}"),
                ("POST", f"processes/{pid}/cancel", "{}"),
                ("POST", f"processes/{pid}/schedules/0/pause", "{}")]
    for method, path, body in requests:
        for headers in ({}, {"Authorization": "token wrong"}):
            response = await http_server_client.fetch(
                f"{jp_base_url}nbfrost/api/{path}", method=method, body=body, headers=headers,
                raise_error=False)
            assert response.code in (401, 403), (method, path, response.code)
            text = response.body.decode()
            assert "secret-job-name" not in text and pid not in text


async def test_a_cookie_authenticated_post_needs_the_xsrf_token(
        jp_fetch, http_server_client, jp_base_url, publishing):
    d = publishing()
    gate = threading.Event()
    job = d.queue(gate.wait, 30, name="browser-target")
    eventually(lambda: job.state == "running")
    now_published(d)
    # A browser: a token-authenticated visit leaves the login cookie ...
    response = await jp_fetch("nbfrost", "api", "processes")
    cookies = {c.split("=", 1)[0]: c.split(";", 1)[0] for c in response.headers.get_list("Set-Cookie")}
    login = next(v for k, v in cookies.items() if k.startswith("username-"))
    url = f"{jp_base_url}nbfrost/api/processes/{d._publication.id}/jobs/{job.id}/cancel"
    # ... which reads (GET) but cannot POST without the XSRF token.
    ok = await http_server_client.fetch(f"{jp_base_url}nbfrost/api/jobs", headers={"Cookie": login})
    assert ok.code == 200 and "browser-target" in ok.body.decode()
    refused = await http_server_client.fetch(url, method="POST", body="{}", headers={"Cookie": login},
                                             raise_error=False)
    assert refused.code == 403 and job.state == "running"
    # With the _xsrf cookie and the same token in X-XSRFToken (what JupyterLab sends), it works.
    page = await http_server_client.fetch(f"{jp_base_url}login", raise_error=False)
    xsrf = next(c.split(";", 1)[0] for c in page.headers.get_list("Set-Cookie") if c.startswith("_xsrf="))
    accepted = await http_server_client.fetch(
        url, method="POST", body='{"interrupt": true}', raise_error=False,
        headers={"Cookie": f"{login}; {xsrf}", "X-XSRFToken": xsrf.split("=", 1)[1]})
    assert accepted.code == 202, accepted.body
    assert job.wait(2.0) and job.state == "cancelled"
    gate.set()


def test_the_extension_is_found_through_the_package():
    assert nbfrost._jupyter_server_extension_points() == [{"module": "nbfrost.server"}]
    from nbfrost import server

    assert server._jupyter_server_extension_points() == [{"module": "nbfrost.server"}]
    here = os.path.dirname(__file__)
    config = os.path.join(here, "..", "..", "..", "jupyter-config", "jupyter_server_config.d",
                          "nbfrost.json")
    with open(config) as f:
        assert json.load(f) == {"ServerApp": {"jpserver_extensions": {"nbfrost": True}}}
