"""nbfrost's benchmark: one table, every anchor measured in the same run.

    python benchmarks/bench.py            # full run (a few minutes)
    python benchmarks/bench.py --quick    # small sizes, a smoke test
    python benchmarks/bench.py --only core,magics

Anchors for the core: ``concurrent.futures.ThreadPoolExecutor(4)``,
IPython's ``BackgroundJobManager`` and a bare 4-thread ``SimpleQueue`` pool
(the floor).  The machines are noisy, so every figure is the median of
several repeats, and the repeats of nbfrost and its anchor are interleaved
so that both see the same noise.  Ratios are nbfrost / anchor unless the
row says otherwise.  The other areas (magics, dashboard, Dask, history)
live in ``bench_<area>.py`` beside this file and are collected here; each
also runs on its own.  Rows, the table and interleaved repeats come from
``common.py``.
"""

from __future__ import annotations

import argparse
import gc
import os
import queue
import random
import sys
import threading
import time
import tracemalloc
from concurrent.futures import Future, ThreadPoolExecutor
from statistics import median

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import interleaved, machine_line, medians, print_table, row  # noqa: E402

import nbfrost  # noqa: E402


def noop() -> None:
    return None


# --------------------------------------------------------------- throughput
def tput_nbfrost(n: int) -> float:
    """µs per job: queue n no-op jobs on 4 workers, keep every tracker, wait."""
    d = nbfrost.Dispatcher(workers=4, expiry=None)
    t0 = time.perf_counter()
    trackers = [d.queue(noop) for _ in range(n)]
    d.wait()
    dt = time.perf_counter() - t0
    assert all(t.done() for t in trackers)
    d.shutdown()
    return dt / n * 1e6


def tput_tpe(n: int) -> float:
    with ThreadPoolExecutor(4) as ex:
        t0 = time.perf_counter()
        futures = [ex.submit(noop) for _ in range(n)]
        for f in futures:
            f.result()
        dt = time.perf_counter() - t0
    return dt / n * 1e6


def tput_floor(n: int) -> float:
    """A bare pool: 4 threads taking callables from one SimpleQueue, no tracking."""
    q: queue.SimpleQueue = queue.SimpleQueue()

    def work() -> None:
        get = q.get
        while True:
            fn = get()
            if fn is None:
                return
            fn()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    for _ in range(n):
        q.put(noop)
    for _ in threads:
        q.put(None)
    for t in threads:
        t.join()
    return (time.perf_counter() - t0) / n * 1e6


def tput_bgjobs(n: int) -> float:
    """IPython's BackgroundJobManager starts one thread per job."""
    from IPython.lib.backgroundjobs import BackgroundJobManager

    jobs = BackgroundJobManager()
    t0 = time.perf_counter()
    started = [jobs.new(noop) for _ in range(n)]
    for job in started:
        job.join()
    dt = time.perf_counter() - t0
    return dt / n * 1e6


def bench_throughput(quick: bool) -> list[dict]:
    n = 20_000 if quick else 200_000
    repeats = 3 if quick else 5
    bg_error = None

    def bg() -> float | None:
        nonlocal bg_error
        if bg_error is not None:
            return None
        try:
            return tput_bgjobs(min(n, 2_000))
        except Exception as exc:  # IPython 9 broke it: see the row
            bg_error = f"{type(exc).__name__}: {exc}"
            return None

    # Interleaved: every contender sees the same noise.
    res = medians(interleaved({"tpe": lambda: tput_tpe(n), "nbfrost": lambda: tput_nbfrost(n),
                               "floor": lambda: tput_floor(n), "bg": bg},
                              repeats, between=gc.collect))
    nbf, tpe, floor, bgjobs = (res[k] for k in ("nbfrost", "tpe", "floor", "bg"))
    speedup = tpe / nbf
    return [
        row(f"throughput, 4 workers, {n:,} no-op jobs tracked", nbf, tpe,
            "ThreadPoolExecutor(4)", "µs/job", ">= 5x faster than TPE (ratio = TPE/nbfrost)",
            speedup >= 5, ratio=speedup),
        row("  same run: bare SimpleQueue pool (the floor)", nbf, floor, "floor", "µs/job",
            "information", True),
        row("  same run: IPython BackgroundJobManager (2k jobs)", nbf, bgjobs,
            "BackgroundJobManager", "µs/job",
            "information" if bg_error is None else f"n/a, it fails here: {bg_error[:60]}", True),
    ]


