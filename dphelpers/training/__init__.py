"""Training (notebook 04): the one training loop and its settings.

:mod:`~dphelpers.training.train` (``fit``, the loop for one model or a group on one stream),
:mod:`~dphelpers.training.config` (``TrainConfig`` and the learning-rate rules),
:mod:`~dphelpers.training.state` (the exact-resume state) and
:mod:`~dphelpers.training.many` (several models on one stream).  Importing this package
imports none of them.
"""
__all__ = ["train", "config", "state", "many"]
