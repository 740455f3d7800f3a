"""Training: one step, one loop, checkpoints and exact resume (notebook 04).

:func:`train_step` is *the* optimisation step, used by the loop here and by the benchmark
(:mod:`dphelpers.tools.measure`): the loss under the dropout stream (and bfloat16 autocast if
asked), backward, optional gradient clipping, Adam, the model's own post-step hook (the
lifter's max-norm), the EMA update.  :func:`fit_group` is *the* loop, for one model
(:func:`fit`), several on one stream (:func:`dphelpers.training.many.fit_many`) and several
processes (:mod:`dphelpers.tools.ddp`, through a :class:`Replicas` of its own): it streams
batches through the step with a progress bar, logs the mean loss every ``log_every`` steps
and writes the whole :class:`~dphelpers.training.state.TrainState` every ``ckpt_every`` steps;
given those files it resumes exactly where it stopped.  Which file to write is
:mod:`dphelpers.models.modelfiles`' rule; the settings are :mod:`dphelpers.training.config`'s.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..pipeline import SampleBatch, TrainStream
from ..precision import default_precision
from .config import (DEFAULT_STEPS, LARGE_BATCH_WARMUP, PRECISIONS, RESUME_FIELDS, TrainConfig,
                     check_resume_config, scaled_lr)
from .graphs import clip_gradients, compiled_loss, compiled_update, set_lr
from .phases import phase
from .resume import resume_group, save_group, snapshot_file
from .state import TrainState, ema_update

__all__ = ["DEFAULT_STEPS", "PRECISIONS", "default_precision", "TrainConfig", "TrainResult",
           "train_step", "new_state", "fit", "snapshot_file", "TrainingInterrupted",
           "RESUME_FIELDS", "check_resume_config", "training_interrupted", "scaled_lr",
           "LARGE_BATCH_WARMUP", "compiled_loss", "loss_seed", "Replicas", "fit_group"]

class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit`: the message says at which step training stopped and which
    step the checkpoint keeps (a resume continues from it exactly)."""


def training_interrupted(step: int, saved: int, checkpoints: list) -> TrainingInterrupted:
    """The :class:`TrainingInterrupted` that :func:`fit_group` raises on Ctrl-C: stopped at
    ``step``, and what the ``checkpoints`` keep (``saved``: the last step written, 0: none)."""
    files = ", ".join(str(c) for c in checkpoints)
    if not checkpoints:
        kept = "nothing was saved (no checkpoint file was given)"
    elif saved:
        kept = f"{files} keeps step {saved:,}; the same command resumes from it"
    else:
        kept = f"no checkpoint was written yet, so {files} was not created or changed"
    return TrainingInterrupted(f"training stopped at step {step:,}; {kept}")


