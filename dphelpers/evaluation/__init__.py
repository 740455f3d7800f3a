"""Evaluation (notebook 05) and the results files.

Scoring: :mod:`~dphelpers.evaluation.evaluate` (every test image, per-sample metrics) on
:mod:`~dphelpers.evaluation.testsets`, :mod:`~dphelpers.evaluation.fewstep` (DDIM samplers),
:mod:`~dphelpers.evaluation.realcheck` (a real photo against the test split),
:mod:`~dphelpers.evaluation.explorer` (the live 3D explorer),
:mod:`~dphelpers.evaluation.twins` and :mod:`~dphelpers.evaluation.coverage` (depth-flip
alternatives), :mod:`~dphelpers.evaluation.mechanism` (the failed joints),
:mod:`~dphelpers.evaluation.reprojection` (real photos), :mod:`~dphelpers.evaluation.cache`
(load-or-compute).  Reading results: :mod:`~dphelpers.evaluation.results`,
:mod:`~dphelpers.evaluation.unseen`, :mod:`~dphelpers.evaluation.tables`; their figures:
:mod:`~dphelpers.evaluation.vizpages`, :mod:`~dphelpers.evaluation.vizmechanism`.  Importing
this package imports none of them.
"""
__all__ = ["evaluate", "testsets", "fewstep", "realcheck", "explorer", "twins", "coverage",
           "mechanism", "reprojection", "cache", "results", "unseen", "tables", "vizpages",
           "vizmechanism"]
