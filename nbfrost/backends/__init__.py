"""Backends run jobs; the registry decides what their results mean.

``threads`` (the default) is in-process; ``processes`` runs jobs in local
worker processes (also a dispatcher's second pool, for ``process=True``);
``dask`` runs jobs on a ``distributed`` cluster.  The last two are imported
only when selected.  Every backend
has what `Backend` (in ``base``) lists.
"""

from __future__ import annotations

from typing import Any

from .base import Backend

__all__ = ["BACKENDS", "Backend", "make_backend"]

#: The backends `make_backend` knows by name.
BACKENDS = ("threads", "dask", "processes")


def make_backend(backend: str | Backend, workers: int, output_cap: int,
                 options: dict[str, Any]) -> Backend:
    """The backend a `Dispatcher` was asked for.

    *backend* is a name from `BACKENDS`, or a backend object, which is
    returned as it is.  *options* are the backend's own keyword arguments
    (only ``dask`` takes any).

    Raises:
        TypeError: *options* the backend does not take.
        ValueError: an unknown name.
        ImportError: ``dask`` without the ``distributed`` package.
    """
    if not isinstance(backend, str):
        if options:
            raise TypeError(f"unexpected arguments {sorted(options)} for a backend object")
        return backend
    if backend == "threads":
        if options:
            raise TypeError(f"unexpected arguments for the thread backend: {sorted(options)}")
        from .threads import ThreadBackend
        return ThreadBackend(workers, output_cap=output_cap)
    if backend == "processes":
        from .. import defaults
        from .processes import ProcessBackend
        size = options.pop("process_workers", None)
        if options:
            raise TypeError(f"unexpected arguments for the process backend: {sorted(options)}")
        return ProcessBackend(defaults.PROCESS_WORKERS if size is None else size,
                              output_cap=output_cap)
    if backend == "dask":
        # Imported only now: it is the only backend that needs distributed.
        from .dask import DaskBackend
        return DaskBackend(workers, output_cap=output_cap, **options)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
