"""Cost of the SQLite job history (issue 6).

Target: with ``Dispatcher(history=...)`` the pool's throughput is at least
0.5x the throughput without it.  Workload: no-op jobs on 4 workers (the
worst case: the journal's cost per job is fixed, a no-op job's own cost is
the smallest there is).  A run queues *n* jobs, waits for them and then
waits until the journal has committed every transition
(``flush_history()``), so the writer's backlog is paid inside the timing.

The runs with and without history are interleaved, so both see the same
load from other processes; each figure is the median of the repeats.

    python benchmarks/bench_history.py [--quick]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time


def _noop() -> None:
    return None


def _jobs_per_second(n: int, path: str | None) -> float:
    import nbfrost

    d = nbfrost.Dispatcher(workers=4, expiry=None, history=path)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            d.queue(_noop)
        d.wait()
        if not d.flush_history(60):
            raise RuntimeError("the history writer did not catch up within 60 s")
        dt = time.perf_counter() - t0
    finally:
        d.shutdown()
    return n / dt


def run(quick: bool = False) -> list[dict]:
    """Measure; return the rows for the benchmark table (see COMMON notes)."""
    n, repeats = (5_000, 3) if quick else (50_000, 7)
    folder = tempfile.mkdtemp(prefix="nbfrost-bench-history-")
    with_history: list[float] = []
    without: list[float] = []
    try:
        _jobs_per_second(min(n, 5_000), None)  # warm up imports and caches
        for i in range(repeats):
            path = os.path.join(folder, f"jobs-{i}.sqlite")
            # Alternate which runs first, so neither always gets the quieter slot.
            if i % 2:
                with_history.append(_jobs_per_second(n, path))
                without.append(_jobs_per_second(n, None))
            else:
                without.append(_jobs_per_second(n, None))
                with_history.append(_jobs_per_second(n, path))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    on, off = statistics.median(with_history), statistics.median(without)
    ratio = on / off
    return [{
        "metric": f"throughput with history on ({n} no-op jobs, 4 workers)",
        "nbfrost": on,
        "anchor": off,
        "anchor_name": "same pool, history off",
        "unit": "jobs/s",
        "ratio": ratio,
        "target": ">= 0.5x",
        "ok": ratio >= 0.5,
    }]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rows = run(quick="--quick" in argv)
    print(f"{'metric':58} {'nbfrost':>12} {'anchor':>12} {'ratio':>7} {'target':>9}  ok")
    for r in rows:
        print(f"{r['metric']:58} {r['nbfrost']:12.1f} {r['anchor']:12.1f} "
              f"{r['ratio']:7.2f} {r['target']:>9}  {'yes' if r['ok'] else 'NO'}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    raise SystemExit(main())
