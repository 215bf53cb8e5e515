"""Schedules: what idle schedules cost, and how punctually runs start.

* **Idle cost**: the process's CPU time (``time.process_time()``, every
  thread) over a window while 1,000 active schedules wait (every 1 h, so
  none comes due), against a dispatcher with none, in interleaved rounds.
  Target: the difference is under 1 % of one core.  One timer thread
  serves all of them: it sleeps until the earliest due time (or
  ``defaults.SCHEDULE_RECHECK``), so idle schedules cost nothing per
  schedule.
* **Punctuality**: with the real clock, an idle pool and a 1 s schedule,
  how late each run starts after its due time (the job's ``started_at``
  against the schedule's grid), median over ``--runs`` runs (default 60).
  The peer runs at the same time: the loop people write by hand, a thread
  that sleeps until the next whole interval (``time.sleep``) and calls the
  function, measured the same way.  Target: median <= 20 ms.

The machine is shared with other engineers' test runs: the load average is
printed before and after; absolute figures move with it.

    python benchmarks/bench_schedules.py [--quick] [--runs N] [--window S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

from common import interleaved, machine_line, medians, print_table, row

import nbfrost


def _cpu_over(window: float) -> float:
    """Percent of one core this process used over *window* seconds."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    time.sleep(window)
    return 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def _idle_case(n: int, window: float) -> float:
    with nbfrost.Dispatcher(workers=4) as d:
        for i in range(n):
            d.every(3600 + i, _noop, name=f"idle-{i}")
        time.sleep(0.2)  # let the timer thread settle into its wait
        return _cpu_over(window)


def _noop() -> None:
    return None


def idle_rows(quick: bool, window: float, n: int = 1000) -> list[dict]:
    rounds = 2 if quick else 5
    got = interleaved({"schedules": lambda: _idle_case(n, window),
                       "none": lambda: _idle_case(0, window)}, rounds, alternate=True)
    med = medians(got)
    extra = med["schedules"] - med["none"]
    return [row(f"idle CPU, {n:,} active schedules (% of a core, {window:g} s x {rounds})",
                med["schedules"], med["none"], "none", "%core", "< +1 % of a core", extra < 1.0,
                ratio=med["schedules"] / med["none"] if med["none"] else float("nan"))]


def _grid_lateness(t: float, anchor: float, interval: float) -> float:
    """Seconds *t* is after the last grid point ``anchor + k * interval``."""
    return (t - anchor) % interval


def punctuality_rows(runs: int, interval: float = 1.0) -> list[dict]:
    hand: list[float] = []
    stop = threading.Event()

    with nbfrost.Dispatcher(workers=4) as d:
        s = d.every(interval, _noop, name="punctual", max_runs=runs)
        assert s.next_run is not None
        anchor = s.next_run.timestamp()
        # The peer: a hand-written loop on its own thread, on the same grid.
        hand_anchor = anchor + interval / 2  # half a period apart: they never contend

        def by_hand() -> None:
            k = 0
            while not stop.is_set() and len(hand) < runs:
                due = hand_anchor + k * interval
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                hand.append(time.time() - due)
                _noop()
                k += 1

        peer = threading.Thread(target=by_hand, name="hand-written-loop")
        peer.start()
        deadline = time.monotonic() + runs * interval + 30
        while s.state.value != "ended" and time.monotonic() < deadline:
            time.sleep(interval)
        for t in s.runs():
            t.wait(10)
        late = [_grid_lateness(t.status().started_at.timestamp(), anchor, interval)
                for t in s.runs()]
        stop.set()
        peer.join()
    med, peer_med = statistics.median(late) * 1000, statistics.median(hand) * 1000
    p90 = sorted(late)[int(0.9 * (len(late) - 1))] * 1000
    print(f"punctuality: {len(late)} runs, median {med:.2f} ms, p90 {p90:.2f} ms, "
          f"max {max(late) * 1000:.2f} ms; hand-written loop median {peer_med:.2f} ms; "
          f"missed {s.missed}")
    return [row(f"run start after due time, 1 s schedule, median of {len(late)}", med, peer_med,
                "sleep loop", "ms", "<= 20 ms", med <= 20.0)]


def run(quick: bool = False, runs: int | None = None, window: float | None = None) -> list[dict]:
    runs = runs if runs is not None else (10 if quick else 60)
    window = window if window is not None else (2.0 if quick else 10.0)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(a shared machine: other engineers' tests run too)")
    rows = idle_rows(quick, window) + punctuality_rows(runs)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    p.add_argument("--runs", type=int, default=None, help="runs of the 1 s schedule (default 60)")
    p.add_argument("--window", type=float, default=None,
                   help="seconds of each idle CPU sample (default 10)")
    args = p.parse_args()
    print(machine_line())
    print_table(run(args.quick, args.runs, args.window))
    sys.exit(0)
