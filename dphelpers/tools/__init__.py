"""Tooling around the method (not part of it; no notebook imports it): the command line
(:mod:`~dphelpers.tools.cli`; its parser :mod:`~dphelpers.tools.parser`, shared options in
:mod:`~dphelpers.tools.options`) and its verbs: the benchmark (:mod:`~dphelpers.tools.bench`,
its instruments in :mod:`~dphelpers.tools.measure`), the book build (:mod:`~dphelpers.tools.book`;
each chapter made ready for the reader in :mod:`~dphelpers.tools.chapters`; reader-level checks in
:mod:`~dphelpers.tools.bookcheck` and :mod:`~dphelpers.tools.pagecheck`), papermill sweeps on
Dask (:mod:`~dphelpers.tools.sweep`, its grid :mod:`~dphelpers.tools.grid`),
DistributedDataParallel training (:mod:`~dphelpers.tools.ddp`), the studies (``study``,
``mechanism``, ``heldout``, ``realcheck``, ``fewstep``, ``curves``) and the JupyterLab check of
the explorer (``labcheck``).  Importing this package imports none of them.
"""
__all__ = ["cli", "parser", "options", "verbs", "export", "measure", "bench", "book", "chapters",
           "bookcheck", "pagecheck", "sweep", "grid", "ddp", "study", "mechanism", "heldout",
           "realcheck", "fewstep", "curves", "labcheck", "modelref", "onnxexport", "resultspage",
           "resultstext", "tryit"]
