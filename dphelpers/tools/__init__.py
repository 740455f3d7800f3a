"""Tooling around the method (not part of it): the command line (:mod:`~dphelpers.tools.cli`),
the benchmark (:mod:`~dphelpers.tools.bench`, :mod:`~dphelpers.tools.benchcli`), the book build
(:mod:`~dphelpers.tools.book`), papermill sweeps on Dask (:mod:`~dphelpers.tools.sweep`),
DistributedDataParallel training (:mod:`~dphelpers.tools.ddp`) and the live JupyterLab pose
explorer (:mod:`~dphelpers.tools.explorer`).  Importing this package imports none of them.
"""
__all__ = ["cli", "bench", "benchcli", "book", "sweep", "ddp", "explorer"]