# ---------------------------------------------------------------------- map
def noop1(x: object) -> None:
    return None


def map_nbfrost(n: int) -> float:
    """µs per item: ``list(d.map(noop, range(n)))`` on 4 workers (every item
    a tracked job; the bulk path hands them over in chunks)."""
    d = nbfrost.Dispatcher(workers=4, expiry=None)
    t0 = time.perf_counter()
    out = list(d.map(noop1, range(n)))
    dt = time.perf_counter() - t0
    assert len(out) == n
    d.shutdown()
    return dt / n * 1e6


def map_tpe(n: int) -> float:
    with ThreadPoolExecutor(4) as ex:
        t0 = time.perf_counter()
        out = list(ex.map(noop1, range(n)))
        dt = time.perf_counter() - t0
    assert len(out) == n
    return dt / n * 1e6


def bench_map(quick: bool) -> list[dict]:
    n = 20_000 if quick else 200_000
    repeats = 5  # at least five rounds, even for --quick: the ratio is a target
    res = medians(interleaved({"tpe": lambda: map_tpe(n), "nbfrost": lambda: map_nbfrost(n),
                               "floor": lambda: tput_floor(n)},
                              repeats, alternate=True, between=gc.collect))
    nbf, tpe, floor = (res[k] for k in ("nbfrost", "tpe", "floor"))
    speedup = tpe / nbf
    return [
        row(f"map(), 4 workers, {n:,} no-op items, list(d.map(...))", nbf, tpe,
            "ThreadPoolExecutor(4).map", "µs/item", ">= 15x faster than TPE.map "
            "(ratio = TPE/nbfrost)", speedup >= 15, ratio=speedup),
        row("  same run: bare SimpleQueue pool (the floor)", nbf, floor, "floor", "µs/item",
            "information", True),
    ]


# ------------------------------------------------------------------ latency
def _latencies(submit, wait_done, k: int) -> list[float]:
    out = []
    for _ in range(k):
        box: list[float] = []
        t0 = time.perf_counter()
        handle = submit(lambda box=box: box.append(time.perf_counter()))
        wait_done(handle)
        out.append((box[0] - t0) * 1e6)
    return out


