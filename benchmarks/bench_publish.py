"""Publishing's cost and the server's speed (docs/panel.md).

* queue() throughput with publishing on against off, in the same run:
  ``Dispatcher(publish=True)`` and ``publish=False`` take turns (medians of
  interleaved rounds, order alternating).  Target: on >= 0.9x off.
* an idle publisher writes nothing: files written in 2 s without a change.
* the REST API over 10 processes x 10,000 published jobs:
  ``GET /nbfrost/api/jobs?newest=200`` against a real ``jupyter server``
  (subprocess, 127.0.0.1) reading the files of 10 real processes, each a
  Dispatcher that ran 10,000 jobs with ``NBFROST_PUBLISH_JOBS=10000``.
  Target: <= 100 ms (median of warm requests; the first request after a
  file changed parses it, reported apart).

Run on its own: ``python benchmarks/bench_publish.py [--quick]``.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from common import interleaved, main, medians, row

import nbfrost


def noop() -> None:
    return None


def tput(n: int, publish: bool, cpu: list[float]) -> float:
    """Wall µs per job: queue n no-op jobs on 4 workers, keep the trackers,
    wait.  Appends the process's CPU µs per job (all threads) to *cpu*: on
    a machine loaded by others, CPU time shows what publishing itself costs."""
    d = nbfrost.Dispatcher(workers=4, expiry=None, publish=publish)
    c0, t0 = time.process_time(), time.perf_counter()
    trackers = [d.queue(noop) for _ in range(n)]
    d.wait()
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    assert all(t.done() for t in trackers)
    d.shutdown()
    cpu.append(dc / n * 1e6)
    return dt / n * 1e6


def idle_writes(seconds: float = 2.0) -> int:
    d = nbfrost.Dispatcher(workers=2, publish=True)
    d.queue(noop).wait()
    pub = d._publication
    time.sleep(0.6)  # the first write(s) land
    before = pub.writes
    time.sleep(seconds)
    writes = pub.writes - before
    d.shutdown()
    return writes


PUBLISHER = """
import sys, threading, time
import nbfrost
d = nbfrost.Dispatcher(workers=4)
n = int(sys.argv[1])
for i in range(n):
    d.queue(int, name=f"job-{i % 97}", tags=("bench",))
d.wait()
gate = threading.Event()
d.queue(gate.wait, 600, name="holder")      # one running job: alive, like a busy kernel
time.sleep(1.0)                             # the last write lands
print("ready", flush=True)
sys.stdin.readline()
gate.set()
d.shutdown()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query_figures(processes: int, jobs: int, requests: int) -> tuple[float, float, int]:
    """(median ms of warm GET jobs?newest=200, ms of the first (cold) one, total)."""
    with tempfile.TemporaryDirectory(prefix="nbfrost-bench-") as tmp:
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(Path(tmp) / "runtime"),
                   NBFROST_PUBLISH_JOBS=str(jobs + 10), HOME=tmp)
        script = Path(tmp) / "publisher.py"
        script.write_text(textwrap.dedent(PUBLISHER))
        workers = [subprocess.Popen([sys.executable, str(script), str(jobs)], env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                   for _ in range(processes)]
        port, token = free_port(), secrets.token_hex(8)
        argv = [sys.executable, "-m", "jupyter", "server", "--no-browser", "--ip=127.0.0.1",
                f"--port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
                f"--ServerApp.root_dir={tmp}", "--ServerApp.jpserver_extensions=nbfrost=True"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-root")
        server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for w in workers:
                assert w.stdout is not None and w.stdout.readline().strip() == "ready"
            url = f"http://127.0.0.1:{port}/nbfrost/api/jobs?newest=200"
            headers = {"Authorization": f"token {token}"}

            def get() -> tuple[float, dict]:
                t0 = time.perf_counter()
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
                    body = json.loads(r.read())
                return (time.perf_counter() - t0) * 1000, body

            deadline = time.monotonic() + 60
            while True:
                try:
                    cold, body = get()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert len(body["jobs"]) == 200, len(body["jobs"])
            warm = [get()[0] for _ in range(requests)]
            return statistics.median(warm), cold, body["total"]
        finally:
            for w in workers:
                if w.stdin is not None:
                    try:
                        w.stdin.write("done\n")
                        w.stdin.flush()
                    except OSError:
                        pass
            for w in workers:
                try:
                    w.wait(30)
                except subprocess.TimeoutExpired:
                    w.kill()
            server.terminate()
            server.wait(30)


def run(quick: bool = False) -> list[dict]:
    n = 20_000 if quick else 200_000
    repeats = 3 if quick else 7
    with tempfile.TemporaryDirectory(prefix="nbfrost-bench-runtime-") as tmp:
        previous = os.environ.get("JUPYTER_RUNTIME_DIR")
        os.environ["JUPYTER_RUNTIME_DIR"] = tmp
        try:
            cpu: dict[str, list[float]] = {"off": [], "on": []}
            res = medians(interleaved({"off": lambda: tput(n, False, cpu["off"]),
                                       "on": lambda: tput(n, True, cpu["on"])},
                                      repeats, alternate=True, between=gc.collect))
            cpu_res = medians(cpu)
            idle = idle_writes()
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_RUNTIME_DIR", None)
            else:
                os.environ["JUPYTER_RUNTIME_DIR"] = previous
    ratio = res["off"] / res["on"]  # throughput on / throughput off
    cpu_ratio = cpu_res["off"] / cpu_res["on"]
    processes, jobs = (3, 2_000) if quick else (10, 10_000)
    warm, cold, total = query_figures(processes, jobs, 20 if quick else 50)
    return [
        row(f"throughput, 4 workers, {n:,} no-op jobs, publishing on", res["on"], res["off"],
            "publishing off", "µs/job", ">= 0.9x off (ratio = throughput on/off)",
            ratio >= 0.9, ratio=ratio),
        row("  same run: CPU time per job (all threads), on / off", cpu_res["on"], cpu_res["off"],
            "publishing off", "µs/job", "information (ratio = off/on)", True, ratio=cpu_ratio),
        row("idle publisher: files written in 2 s without a change", idle, 0, "none", "files",
            "0", idle == 0, ratio=1.0 if idle == 0 else float("inf")),
        row(f"GET /nbfrost/api/jobs?newest=200, {processes} x {jobs:,} jobs ({total:,}), warm",
            warm, 100.0, "target 100 ms", "ms", "<= 100 ms", warm <= 100.0),
        row("  same run: first request (parses every file)", cold, 100.0, "target 100 ms", "ms",
            "information", True),
    ]


if __name__ == "__main__":
    sys.exit(main(run))
