"""Where a training step's time goes (notebook 04): ``torch.profiler`` over the labelled phases
of :func:`~dphelpers.training.train.train_step` and ``DiffPose.loss``, next to the simulated
batch of the data stream.  The ``bench`` verb stores the same rows in its results file.
"""
from __future__ import annotations

import copy
import time

import torch
from torch import nn

from .phases import PhaseClock
from .train import TrainConfig, new_state, train_step

__all__ = ["STEP_PHASES", "CLOCKED_PHASES", "STEP_OPS", "profile_training", "per_key_ms"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: the phases :func:`~dphelpers.training.train.train_step` labels and times (a
#: :class:`~dphelpers.training.phases.PhaseClock`: GPU time on CUDA)
CLOCKED_PHASES = ("draws", "forward", "backward", "clip", "optimizer", "ema")
#: every labelled phase, in the rows' order (the others, "candidates", "embedding" and
#: "denoiser", are ``DiffPose.loss``'s, inside "draws" and "forward": record_function only)
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
    holds "embedding" and "denoiser"), a few named operators (:data:`STEP_OPS`, wherever they
    run) and the whole step.  Shares are of data + step.  On CUDA every time is the GPU's:
    the step's own phases (:data:`CLOCKED_PHASES`) between CUDA events at their start and end,
    the loss's inner phases and the operators as the profiler's kernel time; on the CPU the
    step's phases are wall time and the rest the profiler's CPU time.
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
    state.clock = PhaseClock(device)
    try:
        with profile(activities=activities) as prof:
            t0 = time.perf_counter()
            for b in batches[2:]:
                train_step(state, b, config)
            _sync(device)
            step_ms = (time.perf_counter() - t0) / steps * 1000
        clocked = {k: v / steps for k, v in state.clock.totals_ms().items()}
    finally:
        state.clock = None
    events = prof.key_averages()
    kind = "device" if device.type == "cuda" else "cpu"   # on CUDA: kernels, not their launches
    total = per_key_ms(events, f"{kind}_time_total", steps)
    own = per_key_ms(events, f"self_{kind}_time_total", steps)
    rows = [{"part": "simulated batch (data stream)", "ms_per_step": data_ms}]
    for p in STEP_PHASES:
        ms = clocked.get(p) if p in CLOCKED_PHASES else total.get(p)
        if ms is not None:
            rows.append({"part": f"step: {p}", "ms_per_step": ms})
    rows += [{"part": f"op: {label}", "ms_per_step": own[k]} for k, label in STEP_OPS.items()
             if k in own]
    rows.append({"part": "whole step (profiled)", "ms_per_step": step_ms})
    whole = data_ms + step_ms
    for r in rows:
        r["share"] = r["ms_per_step"] / whole
    return rows


def per_key_ms(events, attribute: str, steps: int) -> dict[str, float]:
    """Milliseconds per step of ``attribute`` (a profiler total in microseconds) for each event
    name.  ``key_averages`` keeps apart the entries of one name that ran on different devices
    (a labelled range has a host entry and, on CUDA, a GPU entry); the largest is kept, where
    a plain dict keeps whichever came last, which can be an entry with no kernel time (the
    benchmark's earlier CUDA profiles read 0 ms for every phase)."""
    out: dict[str, float] = {}
    for e in events:
        ms = getattr(e, attribute, 0) / 1000 / steps
        out[e.key] = max(out.get(e.key, 0.0), ms)
    return out
