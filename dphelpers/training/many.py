"""Several models trained on one stream of batches (notebook 04, the ablations).

The ablations and the lifter are compared on the same data with the same budget; on a CPU
the simulated batches cost a third of a step, so drawing each batch once and giving it to
every model is both the fair comparison and the cheaper one.  :func:`fit_many` does that
with the one training loop, :func:`~dphelpers.training.train.fit_group`: each step draws one batch
from the stream and runs :func:`~dphelpers.training.train.train_step` of every model on it, in a
fixed order.

Every model has a :class:`~dphelpers.training.state.TrainState` of its own whose ``generator``
is its *own* stream of candidates, timesteps and noise (seeded from its config's seed and
its name, :func:`~dphelpers.training.train.loss_seed`), so a model's draws do not depend on which
other models train beside it.  Each model's training checkpoint is an ordinary one
(``export`` reads it) plus the state of the shared batch stream under ``"stream_rng"``;
resuming needs every model's file at the same step and restores the stream from them, so an
interrupted run continues exactly.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from ..pipeline import TrainStream
from .train import TrainConfig, TrainResult, fit_group, loss_seed

__all__ = ["loss_seed", "fit_many"]


def fit_many(models: dict[str, nn.Module], stream: TrainStream,
             configs: dict[str, TrainConfig], checkpoints: dict[str, str | Path],
             progress: bool = True, keep_at: tuple[int, ...] = ()) -> dict[str, TrainResult]:
    """Train every model of ``models`` (name -> module, trained in place) on one stream.

    ``configs`` and ``checkpoints``: per name, the model's :class:`TrainConfig` (all with the
    same steps, batch size and checkpoint interval) and its training checkpoint, written every
    ``ckpt_every`` steps and at the end, and resumed when all of them exist.  ``keep_at``: as in
    :func:`~dphelpers.training.train.fit`.  Returns each model's :class:`TrainResult`.
    """
    return fit_group(models, stream, configs, checkpoints, own_streams=True, progress=progress,
                     keep_at=keep_at, desc=f"train {len(models)} models")
