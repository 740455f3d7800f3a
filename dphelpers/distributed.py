"""Multi-process and multi-node training with PyTorch DistributedDataParallel (notebook 04).

The single-process loop is :func:`dphelpers.train.fit`; this module runs the same
training on several processes (one per GPU, or several CPU processes) and several
machines, with PyTorch's own machinery: ``torchrun`` starts the processes and sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
``torch.distributed.init_process_group`` connects them (backend ``nccl`` on CUDA,
``gloo`` on CPU); ``DistributedDataParallel`` averages the gradients over all
processes during ``backward``.

Data parallelism here: every rank draws its own stream of training samples (seed
``config.seed + rank``), the global batch ``config.batch_size`` is split evenly
(``batch_size // world_size`` per rank), so one step sees the same number of samples
as the single-process loop, and the averaged gradient is that of the global batch's
mean loss.  Rank 0 keeps the EMA weights, shows the progress bar and writes the
checkpoints (the same file format as ``fit``; resuming restores every rank's data
stream when the number of processes is unchanged).

One node, two processes::

    torchrun --standalone --nproc_per_node=2 -m dphelpers.distributed --steps 5000

Two nodes with four processes each (run the same line on both machines)::

    torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m dphelpers.distributed --steps 5000
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .checkpoint import check_config, read_checkpoint, save_checkpoint
from .diffusion import DiffPose, DiffPoseConfig
from .train import TrainConfig, TrainResult, make_optimizer

__all__ = ["DistInfo", "LossModule", "init_distributed", "local_batch_size", "wrap_ddp",
           "train_step", "ddp_fit", "build_parser", "main"]


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
        return self.rank == 0


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment variables.

    ``device``: None picks ``cuda:LOCAL_RANK`` when CUDA is present, else the CPU; the
    backend follows (``nccl`` on CUDA, ``gloo`` on CPU).  A group that is already
    initialised is reused.
    """
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing and not dist.is_initialized():
        raise KeyError(f"environment variable(s) {missing} not set: start this under torchrun, e.g. "
                       "`torchrun --standalone --nproc_per_node=2 -m dphelpers.distributed`")
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
                eps: torch.Tensor | None = None, candidates: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.loss(heatmaps, poses_3d_mm, generator, t=t, eps=eps, candidates=candidates)


def wrap_ddp(model: DiffPose, info: DistInfo) -> DistributedDataParallel:
    """``DistributedDataParallel(LossModule(model))``; the schedule's constant buffers are
    not re-broadcast every step.  The underlying model is ``ddp.module.model``."""
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(LossModule(model.to(info.device)), device_ids=ids,
                                   forward_sync_buffers=False)


def train_step(ddp: DistributedDataParallel, opt: torch.optim.Optimizer, heatmaps: torch.Tensor,
               poses_3d_mm: torch.Tensor, grad_clip: float = 1.0, generator: torch.Generator | None = None,
               amp: bool = False, **fixed) -> torch.Tensor:
    """One optimisation step on this rank's share of the global batch.

    ``heatmaps: (b_local, 16, 64, 64)``, ``poses_3d_mm: (b_local, 17, 3)``; ``fixed``
    may hold ``t``, ``eps``, ``candidates`` for this rank's samples (see ``DiffPose.loss``).
    Returns this rank's loss (detached).  Gradients are averaged over the ranks in
    ``backward``, so clipping and Adam see the global batch's gradient on every rank.
    """
    device = ddp.module.model.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
        loss = ddp(heatmaps, poses_3d_mm, generator, **fixed)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(ddp.parameters(), grad_clip)
    opt.step()
    return loss.detach()


def _global_mean(values: list[torch.Tensor], device: torch.device) -> float:
    mean = torch.stack(values).mean().to(device, torch.float32)
    dist.all_reduce(mean)
    return mean.item() / dist.get_world_size()


