"""How far a model travels: the test split against whole sources it never saw (``heldout`` verb).

The test split is the last 20% of the same clips the model trained on: the same people doing
the same moves.  A model trained with ``train --hold-out boxing,deepmimic`` never saw any frame
of those clips; this verb scores it on both, with the same cameras, simulator (the default
preset) and test-set seed, so the only difference is the motion:

- ``test split``: :func:`~dphelpers.data.split_clips` of the clips the model trained on;
- ``held out: NAME``: every frame of the clips NAME matches, evenly subsampled to ``n_test``;
- ``new person: NAME`` (``--new``): the same from another file, by default the three people
  in ``data/mocap_new_people_h36m17.npz`` (:func:`~dphelpers.data.new_people_path`)
  that no model trains on, so every model can be scored there, the shipped ones included.

Per set and model: P1 min and median (mm, 17 joints, as everywhere in the book) and the same
over the 12 limb joints (shoulders, elbows, wrists, hips, knees, ankles), where heatmap
failures act; where that limb error lies (image plane or depth) and the score of the samples
whose true pose is within the joint limits of the pose augmentation (:func:`set_scores`).
A model whose training settings do not hold the named sources out is refused: it saw them.
Clips a model held out beyond the named ones (a validation run's test sources) are left out
of the test split and never scored (:func:`unscored_clips`).  The file's tables and
sentences: :mod:`dphelpers.evaluation.unseen`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write
from ..models.modelfiles import display_path

__all__ = ["LIMB_H36M", "HeldOutModel", "held_out_sets", "training_bone_lengths",
           "with_bone_lengths", "unscored_clips", "set_scores",
           "read_held_out_model", "model_variant", "score", "merged", "SAME_SETS",
           "add_arguments", "run_verb"]

#: Human3.6M-17 limb joints: right hip, knee, ankle; left hip, knee, ankle; left shoulder,
#: elbow, wrist; right shoulder, elbow, wrist.
LIMB_H36M: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16)


@dataclass
class HeldOutModel:
    """A model read for this test, with the data settings it was trained with."""

    label: str
    path: Path
    model: torch.nn.Module
    steps: int
    augment: bool
    hold_out: tuple[str, ...]
    variant: str = "custom"
    augment_strength: float | None = None


def held_out_sets(hold_out: tuple[str, ...], n_test: int | None, seed: int = 1234,
                  data: Path | None = None, unscored: tuple[str, ...] = (),
                  new: tuple[str, ...] = (), new_data: Path | None = None,
                  retarget: bool = False) -> dict:
    """``{"test split": SampleBatch, "held out: NAME": ..., "new person: NAME": ...}`` on one
    simulator.

    ``unscored``: further clips the models also never saw, left out of the test split and not
    scored (a validation run keeps the real test sources untouched this way).  ``new``: clip
    names (or prefixes) of ``new_data`` (default :func:`~dphelpers.data.new_people_path`);
    ``retarget``: each also as ``"new person, training bones: NAME"``, every bone set to the
    training split's mean length (:func:`with_bone_lengths`) with the same frames and cameras,
    so the difference between the two is the joint definition and body, not the motion."""
    from ..data import clips_named, hold_out_clips, load_mocap, new_people_path, split_clips
    from ..heatmaps import DEFAULT_PRESET, HeatmapConfig
    from ..pipeline import make_test_set
    clips = load_mocap(data)
    kept, _ = hold_out_clips(clips, tuple(hold_out) + tuple(unscored))
    config = HeatmapConfig.preset(DEFAULT_PRESET)
    sets = {"test split": make_test_set(split_clips(kept)[1], n_test, seed=seed,
                                        heatmap_config=config)}
    for name in hold_out:
        poses = np.concatenate([c.poses_m for c in clips_named(clips, name)])
        sets[f"held out: {name}"] = make_test_set(poses, n_test, seed=seed, heatmap_config=config)
    others = load_mocap(new_data or new_people_path()) if new else []
    bones = training_bone_lengths(kept) if retarget else None
    for name in new:
        poses = np.concatenate([c.poses_m for c in clips_named(others, name)])
        sets[f"new person: {name}"] = make_test_set(poses, n_test, seed=seed,
                                                   heatmap_config=config)
        if retarget:                  # the same motion, frames and cameras; training bones
            sets[f"new person, training bones: {name}"] = make_test_set(
                with_bone_lengths(poses, bones), n_test, seed=seed, heatmap_config=config)
    return sets


def training_bone_lengths(clips) -> np.ndarray:
    """``(16,)`` mean bone lengths (m) of the training split of ``clips``."""
    from ..anatomy import bone_lengths
    from ..data import split_clips
    train = torch.as_tensor(split_clips(clips)[0])
    return bone_lengths(train).mean(dim=0).numpy()


def with_bone_lengths(poses_m: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``poses_m (n, 17, 3)`` with every bone set to ``lengths (16,)`` (m), directions and the
    pelvis kept (:func:`~dphelpers.data.scale_bones`): the same motion on another body."""
    from ..anatomy import bone_lengths
    from ..data import scale_bones
    p = torch.as_tensor(poses_m, dtype=torch.float64)
    scales = torch.as_tensor(lengths, dtype=torch.float64) / bone_lengths(p).clamp_min(1e-9)
    return scale_bones(p, scales).numpy().astype(np.float32)


