"""Several models trained on one stream of batches (notebook 04, the ablations).

The ablations and the lifter are compared on the same data with the same budget; on a CPU
the simulated batches cost a third of a step, so drawing each batch once and giving it to
every model is both the fair comparison and the cheaper one.  :func:`fit_many` does that:
each step draws one batch from the stream and runs :func:`~dphelpers.train.train_step` of
every model on it, in a fixed order.

Every model has a :class:`~dphelpers.trainstate.TrainState` of its own whose ``generator``
is its *own* stream of candidates, timesteps and noise (seeded from its config's seed and
its name), so a model's draws do not depend on which other models train beside it.  Each
model's training checkpoint is an ordinary one (``export`` reads it) plus the state of the
shared batch stream under ``"stream_rng"``; resuming needs every model's file at the same
step and restores the stream from them, so an interrupted run continues exactly.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, check_config, read_checkpoint, write_checkpoint
from .pipeline import TrainStream
from .train import TrainConfig, TrainResult, training_interrupted, new_state, snapshot_file, train_step

__all__ = ["loss_seed", "fit_many"]


def loss_seed(seed: int, name: str) -> int:
    """The seed of model ``name``'s own loss stream (stable across runs and machines)."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2 ** 63)


def _check(models: dict, configs: dict, checkpoints: dict) -> None:
    if not models:
        raise ValueError("fit_many: no models given")
    for what, d in (("configs", configs), ("checkpoints", checkpoints)):
        if set(d) != set(models):
            raise ValueError(f"fit_many: {what} name {sorted(d)} but the models are "
                             f"{sorted(models)}")
    for key in ("steps", "batch_size", "ckpt_every", "stream_chunk"):
        values = {name: getattr(c, key) for name, c in configs.items()}
        if len(set(values.values())) > 1:
            raise ValueError(f"fit_many: the models share one stream, so TrainConfig.{key} must "
                             f"be the same for all, got {values}")
    paths = [Path(p).resolve() for p in checkpoints.values()]
    if len(set(paths)) != len(paths):
        raise ValueError(f"fit_many: two models would write the same checkpoint: {checkpoints}")


def _resume(states: dict, checkpoints: dict, stream: TrainStream) -> int:
    """Load every existing checkpoint; all or none must exist, all at one step."""
    present = {n: Path(p) for n, p in checkpoints.items() if Path(p).is_file()}
    if not present:
        return 0
    if len(present) != len(checkpoints):
        missing = sorted(set(checkpoints) - set(present))
        raise CheckpointError(f"fit_many: checkpoints exist for {sorted(present)} but not for "
                              f"{missing}: the models share one stream and resume together; "
                              "move the existing files away to start afresh")
    saved = {n: read_checkpoint(p) for n, p in present.items()}
    steps = {n: int(s["step"]) for n, s in saved.items()}
    if len(set(steps.values())) > 1:
        raise CheckpointError(f"fit_many: the checkpoints stopped at different steps {steps} "
                              f"({ {n: str(p) for n, p in present.items()} }); they resume "
                              "together only from one step")
    streams = [s.get("stream_rng") for s in saved.values()]
    if any(r is None for r in streams):
        bad = sorted(n for n, s in saved.items() if s.get("stream_rng") is None)
        raise CheckpointError(f"fit_many: {[str(present[n]) for n in bad]} lack 'stream_rng': "
                              "written by a single-model run, not by fit_many")
    for name, state in states.items():
        check_config(saved[name], state.model.config, present[name])
        state.load_state_dict(saved[name])
    stream.generator.set_state(streams[0])
    return next(iter(steps.values()))


def _save_group(states: dict, configs: dict, checkpoints: dict, stream: TrainStream, step: int,
                first: TrainConfig, keep: set, saved: int) -> int:
    """Write every model's checkpoint (and ``keep`` snapshot) at ``step``; returns the step the
    checkpoints now hold."""
    rng = stream.generator.get_state()
    regular = step % first.ckpt_every == 0 or step == first.steps
    for name, state in states.items():
        payload = {**state.state_dict(), "train_config": asdict(configs[name]), "stream_rng": rng}
        if regular:
            write_checkpoint(checkpoints[name], state.model, payload)
        if step in keep:
            write_checkpoint(snapshot_file(checkpoints[name], step), state.model, payload)
    return step if regular else saved


def fit_many(models: dict[str, nn.Module], stream: TrainStream,
             configs: dict[str, TrainConfig], checkpoints: dict[str, str | Path],
             progress: bool = True, keep_at: tuple[int, ...] = ()) -> dict[str, TrainResult]:
    """Train every model of ``models`` (name -> module, trained in place) on one stream.

    ``configs`` and ``checkpoints``: per name, the model's :class:`TrainConfig` (all with the
    same steps, batch size and checkpoint interval) and its training checkpoint, written every
    ``ckpt_every`` steps and at the end, and resumed when all of them exist.  ``keep_at``: as in
    :func:`~dphelpers.train.fit`.  Returns each model's :class:`TrainResult`.
    """
    _check(models, configs, checkpoints)
    first = next(iter(configs.values()))
    if first.threads:
        torch.set_num_threads(first.threads)
    keep = {int(k) for k in keep_at}
    if any(k % first.stream_chunk for k in keep | {first.steps}):
        raise ValueError(f"fit_many: steps {first.steps} and keep_at {sorted(keep)} must be "
                         f"multiples of stream_chunk={first.stream_chunk}")
    stream.set_chunk(first.stream_chunk)
    states = {}
    for name, model in models.items():
        gen = torch.Generator(device=next(model.parameters()).device).manual_seed(loss_seed(configs[name].seed, name))
        states[name] = new_state(model, gen, configs[name])
    start = _resume(states, checkpoints, stream)
    for model in models.values():
        model.train()
    windows: dict[str, list[torch.Tensor]] = {name: [] for name in models}
    bar = tqdm(range(start, first.steps), initial=start, total=first.steps,
               disable=not progress, desc=f"train {len(models)} models")
    saved = start
    try:
        for _ in bar:
            batch = stream.next_batch(first.batch_size)
            for name, state in states.items():
                windows[name].append(train_step(state, batch, configs[name]))
            step = next(iter(states.values())).step
            if step % first.log_every == 0:
                for name, state in states.items():
                    state.log_steps.append(step)
                    state.log_losses.append(torch.stack(windows[name]).mean().item())
                    windows[name] = []
                bar.set_postfix({n: f"{s.log_losses[-1]:.3f}" for n, s in states.items()})
            if step % first.ckpt_every == 0 or step == first.steps or step in keep:
                saved = _save_group(states, configs, checkpoints, stream, step, first, keep, saved)
    except KeyboardInterrupt:
        bar.close()
        raise training_interrupted(next(iter(states.values())).step, saved,
                           list(checkpoints.values())) from None
    results = {}
    for name, state in states.items():
        state.model.eval()
        state.ema.module.eval()
        results[name] = TrainResult(model=state.model, ema=state.ema.module,
                                    steps=state.log_steps, losses=state.log_losses,
                                    resumed_from=start)
    return results
