"""One training state: everything a run needs to continue exactly (notebook 04).

A :class:`TrainState` holds the model, its EMA copy *with its update count*, the optimizer,
the step, the loss log and every random stream the step draws from:

- ``generator``: the data stream's generator (poses, cameras, heatmap noise) from which the
  loss also draws its candidates, timesteps and noise;
- ``dropout``: a :class:`DropoutRNG`, the stream that dropout and joint dropout draw from.
  PyTorch's dropout layers take no generator argument and draw from the device's global RNG;
  :meth:`DropoutRNG.active` swaps this state in for the forward pass and out again, so the
  global RNG is untouched and the masks are part of the saved state, on CPU and CUDA alike.

``state_dict()``/``load_state_dict()`` cover all of it; :mod:`dphelpers.models.checkpoint` writes
it to disk.  Resuming from a saved state gives the same tensors, bit for bit, as never
stopping (``tests/test_train.py`` compares every tensor).  In multi-process training each
rank has its own ``generator`` and ``dropout`` states; the file keeps one entry per rank.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["DropoutRNG", "TrainState", "make_optimizer", "make_ema", "ema_update"]


class DropoutRNG:
    """The random stream of dropout masks on ``device``, seeded by ``seed``."""

    def __init__(self, seed: int, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.state = torch.Generator(device=self.device).manual_seed(int(seed)).get_state()

    @contextlib.contextmanager
    def active(self):
        """Inside the block, the device's global RNG *is* this stream; outside it is as before."""
        if self.device.type == "cuda":
            with torch.random.fork_rng(devices=[self.device.index], device_type="cuda"):
                torch.cuda.set_rng_state(self.state, self.device)
                yield
                self.state = torch.cuda.get_rng_state(self.device)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(self.state)
                yield
                self.state = torch.get_rng_state()


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam, no weight decay.  The fused kernel (one pass over all parameters) is ~4x faster
    than the per-tensor loop on this CPU, with the same mathematics."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True)


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """EMA of the weights: ``ema = decay * ema + (1 - decay) * w`` after each step; the first
    update (``n_averaged == 0``) copies the weights."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


def ema_update(ema: AveragedModel, model: nn.Module, decay: float, first: bool,
               lerp=None) -> None:
    """:meth:`AveragedModel.update_parameters` with :func:`make_ema`'s rule, the same tensors
    bit for bit, without its read of ``n_averaged`` from the device (a host synchronisation
    every step on a GPU): the caller says whether this is the ``first`` update (a copy).
    ``lerp``: the function that applies ``ema += (1 - decay) * (w - ema)`` to the lists (default
    ``torch._foreach_lerp_``; the CUDA-graph step passes a compiled one)."""
    with torch.no_grad():
        mine = list(ema.module.parameters())
        theirs = [p.detach() for p in model.parameters()]
        if first:
            torch._foreach_copy_(mine, theirs)
        else:
            (lerp or torch._foreach_lerp_)(mine, theirs, 1.0 - decay)
        for b_ema, b_model in zip(ema.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b_model)
        ema.n_averaged += 1


@dataclass
class TrainState:
    """Model, EMA (with ``n_averaged``), optimizer, RNG streams, step and loss log of one run."""

    model: nn.Module
    ema: AveragedModel
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    dropout: DropoutRNG
    step: int = 0
    log_steps: list[int] = field(default_factory=list)
    log_losses: list[float] = field(default_factory=list)
    ema_updates: int = 0          # = ema.n_averaged, known on the host (no device read per step)
    compiled: dict = field(default_factory=dict, repr=False, compare=False)  # the graphs' step
    clock: object = field(default=None, repr=False, compare=False)  # a PhaseClock while profiled

    @classmethod
    def new(cls, model: nn.Module, generator: torch.Generator, lr: float, ema_decay: float,
            dropout_seed: int) -> "TrainState":
        """A fresh state at step 0 for ``model`` (trained in place)."""
        return cls(model=model, ema=make_ema(model, ema_decay), optimizer=make_optimizer(model, lr),
                   generator=generator, dropout=DropoutRNG(dropout_seed, _device_of(model)))

    def rng_state(self) -> dict:
        """This process's random streams (one entry of the file's per-rank list)."""
        return {"generator": self.generator.get_state(), "dropout": self.dropout.state.clone()}

    def set_rng_state(self, rngs: dict) -> None:
        """Restore the data and dropout streams from a :meth:`rng_state` dict."""
        self.generator.set_state(rngs["generator"])
        self.dropout.state = rngs["dropout"].clone()

    def state_dict(self, rank_rngs: list[dict] | None = None) -> dict:
        """The whole state; ``rank_rngs`` (multi-process): every rank's :meth:`rng_state`."""
        return {"model": self.model.state_dict(), "ema": self.ema.module.state_dict(),
                "ema_n_averaged": int(self.ema.n_averaged.item()),
                "optimizer": self.optimizer.state_dict(), "step": self.step,
                "rngs": rank_rngs if rank_rngs is not None else [self.rng_state()],
                "log_steps": list(self.log_steps), "log_losses": list(self.log_losses)}

    def load_state_dict(self, state: dict, rank: int = 0) -> None:
        """Restore everything from :meth:`state_dict` (this ``rank``'s random streams)."""
        missing = [k for k in ("model", "ema", "ema_n_averaged", "optimizer", "rngs") if
                   state.get(k) is None]
        if missing:
            raise KeyError(f"training state lacks {missing}: it is a model file, not a training "
                           "checkpoint (train anew, or pass the run's checkpoint)")
        if not 0 <= rank < len(state["rngs"]):
            raise ValueError(f"the checkpoint holds random streams of {len(state['rngs'])} "
                             f"process(es); rank {rank} has none: resume with that many processes")
        self.model.load_state_dict(state["model"])
        self.ema.module.load_state_dict(state["ema"])
        self.ema.n_averaged.fill_(int(state["ema_n_averaged"]))
        self.ema_updates = int(state["ema_n_averaged"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.set_rng_state(state["rngs"][rank])
        self.step = int(state["step"])
        self.log_steps = list(state.get("log_steps", []))
        self.log_losses = list(state.get("log_losses", []))


def _device_of(model: nn.Module) -> torch.device:
    device = getattr(model, "device", None)
    if device is not None:
        return torch.device(device)
    return next(model.parameters()).device
