"""Backends run jobs; the registry decides what their results mean.

``threads`` (the default) is in-process; ``dask`` runs jobs on a
``distributed`` cluster and is imported only when selected.
"""
