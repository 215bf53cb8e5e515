"""Per-job cost of nbfrost on Dask, against raw ``client.submit`` + ``gather``.

Target (issue 5): running no-op jobs through ``Dispatcher(backend="dask")``
costs at most 1.2x submitting the same no-op with
``client.submit(..., pure=False)`` and collecting it with
``client.gather``, on the same cluster, in the same run.

One real ``LocalCluster(processes=True)`` on 127.0.0.1 with two
single-threaded workers serves both.  Each repeat times a batch of jobs,
from the first submit until every result is back; the two sides alternate
within each repeat (A-B-B-A) so that machine noise hits both.  Figures are medians
over the repeats, per job.

    python benchmarks/bench_dask.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time

from common import main, row

#: Per-job figures, in milliseconds.
UNIT = "ms/job"


def noop() -> None:
    """The job: nothing, so only the machinery is measured."""
    return None


def _batch_raw(client, n: int) -> float:
    t0 = time.perf_counter()
    futures = [client.submit(noop, pure=False) for _ in range(n)]
    client.gather(futures)
    elapsed = time.perf_counter() - t0
    del futures
    return elapsed / n


def _batch_nbfrost(d, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        d.queue(noop)
    d.wait()
    elapsed = time.perf_counter() - t0
    d.clear()
    return elapsed / n


def run(quick: bool = False) -> list[dict]:
    import cloudpickle
    from distributed import Client, LocalCluster

    import nbfrost

    # The workers cannot import this file as a module: ship noop by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    jobs, repeats = (100, 5) if quick else (300, 11)
    half = jobs // 2
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0",
                           worker_dashboard_address="127.0.0.1:0")
    try:
        with (Client(cluster, set_as_default=False) as client,
              nbfrost.Dispatcher(2, backend="dask", client=client, expiry=None) as d):
            _batch_raw(client, 50)  # warm up both paths
            _batch_nbfrost(d, 50)
            raw, ours = [], []
            for _ in range(repeats):
                # A-B-B-A halves: load that drifts during a repeat hits
                # both sides alike (the machine may be shared).
                r = _batch_raw(client, half)
                o = _batch_nbfrost(d, half) + _batch_nbfrost(d, half)
                r += _batch_raw(client, half)
                raw.append(r / 2)
                ours.append(o / 2)
    finally:
        cluster.close()
    anchor = statistics.median(raw) * 1000
    value = statistics.median(ours) * 1000
    ratio = value / anchor
    return [row(f"dask per-job cost ({jobs} no-op jobs, 2 workers)", value, anchor,
                "client.submit(pure=False) + gather", UNIT, "<= 1.2x", ratio <= 1.2, ratio=ratio)]


if __name__ == "__main__":
    sys.exit(main(run))
