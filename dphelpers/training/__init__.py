"""Training (notebook 04): the one training loop and its settings.

:mod:`~dphelpers.training.train` (``fit``, the loop for one model or a group on one stream),
:mod:`~dphelpers.training.config` (``TrainConfig`` and the learning-rate rules),
:mod:`~dphelpers.training.state` (the exact-resume state), :mod:`~dphelpers.training.resume`
(saving and resuming a group, one rule),
:mod:`~dphelpers.training.many` (several models on one stream),
:mod:`~dphelpers.training.profile` (where a step's time goes) and
:mod:`~dphelpers.training.curves` (training runs side by side).  Importing this package imports
none of them.
"""
__all__ = ["train", "config", "state", "resume", "many", "profile", "curves"]
