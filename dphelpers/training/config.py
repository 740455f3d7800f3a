"""Training settings: :class:`TrainConfig` and the rules around it (notebook 04).

The settings of one training run (REFERENCE.md "Training"), the fields a resumed run must
keep (:data:`RESUME_FIELDS`, :func:`check_resume_config`) and the learning rate for a large
batch (:func:`scaled_lr`).  The step and the loop that use them are
:mod:`dphelpers.training.train`'s.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..configs import from_dict
from ..precision import default_precision

__all__ = ["DEFAULT_STEPS", "PRECISIONS", "TrainConfig", "RESUME_FIELDS", "check_resume_config",
           "scaled_lr", "LARGE_BATCH_WARMUP"]

#: The training budget every entry point uses unless told otherwise (issue: 10x the first 5k).
DEFAULT_STEPS = 50_000
PRECISIONS = ("fp32", "bf16")


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
    (:func:`scaled_lr`): ``lr`` grows linearly with the batch and a warm-up of
    :data:`LARGE_BATCH_WARMUP` steps steadies the start.
    ``stream_chunk``: batches the stream simulates per call
    (:class:`~dphelpers.pipeline.TrainStream`); 1 is the shipped models' stream, another value
    another stream of batches (``ckpt_every`` must be a multiple, so checkpoints fall between
    chunks and resume exactly).
    ``compile``: the loss (embedding, q_sample, denoiser, MSE: :meth:`DiffPose.loss_from`) runs
    through ``torch.compile(fullgraph=True)``, its backward too; the random draws stay eager
    and the numbers are the same up to float rounding.
    ``graphs``: the whole step compiled in ``mode="reduce-overhead"`` (loss, backward, clipping,
    Adam, EMA; :mod:`dphelpers.training.graphs`), replayed as CUDA graphs on CUDA; the draws
    stay eager, so streams and resume are unchanged.  One batch size per run.
    ``prefetch``: the stream simulates the next chunk in a background thread during the step
    (:meth:`~dphelpers.pipeline.TrainStream.set_prefetch`); the loss then draws from a
    generator of its own, as in :func:`~dphelpers.training.many.fit_many`, so it is another
    stream of random draws than without (a resume keeps the setting).
    ``augment``: every training batch's poses go through
    :func:`~dphelpers.augment.augment_poses` with ``AugmentConfig(enabled=True)`` before the
    camera and heatmaps are simulated (off: the shipped models' stream, unchanged).
    ``augment_strength``: with ``augment``, the transforms are
    :meth:`~dphelpers.augment.AugmentConfig.at_strength` of it
    (1.0: the defaults; chosen on a validation source, see :mod:`dphelpers.tools.heldout`).
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
    graphs: bool = False
    prefetch: bool = False
    stream_chunk: int = 1
    augment: bool = False
    augment_strength: float = 1.0
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
        if not (isinstance(self.augment_strength, (int, float)) and self.augment_strength > 0):
            raise ValueError("TrainConfig.augment_strength must be a number > 0, "
                             f"got {self.augment_strength!r}")
        if self.augment_strength != 1.0 and not self.augment:
            raise ValueError(f"TrainConfig.augment_strength is {self.augment_strength} but "
                             "augment is off: the strength only acts with augment on "
                             "(train --augment)")
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
        """A copy with ``changes``; an unknown field is an error naming it
        (:func:`~dphelpers.configs.from_dict`)."""
        return from_dict(TrainConfig, {**asdict(self), **changes})

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """From ``asdict(config)`` (e.g. a checkpoint's ``train_config``), strictly."""
        return from_dict(cls, d)


#: Settings a resumed run must share with the run that wrote the checkpoint: anything else
#: would continue a different experiment under the old one's name.  ``steps`` may grow.
RESUME_FIELDS = ("batch_size", "seed", "lr", "lr_decay", "ema_decay", "grad_clip", "precision",
                 "log_every", "warmup_steps", "stream_chunk", "augment", "augment_strength",
                 "hold_out", "prefetch")


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


#: the warm-up that goes with a large batch (:func:`scaled_lr`), the steps the CPU check used
LARGE_BATCH_WARMUP = 20


def scaled_lr(batch_size: int, base_lr: float = 1e-4, base_batch: int = 64) -> float:
    """The learning rate for ``batch_size``: the paper's 1e-4 at batch 64 times the batch ratio
    (the linear rule), with :data:`LARGE_BATCH_WARMUP` warm-up steps.  Checked on the CPU at
    equal samples seen (``data/results/large_batch.json``, fp32, seed 0): at 409,600 samples,
    batch 512 at 8e-4 with 20 warm-up steps ends at a mean loss of 0.2333 over its last 25,600
    samples against 0.2384 for batch 64 at 1e-4 (it reaches batch 64's loss).  At 102,400
    samples (200 steps at batch 512) it did not yet (0.335 vs 0.318), and the square-root rule
    (2.8e-4) was further off (0.380).  Batches above 512 are not checked."""
    if batch_size < 1 or base_batch < 1:
        raise ValueError(f"batch sizes must be >= 1, got {batch_size} and {base_batch}")
    return base_lr * batch_size / base_batch
