"""``python -m dphelpers export``: a training checkpoint -> a small float16 model file, the one
way a shipped model is written (no optimizer, no EMA; settings, step and loss log kept).  It
replaces an existing file only when that is an earlier export of the same model (``--force``
otherwise), so a training checkpoint or another model is never lost by accident.
"""
from __future__ import annotations

from pathlib import Path

from ..models.checkpoint import CheckpointError, load_model, read_checkpoint, save_model
from . import modelref

__all__ = ["export"]


def _check_replaceable(dest: Path, state: dict) -> None:
    """``export`` may replace ``dest`` only when it is an earlier export of the same model
    (a model file of the same kind and settings); anything else needs ``--force``."""
    from ..models.checkpoint import config_diff
    if not dest.exists():
        return
    try:
        old = read_checkpoint(dest)
    except (CheckpointError, ValueError, OSError):
        raise FileExistsError(f"{dest} exists and is not a DiffPose model file: export does not "
                              "replace it (choose another DEST, or --force)") from None
    if old.get("optimizer") is not None:
        raise FileExistsError(f"{dest} is a training checkpoint (weights, EMA, optimizer at step "
                              f"{int(old['step']):,}): replacing it would lose that training; "
                              "choose another DEST, or --force")
    diff = config_diff(old["config"], state["config"]) if old["kind"] == state["kind"] else \
        [f"kind: {old['kind']!r} != {state['kind']!r}"]
    if diff:
        raise FileExistsError(f"{dest} holds another model ({'; '.join(diff[:3])}"
                              f"{'; ...' if len(diff) > 3 else ''}): export replaces only an "
                              "earlier export of the same model; choose another DEST, or --force")


def export(args) -> int:
    """Write the raw weights of ``source`` as a float16 model file ``dest`` (no optimizer, no
    EMA): the one way a shipped model is written."""
    from ..models.modelfiles import is_shipped
    source, dest = Path(args.source), Path(args.dest)
    state = read_checkpoint(source)
    if state.get("optimizer") is not None and dest.resolve() == source.resolve():
        raise ValueError(f"export would overwrite the training checkpoint {source} with a model "
                         "file (its optimizer state would be lost): choose another DEST")
    if not getattr(args, "force", False):
        _check_replaceable(dest, state)
    model = load_model(source, state=state)          # raw weights, as the authors evaluate
    name = modelref.model_name_of(model)
    kind = "training checkpoint" if state.get("optimizer") is not None else "model file"
    print(f"export: read {source} ({kind}, model {name!r}, {int(state['step']):,} training steps)")
    path = save_model(dest, model, int(state["step"]),
                      {"log_steps": state.get("log_steps", []),
                       "log_losses": state.get("log_losses", [])}, half=True,
                      train_config=state.get("train_config"))
    shipped = "; a shipped model" if is_shipped(path) else ""
    trained = ", training settings" if state.get("train_config") else ""
    print(f"export: wrote {path} ({path.stat().st_size / 1e6:.1f} MB: raw weights in float16, "
          f"settings{trained}, step and loss log of {len(state.get('log_losses', []))} points; "
          f"no optimizer, no EMA{shipped})")
    return 0
