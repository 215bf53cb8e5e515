"""The server's view of the published files (nbfrost.server.store), without
a server: bad files are skipped, a heartbeat is not a rewrite."""

from __future__ import annotations

import json
import logging
import os
import time

from nbfrost import published
from nbfrost.server.store import Store


def job(i: int, state: str = "succeeded") -> dict:
    return {"id": i, "name": f"job-{i}", "state": state, "queued_at": f"2026-12-07T10:00:0{i}+00:00",
            "tags": []}


def write(base, name, data) -> None:
    (base / "live").mkdir(parents=True, exist_ok=True)
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    published.write_atomic(base / "live" / name, raw)


def good(pid: int, jobs: list[dict], **extra) -> dict:
    return {"format": "nbfrost-jobs", "version": 1, "id": f"h-{pid}-1-0", "pid": pid,
            "host": published.this_host(), "started": 1.0, "updated": time.time(),
            "counts": {"succeeded": len(jobs)}, "jobs": jobs, **extra}


def test_bad_files_are_skipped_with_a_warning_and_the_rest_listed(tmp_path, caplog):
    write(tmp_path, "ok.json", good(os.getpid(), [job(1), job(2)]))
    write(tmp_path, "newer.json", {**good(os.getpid(), []), "version": 99, "id": "h-x-1-0"})
    write(tmp_path, "torn.json", b'{"format": "nbfrost-jobs", "ver')
    write(tmp_path, "other.json", b'[1, 2, 3]')
    store = Store(tmp_path)
    with caplog.at_level(logging.WARNING, logger="nbfrost.server"):
        processes = store.processes()
    assert [p["id"] for p in processes] == [f"h-{os.getpid()}-1-0"]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "version 99" in messages and "not JSON" in messages and "not an nbfrost-jobs file" in messages
    page, total = store.jobs()
    assert total == 2 and [j["name"] for j in page] == ["job-2", "job-1"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nbfrost.server"):
        store.processes()
    assert not caplog.records, "a bad file is reported once, not on every request"


def test_a_heartbeat_is_not_a_rewrite_but_a_rewrite_is_read(tmp_path):
    info = good(os.getpid(), [job(1, "running")])
    write(tmp_path, "p.json", info)
    store = Store(tmp_path)
    assert store.jobs()[0][0]["state"] == "running"
    path = tmp_path / "live" / "p.json"
    parsed = store._files[str(path)]
    later = time.time() + 5
    os.utime(path, (later, later))  # what the publisher's heartbeat does
    store.processes()
    assert store._files[str(path)] is parsed, "not parsed again"
    write(tmp_path, "p.json", {**info, "updated": info["updated"] + 1, "jobs": [job(1, "succeeded")]})
    assert store.jobs()[0][0]["state"] == "succeeded"