def set_scores(pred_mm: torch.Tensor, gt_mm: torch.Tensor) -> dict[str, float]:
    """P1 min / median over all 17 joints and over :data:`LIMB_H36M`, means over samples (mm),
    and where the limb error lies.

    ``pred_mm: (b, h, 17, 3)``, ``gt_mm: (b, 17, 3)``, camera axes (x right, y down, z the
    depth); root-relative, as Protocol 1.  ``limb_xy_min`` / ``limb_z_min``: the best
    hypothesis' (the one of ``limb_P1_min``) limb error in the image plane and in depth,
    ``|(dx, dy)|`` and ``|dz|`` averaged over the 12 joints.  ``n_within_limits``: samples
    whose true pose is within the joint limits the pose augmentation keeps
    (:func:`~dphelpers.anatomy.within_limits`); ``limb_P1_min_within_limits``: their
    ``limb_P1_min`` (None when there are none).
    """
    from ..anatomy import within_limits
    from ..metrics import p1, root_relative
    full = p1(pred_mm, gt_mm)                                  # checks both shapes
    diff = (root_relative(pred_mm) - root_relative(gt_mm)[:, None])[..., list(LIMB_H36M), :]
    limb = torch.linalg.vector_norm(diff, dim=-1).mean(dim=-1)  # (b, h)
    best_err, best = limb.min(dim=1)
    best_diff = diff[torch.arange(diff.shape[0]), best]       # (b, 12, 3)
    ok = within_limits(gt_mm.double() / 1000.0).to(best_err.device)
    return {"n": int(gt_mm.shape[0]),
            "P1_min": float(full["min"].mean()), "P1_median": float(full["median"].mean()),
            "limb_P1_min": float(best_err.mean()),
            "limb_P1_median": float(limb.median(dim=1).values.mean()),
            "limb_xy_min": float(best_diff[..., :2].norm(dim=-1).mean()),
            "limb_z_min": float(best_diff[..., 2].abs().mean()),
            "n_within_limits": int(ok.sum()),
            "limb_P1_min_within_limits": float(best_err[ok].mean()) if ok.any() else None}


def model_variant(config: dict) -> str:
    """The paper's variant (``"full"``, ``"argmax_only"``, ...) whose configuration equals the
    model file's ``config`` (:meth:`DiffPoseConfig.ablation`), else ``"custom"``."""
    from ..configs import config_diff
    from ..diffusion import DiffPoseConfig
    for name in ("full", "argmax_only", "no_transformer", "no_argmax", "no_likelihood"):
        if not config_diff(DiffPoseConfig.ablation(name).to_dict(), config):
            return name
    return "custom"


