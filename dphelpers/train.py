"""Training: one step, one loop, checkpoints and exact resume (notebook 04).

:func:`train_step` is *the* optimisation step, used by :func:`fit` here, by the
multi-process loop (:mod:`dphelpers.tools.ddp`) and by the benchmark
(:mod:`dphelpers.tools.bench`): the loss under the dropout stream (and bfloat16 autocast if
asked), backward, optional gradient clipping, Adam, the model's own post-step hook (the
lifter's max-norm), the EMA update.  :func:`fit` streams batches through it with a progress
bar, logs the mean loss every ``log_every`` steps and writes the whole
:class:`~dphelpers.trainstate.TrainState` every ``ckpt_every`` steps; given that file it
resumes exactly where it stopped.  Which file to write is :mod:`dphelpers.modelfiles`' rule.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn
from torch.profiler import record_function
from tqdm.auto import tqdm

from .checkpoint import check_config, read_checkpoint, write_checkpoint
from .pipeline import SampleBatch, TrainStream
from .trainstate import TrainState

__all__ = ["DEFAULT_STEPS", "default_precision", "TrainConfig", "TrainResult", "train_step",
           "new_state", "fit", "snapshot_file", "TrainingInterrupted", "RESUME_FIELDS",
           "check_resume_config", "training_interrupted", "scaled_lr", "LARGE_BATCH_WARMUP",
           "compiled_loss"]

#: The training budget every entry point uses unless told otherwise (issue: 10x the first 5k).
DEFAULT_STEPS = 50_000
PRECISIONS = ("fp32", "bf16")


def default_precision() -> str:
    """The training precision by default: ``"bf16"`` where this machine computes bfloat16
    natively (a CPU with AVX-512 BF16 or AMX through oneDNN, or a CUDA GPU that supports it),
    else ``"fp32"``; ``data/results/training_curves.json`` (notebook 04) is the evidence that
    bf16 trains as well as fp32, ``bench`` that it is faster where it is native."""
    from .diffusion import resolve_autocast          # the sampler's own "native bf16" rule
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    native = any(resolve_autocast("auto", torch.device(d)) is not None for d in devices)
    return "bf16" if native else "fp32"


@dataclass(frozen=True)
class TrainConfig:
    """REFERENCE.md "Training": Adam 1e-4, EMA 0.995, batch 64 (the paper's figure).

    ``grad_clip``: max global gradient norm, 0 disables.  A choice of ours: REFERENCE.md has
    none.  Measured (``data/results/training_curves.json``, full model, bf16, seed 0): the mean
    loss over steps 1,501-2,000 is 0.2954 with clipping at 1.0 and 0.2944 without, inside the
    seed-to-seed spread (0.2954 vs 0.2923 for seeds 0 and 1); kept so that the shipped models'
    recipe stays the default.  ``precision``: ``"bf16"`` runs the forward pass
    under bfloat16 autocast (CPU and CUDA; weights, gradients and Adam stay float32); the
    default is :func:`default_precision`, bf16 where the machine computes it natively.
    ``lr_decay``: the learning rate is multiplied by it every 1,000 steps (1 = constant, the
    paper's DiffPose; the lifter uses Martinez et al.'s exponential decay).
    ``warmup_steps``: the learning rate rises linearly from ``lr / warmup_steps`` to ``lr``
    over the first steps (0 = none, the paper's recipe at batch 64).  Large batches
    (:func:`scaled_lr`): ``lr`` grows with the square root of the batch and a warm-up of
    :data:`LARGE_BATCH_WARMUP` steps steadies the start.
    ``stream_chunk``: batches the stream simulates per call
    (:class:`~dphelpers.pipeline.TrainStream`); 1 is the shipped models' stream, another value
    another stream of batches (``ckpt_every`` must be a multiple, so checkpoints fall between
    chunks and resume exactly).
    ``compile``: the loss (embedding, q_sample, denoiser, MSE: :meth:`DiffPose.loss_from`) runs
    through ``torch.compile(fullgraph=True)``, its backward too; the random draws stay eager
    and the numbers are the same up to float rounding.
    ``augment``: every training batch's poses go through
    :func:`~dphelpers.augment.augment_poses` with ``AugmentConfig(enabled=True)`` before the
    camera and heatmaps are simulated (off: the shipped models' stream, unchanged).
    ``hold_out``: clip names (or name prefixes) left out of the training data whole
    (:func:`~dphelpers.data.hold_out_clips`), so they can test motion the model never saw.
    """

    steps: int = DEFAULT_STEPS
    batch_size: int = 64
    lr: float = 1e-4
    lr_decay: float = 1.0
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    precision: str = field(default_factory=default_precision)
    seed: int = 0
    ckpt_every: int = 1000
    log_every: int = 50
    threads: int | None = None
    warmup_steps: int = 0
    compile: bool = False
    stream_chunk: int = 1
    augment: bool = False
    hold_out: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {PRECISIONS}, "
                             f"got {self.precision!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"TrainConfig.lr_decay must be in (0, 1], got {self.lr_decay}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.stream_chunk < 1 or self.ckpt_every % self.stream_chunk:
            raise ValueError(f"TrainConfig.stream_chunk must be >= 1 and divide ckpt_every "
                             f"({self.ckpt_every}), got {self.stream_chunk}")
        if not isinstance(self.augment, bool):
            raise ValueError(f"TrainConfig.augment must be True or False, got {self.augment!r}")
        if isinstance(self.hold_out, str) or not all(isinstance(n, str) for n in self.hold_out):
            raise ValueError("TrainConfig.hold_out must be a tuple of clip names, "
                             f"got {self.hold_out!r}")
        object.__setattr__(self, "hold_out", tuple(self.hold_out))

    def lr_at(self, step: int) -> float:
        """The learning rate of optimisation step ``step`` (0-based): the warm-up ramp, then
        ``lr`` times ``lr_decay`` per completed 1,000 steps."""
        ramp = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return self.lr * ramp * self.lr_decay ** (step // 1000)

    def replace(self, **changes) -> "TrainConfig":
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise KeyError(f"unknown TrainConfig field(s) {sorted(unknown)}; known: {sorted(known)}")
        return TrainConfig(**{**asdict(self), **changes})


#: Settings a resumed run must share with the run that wrote the checkpoint: anything else
#: would continue a different experiment under the old one's name.  ``steps`` may grow.
RESUME_FIELDS = ("batch_size", "seed", "lr", "lr_decay", "ema_decay", "grad_clip", "precision",
                 "log_every", "warmup_steps", "stream_chunk", "augment", "hold_out")


def _plain(value):
    return tuple(value) if isinstance(value, list) else value


def check_resume_config(saved: dict, config: "TrainConfig", path: str | Path,
                        force: bool = False) -> None:
    """Refuse to resume the checkpoint at ``path`` (its ``train_config``: ``saved``) with other
    training settings than it was written with, naming each field; ``force`` allows it."""
    stored = saved.get("train_config") or {}
    diff = [f"{k}: {stored[k]!r} in the file, {getattr(config, k)!r} now" for k in RESUME_FIELDS
            if k in stored and _plain(stored[k]) != _plain(getattr(config, k))]
    if diff and not force:
        raise ValueError(f"{path} was trained with other settings ({'; '.join(diff)}): resume it "
                         "with the same ones, write another --checkpoint, or pass --force to "
                         "continue with the new ones")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit`: the message says at which step training stopped and which
    step the checkpoint keeps (a resume continues from it exactly)."""


def training_interrupted(step: int, saved: int, checkpoints: list) -> TrainingInterrupted:
    files = ", ".join(str(c) for c in checkpoints)
    if not checkpoints:
        kept = "nothing was saved (no checkpoint file was given)"
    elif saved:
        kept = f"{files} keeps step {saved:,}; the same command resumes from it"
    else:
        kept = f"no checkpoint was written yet, so {files} was not created or changed"
    return TrainingInterrupted(f"training stopped at step {step:,}; {kept}")


@dataclass
class TrainResult:
    model: nn.Module
    ema: nn.Module
    steps: list[int]
    losses: list[float]       # mean loss over each log_every window
    resumed_from: int = 0


def train_step(state: TrainState, batch: SampleBatch, config: TrainConfig,
               loss_module: nn.Module | None = None) -> torch.Tensor:
    """One optimisation step on ``batch``; returns the (detached) loss.

    ``loss_module(heatmaps, poses_3d_mm, generator)`` computes the loss; default
    ``state.model.loss`` (multi-process training passes its DistributedDataParallel wrapper,
    which averages the gradients over the processes in ``backward``).
    """
    model = state.model
    device = batch.heatmaps.device
    compute = loss_module if loss_module is not None else model.loss
    if config.lr_decay != 1.0 or config.warmup_steps:
        for group in state.optimizer.param_groups:
            group["lr"] = config.lr_at(state.step)
    pure = loss_module is None and hasattr(model, "draw_training_noise")
    if pure:              # the draws eager, the rest (maybe compiled) reads nothing back
        with record_function("draws"):
            draws = model.draw_training_noise(batch.heatmaps, state.generator, validate=False)
        compute = compiled_loss(model) if config.compile else model.loss_from
    with record_function("forward"), state.dropout.active(), \
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
        loss = (compute(*draws, batch.poses_3d_mm) if pure else
                compute(batch.heatmaps, batch.poses_3d_mm, state.generator))
    state.optimizer.zero_grad(set_to_none=True)
    with record_function("backward"):
        loss.backward()
    if config.grad_clip > 0:
        with record_function("clip"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    with record_function("optimizer"):
        state.optimizer.step()
        after = getattr(model, "after_step", None)
        if after is not None:
            after()
    with record_function("ema"):
        state.ema.update_parameters(model)
    state.step += 1
    return loss.detach()


#: the warm-up that goes with a large batch (:func:`scaled_lr`)
LARGE_BATCH_WARMUP = 500


def scaled_lr(batch_size: int, base_lr: float = 1e-4, base_batch: int = 64) -> float:
    """The learning rate for ``batch_size``: the paper's 1e-4 at batch 64, times the square
    root of the batch ratio (Adam's update noise falls as 1/sqrt(batch); the linear rule of
    SGD overshoots with Adam).  Use it with :data:`LARGE_BATCH_WARMUP` warm-up steps.  The CPU
    check at equal samples seen (``data/results/large_batch.json``, fp32, 102,400 samples) does
    NOT yet support it at that budget: batch 512 at 2.8e-4 with 20 warm-up steps ended at a
    mean loss of 0.380 over its last 25,600 samples against 0.318 for batch 64 at 1e-4."""
    if batch_size < 1 or base_batch < 1:
        raise ValueError(f"batch sizes must be >= 1, got {batch_size} and {base_batch}")
    return base_lr * (batch_size / base_batch) ** 0.5


def compiled_loss(model: nn.Module):
    """``torch.compile(model.loss_from, fullgraph=True)``, made once per model and kept on it
    (dynamo sees one static shape per batch size)."""
    fn = model.__dict__.get("_compiled_loss_from")
    if fn is None:
        fn = torch.compile(model.loss_from, fullgraph=True, dynamic=False)
        model.__dict__["_compiled_loss_from"] = fn
    return fn


def new_state(model: nn.Module, generator: torch.Generator, config: TrainConfig,
              rank: int = 0) -> TrainState:
    """A fresh :class:`TrainState`; the dropout stream is seeded from ``config.seed`` and the rank."""
    return TrainState.new(model, generator, config.lr, config.ema_decay,
                          dropout_seed=config.seed * 1_000_003 + 7919 * (rank + 1))


def resume(state: TrainState, checkpoint: Path, rank: int = 0) -> None:
    """Load a training checkpoint into ``state`` after checking that its settings match."""
    saved = read_checkpoint(checkpoint)
    check_config(saved, state.model.config, checkpoint)
    state.load_state_dict(saved, rank)


def snapshot_file(checkpoint: str | Path, step: int) -> Path:
    """Where :func:`fit` keeps the state at ``step``: ``runs/x.pt`` -> ``runs/x.step5000.pt``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.step{step}{checkpoint.suffix}")


def fit(model: nn.Module, stream: TrainStream, config: TrainConfig | None = None,
        checkpoint: str | Path | None = None, resume_from_checkpoint: bool = True,
        progress: bool = True, keep_at: tuple[int, ...] = ()) -> TrainResult:
    """Train ``model`` in place up to ``config.steps`` steps in all (resumed steps included).

    With ``checkpoint``: an existing training checkpoint there is resumed (unless
    ``resume_from_checkpoint=False``), and the state is written there every ``ckpt_every``
    steps and at the end.  ``keep_at``: steps whose state is also kept in a file of its own,
    :func:`snapshot_file` (a learning curve evaluates them later).
    """
    config = TrainConfig() if config is None else config
    keep = set(int(k) for k in keep_at)
    if keep and checkpoint is None:
        raise ValueError("fit: keep_at needs a checkpoint file to name the snapshots after")
    if config.threads:
        torch.set_num_threads(config.threads)
    if any(k % config.stream_chunk for k in keep | {config.steps}):
        raise ValueError(f"fit: steps {config.steps} and keep_at {sorted(keep)} must be multiples of "
                         f"stream_chunk={config.stream_chunk} (a snapshot resumes only between "
                         "chunks)")
    stream.set_chunk(config.stream_chunk)
    state = new_state(model, stream.generator, config)
    if checkpoint is not None and resume_from_checkpoint and Path(checkpoint).is_file():
        resume(state, Path(checkpoint))
    start = saved = state.step
    model.train()
    window: list[torch.Tensor] = []
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps,
               disable=not progress, desc="train")
    try:
        for _ in bar:
            window.append(train_step(state, stream.next_batch(config.batch_size), config))
            if len(window) == config.log_every:
                state.log_steps.append(state.step)
                state.log_losses.append(torch.stack(window).mean().item())
                window = []
                bar.set_postfix(loss=f"{state.log_losses[-1]:.4f}")
            if checkpoint is not None and (state.step % config.ckpt_every == 0
                                           or state.step == config.steps):
                write_checkpoint(checkpoint, model, {**state.state_dict(),
                                                     "train_config": asdict(config)})
                saved = state.step
            if state.step in keep:
                write_checkpoint(snapshot_file(checkpoint, state.step), model,
                                 {**state.state_dict(), "train_config": asdict(config)})
    except KeyboardInterrupt:
        bar.close()
        raise training_interrupted(state.step, saved, [checkpoint] if checkpoint else []) from None
    model.eval()
    state.ema.module.eval()
    return TrainResult(model=model, ema=state.ema.module, steps=state.log_steps,
                       losses=state.log_losses, resumed_from=start)
