"""Sphinx configuration for the nbfrost documentation (``make docs``).

Markdown pages are MyST; the notebooks in ``notebooks/`` (linked here as
``docs/notebooks``) are executed at build time by myst-nb and shown with
their outputs; the API reference comes from the docstrings (autodoc,
napoleon for the Google-style sections).  Built with ``-W --keep-going``:
every warning fails ``make docs``.
"""

from __future__ import annotations

import nbfrost

project = "nbfrost"
author = "nbfrost developers"
copyright = "2026, nbfrost developers"
release = nbfrost.__version__
version = release

extensions = [
    "myst_nb",                      # MyST Markdown pages and executed notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
]

exclude_patterns = ["_build", "**/.ipynb_checkpoints", "notebooks/README*"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# `Name` in docstrings links to the object when Sphinx knows it, plain code otherwise.
default_role = "py:obj"

# MyST: anchors for headings (``page.md#a-heading``), ``:::`` fences, definition lists.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Notebooks: run on every build (they take seconds), in a temporary
# directory (what they write stays out of the tree); a failing cell fails the build.
nb_execution_mode = "force"
nb_execution_in_temp = True
nb_execution_timeout = 180
nb_execution_raise_on_error = True
nb_execution_show_tb = True

# API reference.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
autosummary_generate = False       # the pages are written by hand; nothing is generated into docs/
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"nbfrost {release}"
html_static_path: list[str] = []