def ddp_fit(config: TrainConfig, model_config: DiffPoseConfig, checkpoint: str | Path | None,
            data: str | Path | None = None, device: str | torch.device | None = None,
            resume: bool = True, progress: bool = True) -> TrainResult | None:
    """Train a DiffPose on all processes of the torchrun job; returns the result on rank 0
    (``None`` on the other ranks).  ``config.steps`` counts global steps, resumed ones included.

    ``data``: the mocap npz (default: the embedded data); its training split feeds one
    :class:`~dphelpers.pipeline.TrainStream` per rank, seeded ``config.seed + rank``.
    """
    from .data import load_mocap, split_clips
    from .pipeline import TrainStream
    from .train import _ema_of

    owns_group = not dist.is_initialized()
    info = init_distributed(device)
    try:
        b_local = local_batch_size(config.batch_size, info.world_size)
        if config.threads and info.device.type == "cpu":
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        model = DiffPose(model_config).to(info.device)   # same init everywhere (DDP also broadcasts it)
        torch.manual_seed(config.seed + info.rank)       # dropout and joint-dropout masks: per rank
        stream = TrainStream(split_clips(load_mocap(data))[0], seed=config.seed + info.rank,
                             device=info.device)
        opt = make_optimizer(model, config.lr)
        ema = _ema_of(model, config.ema_decay) if info.is_main else None
        start, steps, losses = 0, [], []
        if checkpoint is not None and resume and Path(checkpoint).is_file():
            state = read_checkpoint(checkpoint)
            check_config(state["config"], model_config, checkpoint)
            model.load_state_dict(state["model"])
            if state.get("optimizer") is not None:
                opt.load_state_dict(state["optimizer"])
            if ema is not None and state.get("ema") is not None:
                ema.module.load_state_dict(state["ema"])
            extra = state.get("extra", {})
            rngs = extra.get("stream_rngs")          # one per rank; fit() saves a single one
            if rngs is None and "stream_rng" in extra:
                rngs = [extra["stream_rng"]]
            if rngs is not None and len(rngs) == info.world_size:
                stream.generator.set_state(rngs[info.rank])
            else:
                if info.is_main:
                    warnings.warn(f"{checkpoint}: saved by a different number of processes; the data "
                                  "streams are reseeded instead of restored", stacklevel=2)
                stream.generator.manual_seed(config.seed + info.rank + 1_000_003 * int(state["step"]))
            steps, losses = list(extra.get("log_steps", [])), list(extra.get("log_losses", []))
            start = int(state["step"])
        ddp = wrap_ddp(model, info)
        model.train()

        def save(step: int) -> None:
            if checkpoint is None:
                return
            gathered = [None] * info.world_size
            dist.all_gather_object(gathered, stream.generator.get_state())  # every rank takes part
            if info.is_main:
                save_checkpoint(checkpoint, model, step, ema=ema.module.state_dict(), optimizer=opt,
                                extra={"stream_rngs": gathered, "world_size": info.world_size,
                                       "log_steps": steps, "log_losses": losses})

        window = []
        bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="train (ddp)",
                   disable=not (progress and info.is_main))
        for step in bar:
            batch = stream.next_batch(b_local)
            window.append(train_step(ddp, opt, batch.heatmaps, batch.poses_3d_mm, config.grad_clip,
                                     generator=stream.generator, amp=config.amp))
            if ema is not None:
                ema.update_parameters(model)
            if len(window) == config.log_every:
                steps.append(step + 1)
                losses.append(_global_mean(window, info.device))
                window = []
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if (step + 1) % config.ckpt_every == 0 or step + 1 == config.steps:
                save(step + 1)
        model.eval()
        if not info.is_main:
            return None
        ema.module.eval()
        return TrainResult(model=model, ema=ema.module, steps=steps, losses=losses, resumed_from=start)
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dphelpers.distributed",
                                description="DistributedDataParallel training (start under torchrun)")
    p.add_argument("--steps", type=int, default=20_000, help="global optimisation steps")
    p.add_argument("--batch-size", type=int, default=64, help="global batch, split over the processes")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ablation", default="full",
                   help="full, argmax_only, no_transformer, no_argmax, no_likelihood")
    p.add_argument("--checkpoint", type=Path, default=Path("runs") / "diffpose_ddp.pt")
    p.add_argument("--data", type=Path, default=None, help="mocap npz (default: the embedded data)")
    p.add_argument("--device", default=None, help="default: cuda:LOCAL_RANK when present, else cpu")
    p.add_argument("--ckpt-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=None, help="CPU threads per process")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA only)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         ckpt_every=args.ckpt_every, log_every=args.log_every, threads=args.threads,
                         amp=args.amp)
    result = ddp_fit(config, DiffPoseConfig.ablation(args.ablation), args.checkpoint, data=args.data,
                     device=args.device, resume=not args.no_resume, progress=not args.quiet)
    if result is not None:
        last = f", last logged loss {result.losses[-1]:.4f}" if result.losses else ""
        print(f"trained to step {args.steps} (resumed from {result.resumed_from}){last}; "
              f"checkpoint {args.checkpoint}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
