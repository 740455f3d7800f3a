"""The training step's compiled pieces: ``TrainConfig.compile`` and ``TrainConfig.graphs``.

``compile`` runs the loss (:meth:`DiffPose.loss_from`: embedding, q_sample, denoiser, MSE)
and its backward through ``torch.compile(fullgraph=True)``.  ``graphs`` compiles the rest of
the step too, in ``mode="reduce-overhead"``, which CUDA replays as CUDA graphs (one launch per
piece instead of hundreds of small kernels, and no host work between them):

- the loss and its backward (:func:`compiled_loss`);
- gradient clipping and the EMA update, each one ``fullgraph=True`` function;
- Adam's step (``torch.compile(optimizer.step)``; PyTorch cuts the graph just outside it, by
  design, so it is a graph of its own).  The learning rate becomes a tensor on the weights'
  device, so the warm-up changes a number in place instead of recompiling the step.

The random draws (poses, candidates, timesteps, noise) stay eager, from the run's own
generators, so the random streams, the checkpoints and exact resume are those of the eager
step.  On the CPU there are no CUDA graphs: the same compiled code runs without them, which is
how the tests check it (compiled equals eager within float rounding, no recompilation, exact
resume).  Shapes must stay static: one batch size per run.
"""
from __future__ import annotations

import torch
from torch import nn

from ..compiled import cached_on
from .state import TrainState

__all__ = ["compiled_loss", "compiled_update", "tensor_lr", "set_lr", "clip_gradients"]


def _mode(graphs: bool) -> str:
    return "reduce-overhead" if graphs else "default"


def compiled_loss(model: nn.Module, graphs: bool = False):
    """``torch.compile(model.loss_from, fullgraph=True)``, made once per model and mode and kept
    on it (dynamo sees one static shape per batch size); ``graphs``: ``mode="reduce-overhead"``
    (CUDA graphs on CUDA)."""
    mode = _mode(graphs)
    return cached_on(model, ("loss_from", mode), lambda: torch.compile(
        model.loss_from, fullgraph=True, dynamic=False, mode=mode))


def clip_gradients(params: list[torch.Tensor], max_norm: float) -> None:
    """Scale the gradients of ``params`` so that their global norm is at most ``max_norm``."""
    torch.nn.utils.clip_grad_norm_(params, max_norm)


def _lerp(mine: list[torch.Tensor], theirs: list[torch.Tensor], weight: float) -> None:
    torch._foreach_lerp_(mine, theirs, weight)


def tensor_lr(state: TrainState) -> None:
    """Make every parameter group's learning rate a 0-d tensor on the weights' device (a
    compiled optimizer step reads it instead of baking the number into its graph)."""
    device = next(state.model.parameters()).device
    for group in state.optimizer.param_groups:
        lr = group["lr"]
        if not isinstance(lr, torch.Tensor) or lr.device != device:
            group["lr"] = torch.tensor(float(lr), dtype=torch.float32, device=device)


def set_lr(state: TrainState, lr: float) -> None:
    """Set the learning rate of every group: in place where it is a tensor (no recompile)."""
    for group in state.optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def compiled_update(state: TrainState) -> dict:
    """The compiled clip, optimizer step and EMA lerp of ``state`` (``"clip"``, ``"step"``,
    ``"lerp"``), made once per state in ``mode="reduce-overhead"``; the learning rate becomes a
    tensor (:func:`tensor_lr`)."""
    if not state.compiled:
        tensor_lr(state)
        mode = _mode(True)
        state.compiled.update(
            clip=torch.compile(clip_gradients, fullgraph=True, dynamic=False, mode=mode),
            step=torch.compile(state.optimizer.step, dynamic=False, mode=mode),
            lerp=torch.compile(_lerp, fullgraph=True, dynamic=False, mode=mode))
    return state.compiled
