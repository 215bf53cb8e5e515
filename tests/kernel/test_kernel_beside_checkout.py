"""A kernel started in the folder that holds a checkout named ``nbfrost``.

That folder is on the kernel's ``sys.path`` (its working directory), so the
checkout could be imported as an empty namespace package ``nbfrost`` and
``%load_ext nbfrost`` fail with "not an IPython extension".  It cannot: an
installed nbfrost is a regular package, which the import system prefers to a
namespace portion wherever it sits on ``sys.path`` (the editable install puts
the checkout's root on ``sys.path`` through a .pth file; a wheel installs the
package in site-packages).  docs/contributing.md says what is left (a kernel
whose environment lacks nbfrost) and what to do."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import Kernel

import nbfrost


def test_load_ext_in_a_folder_holding_a_checkout_named_nbfrost_loads_the_package(tmp_path):
    checkout = tmp_path / "nbfrost"  # as after `git clone ... nbfrost`
    (checkout / "nbfrost").mkdir(parents=True)
    root = Path(nbfrost.__file__).resolve().parents[1]
    for name in ("pyproject.toml", "README.md"):
        (checkout / name).write_text((root / name).read_text())
    # The checkout's package, were it imported from here, would say so.
    (checkout / "nbfrost" / "__init__.py").write_text(
        "raise ImportError('the checkout in the working directory was imported')\n")
    k = Kernel(cwd=tmp_path)
    try:
        k.run("%load_ext nbfrost")
        msg = k.run("import json, os, nbfrost\n"
                    "print(json.dumps([os.getcwd(), nbfrost.__file__, "
                    "nbfrost.get_dispatcher().queue(pow, 2, 5).result(30)]))")
        cwd, imported, value = json.loads(k.stdout(msg).strip().splitlines()[-1])
        assert Path(cwd) == tmp_path  # the folder with the checkout is the working directory
        assert imported is not None and Path(imported).resolve() == Path(nbfrost.__file__).resolve()
        assert value == 32
        assert not k.streams("not an IPython extension")
    finally:
        k.close()
