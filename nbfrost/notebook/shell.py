"""The IPython shell's default dispatcher, for code that is not the magics.

`nbfrost.get_dispatcher()` and ``Dashboard()`` without a dispatcher both
want the dispatcher that ``%frost`` uses.  It belongs to the shell's
`FrostMagics` instance, which IPython keeps in its magics registry by class
name.  This module finds it there instead of importing `nbfrost.notebook.magics`, so
that the dashboard and the magics both sit on top of it and neither imports
the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher

__all__ = ["get_dispatcher", "find_magics", "MAGICS_NAME"]

#: The name under which IPython registers `nbfrost.notebook.magics.FrostMagics`.
MAGICS_NAME = "FrostMagics"
_MAGICS_MODULE = "nbfrost.notebook.magics"


def find_magics(shell: Any) -> Any | None:
    """The shell's `FrostMagics` instance, or None if nbfrost's magics are not loaded.

    Matched by class name and module, so a user's own class that happens to
    be called ``FrostMagics`` is not taken for ours.
    """
    magics = shell.magics_manager.registry.get(MAGICS_NAME)
    if magics is None or type(magics).__module__ != _MAGICS_MODULE:
        return None
    return magics


def get_dispatcher(shell: Any = None) -> Dispatcher:
    """The default `Dispatcher` of the running IPython shell (made on first use).

    Loads the extension if it is not loaded yet, so that ``%frost`` sees the
    same jobs.

    Raises:
        RuntimeError: not running inside IPython (create a
            ``nbfrost.Dispatcher()`` yourself there).
    """
    if shell is None:
        from IPython.core.getipython import get_ipython
        shell = get_ipython()
        if shell is None:
            raise RuntimeError("nbfrost.get_dispatcher() needs a running IPython shell; "
                               "outside IPython create nbfrost.Dispatcher() yourself")
    magics = find_magics(shell)
    if magics is None:
        manager = shell.extension_manager
        # nbfrost may be marked loaded while its magics were removed: forget
        # the mark, so that loading registers them again.
        manager.loaded.discard("nbfrost")
        manager.load_extension("nbfrost")
        magics = find_magics(shell)
    if magics is None:
        raise RuntimeError("nbfrost.get_dispatcher(): loading the nbfrost extension did not "
                           "register its magics; try %reload_ext nbfrost")
    dispatcher: Dispatcher = magics.get_dispatcher()
    return dispatcher
