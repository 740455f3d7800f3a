"""The mechanism study: per-joint errors of failed vs other joints, every model (notebook 05).

Builds the model study's test set where *every* argmax failure keeps a weaker mode at the
truth (simulator v2, ``p_keep_true_mode = 1``, seed 1234, :func:`~dphelpers.evaluation.testsets.
build_test_sets`), samples every model on it (float32, the same draws as ``evaluate``) and
writes :func:`dphelpers.evaluation.mechanism.summarise`'s rows per model:

    python -m dphelpers mechanism --n-test 1000 --threads 1 \\
        --out data/results/mechanism.json

The file is written after each model (so a long run can be read while it goes on).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..models.modelfiles import display_path

__all__ = ["add_arguments", "run", "run_verb"]


def run(models, test, config, out: dict, path: Path | None = None,
        progress: bool = False) -> dict:
    """Fill ``out["rows"]`` (model name -> rows) and ``out["models"]`` for every loaded model;
    rewrite ``path`` after each."""
    from ..evaluation.mechanism import collect, summarise
    out.setdefault("rows", {})
    out.setdefault("models", {})
    for m in models:
        t0 = time.time()
        stats = collect(m.model, test, config, progress=progress)
        out["rows"][m.info.name] = summarise(stats)
        out["models"][m.info.name] = {"file": display_path(m.path), "trained_steps":
                                      m.info.trained_steps, "n_hypo": stats.n_hypo,
                                      "seconds": round(time.time() - t0, 1)}
        print(f"mechanism: {m.info.name} in {time.time() - t0:.0f} s", flush=True)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out, indent=1))
    return out


def add_arguments(p) -> None:
    """The ``mechanism`` verb's options."""
    from . import options as o
    o.models(p, "models to measure")
    p.add_argument("--n-test", type=o.positive, default=1000, help="test samples")
    p.add_argument("--n-hypo", type=o.positive, default=200, help="hypotheses per sample")
    p.add_argument("--eval-batch", type=o.positive, default=8, help="images sampled together")
    o.compute(p, "seed of the test-time sampling")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")



def run_verb(args) -> int:
    """The ``mechanism`` verb."""
    from ..data import load_mocap, split_clips
    from ..evaluation.mechanism import MechanismConfig, group_table, headline_table
    from ..evaluation.testsets import build_test_sets, describe
    from .bench import load_models, resolve_entries
    t0 = time.time()
    config = MechanismConfig(n_hypo=args.n_hypo, batch_size=args.eval_batch, seed=args.seed)
    models = load_models(resolve_entries(args.models), args.device)
    _, test_m = split_clips(load_mocap())
    test = build_test_sets(test_m, args.n_test, keep_modes=(1.0,))["keep=1"]
    out = {"command": args.command,
           "setup": {"n_test": len(test), "n_hypo": args.n_hypo, "seed": args.seed,
                     "dtype": "float32", "test_set": "v2, keep=1 (seed 1234)",
                     "radius_mm": config.radius_mm, "threads": torch.get_num_threads()},
           "test_set": describe(test)}
    print(f"test set keep=1: {out['test_set']}", flush=True)
    run(models, test, config, out, args.out, progress=not args.quiet)
    out["seconds"] = round(time.time() - t0, 1)
    args.out.write_text(json.dumps(out, indent=1))
    print(headline_table(out["rows"]))
    print(group_table(out["rows"], "best_mm"))
    print(f"mechanism: wrote {args.out} in {out['seconds']:.0f} s")
    return 0
