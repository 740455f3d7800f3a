"""Multi-process and multi-node training with PyTorch DistributedDataParallel (notebook 04).

The training loop is :func:`dphelpers.training.train.fit_group`; this module runs it on several
processes (one per GPU, or several CPU processes) and several machines, with PyTorch's own
machinery: ``torchrun`` starts the processes and sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
``torch.distributed.init_process_group`` connects them (backend ``nccl`` on CUDA,
``gloo`` on CPU); ``DistributedDataParallel`` averages the gradients over all
processes during ``backward``.

Data parallelism here: every rank draws its own stream of training samples (seed
``config.seed + rank``), the global batch ``config.batch_size`` is split evenly
(``batch_size // world_size`` per rank), so one step sees the same number of samples
as the single-process loop, and the averaged gradient is that of the global batch's
mean loss.  Every rank runs the same loop and step, through :class:`DistributedReplicas`
(the loss through DistributedDataParallel, losses averaged over the ranks), and keeps the
same EMA; rank 0 shows the progress and writes the checkpoints (the same file format as
``fit``, with every rank's random streams; resuming needs the same number of processes).

One node, two processes::

    torchrun --standalone --nproc_per_node=2 -m dphelpers.tools.ddp --steps 5000

Two nodes with four processes each (run the same line on both machines)::

    torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m dphelpers.tools.ddp --steps 5000
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..diffusion import DiffPose
from ..models.modelfiles import MODEL_NAMES
from ..training.train import PRECISIONS, Replicas, TrainConfig, TrainResult, fit_group

__all__ = ["DistInfo", "LossModule", "init_distributed", "local_batch_size", "wrap_ddp",
           "DistributedReplicas", "ddp_fit", "build_parser", "main"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that shows progress and writes the checkpoints."""
        return self.rank == 0


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment variables.

    ``device``: None picks ``cuda:LOCAL_RANK`` when CUDA is present, else the CPU; the
    backend follows (``nccl`` on CUDA, ``gloo`` on CPU).  A group that is already
    initialised is reused.
    """
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
               if k not in os.environ]
    if missing and not dist.is_initialized():
        raise KeyError(f"environment variable(s) {missing} not set: "
                       "start this under torchrun, e.g. "
                       "`torchrun --standalone --nproc_per_node=2 -m dphelpers.tools.ddp`")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                    device=device, backend=dist.get_backend())


def local_batch_size(global_batch: int, world_size: int) -> int:
    """Samples per rank; the global batch must split evenly over the ranks."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if global_batch % world_size:
        raise ValueError(f"batch_size {global_batch} is not divisible by the number of processes "
                         f"{world_size}: choose a multiple of {world_size}")
    return global_batch // world_size


class LossModule(nn.Module):
    """``forward`` = ``DiffPose.loss``, so that DistributedDataParallel sees the loss
    computation as the module's forward pass (it prepares the gradient all-reduce there)."""

    def __init__(self, model: DiffPose) -> None:
        super().__init__()
        self.model = model

    def forward(self, heatmaps: torch.Tensor, poses_3d_mm: torch.Tensor,
                generator: torch.Generator | None = None, t: torch.Tensor | None = None,
                eps: torch.Tensor | None = None,
                candidates: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.loss(heatmaps, poses_3d_mm, generator, t=t, eps=eps,
                               candidates=candidates)


def wrap_ddp(model: DiffPose, info: DistInfo) -> DistributedDataParallel:
    """``DistributedDataParallel(LossModule(model))``; the schedule's constant buffers are
    not re-broadcast every step.  The underlying model is ``ddp.module.model``."""
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(LossModule(model.to(info.device)), device_ids=ids,
                                   forward_sync_buffers=False)


class DistributedReplicas(Replicas):
    """:class:`~dphelpers.training.train.Replicas` for a torchrun job: the loss through
    DistributedDataParallel (gradients averaged in ``backward``), losses averaged over all
    processes, every rank's random streams in the checkpoint, written by rank 0."""

    def __init__(self, info: DistInfo) -> None:
        self.info = info
        self.rank, self.world_size, self.is_main = info.rank, info.world_size, info.is_main

    def local_batch(self, batch_size: int) -> int:
        """This rank's share of the global batch (:func:`local_batch_size`)."""
        return local_batch_size(batch_size, self.world_size)

    def loss_module(self, model: nn.Module) -> nn.Module:
        """``model``'s loss wrapped in DistributedDataParallel (:func:`wrap_ddp`)."""
        return wrap_ddp(model, self.info)

    def mean(self, window: list[torch.Tensor]) -> float:
        """The mean loss of the window averaged over all ranks (an all-reduce: every rank
        must call it)."""
        mean = torch.stack(window).mean().to(self.info.device, torch.float32)
        dist.all_reduce(mean)
        return mean.item() / self.world_size

    def rank_rngs(self, state) -> list[dict]:
        """Every rank's :meth:`TrainState.rng_state`, in rank order (an all-gather: every
        rank must call it)."""
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, state.rng_state())      # every rank takes part
        return gathered

    def payload(self) -> dict:
        """Extra checkpoint entries: the number of processes that wrote it."""
        return {"world_size": self.world_size}

    def check_resume(self, saved: dict, path: Path) -> None:
        """Refuse a checkpoint saved by a different number of processes (``ValueError``)."""
        n = len(saved.get("rngs") or [])
        if n != self.world_size:
            raise ValueError(f"{path} was saved by {n} process(es); resume it with "
                             f"--nproc_per_node giving {n} in all (now {self.world_size})")

    def logged(self, step: int, steps: int, loss: float, bar_shown: bool) -> None:
        """On rank 0 without a progress bar (``--quiet``), print the step and logged loss."""
        if self.is_main and not bar_shown:
            print(f"step {step:,}/{steps:,} loss {loss:.4f}", flush=True)


