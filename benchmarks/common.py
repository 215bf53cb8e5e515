"""What every benchmark file shares: a table row, the table, the machine
line above it, interleaved repeats with their medians, and the ``main`` of
a ``bench_<area>.py`` file run on its own.

A row is a dict with ``metric``, ``nbfrost``, ``anchor``, ``anchor_name``,
``unit``, ``ratio``, ``target`` and ``ok``.  ``bench.py`` collects the rows
of every area into one table: the table in docs/performance.md is its output.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import date

# The repository root, so that a benchmark run from a checkout measures
# that checkout's nbfrost.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def row(metric: str, nbf: float, anchor: float, anchor_name: str, unit: str,
        target: str, ok: bool, ratio: float | None = None) -> dict:
    """One table row; the ratio is nbfrost / anchor unless given."""
    return {"metric": metric, "nbfrost": nbf, "anchor": anchor, "anchor_name": anchor_name,
            "unit": unit, "ratio": nbf / anchor if ratio is None else ratio,
            "target": target, "ok": ok}


def interleaved(cases: Mapping[str, Callable[[], float | None]], repeats: int, *,
                alternate: bool = False, between: Callable[[], object] | None = None,
                ) -> dict[str, list[float]]:
    """Every case once per round, for *repeats* rounds, so that load from
    other processes on a shared machine hits every case alike.  With
    *alternate*, every other round runs the cases in reverse order (so no
    case always gets the quieter slot).  *between* runs after each round.
    Returns each case's samples; a case that returns None gives no sample."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for i in range(repeats):
        for name in reversed(order) if alternate and i % 2 else order:
            value = cases[name]()
            if value is not None:
                samples[name].append(value)
        if between is not None:
            between()
    return samples


def medians(samples: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The median of each case's samples; NaN for a case without any."""
    return {name: statistics.median(xs) if xs else float("nan") for name, xs in samples.items()}


def machine_line() -> str:
    """The first line of a run: when, and on what."""
    return (f"nbfrost benchmark, {date.today().isoformat()}, Python {platform.python_version()}, "
            f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")


def fmt(x: float) -> str:
    return f"{x:,.3f}" if abs(x) < 100 else f"{x:,.0f}"


def print_table(rows: list[dict]) -> None:
    print(f"\n{'metric':58} {'nbfrost':>10} {'anchor':>10} {'unit':>7} {'ratio':>7}  "
          f"{'ok':3} target")
    for r in rows:
        print(f"{r['metric'][:58]:58} {fmt(r['nbfrost']):>10} {fmt(r['anchor']):>10} "
              f"{r['unit']:>7} {r['ratio']:7.2f}  {'yes' if r['ok'] else 'NO':3} {r['target']}")


def main(run: Callable[..., list[dict]], argv: list[str] | None = None, *,
         fail_on_miss: bool = False) -> int:
    """Run one area on its own (``--quick``: small sizes) and print its
    table as ``bench.py`` does.  With *fail_on_miss*, exit status 1 when a
    target is missed."""
    argv = sys.argv[1:] if argv is None else argv
    print(machine_line())
    rows = run(quick="--quick" in argv)
    print_table(rows)
    return 1 if fail_on_miss and not all(r["ok"] for r in rows) else 0
