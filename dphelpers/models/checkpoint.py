"""Model files and training checkpoints on disk (notebook 04).

One ``torch.save`` file, two flavours:

- a **training checkpoint** (``train``, every ``ckpt_every`` steps): the whole
  :class:`~dphelpers.training.state.TrainState` (weights, EMA with its count, optimizer, every
  random stream, step, loss log), enough to resume exactly;
- a **model file** (``export``; the shipped models): raw weights, optionally float16, the
  step and the loss log, nothing to resume from.

Both store the model's ``kind`` (``"diffpose"`` or ``"lifter"``) and ``config.to_dict()``.
Loading into a model built from other settings is refused with every field that differs;
a missing, truncated or foreign file raises :class:`CheckpointError` naming the file and
what is wrong.  Which file a verb reads or writes is decided in :mod:`dphelpers.models.modelfiles`.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..configs import config_diff
from ..diffusion import DiffPose, DiffPoseConfig
from ..files import atomic_write, require_file
from ..lifter import Lifter, LifterConfig

__all__ = ["CheckpointError", "FORMAT", "KINDS", "write_checkpoint", "save_model",
           "read_checkpoint", "config_diff", "check_config", "model_kind", "build_model",
           "load_model"]

FORMAT = 2
_REQUIRED = ("format", "config", "model", "step")


class CheckpointError(ValueError):
    """A model file that cannot be used: corrupt, truncated, foreign, or built differently."""


KINDS = ("diffpose", "lifter")


def _classes(kind: str) -> tuple[type, type]:
    """(model class, config class) of a kind."""
    return (DiffPose, DiffPoseConfig) if kind == "diffpose" else (Lifter, LifterConfig)


def model_kind(model: nn.Module) -> str:
    """``"diffpose"`` or ``"lifter"``: what :func:`build_model` rebuilds from a file."""
    kind = getattr(model, "kind", "diffpose")
    if kind not in KINDS or not isinstance(model, _classes(kind)[0]):
        raise TypeError(f"not a model this project saves: {type(model).__name__}")
    return kind


def _pack(sd: dict, half: bool) -> dict:
    return {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
            for k, v in sd.items()}


def write_checkpoint(path: str | Path, model: nn.Module, payload: dict) -> Path:
    """Write ``payload`` (e.g. ``TrainState.state_dict()``) with the model's kind and settings,
    atomically (:func:`~dphelpers.files.atomic_write`: a temporary of this process's own, then
    a rename): an interrupted or failed save loses nothing and leaves no temporary."""
    state = {**payload, "format": FORMAT, "kind": model_kind(model),
             "config": model.config.to_dict(), "step": int(payload.get("step", 0))}
    for key in ("model", "ema"):
        if state.get(key) is not None:
            state[key] = _pack(state[key], half=False)
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def save_model(path: str | Path, model: nn.Module, step: int, log: dict | None = None,
               half: bool = True, train_config: dict | None = None) -> Path:
    """A model file: raw weights (float16 with ``half``), settings, step and loss log;
    ``train_config``: the training run's settings (a checkpoint's ``train_config``), kept so
    that the file still says how it was trained (augmentation, held-out clips, precision)."""
    log = log or {}
    extra = {"train_config": dict(train_config)} if train_config else {}
    return write_checkpoint(path, model, {
        "model": _pack(model.state_dict(), half), "step": int(step),
        "log_steps": list(log.get("log_steps", [])), "log_losses": list(log.get("log_losses", [])),
        **extra})


_LOAD_ERRORS = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
                KeyError, IndexError, TypeError, AttributeError, OSError)


def _first_sentence(err: BaseException) -> str:
    """The loader's own finding without its advice: torch's unpickling errors suggest
    ``weights_only=False``, which would run code from the file; that advice is never passed on."""
    text = " ".join(str(err).split())
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split(" Check the documentation")[0]
        return f"it holds more than plain weights: {text.strip()}; refused without running it"
    if "Weights only load failed" in text:
        return "it holds more than plain weights; refused without running it"
    return text


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint file and check its keys; format 1 files (the first shipped model) are
    read too.  Errors name the file."""
    path = require_file(path, "model file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as err:
        raise CheckpointError(f"{path} is corrupt or not a DiffPose model file "
                              f"({type(err).__name__}: {_first_sentence(err)})") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a DiffPose model file: it holds a "
                              f"{type(state).__name__}, expected a dict")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a DiffPose model file: it lacks {missing}")
    if state["format"] not in (1, FORMAT):
        raise CheckpointError(f"{path}: unknown format {state['format']!r} "
                              f"(expected 1 or {FORMAT})")
    if state["format"] == 1:                      # old layout: the log sat under "extra"
        extra = state.pop("extra", None) or {}
        state.setdefault("log_steps", extra.get("log_steps", []))
        state.setdefault("log_losses", extra.get("log_losses", []))
    state.setdefault("kind", "diffpose")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: field 'step' is {step!r}, expected an integer >= 0")
    if state["kind"] not in KINDS:
        raise CheckpointError(f"{path}: unknown model kind {state['kind']!r}")
    return state


def check_config(state: dict, config, path: str | Path = "<memory>") -> None:
    """Raise if the file's settings differ from ``config``'s, naming every field."""
    diff = config_diff(state["config"], config.to_dict())
    if diff:
        raise CheckpointError(f"{path} was built with different settings: " + "; ".join(diff))


def build_model(state: dict, path: str | Path = "<memory>") -> nn.Module:
    """An untrained model of the file's kind and settings."""
    cls, config_cls = _classes(state["kind"])
    try:
        config = config_cls.from_dict(state["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its settings do not build a {cls.__name__} "
                              f"({err})") from err
    return cls(config)


def load_model(path: str | Path, config=None, device: str | torch.device = "cpu",
               use_ema: bool = False, state: dict | None = None) -> nn.Module:
    """The model of a file, in eval mode on ``device``; with ``config``: check it matches first.

    ``state``: the file's :func:`read_checkpoint` result when the caller has read it already
    (the file is then not read again).  The authors evaluate the raw weights; ``use_ema=True``
    loads the EMA copy instead.
    """
    if state is None:
        state = read_checkpoint(path)
    if config is not None:
        check_config(state, config, path)
    model = build_model(state, path)
    sd = state.get("ema") if use_ema else state["model"]
    if sd is None:
        raise CheckpointError(f"{path} holds no EMA weights (a model file keeps the raw ones)")
    ref = model.state_dict()
    try:
        model.load_state_dict({k: v.to(ref[k].dtype) if k in ref else v for k, v in sd.items()})
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the model ({err})") from err
    return model.to(device).eval()