@contextlib.contextmanager
def interrupts_deferred():
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until the block ends, then hand it
    to the handler that was there before (Python's own raises KeyboardInterrupt): a group of
    checkpoints is written whole, and the interrupt's message names the step the files keep.
    Outside the main thread (where no signal arrives), or where SIGINT is ignored (``nohup``),
    it does nothing."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None):
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        if not callable(previous):              # SIG_DFL: stop the way Python's handler does
            raise KeyboardInterrupt
        previous(signal.SIGINT, None)


@dataclass
class TrainResult:
    """What a training run returns: the trained ``model`` and its EMA copy (both in eval mode),
    the logged ``steps`` and mean ``losses``, and the step it resumed from (0: a fresh run)."""

    model: nn.Module
    ema: nn.Module
    steps: list[int]
    losses: list[float]       # mean loss over each log_every window
    resumed_from: int = 0


def train_step(state: TrainState, batch: SampleBatch, config: TrainConfig,
               loss_module: nn.Module | None = None) -> torch.Tensor:
    """One optimisation step on ``batch``; returns the (detached) loss, left on the device.

    ``loss_module(heatmaps, poses_3d_mm, generator)`` computes the loss; default
    ``state.model.loss`` (multi-process training passes its DistributedDataParallel wrapper,
    which averages the gradients over the processes in ``backward``).  Nothing in the step
    reads a value back from the device.  ``config.compile`` / ``config.graphs``: the compiled
    pieces of :mod:`dphelpers.training.graphs`.
    """
    model = state.model
    graphs = config.graphs
    pure = loss_module is None and hasattr(model, "draw_training_noise")
    if graphs and not pure:
        raise ValueError("TrainConfig.graphs needs a DiffPose model trained in one process (its "
                         "loss split into eager draws and a compiled graph)")
    device = batch.heatmaps.device
    update = compiled_update(state) if graphs else {}
    if graphs:
        torch.compiler.cudagraph_mark_step_begin()
    if config.lr_decay != 1.0 or config.warmup_steps:
        set_lr(state, config.lr_at(state.step))
    compute = loss_module if loss_module is not None else model.loss
    if pure:              # the draws eager, the rest (maybe compiled) reads nothing back
        with phase("draws", state.clock):
            draws = model.draw_training_noise(batch.heatmaps, state.generator, validate=False)
        compute = (compiled_loss(model, graphs) if config.compile or graphs else
                   model.loss_from)
    with phase("forward", state.clock), state.dropout.active(), \
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
        loss = (compute(*draws, batch.poses_3d_mm) if pure else
                compute(batch.heatmaps, batch.poses_3d_mm, state.generator))
    state.optimizer.zero_grad(set_to_none=True)
    with phase("backward", state.clock):
        loss.backward()
    if config.grad_clip > 0:
        with phase("clip", state.clock):
            update.get("clip", clip_gradients)(list(model.parameters()), config.grad_clip)
    with phase("optimizer", state.clock):
        update.get("step", state.optimizer.step)()
        after = getattr(model, "after_step", None)
        if after is not None:
            after()
    with phase("ema", state.clock):
        ema_update(state.ema, model, config.ema_decay, first=state.ema_updates == 0,
                   lerp=update.get("lerp"))
        state.ema_updates += 1
    state.step += 1
    # a CUDA graph's output is overwritten by its next replay: keep a copy
    return loss.detach().clone() if graphs else loss.detach()


def new_state(model: nn.Module, generator: torch.Generator, config: TrainConfig,
              rank: int = 0) -> TrainState:
    """A fresh :class:`TrainState`; the dropout stream is seeded from ``config.seed`` and the
    rank."""
    return TrainState.new(model, generator, config.lr, config.ema_decay,
                          dropout_seed=config.seed * 1_000_003 + 7919 * (rank + 1))



def loss_seed(seed: int, name: str) -> int:
    """The seed of model ``name``'s own loss stream in a group (stable across runs and machines)."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2 ** 63)


class Replicas:
    """How one training run is spread over processes; this class: one process.

    :func:`fit_group` asks it for the three things multi-process training changes
    (:class:`dphelpers.tools.ddp.DistributedReplicas` answers for DistributedDataParallel):
    the loss module that averages gradients, the mean of a loss window over all processes,
    and every process's random streams for the checkpoint, which only the main process writes.
    """

    rank, world_size, is_main = 0, 1, True

    def local_batch(self, batch_size: int) -> int:
        """Samples this process draws per step out of the global ``batch_size`` (here: all)."""
        return batch_size

    def loss_module(self, model: nn.Module) -> nn.Module | None:
        """What :func:`train_step` computes the loss with (None: ``model``'s own)."""
        return None

    def mean(self, window: list[torch.Tensor]) -> float:
        """The mean of a window of logged losses, as a float."""
        return torch.stack(window).mean().item()

    def rank_rngs(self, state: TrainState) -> list[dict] | None:
        """Every process's random streams (None: this one's, :meth:`TrainState.state_dict`)."""
        return None

    def payload(self) -> dict:
        """Extra entries of every checkpoint."""
        return {}

    def check_resume(self, saved: dict, path: Path) -> None:
        """Refuse a checkpoint this set of processes cannot continue exactly."""

    def logged(self, step: int, steps: int, loss: float, bar_shown: bool) -> None:
        """Called after every logged window (the progress bar shows it already)."""


def _check_group(models: dict, configs: dict, checkpoints: dict, own_streams: bool) -> None:
    if not models:
        raise ValueError("fit: no models given")
    if not own_streams and len(models) != 1:
        raise ValueError("fit: models that share the stream's generator train one at a time")
    for what, d in (("configs", configs), ("checkpoints", checkpoints)):
        if set(d) != set(models):
            raise ValueError(f"fit: {what} name {sorted(d)} but the models are {sorted(models)}")
    for key in ("steps", "batch_size", "ckpt_every", "stream_chunk", "prefetch"):
        values = {name: getattr(c, key) for name, c in configs.items()}
        if len(set(values.values())) > 1:
            raise ValueError(f"fit: the models share one stream, so TrainConfig.{key} must be the "
                             f"same for all, got {values}")
    paths = [Path(p).resolve() for p in checkpoints.values() if p is not None]
    if len(set(paths)) != len(paths):
        raise ValueError(f"fit: two models would write the same checkpoint: {checkpoints}")



def _log_windows(states: dict[str, TrainState], windows: dict[str, list[torch.Tensor]],
                 replicas: Replicas, total: int, bar, show: bool) -> None:
    """Log each model's mean loss over its window (read from the device here, once per window)
    at the current step, empty the windows, and show the last loss on the bar."""
    for name, state in states.items():
        state.log_steps.append(state.step)
        state.log_losses.append(replicas.mean(windows[name]))
        windows[name] = []
    bar.set_postfix({n: f"{s.log_losses[-1]:.4f}" for n, s in states.items()})
    last = list(states.values())[-1]
    replicas.logged(last.step, total, last.log_losses[-1], show)


def fit_group(models: dict[str, nn.Module], stream: TrainStream,
              configs: dict[str, TrainConfig], checkpoints: dict[str, str | Path | None],
              own_streams: bool, progress: bool = True, keep_at: tuple[int, ...] = (),
              resume_from_checkpoint: bool = True, replicas: Replicas | None = None,
              desc: str = "train") -> dict[str, TrainResult]:
    """*The* training loop: every model of ``models`` (name -> module, trained in place) up to
    ``steps`` steps in all (resumed ones included), one batch of ``stream`` per step given to
    each model's :func:`train_step` in turn.

    Random streams: with ``own_streams`` every model draws its loss (candidates, t, noise) from
    a generator of its own (:func:`loss_seed`) and each checkpoint also keeps the batch stream
    (``"stream_rng"``): :func:`dphelpers.training.many.fit_many`.  Without, the single model draws
    from the stream's generator: :func:`fit` and multi-process training.

    Logging: the mean loss of each window of ``log_every`` steps, logged at the steps that are
    multiples of ``log_every``.  Checkpoints: every model's whole :class:`TrainState` in its
    file (None: not saved) every ``ckpt_every`` steps and at the end, and in
    :func:`snapshot_file` at the ``keep_at`` steps; existing files are resumed (all of them,
    at one step) unless ``resume_from_checkpoint=False``.  ``replicas``: how the run is
    spread over processes (default one, :class:`Replicas`).  Ctrl-C raises
    :class:`TrainingInterrupted` saying which step the files keep.
    """
    replicas = Replicas() if replicas is None else replicas
    _check_group(models, configs, checkpoints, own_streams)
    first = next(iter(configs.values()))
    keep = _check_keep_at(keep_at, first, checkpoints)
    if first.threads:
        torch.set_num_threads(first.threads)
    if first.prefetch and not own_streams:
        raise ValueError("TrainConfig.prefetch needs the loss to draw from generators of its own "
                         "(fit, fit_many); multi-process training shares the stream's")
    stream.set_chunk(first.stream_chunk)
    stream.set_prefetch(first.prefetch)
    states = _new_states(models, stream, configs, own_streams, replicas)
    start = (resume_group(states, checkpoints, stream, own_streams, replicas)
             if resume_from_checkpoint else 0)
    losses = {name: replicas.loss_module(model) for name, model in models.items()}
    for model in models.values():
        model.train()
    windows: dict[str, list[torch.Tensor]] = {name: [] for name in models}
    show = progress and replicas.is_main
    bar = tqdm(range(start, first.steps), initial=start, total=first.steps, disable=not show,
               desc=desc)
    saved = start
    try:
        for _ in bar:
            batch = stream.next_batch(replicas.local_batch(first.batch_size))
            for name, state in states.items():
                windows[name].append(train_step(state, batch, configs[name], losses[name]))
            step = next(iter(states.values())).step
            if step % first.log_every == 0:
                _log_windows(states, windows, replicas, first.steps, bar, show)
            regular = step % first.ckpt_every == 0 or step == first.steps
            if regular or step in keep:
                with interrupts_deferred():     # the files and `saved` always agree
                    save_group(states, configs, checkpoints, stream if own_streams else None,
                                replicas, step if regular else None, step in keep)
                    saved = step if regular else saved
    except KeyboardInterrupt:
        bar.close()
        raise training_interrupted(next(iter(states.values())).step, saved,
                                   [p for p in checkpoints.values() if p is not None]) from None
    finally:
        stream.set_prefetch(False)      # the generator back at the last chunk handed out
    return _finished(states, start)


def _check_keep_at(keep_at: tuple[int, ...], first: TrainConfig, checkpoints: dict) -> set[int]:
    """The snapshot steps, refused unless every model has a file to name them after and they
    (and the last step) fall on a chunk boundary of the stream."""
    keep = {int(k) for k in keep_at}
    if keep and any(p is None for p in checkpoints.values()):
        raise ValueError("fit: keep_at needs a checkpoint file to name the snapshots after")
    if any(k % first.stream_chunk for k in keep | {first.steps}):
        raise ValueError(f"fit: steps {first.steps} and keep_at {sorted(keep)} must be multiples "
                         f"of stream_chunk={first.stream_chunk} (a snapshot resumes only between "
                         "chunks)")
    return keep


def _new_states(models: dict, stream: TrainStream, configs: dict, own_streams: bool,
                replicas: Replicas) -> dict[str, TrainState]:
    """A fresh :class:`TrainState` per model, drawing its loss from a generator of its own
    (``own_streams``, :func:`loss_seed`) or from the stream's."""
    states = {}
    for name, model in models.items():
        gen = (torch.Generator(device=next(model.parameters()).device)
               .manual_seed(loss_seed(configs[name].seed, name)) if own_streams
               else stream.generator)
        states[name] = new_state(model, gen, configs[name], rank=replicas.rank)
    return states


def _finished(states: dict, start: int) -> dict[str, TrainResult]:
    """Every model (and its EMA copy) in eval mode, with its logged losses."""
    results = {}
    for name, state in states.items():
        state.model.eval()
        state.ema.module.eval()
        results[name] = TrainResult(model=state.model, ema=state.ema.module,
                                    steps=state.log_steps, losses=state.log_losses,
                                    resumed_from=start)
    return results



def fit(model: nn.Module, stream: TrainStream, config: TrainConfig | None = None,
        checkpoint: str | Path | None = None, resume_from_checkpoint: bool = True,
        progress: bool = True, keep_at: tuple[int, ...] = ()) -> TrainResult:
    """Train ``model`` in place up to ``config.steps`` steps in all (resumed steps included):
    :func:`fit_group` with a group of one, drawing its loss from the stream's generator.

    With ``checkpoint``: an existing training checkpoint there is resumed (unless
    ``resume_from_checkpoint=False``), and the state is written there every ``ckpt_every``
    steps and at the end.  ``keep_at``: steps whose state is also kept in a file of its own,
    :func:`snapshot_file` (a learning curve evaluates them later).
    """
    config = TrainConfig() if config is None else config
    name = getattr(model, "kind", "model")
    return fit_group({name: model}, stream, {name: config}, {name: checkpoint},
                     own_streams=config.prefetch,
                     progress=progress, keep_at=keep_at,
                     resume_from_checkpoint=resume_from_checkpoint)[name]
