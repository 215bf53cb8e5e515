"""Cost of the SQLite job history (issue 6).

Target: with ``Dispatcher(history=...)`` the pool's throughput is at least
0.5x the throughput without it.  Workload: no-op jobs on 4 workers (the
worst case: the history writer's cost per job is fixed, a no-op job's own cost is
the smallest there is).  A run queues *n* jobs, waits for them and then
waits until the history writer has committed every transition
(``flush_history()``), so the writer's backlog is paid inside the timing.

The runs with and without history are interleaved, so both see the same
load from other processes; each figure is the median of the repeats.

    python benchmarks/bench_history.py [--quick]
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
import time

from common import interleaved, main, medians, row


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
    """Measure; return the rows for the benchmark table."""
    n, repeats = (5_000, 3) if quick else (50_000, 7)
    folder = tempfile.mkdtemp(prefix="nbfrost-bench-history-")
    files = (os.path.join(folder, f"jobs-{i}.sqlite") for i in itertools.count())
    try:
        _jobs_per_second(min(n, 5_000), None)  # warm up imports and caches
        # Alternate which runs first, so neither always gets the quieter slot.
        res = medians(interleaved({"without": lambda: _jobs_per_second(n, None),
                                   "with": lambda: _jobs_per_second(n, next(files))},
                                  repeats, alternate=True))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    on, off = res["with"], res["without"]
    ratio = on / off
    return [row(f"throughput with history on ({n} no-op jobs, 4 workers)", on, off,
                "same pool, history off", "jobs/s", ">= 0.5x", ratio >= 0.5, ratio=ratio)]


if __name__ == "__main__":
    sys.exit(main(run, fail_on_miss=True))
