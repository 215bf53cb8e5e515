"""The notebook surface: everything nbfrost shows in or adds to IPython.

The magics (``%%frost``/``%frost``), their tab completion, the badge under a
cell, the runner of a ``%%frost`` cell body, the front-end detection and the
ipywidgets dashboard.  These modules sit on top of the engine (dispatcher,
registry, pools) and find the shell's dispatcher through :mod:`.shell`; the
engine never imports anything from here.
"""