def read_held_out_model(label: str, path: Path, hold_out: tuple[str, ...],
                        device: str = "cpu") -> HeldOutModel:
    """Read a training checkpoint (raw weights, as ``export`` and the authors evaluate) and
    refuse it unless its training held out every name in ``hold_out``.  With no ``hold_out``
    (only new people are scored) any model file will do, the shipped ones included."""
    from ..files import require_file
    from ..models.checkpoint import load_model, read_checkpoint
    require_file(path, "model file")
    state = read_checkpoint(path)
    config = state.get("train_config")
    if not config and hold_out:
        raise ValueError(f"{path} holds no training settings, so it cannot say which clips it "
                         "trained on (shipped model files saw every clip): pass the training "
                         "checkpoint of a `train --hold-out ...` run")
    config = config or {}
    trained_without = tuple(config.get("hold_out") or ())
    missing = [n for n in hold_out if n not in trained_without]
    if missing:
        raise ValueError(f"{path} trained on {', '.join(missing)} (its hold_out is "
                         f"{list(trained_without)}): it saw those clips, so they test nothing; "
                         "train it with --hold-out " + ",".join(hold_out))
    model = load_model(path, state=state).to(device)
    augment = bool(config.get("augment", False))
    variant = "lifter" if state.get("kind") == "lifter" else model_variant(
        state.get("config") or {})
    return HeldOutModel(label, Path(path), model, int(state["step"]), augment, trained_without,
                        variant,
                        float(config.get("augment_strength", 1.0)) if augment else None)


def score(models: list[HeldOutModel], sets: dict, n_hypo: int, batch_size: int, seed: int,
          progress: bool = True) -> dict:
    """``{label: {set name: set_scores}}``: every model on every set, float32, one seed."""
    from ..evaluation.evaluate import evaluate
    out = {}
    for m in models:
        out[m.label] = {}
        for name, test in sets.items():
            ev = evaluate(m.model, test, n_hypo, batch_size, seed=seed, progress=progress,
                          autocast_dtype=None, keep=True)
            out[m.label][name] = set_scores(ev.predictions, test.poses_3d_mm)
            row = out[m.label][name]
            print(f"heldout: {m.label:<24} {name:<22} P1 min {row['P1_min']:6.1f}  median "
                  f"{row['P1_median']:6.1f}  limb min {row['limb_P1_min']:6.1f}  median "
                  f"{row['limb_P1_median']:6.1f} mm", flush=True)
    return out


def unscored_clips(models: list[HeldOutModel], hold_out: tuple[str, ...]) -> tuple[str, ...]:
    """Clips some model held out beyond ``hold_out``: the test split leaves them out too (it
    holds only clips every model trained on), and they are not scored.  A validation run
    (``train --hold-out boxing,deepmimic,cmu_01_01_jumps``, scored with ``--hold-out
    cmu_01_01_jumps``) so never looks at the test sources."""
    extra: list[str] = []
    for m in models:
        extra += [n for n in m.hold_out if n not in hold_out and n not in extra]
    return tuple(extra)


#: setup fields two results must share to sit in one table
SAME_SETS = ("hold_out", "n_test", "n_hypo", "seed", "test_set_seed", "dtype", "unscored", "new",
             "new_data", "retarget")


def merged(old: dict, new: dict, path: Path | str = "the old file") -> dict:
    """``new``'s models added to ``old``'s (a label in both: ``new``'s), when both scored the
    same sets (:data:`SAME_SETS`; an error naming the field otherwise); the commands of both
    are kept in ``commands`` (oldest first), setup fields only ``old`` has (notes) kept, and
    the seconds added."""
    def got(payload, k):    # files from before ``unscored`` and ``new`` had none of them
        return payload.get("setup", {}).get(k, {"unscored": [], "new": [],
                                                 "retarget": False}.get(k))
    diff = [f"{k}: {got(old, k)!r} in {path}, {got(new, k)!r} now"
            for k in SAME_SETS if got(old, k) != got(new, k)]
    if diff:
        raise ValueError(f"--merge: {path} scored other sets ({'; '.join(diff)}): write "
                         "another --out, or run with the same settings")
    commands = list(old.get("commands") or [old.get("command")]) + [new["command"]]
    return {**new, "setup": {**old.get("setup", {}), **new["setup"]},   # old notes kept
            "commands": [c for c in commands if c],
            "models": {**old["models"], **new["models"]},
            "seconds": round(old.get("seconds", 0) + new["seconds"], 1)}


