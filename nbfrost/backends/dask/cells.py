"""``%%frost`` cells on Dask: the cell body as a self-contained, picklable job.

A worker has no notebook namespace, so the magic ships the cell's source
with the variables named by ``--push``; the worker compiles and runs it in a
fresh namespace.  Cloudpickle ships a `CellJob` by reference to this class,
so this module is importable on the workers (it needs nothing but nbfrost).
"""

from __future__ import annotations

from ..remote import CellJob as RemoteCellJob

__all__ = ["CellJob"]


class CellJob(RemoteCellJob):
    """A ``%%frost`` cell body to run on a Dask worker, in a fresh namespace.

    The namespace holds only the pushed variables (they travel with this
    object, pickled by cloudpickle).  Calling it runs the body and returns
    the value of a trailing expression (``None`` if there is none).  A
    `NameError` for a name that was not pushed is raised again with a hint
    to add ``--push name``.

    Raises:
        SyntaxError: when built, if the source does not compile.
    """

    def _hint(self, exc: NameError, name: str) -> NameError | None:
        return NameError(f"{exc}: the cell runs on a Dask worker in a fresh namespace; add "
                         f"--push {name} to ship it from the notebook", name=name)
