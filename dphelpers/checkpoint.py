"""Saving and loading trained models with the settings that built them (notebook 04).

A checkpoint is one ``torch.save`` file holding the model weights, the EMA weights,
``DiffPoseConfig.to_dict()``, the training step and (optionally) the optimizer
state.  Loading into a model built from different settings is refused with the
list of fields that differ; a missing or corrupt file is named in the error.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from .diffusion import DiffPose, DiffPoseConfig, config_diff

__all__ = ["save_checkpoint", "read_checkpoint", "load_model", "check_config"]

_KEYS = ("format", "config", "model", "step")


def save_checkpoint(path: str | Path, model: DiffPose, step: int, ema: dict | None = None,
                    optimizer: torch.optim.Optimizer | None = None, extra: dict | None = None,
                    half: bool = False) -> Path:
    """Write atomically (temp file + rename) so that an interrupted save loses nothing.

    ``half=True`` stores weights as float16 (the shipped model), restored to float32 on load.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def pack(sd: dict) -> dict:
        return {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
                for k, v in sd.items()}

    state = {"format": 1, "config": model.config.to_dict(), "model": pack(model.state_dict()),
             "step": int(step), "ema": pack(ema) if ema is not None else None,
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "extra": extra or {}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint file and check its keys; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(f"checkpoint {path} is corrupt or not a DiffPose checkpoint: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path}: expected a dict, got {type(state).__name__}")
    missing = [k for k in _KEYS if k not in state]
    if missing:
        raise KeyError(f"checkpoint {path} lacks key(s) {missing}")
    return state


def check_config(state_config: dict, model_config: DiffPoseConfig, path: str | Path = "<memory>") -> None:
    """Raise if the checkpoint's settings differ from the model's, naming every field."""
    diff = config_diff(state_config, model_config.to_dict())
    if diff:
        raise ValueError(f"checkpoint {path} was built with different settings: " + "; ".join(diff))


def _restore(model: DiffPose, sd: dict) -> None:
    ref = model.state_dict()
    model.load_state_dict({k: v.to(ref[k].dtype) if k in ref else v for k, v in sd.items()})


def load_model(path: str | Path, config: DiffPoseConfig | None = None, device: str | torch.device = "cpu",
               use_ema: bool = False) -> DiffPose:
    """Build a model from a checkpoint (with ``config``: check that it matches first).

    The authors evaluate the raw weights; ``use_ema=True`` loads the EMA copy instead.
    """
    state = read_checkpoint(path)
    if config is None:
        config = DiffPoseConfig.from_dict(state["config"])
    else:
        check_config(state["config"], config, path)
    model = DiffPose(config)
    sd = state["ema"] if use_ema else state["model"]
    if sd is None:
        raise KeyError(f"checkpoint {path} holds no EMA weights")
    _restore(model, sd)
    return model.to(device).eval()
