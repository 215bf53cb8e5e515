"""Soak: a million jobs through one dispatcher with a short expiry.

    python benchmarks/soak.py                 # 1,000,000 jobs, expiry 1 s
    python benchmarks/soak.py --jobs 200000 --expiry 0.5

It prints the resident set size (RSS) and the number of jobs the registry
holds as the run goes on.  Memory must flatten once expiry keeps pace: after
the first expiry window, the registry holds about ``throughput * expiry``
finished jobs and RSS stops growing.  ``max_queue`` keeps the producer from
running far ahead of the workers (otherwise the growth would be the queue,
not the registry).  Exit status 1 if RSS grew by more than 10% over the
second half of the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nbfrost


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def noop() -> None:
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--expiry", type=float, default=1.0)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--samples", type=int, default=20)
    args = p.parse_args(argv)

    d = nbfrost.Dispatcher(workers=args.workers, expiry=args.expiry, max_queue=10_000)
    step = max(1, args.jobs // args.samples)
    rows = []
    t0 = time.perf_counter()
    print(f"{'jobs queued':>12} {'seconds':>8} {'RSS MB':>8} {'peak MB':>8} {'held':>8}")
    peak = 0.0
    for i in range(1, args.jobs + 1):
        d.queue(noop)
        if i % step == 0:
            rss = rss_mb()
            peak = max(peak, rss)
            held = len(d.registry)
            rows.append((i, time.perf_counter() - t0, rss, held))
            print(f"{i:>12,} {rows[-1][1]:>8.1f} {rss:>8.1f} {peak:>8.1f} {held:>8,}", flush=True)
    d.wait()
    elapsed = time.perf_counter() - t0
    stats = d.stats()
    d.shutdown()
    half = rows[len(rows) // 2][2]
    end = rows[-1][2]
    growth = (end - half) / half if half else 0.0
    print(f"\n{args.jobs:,} jobs in {elapsed:.1f} s ({args.jobs / elapsed:,.0f} jobs/s); "
          f"finished {sum(stats['finished'].values()):,}; peak RSS {peak:.1f} MB; "
          f"RSS growth over the second half {growth:+.1%} (flat means <= +10%)")
    return 0 if growth <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
