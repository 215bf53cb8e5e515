"""Overhead of ``%%frost`` on an empty cell, against ``shell.run_cell``.

Target (issue 3): running ``%%frost`` on an empty cell costs at most 1.5x
running the same cell directly through ``InteractiveShell.run_cell``, plus
the core's per-job cost (``Dispatcher.queue`` of a no-op, run to the end).
So the ratio reported is ``(t_frost - t_job) / t_run_cell``.

All three are measured in the same run, in the same real InteractiveShell;
each figure is the median over several repeats of a batch of calls.  The
``%%frost`` and ``queue()`` figures include running the jobs: each batch
queues, then waits until its jobs have ended (the pool runs them meanwhile
on other threads, sharing the GIL with the queuing thread).

    python benchmarks/bench_magics.py [--quick]
"""

from __future__ import annotations

import io
import sys
import time
from contextlib import redirect_stdout

from common import interleaved, main, medians, row


def _per_call(fn, calls: int, drain=None) -> float:
    """Seconds per call over one batch; with *drain*, the batch includes
    running the jobs it queued (drain waits for them)."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    if drain is not None:
        drain()
    return (time.perf_counter() - t0) / calls


def run(quick: bool = False) -> list[dict]:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    import nbfrost

    calls, repeats = (100, 5) if quick else (200, 15)
    cfg = Config()
    cfg.HistoryManager.enabled = False
    fresh = not InteractiveShell.initialized()
    shell = InteractiveShell.instance(config=cfg) if fresh else InteractiveShell.instance()
    nbfrost.load_ipython_extension(shell)
    try:
        d = nbfrost.get_dispatcher(shell)
        sink = io.StringIO()

        def drain() -> None:
            d.wait()
            d.clear()  # O(jobs held); keeps every batch starting from empty
            sink.seek(0)
            sink.truncate()

        # IPython's own floor for any cell magic: the cell becomes the
        # expression `get_ipython().run_cell_magic(...)`, run like any cell.
        # A do-nothing magic (returning None, so nothing is displayed)
        # measures it; the badge display counts as nbfrost's own work.
        # (IPython's decorator on register_magic_function hides its signature from mypy.)
        shell.register_magic_function(lambda line, cell: None, "cell", "bench_noop")  # type: ignore[arg-type]

        cell = "pass"
        frost = "%%frost\npass"
        noop_magic = "%%bench_noop\npass"
        with redirect_stdout(sink):
            for _ in range(20):  # warm caches (transformers, parsers, imports)
                shell.run_cell(cell)
                shell.run_cell(frost)
            drain()
            def noop() -> None:
                return None

            cases = {
                "cell": lambda: _per_call(lambda: shell.run_cell(cell), calls),
                "floor": lambda: _per_call(lambda: shell.run_cell(noop_magic), calls),
                "frost": lambda: _per_call(lambda: shell.run_cell(frost), calls, drain),
                "job": lambda: _per_call(lambda: d.queue(noop), calls, drain),
            }
            # Interleaved rounds, so that load from other processes on a
            # shared machine hits every case alike; medians over the rounds.
            res = medians(interleaved(cases, repeats))
            t_cell, t_floor, t_frost, t_queue = (res[k] for k in ("cell", "floor", "frost", "job"))
    finally:
        shell.magics_manager.magics["cell"].pop("bench_noop", None)
        nbfrost.unload_ipython_extension(shell)
        if fresh:
            InteractiveShell.clear_instance()

    ratio = (t_frost - t_queue) / t_cell
    own = (t_frost - t_floor - t_queue) / t_cell
    us = 1e6
    per_cell = "us per cell"
    run_cell = "InteractiveShell.run_cell('pass')"
    budget = 1.5 * t_cell + t_queue
    return [
        row("%%frost empty cell minus the core per-job cost, vs run_cell", (t_frost - t_queue) * us,
            t_cell * us, run_cell, per_cell, "<= 1.5x", ratio <= 1.5, ratio=ratio),
        row("%%frost's own work (minus IPython's cell-magic floor and the core)",
            (t_frost - t_floor - t_queue) * us, t_cell * us, run_cell, per_cell, "<= 1.0x",
            own <= 1.0, ratio=own),
        row("IPython floor: a do-nothing cell magic", t_floor * us, t_cell * us, run_cell,
            per_cell, "info", True, ratio=t_floor / t_cell),
        row("%%frost empty cell, total (for reference)", t_frost * us, budget * us,
            "1.5 x run_cell('pass') + Dispatcher.queue(noop)", per_cell, "<= 1.0x",
            t_frost <= budget, ratio=t_frost / budget),
    ]


if __name__ == "__main__":
    sys.exit(main(run))