def bench_latency(quick: bool) -> list[dict]:
    k = 300 if quick else 2_000
    d = nbfrost.Dispatcher(workers=4, expiry=None)
    ex = ThreadPoolExecutor(4)
    for _ in range(8):  # warm both pools: TPE starts its threads lazily
        ex.submit(noop).result()
        d.queue(noop).wait()
    nbf: list[float] = []
    tpe: list[float] = []
    for _ in range(5):
        nbf += _latencies(d.queue, lambda t: t.wait(), k // 5)
        tpe += _latencies(ex.submit, lambda f: f.result(), k // 5)
    d.shutdown()
    ex.shutdown()
    nbf.sort()
    tpe.sort()
    p99 = lambda xs: xs[int(len(xs) * 0.99) - 1]  # noqa: E731
    m_n, m_t = median(nbf), median(tpe)
    return [
        row("latency queue() -> start, idle pool, median", m_n, m_t, "ThreadPoolExecutor(4)",
            "µs", "<= TPE", m_n <= m_t),
        row("latency queue() -> start, idle pool, p99", p99(nbf), p99(tpe),
            "ThreadPoolExecutor(4)", "µs", "<= TPE", p99(nbf) <= p99(tpe)),
    ]


# ------------------------------------------------------------------- memory
def _traced_bytes(build) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del keep
    return after - before


def bench_memory(quick: bool) -> list[dict]:
    n = 20_000 if quick else 100_000

    def build_nbfrost():
        d = nbfrost.Dispatcher(workers=4, expiry=None)
        for _ in range(n):
            d.queue(noop)  # the tracker is dropped: only the registry keeps the job
        d.wait()
        d.shutdown()  # threads gone; the registry still holds every finished job
        return d

    def build_futures():
        kept = {}
        for i in range(n):
            f: Future = Future()
            f.set_running_or_notify_cancel()
            f.set_result(None)
            kept[i] = f
        return kept

    nbf = median([_traced_bytes(build_nbfrost) / n for _ in range(3)])
    fut = median([_traced_bytes(build_futures) / n for _ in range(3)])
    return [row(f"memory per kept finished job ({n:,} jobs)", nbf, fut,
                "finished Future kept in a dict", "bytes", "<= 0.25x", nbf / fut <= 0.25)]


# ------------------------------------------------------------------- lookup
def bench_lookup(quick: bool) -> list[dict]:
    n = 20_000 if quick else 100_000
    d = nbfrost.Dispatcher(workers=4, expiry=None)
    for _ in range(n):
        d.queue(noop)
    d.wait()
    lock = threading.Lock()
    plain = {i: object() for i in range(n)}
    ids = [random.randrange(n) for _ in range(n)]

    def locked_lookup() -> float:
        t0 = time.perf_counter()
        for i in ids:
            with lock:
                plain[i]
        return (time.perf_counter() - t0) / len(ids) * 1e9

    def status_lookup() -> float:
        status = d.status
        t0 = time.perf_counter()
        for i in ids:
            status(i)
        return (time.perf_counter() - t0) / len(ids) * 1e9

    first = status_lookup()  # builds (and caches) each finished job's snapshot
    res = medians(interleaved({"base": locked_lookup, "warm": status_lookup}, 5))
    d.shutdown()
    b, w = res["base"], res["warm"]
    return [
        row("status(id) of a finished job, repeat lookup", w, b, "locked dict lookup", "ns",
            "<= 2x", w / b <= 2),
        row("  status(id), first lookup (builds the snapshot)", first, b, "locked dict lookup",
            "ns", "information", True),
    ]


# ------------------------------------------------------------------- frames
def bench_frames(quick: bool) -> list[dict]:
    import pandas as pd

    n = 20_000 if quick else 100_000
    d = nbfrost.Dispatcher(workers=4, expiry=None)
    for i in range(n):
        d.queue(noop, name=f"job-{i % 7}", tags=("a",))
    d.wait()
    # The anchor: the same rows as plain dicts, already in memory.
    dicts = [s.to_dict() for s in d.jobs()]
    for r in dicts:
        for key in ("queued_at", "started_at", "finished_at"):
            r[key] = pd.Timestamp(r[key]) if r.get(key) else None

    def t_frame() -> float:
        t0 = time.perf_counter()
        d.to_frame()
        return (time.perf_counter() - t0) * 1e3

    def t_dicts() -> float:
        t0 = time.perf_counter()
        pd.DataFrame(dicts)
        return (time.perf_counter() - t0) * 1e3

    def t_newest(dispatcher: nbfrost.Dispatcher) -> float:
        t0 = time.perf_counter()
        dispatcher.to_frame(newest=50)
        return (time.perf_counter() - t0) * 1e3

    res = medians(interleaved({"full": t_frame, "base": t_dicts}, 5))
    nb = medians(interleaved({"big": lambda: t_newest(d)}, 20))["big"]
    d.shutdown()
    small = nbfrost.Dispatcher(workers=4, expiry=None)
    for _ in range(n // 10):
        small.queue(noop)
    small.wait()
    ns = medians(interleaved({"small": lambda: t_newest(small)}, 20))["small"]
    small.shutdown()
    f, b = res["full"], res["base"]
    return [
        row(f"to_frame() over {n:,} jobs", f, b, "DataFrame(list of dicts)", "ms", "<= 1.2x",
            f / b <= 1.2),
        row(f"to_frame(newest=50) at {n:,} jobs", nb, 5.0, "5 ms budget", "ms", "<= 5 ms",
            nb <= 5.0),
        row(f"  flat: newest=50 at {n:,} vs {n // 10:,} jobs", nb, ns, f"{n // 10:,} jobs", "ms",
            "<= 1.5x (flat)", nb / ns <= 1.5),
    ]


# ----------------------------------------------------------------- harness
CORE = {
    "throughput": bench_throughput,
    "map": bench_map,
    "latency": bench_latency,
    "memory": bench_memory,
    "lookup": bench_lookup,
    "frames": bench_frames,
}
# Dask last: its client leaves event-loop threads behind in this process.
AREAS = ("magics", "dashboard", "history", "schedules", "publish", "dask", "processes")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    p.add_argument("--only", default="", help="comma-separated: " + ",".join([*CORE, *AREAS]))
    args = p.parse_args(argv)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    print(machine_line())
    rows: list[dict] = []
    for name, fn in CORE.items():
        if not only or name in only:
            print(f"... {name}", flush=True)
            rows += fn(args.quick)
    for area in AREAS:
        if only and area not in only:
            continue
        print(f"... {area}", flush=True)
        try:
            module = __import__(f"bench_{area}")
        except ImportError as exc:
            print(f"    skipped: {exc}")
            continue
        rows += module.run(quick=args.quick)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
