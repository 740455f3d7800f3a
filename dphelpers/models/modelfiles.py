"""Which model file is read, which may be written, and load-or-train (notebooks 04-06).

The one rule, used by the command line, the benchmark and the notebooks:

- **Reading** (``run``, ``evaluate``, ``predict``, ``bench``, the notebooks): a file given
  explicitly (``--checkpoint``, ``CHECKPOINT``) and it must exist; otherwise the shipped
  model ``data/checkpoints/<stem>.pt``.  Nothing in the working directory is picked up
  silently.
- **Writing** (``train``): the file given, else ``runs/<stem>.pt``; never a shipped model
  (``export`` is the only verb that writes one).
- **Load-or-train** (:func:`load_or_train`): read as above; only when no file exists, train
  into the writing file (resuming a partial run there); under ``QUICK`` with no file, a
  stand-in trained a few steps in memory (flagged ``untrained``).

Model names: the paper's ablations of DiffPose (``full``, ``argmax_only``,
``no_transformer``, ``no_argmax``, ``no_likelihood``) and the single-hypothesis
``lifter`` (Martinez et al. 2017).  ``<stem>`` is ``diffpose_<name>`` or ``lifter``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..files import require_file
from ..training.train import DEFAULT_STEPS, TrainConfig, fit
from .checkpoint import load_model, read_checkpoint

__all__ = ["SHIPPED_DIR", "RUNS_DIR", "MODEL_NAMES", "SHIPPED_NAMES", "stem", "shipped_file",
           "run_file", "is_shipped", "reading_file", "writing_file", "build_model",
           "train_config", "ModelInfo", "load_or_train", "display_path", "PROJECT_ROOT"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIR = PROJECT_ROOT / "data" / "checkpoints"
RUNS_DIR = Path("runs")
DIFFPOSE_NAMES = ("full", "argmax_only", "no_transformer", "no_argmax", "no_likelihood")
MODEL_NAMES = DIFFPOSE_NAMES + ("lifter",)
#: the models a fresh clone has (trained on the embedded data)
SHIPPED_NAMES = ("full", "argmax_only", "no_transformer", "lifter")


def _check_name(name: str) -> str:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return name


def stem(name: str) -> str:
    """File name without suffix: ``diffpose_<name>`` or ``lifter``."""
    return "lifter" if _check_name(name) == "lifter" else f"diffpose_{name}"


def shipped_file(name: str) -> Path:
    """The shipped model file of ``name``: ``data/checkpoints/<stem>.pt`` (may not exist)."""
    return SHIPPED_DIR / f"{stem(name)}.pt"


def run_file(name: str, runs_dir: str | Path = RUNS_DIR) -> Path:
    """The file ``train`` writes by default for ``name``: ``<runs_dir>/<stem>.pt``."""
    return Path(runs_dir) / f"{stem(name)}.pt"


def is_shipped(path: str | Path) -> bool:
    """True for any file inside ``data/checkpoints`` (however the path is spelled)."""
    return Path(path).resolve().parent == SHIPPED_DIR.resolve()


def reading_file(name: str = "full", checkpoint: str | Path | None = None) -> Path:
    """The file a reading verb loads; raises FileNotFoundError saying how to get one."""
    if checkpoint is not None:
        return require_file(checkpoint, "model file")
    path = shipped_file(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"no shipped model for {name!r} at {path}: train one with `python -m dphelpers train "
            f"--model {name}` and pass it with --checkpoint {run_file(name)}")
    return path


def writing_file(name: str = "full", checkpoint: str | Path | None = None,
                 runs_dir: str | Path = RUNS_DIR) -> Path:
    """The file ``train`` writes; a shipped model is refused (``export`` writes those)."""
    path = Path(checkpoint) if checkpoint is not None else run_file(name, runs_dir)
    if is_shipped(path):
        raise ValueError(f"{path} is a shipped model and training never writes one: train into "
                         f"{run_file(name, runs_dir)} and then `python -m dphelpers export` it")
    return path


def build_model(name: str) -> nn.Module:
    """An untrained model by name."""
    if _check_name(name) == "lifter":
        from ..lifter import Lifter
        return Lifter()
    from ..diffusion import DiffPose, DiffPoseConfig
    return DiffPose(DiffPoseConfig.ablation(name))


def train_config(name: str, **changes) -> TrainConfig:
    """The training settings of a model: DiffPose's from REFERENCE.md; the lifter's learning
    rate and decay from its own config (Martinez et al.)."""
    base = TrainConfig()
    if _check_name(name) == "lifter":
        from ..lifter import LifterConfig
        lc = LifterConfig()
        base = base.replace(lr=lc.lr, lr_decay=lc.lr_decay_per_1k_steps, grad_clip=0.0)
    return base.replace(**changes)


@dataclass
class ModelInfo:
    """Where a model came from: ``source`` is 'file', 'trained' or 'untrained stand-in'."""

    name: str
    path: Path | None
    source: str
    trained_steps: int
    log_steps: list[int] = field(default_factory=list)
    log_losses: list[float] = field(default_factory=list)
    #: whether it trained with pose augmentation; None when its file does not say (files
    #: exported before they kept the training settings, e.g. the shipped models, which trained
    #: without: augmentation came later)
    augment: bool | None = None

    @classmethod
    def from_file(cls, name: str, path: Path, state: dict) -> "ModelInfo":
        """The info of a model read from ``path`` (``state``: its :func:`read_checkpoint`)."""
        config = state.get("train_config")
        return cls(name, path, "file", int(state["step"]), list(state.get("log_steps", [])),
                   list(state.get("log_losses", [])),
                   bool(config.get("augment", False)) if config else None)

    @property
    def untrained(self) -> bool:
        """True for the QUICK stand-in trained a few steps in memory (no model file)."""
        return self.source == "untrained stand-in"

    def __str__(self) -> str:
        if self.untrained:
            return (f"model {self.name!r}: NO trained model file; a stand-in trained for only "
                    f"{self.trained_steps} steps in memory: every result below is that of an "
                    "essentially UNTRAINED model")
        verb = "loaded" if self.source == "file" else "trained into"
        return (f"model {self.name!r}: {verb} {display_path(self.path)} "
                f"({self.trained_steps:,} training steps)")


def display_path(path: str | Path | None) -> str:
    """``path`` relative to the project (``data/checkpoints/x.pt``) when inside it, else as
    given: printed outputs do not carry the reader's home directory."""
    if path is None:
        return "-"
    try:
        return Path(path).resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


