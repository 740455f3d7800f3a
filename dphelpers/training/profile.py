"""Where a training step's time goes (notebook 04): ``torch.profiler`` over the labelled phases
of :func:`~dphelpers.training.train.train_step` and ``DiffPose.loss``, next to the simulated
batch of the data stream.  The ``bench`` verb stores the same rows in its results file.
"""
from __future__ import annotations

import copy
import time

import torch
from torch import nn

from .train import TrainConfig, new_state, train_step

__all__ = ["STEP_PHASES", "STEP_OPS", "profile_training"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: the phases :func:`~dphelpers.training.train.train_step` and ``DiffPose.loss`` label
#: (record_function)
STEP_PHASES = ("draws", "forward", "candidates", "embedding", "denoiser", "backward", "clip",
               "optimizer", "ema")


#: single operators worth naming: dropout masks, autocast's weight casts, candidate draws
STEP_OPS = {"aten::bernoulli_": "dropout masks (bernoulli_)",
            "aten::_to_copy": "dtype casts (autocast)",
            "aten::multinomial": "candidate draws (multinomial)"}


def profile_training(model: nn.Module, stream, config: TrainConfig | None = None,
                     steps: int = 10, batch_size: int = 64) -> list[dict]:
    """Where one training step's time goes: ``torch.profiler`` over ``steps`` steps of
    :func:`~dphelpers.training.train.train_step` on a COPY of ``model``, batches drawn from
    ``stream`` (a :class:`~dphelpers.pipeline.TrainStream`, its generator advanced).

    Rows ``{"part", "ms_per_step", "share"}``: the simulated batch (timed apart, outside the
    step), the labelled phases (:data:`STEP_PHASES`; "draws" holds "candidates", "forward"
    holds "embedding" and "denoiser"; on CUDA in GPU time), a few named operators
    (:data:`STEP_OPS`, wherever they run) and the whole step.  Shares are of data + step.
    """
    from torch.profiler import ProfilerActivity, profile
    config = TrainConfig() if config is None else config
    device = model.device
    work = copy.deepcopy(model).train()
    state = new_state(work, torch.Generator(device=device).manual_seed(0), config)
    batches = []
    t0 = time.perf_counter()
    for _ in range(steps + 2):
        batches.append(stream.next_batch(batch_size))
    _sync(device)
    data_ms = (time.perf_counter() - t0) / (steps + 2) * 1000
    for b in batches[:2]:                       # warm-up outside the profile
        train_step(state, b, config)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for b in batches[2:]:
            train_step(state, b, config)
        _sync(device)
        step_ms = (time.perf_counter() - t0) / steps * 1000
    events = prof.key_averages()
    if device.type == "cuda":      # the labelled phases' kernels, in GPU time (CPU time ~ launches)
        total = {e.key: getattr(e, "device_time_total", 0) / 1000 / steps for e in events}
        own = {e.key: getattr(e, "self_device_time_total", 0) / 1000 / steps for e in events}
    else:
        total = {e.key: e.cpu_time_total / 1000 / steps for e in events}     # ms per step
        own = {e.key: e.self_cpu_time_total / 1000 / steps for e in events}
    rows = [{"part": "simulated batch (data stream)", "ms_per_step": data_ms}]
    rows += [{"part": f"step: {p}", "ms_per_step": total[p]} for p in STEP_PHASES if p in total]
    rows += [{"part": f"op: {label}", "ms_per_step": own[k]} for k, label in STEP_OPS.items()
             if k in own]
    rows.append({"part": "whole step (profiled)", "ms_per_step": step_ms})
    whole = data_ms + step_ms
    for r in rows:
        r["share"] = r["ms_per_step"] / whole
    return rows