def ddp_fit(config: TrainConfig, name: str = "full", checkpoint: str | Path | None = None,
            data: str | Path | None = None, device: str | torch.device | None = None,
            resume_from_checkpoint: bool = True, progress: bool = True) -> TrainResult | None:
    """Train model ``name`` (:func:`dphelpers.models.modelfiles.build_model`) on all processes
    of the torchrun job with the one training loop (:func:`dphelpers.training.train.fit_group` and
    :class:`DistributedReplicas`); returns the result on rank 0 (``None`` on the other
    ranks).  ``config.steps`` counts global steps, resumed ones included.

    ``data``: the mocap npz (default: the embedded data); its training split feeds one
    :class:`~dphelpers.pipeline.TrainStream` per rank, seeded ``config.seed + rank``.  Resuming
    restores every rank's random streams and needs the same number of processes.
    """
    from ..data import load_mocap, split_clips
    from ..models.modelfiles import build_model
    from ..pipeline import TrainStream

    owns_group = not dist.is_initialized()
    info = init_distributed(device)
    try:
        replicas = DistributedReplicas(info)
        replicas.local_batch(config.batch_size)              # refuse an uneven split first
        torch.manual_seed(config.seed)
        model = build_model(name).to(info.device)   # same init everywhere (DDP also broadcasts it)
        stream = TrainStream(split_clips(load_mocap(data))[0], seed=config.seed + info.rank,
                             device=info.device)
        result = fit_group({name: model}, stream, {name: config}, {name: checkpoint},
                           own_streams=False, progress=progress,
                           resume_from_checkpoint=resume_from_checkpoint, replicas=replicas,
                           desc=f"train {name} (ddp x{info.world_size})")[name]
        return result if info.is_main else None
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m dphelpers.tools.ddp``; defaults from :class:`TrainConfig`."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m dphelpers.tools.ddp",
        description="DistributedDataParallel training; start it under torchrun, e.g. "
                    "`torchrun --standalone --nproc_per_node=2 -m dphelpers.tools.ddp`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="full", choices=MODEL_NAMES, help="which model to train")
    p.add_argument("--steps", type=int, default=d.steps, help="global optimisation steps")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="global batch, split evenly over the processes")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of weights, data and dropout")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="bf16: bfloat16 autocast of the forward pass")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="training checkpoint to write and resume (default runs/ddp_<stem>.pt; "
                        "~180 MB for DiffPose: weights, EMA and Adam state; `python -m "
                        "dphelpers export` makes a 23 MB model file of it)")
    p.add_argument("--data", type=Path, default=None, help="mocap npz (default: the embedded data)")
    p.add_argument("--device", default=None, help="default: cuda:LOCAL_RANK when present, else cpu")
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, default=d.log_every, help="steps between loss lines")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per process")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--quiet", action="store_true", help="loss lines instead of a progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run :func:`ddp_fit` from the command line (default file ``runs/ddp_<stem>.pt``); rank 0
    prints a summary.  Returns the exit status, 0."""
    from ..models.modelfiles import stem, train_config, writing_file
    args = build_parser().parse_args(argv)
    config = train_config(args.model, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                          precision=args.precision, ckpt_every=args.ckpt_every,
                          log_every=args.log_every, threads=args.threads)
    path = writing_file(args.model, args.checkpoint or Path("runs") / f"ddp_{stem(args.model)}.pt")
    result = ddp_fit(config, args.model, path, data=args.data, device=args.device,
                     resume_from_checkpoint=not args.no_resume, progress=not args.quiet)
    if result is not None:
        last = f", last logged loss {result.losses[-1]:.4f}" if result.losses else ""
        print(f"trained {args.model} to step {args.steps:,} (resumed from "
              f"{result.resumed_from:,}){last}\ncheckpoint: {path} "
              f"({path.stat().st_size / 1e6:.0f} MB)\nmodel file: python -m dphelpers export "
              f"{path} runs/{stem(args.model)}_model.pt")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
