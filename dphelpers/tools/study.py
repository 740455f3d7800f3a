"""The model study: every model on the calibrated simulator's test sets (notebook 05, Results).

One fixed test set of the default simulator (v2) and its variants where the truth keeps a
weaker second mode in a share ``p_keep_true_mode`` of the argmax failures (0, 0.5, 1 by
default; the sets share their poses, cameras and failures, :func:`~dphelpers.pipeline.
make_test_set`).  Every ``--models`` entry and the mean-pose baseline is scored on each, on
all samples, the ambiguous subset (H36MA rule) and the *failed-limb* subset (some limb joint's
argmax fails PCKh@0.5, the case heatmap sampling is for).  ``--curve`` files (snapshots of one
run, :func:`~dphelpers.training.train.snapshot_file`) give the learning curve: P1 min and median
against training steps on the first set.

    python -m dphelpers study --models full=runs/long/diffpose_full.pt \\
        argmax_only=... no_transformer=... lifter=... --n-test 1000 \\
        --curve runs/long/diffpose_full.step5000.pt ... --out data/results/study.json

Float32 throughout, seeds explicit: the numbers do not depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..evaluation.testsets import KEEP_MODES, build_test_sets, describe
from ..models.modelfiles import display_path

__all__ = ["SUBSETS", "score_models", "learning_curve",
           "add_arguments", "run_verb"]

#: subset key of :meth:`~dphelpers.evaluation.evaluate.Evaluation.table` -> how the tables call it
SUBSETS = {"full": "all", "ambiguous": "ambiguous", "failed limb": "failed limb"}



def score_models(models, test, baseline_mm: torch.Tensor, n_hypo: int, batch_size: int,
                 seed: int, progress: bool = True, evals: dict | None = None) -> dict:
    """``{"LABEL (subset)": summary}`` for every loaded model and the mean pose on ``test``.
    ``evals``: a dict that receives each model's Evaluation by label."""
    from ..evaluation.evaluate import evaluate, evaluate_fixed
    rows = {}
    done = {m.label: evaluate(m.model, test, n_hypo, batch_size, seed=seed, progress=progress,
                              autocast_dtype=None) for m in models}
    if evals is not None:
        evals.update(done)
    done["mean pose"] = evaluate_fixed(baseline_mm, test)
    for label, ev in done.items():
        for subset, summary in ev.table().items():
            rows[f"{label} ({subset})"] = summary
    return rows


def learning_curve(files: list[Path], test, n_hypo: int, batch_size: int, seed: int,
                   device: str = "cpu", progress: bool = True, done: dict | None = None
                   ) -> list[dict]:
    """One record per snapshot: model, file, training steps, P1 min / median (all samples and
    failed-limb subset), sorted by steps.  ``done``: resolved file path -> an Evaluation of
    that file on this very ``test`` with the same seed (reused, not sampled again)."""
    from ..evaluation.evaluate import evaluate
    from . import modelref
    out = []
    for path in files:
        m = modelref.load(None, Path(path), device)
        ev = (done or {}).get(Path(path).resolve())
        if ev is None:
            ev = evaluate(m.model, test, n_hypo, batch_size, seed=seed, progress=progress,
                          autocast_dtype=None)
        table = ev.table()
        rec = {"model": m.info.name, "file": display_path(path), "steps": m.info.trained_steps,
               "P1_min": table["full"]["P1_min"], "P1_median": table["full"]["P1_median"]}
        if "failed limb" in table:
            rec["failed_limb_P1_min"] = table["failed limb"]["P1_min"]
            rec["failed_limb_P1_median"] = table["failed limb"]["P1_median"]
        out.append(rec)
        print(f"curve: {m.info.name} at {rec['steps']:,} steps: P1 min {rec['P1_min']:.1f}, "
              f"median {rec['P1_median']:.1f} mm", flush=True)
    return sorted(out, key=lambda r: (r["model"], r["steps"]))


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated shares such as 0,0.5,1, "
                                         f"got {text!r}") from None
    if not vals or any(not 0 <= v <= 1 for v in vals):
        raise argparse.ArgumentTypeError(f"shares must lie in [0, 1], got {text!r}")
    return vals


def add_arguments(p) -> None:
    """The ``study`` verb's options."""
    from . import options as o
    o.models(p, "models to study")
    p.add_argument("--n-test", type=o.positive, default=1000, help="test samples")
    p.add_argument("--n-hypo", type=o.positive, default=200, help="hypotheses per sample")
    p.add_argument("--keep-modes", type=_floats, default=KEEP_MODES,
                   help="shares of failures keeping a mode at the truth")
    p.add_argument("--curve", type=Path, nargs="*", default=[],
                   help="snapshot files of one run for the learning curve (default: no curve)")
    p.add_argument("--curve-n-test", type=o.positive, default=300,
                   help="test samples of the learning curve")
    p.add_argument("--eval-batch", type=o.positive, default=8, help="images sampled together")
    o.compute(p, "seed of the test-time sampling")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--merge", action="store_true",
                   help="keep what --out already holds: its accuracy rows and learning-curve "
                        "points (same test sizes) stay unless this run recomputes them")



