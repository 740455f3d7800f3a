"""Training-curve experiments: the same model trained under different settings (``curves``).

``python -m dphelpers curves --run fp32:0 --run bf16:0 --run fp32:1 --run bf16:1`` trains
one full DiffPose per ``PRECISION:SEED[:clip=C]`` entry (5,000 steps at batch 64 by default)
and writes their loss logs and wall times to a JSON file, so that notebook 04 can plot
bfloat16 against float32 next to the seed-to-seed spread, and training with and without
gradient clipping (read by :mod:`dphelpers.training.curves`).  Each run checkpoints into
``runs/curves/`` and resumes if interrupted.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..training.curves import equal_samples_rows

__all__ = ["parse_run", "train_run", "add_arguments", "run_verb"]


_RUN_OPTIONS = ("clip", "batch", "lr", "warmup")


def parse_run(text: str) -> dict:
    """``"bf16:0"``, ``"fp32:1:clip=0"`` or ``"bf16:0:batch=512:lr=scaled:warmup=50"`` ->
    ``{"precision", "seed", "grad_clip"}`` plus ``batch``, ``lr`` (a number or ``"scaled"``,
    :func:`~dphelpers.training.train.scaled_lr`) and ``warmup`` when given."""
    parts = text.split(":")
    if len(parts) < 2 or parts[0] not in ("fp32", "bf16"):
        raise argparse.ArgumentTypeError(f"run {text!r}: expected PRECISION:SEED[:KEY=VALUE...] "
                                         "with PRECISION fp32 or bf16, e.g. bf16:0 or "
                                         "fp32:1:clip=0 or bf16:0:batch=512:lr=scaled:warmup=50")
    try:
        run = {"precision": parts[0], "seed": int(parts[1]), "grad_clip": 1.0}
        for extra in parts[2:]:
            key, value = extra.split("=")
            if key not in _RUN_OPTIONS:
                raise ValueError(f"unknown option {key!r} (known: {', '.join(_RUN_OPTIONS)})")
            if key == "clip":
                run["grad_clip"] = float(value)
            elif key == "lr":
                run["lr"] = "scaled" if value == "scaled" else float(value)
            else:
                run[key] = int(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"run {text!r}: {err}") from err
    return run


def train_run(run: dict, steps: int, batch_size: int, out_dir: Path, model: str = "full",
              progress: bool = True, simulator: str | None = None,
              samples: int | None = None) -> dict:
    """Train one run (resuming its checkpoint) and return its log and timing.

    ``samples``: train until that many samples are seen (steps = samples / the run's batch)
    instead of ``steps``, so that runs at different batch sizes compare at equal data.

    ``simulator``: the heatmap preset of the training data (default: the current default);
    a resumed run must keep the preset it was started with.
    """
    from ..data import load_mocap, split_clips
    from ..heatmaps import DEFAULT_PRESET, HeatmapConfig
    from ..models.modelfiles import build_model, train_config
    from ..pipeline import TrainStream
    from ..training.train import fit, scaled_lr
    batch_size = run.get("batch", batch_size)
    extra = {"warmup_steps": run.get("warmup", 0)}
    if "lr" in run:
        extra["lr"] = scaled_lr(batch_size) if run["lr"] == "scaled" else run["lr"]
    if samples is not None:
        steps = -(-samples // batch_size)
    cfg = train_config(model, steps=steps, batch_size=batch_size, seed=run["seed"],
                       precision=run["precision"], grad_clip=run["grad_clip"], **extra)
    name = f"{model}_{run['precision']}_seed{run['seed']}_clip{run['grad_clip']:g}"
    for key in ("batch", "lr", "warmup"):
        if key in run:
            name += f"_{key}{run[key]}"
    torch.manual_seed(run["seed"])
    net = build_model(model)
    simulator = simulator or DEFAULT_PRESET
    stream = TrainStream(split_clips(load_mocap())[0], seed=run["seed"],
                         heatmap_config=HeatmapConfig.preset(simulator))
    t0 = time.perf_counter()
    res = fit(net, stream, cfg, checkpoint=out_dir / f"{name}.pt", progress=progress)
    return {**run, "name": name, "steps": res.steps, "losses": res.losses,
            "batch_size": cfg.batch_size, "lr": cfg.lr, "warmup_steps": cfg.warmup_steps,
            "resumed_from": res.resumed_from, "seconds": time.perf_counter() - t0,
            "threads": torch.get_num_threads(), "simulator": simulator}



def add_arguments(p) -> None:
    """The ``curves`` verb's options."""
    from . import options as o
    p.add_argument("--run", type=parse_run, action="append", required=True,
                   help="PRECISION:SEED[:clip=C], repeatable")
    p.add_argument("--model", default="full", help="model name (see dphelpers.models.modelfiles)")
    p.add_argument("--steps", type=o.positive, default=5000, help="steps per run")
    p.add_argument("--batch-size", type=o.positive, default=64, help="batch size")
    p.add_argument("--samples", type=o.positive, default=None,
                   help="train each run until it has seen this many samples (steps = samples / "
                        "its batch), instead of --steps; the summary compares the runs' loss "
                        "over their last --last-samples samples (default: train --steps)")
    p.add_argument("--last-samples", type=o.positive, default=25_600,
                   help="with --samples: the final slice of samples the loss is averaged over")
    p.add_argument("--threads", type=o.positive, default=None,
                   help="CPU threads for PyTorch (default: PyTorch's choice)")
    p.add_argument("--simulator", default=None, choices=("v1", "v2"),
                   help="heatmap simulator preset of the training data (default: the current "
                        "default; keep the preset a resumed run started with)")
    p.add_argument("--ckpt-dir", type=Path, default=Path("runs") / "curves",
                   help="checkpoints, for resuming")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write (appends runs)")
    p.set_defaults(seed=0)            # each --run names its own seed



def run_verb(args) -> int:
    """The ``curves`` verb."""
    done = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    for run in args.run:
        result = train_run(run, args.steps, args.batch_size, args.ckpt_dir, args.model,
                           simulator=args.simulator, samples=args.samples)
        done["runs"] = [r for r in done["runs"] if r["name"] != result["name"]] + [result]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(done, indent=1))
        print(f"{result['name']}: last loss {result['losses'][-1]:.4f}, "
              f"{result['seconds']:.0f} s -> {args.out}", flush=True)
    if args.samples is not None:
        from ..evaluation.tables import table
        done["command"] = args.command
        done["equal_samples"] = equal_samples_rows(done["runs"], args.last_samples)
        args.out.write_text(json.dumps(done, indent=1))
        print(table(done["equal_samples"], caption="loss at equal samples seen"))
    return 0