def _pairs(items: list[str]) -> list[tuple[str, Path]]:
    out = []
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise ValueError(f"--models takes LABEL=FILE pairs, got {item!r} (e.g. "
                             "'full, no aug=runs/diffpose_full.pt')")
        out.append((label, Path(path)))
    labels = [label for label, _ in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--models: labels must differ, got {labels}")
    return out


def add_arguments(p) -> None:
    """The ``heldout`` verb's options."""
    from . import options as o
    p.add_argument("--models", nargs="+", required=True, metavar="LABEL=FILE",
                   help="training checkpoints of `train --hold-out` runs, each as LABEL=FILE")
    p.add_argument("--hold-out", type=o.name_list, default=(),
                   help="the held-out clip names or prefixes, as given to train --hold-out")
    p.add_argument("--new", type=o.name_list, default=(),
                   help="clip names or prefixes of --new-data to score as new people (e.g. "
                        "nick_freeform,sehoon_squat); no model trains on that file")
    p.add_argument("--retarget", action="store_true",
                   help="also score each --new set with every bone at the training split's "
                        "mean length (same motion and cameras): motion vs body/joint definition")
    p.add_argument("--new-data", type=Path, default=None,
                   help="mocap npz of the new people (default: the embedded "
                        "data/mocap_new_people_h36m17.npz)")
    o.data(p), o.compute(p, "seed of the test-time sampling")
    o.evaluation(p, 500)
    p.add_argument("--out", type=Path, default=Path("runs/heldout.json"),
                   help="results JSON to write")
    p.add_argument("--merge", action="store_true",
                   help="keep the models already in --out (scored on the same sets: same "
                        "--hold-out, --n-test, --n-hypo and --seed, checked) and add these")


def run_verb(args) -> int:
    """The ``heldout`` verb: read, check, score, print and write ``args.out`` (JSON)."""
    t0 = time.time()
    pairs = _pairs(args.models)
    if not args.hold_out and not args.new:
        raise ValueError("heldout: name what to score besides the test split: --hold-out "
                         "(clips the models trained without) and/or --new (new people)")
    if args.retarget and not args.new:
        raise ValueError("heldout: --retarget rescales the --new sets; name some with --new")
    from ..data import clips_named, hold_out_clips, load_mocap, new_people_path
    hold_out_clips(load_mocap(args.data), args.hold_out)                # the names, first
    if args.new:
        others = load_mocap(args.new_data or new_people_path())
        for name in args.new:
            clips_named(others, name)
    models = [read_held_out_model(label, path, args.hold_out, args.device) for label, path in pairs]
    unscored = unscored_clips(models, args.hold_out)
    sets = held_out_sets(args.hold_out, args.n_test, data=args.data, unscored=unscored,
                         new=args.new, new_data=args.new_data, retarget=args.retarget)
    setup = {"hold_out": list(args.hold_out), "n_test": args.n_test, "n_hypo": args.n_hypo,
             "seed": args.seed, "test_set_seed": 1234, "dtype": "float32",
             "limb_joints_h36m": list(LIMB_H36M), "unscored": list(unscored),
             "new": list(args.new), "retarget": bool(args.retarget),
             "new_data": display_path(args.new_data or new_people_path()) if args.new else None,
             "sets": {k: len(v) for k, v in sets.items()}}
    old = json.loads(args.out.read_text()) if args.merge and args.out.is_file() else None
    if old is not None:                                     # refuse before any scoring
        merged(old, {"command": args.command, "setup": setup, "models": {}, "seconds": 0},
               args.out)
    print("heldout: " + "; ".join(f"{k}: {len(v)} samples" for k, v in sets.items()))
    rows = score(models, sets, args.n_hypo, args.eval_batch, args.seed, progress=not args.quiet)
    payload = {
        "command": args.command, "setup": setup,
        "models": {m.label: {"file": display_path(m.path), "variant": m.variant, "steps": m.steps,
                             "augment": m.augment, "augment_strength": m.augment_strength,
                             "hold_out": list(m.hold_out), "sets": rows[m.label]}
                   for m in models},
        "seconds": round(time.time() - t0, 1)}
    if old is not None:
        payload = merged(old, payload, args.out)
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1)))
    print(f"heldout: wrote {args.out} in {time.time() - t0:.0f} s")
    return 0