def run_verb(args) -> int:
    """The ``study`` verb: every model on every test set, then the learning curve."""
    from ..data import load_mocap, split_clips
    from ..evaluation.evaluate import training_mean_pose
    from ..evaluation.tables import metrics_table
    from .bench import load_models, resolve_entries
    missing = [str(f) for f in args.curve if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"--curve file(s) not found: {', '.join(missing)}")
    t0 = time.time()
    old = json.loads(args.out.read_text()) if args.merge and args.out.is_file() else None
    models = load_models(resolve_entries(args.models), args.device)
    train_m, test_m = split_clips(load_mocap())
    sets = build_test_sets(test_m, args.n_test, args.keep_modes)
    baseline = training_mean_pose(train_m, seed=args.seed + 1)
    out: dict = {"command": args.command,
                 "setup": {"n_test": args.n_test, "n_hypo": args.n_hypo, "seed": args.seed,
                           "dtype": "float32", "keep_modes": list(args.keep_modes),
                           "models": [{"label": m.label, "name": m.info.name,
                                       "file": display_path(m.path), "trained_steps":
                                           m.info.trained_steps,
                                       "augment": m.info.augment} for m in models]},
                 "test_sets": {k: describe(t) for k, t in sets.items()}, "accuracy": {}}
    first_evals: dict = {}
    for key, test in sets.items():
        print(f"{key}: {describe(test)}", flush=True)
        rows = score_models(models, test, baseline, args.n_hypo, args.eval_batch, args.seed,
                            progress=not args.quiet,
                            evals=first_evals if not first_evals else None)
        out["accuracy"][key] = rows
        print(metrics_table(rows, caption=f"test set {key} (mm; PCK in %)"), flush=True)
        _write(args.out.with_suffix(".partial.json"), out, t0)   # --out itself only at the end
    if args.curve:
        first = next(iter(sets.values()))
        n = min(args.curve_n_test, len(first))
        sub = first.subset(torch.linspace(0, len(first) - 1, n).round().long())
        # a --models file evaluated on the whole first set is that curve point already
        done = ({Path(m.path).resolve(): first_evals[m.label] for m in models
                 if m.path is not None} if n == len(first) else {})
        out["learning_curve"] = {"n_test": n, "test_set": next(iter(sets)), "points":
                                 learning_curve(args.curve, sub, args.n_hypo, args.eval_batch,
                                                args.seed, args.device, not args.quiet, done)}
    if old is not None:
        out = _merged(old, out)
    path = _write(args.out, out, t0)
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(f"study: {len(models)} model(s) on {len(sets)} test set(s) in "
          f"{out['seconds']:.0f} s; wrote {path}")
    return 0


def _merged(old: dict, new: dict) -> dict:
    """``new`` on top of ``old``: rows and curve points of ``old`` that ``new`` lacks are kept;
    refused when the two used different test sizes, hypotheses or seeds."""
    for key in ("n_test", "n_hypo", "seed"):
        if old.get("setup", {}).get(key) != new["setup"][key]:
            raise ValueError(f"--merge: the existing file has {key}="
                             f"{old.get('setup', {}).get(key)}, this run {new['setup'][key]}")
    merged = {**old, **new, "accuracy": {**old.get("accuracy", {})}}
    for k, rows in new["accuracy"].items():
        merged["accuracy"][k] = {**old.get("accuracy", {}).get(k, {}), **rows}
    merged["test_sets"] = {**old.get("test_sets", {}), **new["test_sets"]}
    labels = {m["label"] for m in new["setup"]["models"]}
    merged["setup"] = {**new["setup"], "models": new["setup"]["models"] + [
        m for m in old["setup"].get("models", []) if m["label"] not in labels],
        # a run on fewer test sets keeps the others' names: the file holds them all
        "keep_modes": sorted({*old["setup"].get("keep_modes", []),
                              *new["setup"]["keep_modes"]})}
    oc, nc = old.get("learning_curve"), new.get("learning_curve")
    if oc and nc:
        if oc["n_test"] != nc["n_test"]:
            raise ValueError(f"--merge: learning curves on {oc['n_test']} and {nc['n_test']} "
                             "test samples")
        files = {p["file"] for p in nc["points"]}
        nc["points"] = sorted(nc["points"] + [p for p in oc["points"] if p["file"] not in files],
                              key=lambda r: (r["model"], r["steps"]))
    merged["learning_curve"] = nc or oc
    merged["commands"] = old.get("commands", [old.get("command")]) + [new["command"]]
    return merged


def _write(path: Path, out: dict, t0: float) -> Path:
    out["seconds"] = round(time.time() - t0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return path