def load_or_train(name: str = "full", checkpoint: str | Path | None = None,
                  train_poses_m=None, steps: int = DEFAULT_STEPS, quick: bool = False,
                  quick_steps: int = 30, device: str | torch.device = "cpu", seed: int = 0,
                  progress: bool = True) -> tuple[nn.Module, ModelInfo]:
    """The model to study: read it (see the module docstring) or, when there is no file, train.

    ``train_poses_m: (n, 17, 3)`` metres, needed only when training.  Returns the model (raw
    weights, as the authors evaluate, eval mode) and a :class:`ModelInfo` to print.
    """
    explicit = checkpoint is not None
    path = Path(checkpoint) if explicit else shipped_file(name)
    if path.is_file():
        state = read_checkpoint(path)
        return (load_model(path, device=device, state=state),
                ModelInfo.from_file(name, path, state))
    if train_poses_m is None:
        raise FileNotFoundError(f"model file not found: {path}, and no training poses were "
                                "given to train one")
    from ..pipeline import TrainStream
    model = build_model(name).to(device)
    stream = TrainStream(train_poses_m, seed=seed, device=device)
    if quick and not explicit:
        cfg = train_config(name, steps=quick_steps, batch_size=16, seed=seed, log_every=5)
        res = fit(model, stream, cfg, checkpoint=None, progress=False)
        return model.eval(), ModelInfo(name, None, "untrained stand-in", quick_steps,
                                       res.steps, res.losses, augment=False)
    target = writing_file(name, checkpoint if explicit else None)
    print(f"no model file at {path}: training {steps:,} steps into {target} (resumes if "
          "interrupted; hours on a CPU, minutes on a GPU)")
    res = fit(model, stream, train_config(name, steps=steps, seed=seed), checkpoint=target,
              progress=progress)
    return model.eval(), ModelInfo(name, target, "trained", steps, res.steps, res.losses,
                                   augment=False)
