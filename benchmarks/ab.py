"""Before/after: bench.py's hot paths on several checkouts, in the same run.

    python benchmarks/ab.py base=/path/to/checkout fold=/path/to/other [--rounds 7] [-n 200000]

For each round, every checkout runs in a fresh process (its own nbfrost,
imported from its own tree) and measures the ``queue()`` path
(`bench.tput_nbfrost`: µs per tracked no-op job on 4 workers) and the
``map()`` path (`bench.map_nbfrost`: µs per item), in wall-clock time and
in CPU time of the process.  The checkouts take
turns within a round, in reverse order every other round, so that load from
other processes hits all of them alike; the table gives each one's median
and its ratio to the first checkout.  This is how a hand-inlined copy of
the lifecycle earns its place: the fold that removes it must cost more than
5% of its path's time, measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

_PROBE = """
import gc, json, sys, time
root = sys.argv[1]
sys.path[:0] = [root, root + "/benchmarks"]
import bench
n = int(sys.argv[2])
out = {}
for name, fn in (("queue", bench.tput_nbfrost), ("map", bench.map_nbfrost)):
    gc.collect()
    cpu = time.process_time()
    out[name] = fn(n)
    out[name + " cpu"] = (time.process_time() - cpu) / n * 1e6
print(json.dumps(out))
"""
#: What is measured: wall-clock µs per job or item (bench.py's figures), and
#: the CPU time the whole process (every thread) spent per job or item.  On
#: a loaded machine the CPU time is the steadier of the two: it does not
#: count the time the process waited for a core.
METRICS = ("queue", "queue cpu", "map", "map cpu")


def measure(root: str, n: int) -> dict[str, float]:
    """One round of one checkout, in a process of its own."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, root, str(n)], capture_output=True,
                          text=True, check=True, cwd=root)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkouts", nargs="+", help="NAME=PATH, the first is the reference")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("-n", type=int, default=200_000, help="jobs (queue) and items (map) per run")
    args = p.parse_args(argv)
    names, roots = [], []
    for spec in args.checkouts:
        name, _, root = spec.partition("=")
        names.append(name)
        roots.append(os.path.abspath(root))
    samples: dict[str, dict[str, list[float]]] = {n: {m: [] for m in METRICS} for n in names}
    for i in range(args.rounds):
        order = list(zip(names, roots))
        for name, root in reversed(order) if i % 2 else order:
            for path, value in measure(root, args.n).items():
                samples[name][path].append(value)
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    ref = names[0]
    print(f"\nmedians of {args.rounds} interleaved rounds, n={args.n:,}, "
          f"{os.cpu_count()} cores (a shared machine: see the load)")
    print(f"{'checkout':12}" + "".join(f" {m + ' µs':>14} {'ratio':>6}" for m in METRICS))
    med = {n: {k: statistics.median(v) for k, v in s.items()} for n, s in samples.items()}
    for name in names:
        print(f"{name:12}" + "".join(
            f" {med[name][m]:14.3f} {med[name][m] / med[ref][m]:6.3f}" for m in METRICS))
    print("\nratios paired by round (the median of each round's ratio to the first checkout):")
    for name in names[1:]:
        paired = {m: statistics.median(a / b for a, b in zip(samples[name][m], samples[ref][m]))
                  for m in METRICS}
        print(f"{name:12}" + "".join(f" {m}: {r:.3f}" for m, r in paired.items()))
    print("\nall samples:", json.dumps(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
