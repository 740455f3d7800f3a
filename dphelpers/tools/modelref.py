"""A model as the command line names it: read, described and labelled one way (cli and bench).

Which file is read is :mod:`dphelpers.models.modelfiles`' rule; this module adds what every verb
prints and how results are named after that file:

- :func:`load` reads a model by name (its shipped file, or a file given for that name) or from
  an explicit file and returns a :class:`Loaded`: the model, its
  :class:`~dphelpers.models.modelfiles.ModelInfo` (file, model name, training steps) and its
  *label*, the row name in every table: ``"full (diffpose_full.pt)"`` for a model read by name, the
  file's stem for an explicit ``--checkpoint``;
- :func:`result_stem` names result files after the model file, so that two models' results
  never overwrite each other (``runs/evaluate_<stem>.json``);
- :func:`model_name_of` says which of :data:`~dphelpers.models.modelfiles.MODEL_NAMES` a model is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..models.checkpoint import CheckpointError, load_model, read_checkpoint
from ..models.modelfiles import MODEL_NAMES, ModelInfo, is_shipped, reading_file, stem

__all__ = ["Loaded", "model_name_of", "load", "from_info", "result_stem", "label_of", "model_entry"]


@dataclass
class Loaded:
    """A model read from a file, with what to print about it and what to call its results."""

    model: nn.Module
    info: ModelInfo
    label: str

    @property
    def path(self) -> Path | None:
        """The model file it was read from (``info.path``; None for a model only in memory)."""
        return self.info.path

    @property
    def stem(self) -> str:
        """The stem result files are named after (see :func:`result_stem`)."""
        return result_stem(self.info.path) if self.info.path is not None else self.info.name


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def model_name_of(model: nn.Module) -> str:
    """``"lifter"``, or the DiffPose ablation whose switches the model's settings carry.

    An ablation is the set of fields :meth:`~dphelpers.diffusion.DiffPoseConfig.ablation`
    changes from the defaults; the most specific ablation whose fields all match wins, so a
    small model with the full model's switches is ``"full"``.
    """
    if getattr(model, "kind", "diffpose") == "lifter":
        return "lifter"
    from ..diffusion import DiffPoseConfig
    have = _flat(model.config.to_dict())
    base = _flat(DiffPoseConfig().to_dict())
    best, best_n = "full", 0
    for name in MODEL_NAMES:
        if name in ("full", "lifter"):
            continue
        changed = {k: v for k, v in _flat(DiffPoseConfig.ablation(name).to_dict()).items()
                   if base.get(k) != v}
        if all(have.get(k) == v for k, v in changed.items()) and len(changed) > best_n:
            best, best_n = name, len(changed)
    return best


def label_of(name: str | None, path: Path) -> str:
    """Row name: ``"NAME (FILE)"`` for a model read by name, the file's stem otherwise."""
    return f"{name} ({path.name})" if name is not None else path.stem


def _checked_name(model: nn.Module, name: str | None, path: Path) -> str:
    found = model_name_of(model)
    if name is not None and found != name:
        raise CheckpointError(f"{path} holds a {found!r} model, not {name!r}: name it {found}="
                              f"{path}, or pass the right file")
    return found


def load(name: str | None = "full", checkpoint: str | Path | None = None,
         device: str | torch.device = "cpu") -> Loaded:
    """Read a model: ``name`` alone: its shipped file; ``name`` and ``checkpoint``: that file,
    which must hold model ``name``; ``checkpoint`` alone (``name=None``): whatever it holds.

    Raises FileNotFoundError (no such file) and CheckpointError (corrupt, foreign, or another
    model than ``name``), both naming the file.
    """
    if name is None and checkpoint is None:
        raise ValueError("load: give a model name, a file, or both")
    path = reading_file(name or "full", checkpoint)
    state = read_checkpoint(path)
    model = load_model(path, device=device, state=state)
    found = _checked_name(model, name, path)
    info = ModelInfo.from_file(found, path, state)
    return Loaded(model, info, label_of(name, path))


def from_info(model: nn.Module, info: ModelInfo, explicit: bool) -> Loaded:
    """A :class:`Loaded` for what :func:`~dphelpers.models.modelfiles.load_or_train` returned
    (``explicit``: the file was given with ``--checkpoint``)."""
    if info.path is None:
        return Loaded(model, info, f"{info.name} (no file)")
    found = _checked_name(model, None if explicit else info.name, info.path)
    info.name = found
    return Loaded(model, info, label_of(None if explicit else found, info.path))


_MODEL_STEMS = frozenset(stem(n) for n in MODEL_NAMES)


def result_stem(path: str | Path) -> str:
    """What result files of the model in ``path`` are called after: the file's stem, and, for
    a file outside ``data/checkpoints`` that carries a shipped model's stem (a training run's
    ``runs/diffpose_full.pt``), its folder too (``runs_diffpose_full``)."""
    path = Path(path)
    if is_shipped(path) or path.stem not in _MODEL_STEMS:
        return path.stem
    return f"{path.resolve().parent.name}_{path.stem}"


def model_entry(text: str) -> tuple[str, Path | None]:
    """A ``--models`` entry: ``"NAME"`` -> ``(NAME, None)`` (its shipped file) or
    ``"NAME=PATH"`` -> ``(NAME, PATH)``; an unknown name or an empty part is an argparse error."""
    import argparse
    name, sep, path = text.partition("=")
    name, path = name.strip(), path.strip()
    if name not in MODEL_NAMES:
        raise argparse.ArgumentTypeError(f"{text!r}: unknown model {name!r}; expected NAME or "
                                         f"NAME=PATH with NAME one of {', '.join(MODEL_NAMES)}")
    if sep and not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PATH, the path is empty")
    return name, (Path(path) if sep else None)
