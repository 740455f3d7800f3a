"""Training-curve experiments: the same model trained under different settings (notebook 04).

``python -m dphelpers.tools.curves --run fp32:0 --run bf16:0 --run fp32:1 --run bf16:1`` trains
one full DiffPose per ``PRECISION:SEED[:clip=C]`` entry (5,000 steps at batch 64 by default)
and writes their loss logs and wall times to a JSON file, so that notebook 04 can plot
bfloat16 against float32 next to the seed-to-seed spread, and training with and without
gradient clipping.  Each run checkpoints into ``runs/curves/`` and resumes if interrupted.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

__all__ = ["parse_run", "train_run", "main"]


def parse_run(text: str) -> dict:
    """``"bf16:0"`` or ``"fp32:1:clip=0"`` -> ``{"precision", "seed", "grad_clip"}``."""
    parts = text.split(":")
    if len(parts) < 2 or parts[0] not in ("fp32", "bf16"):
        raise argparse.ArgumentTypeError(f"run {text!r}: expected PRECISION:SEED[:clip=C] with "
                                         "PRECISION fp32 or bf16, e.g. bf16:0 or fp32:1:clip=0")
    try:
        run = {"precision": parts[0], "seed": int(parts[1]), "grad_clip": 1.0}
        for extra in parts[2:]:
            key, value = extra.split("=")
            if key != "clip":
                raise ValueError(f"unknown option {key!r}")
            run["grad_clip"] = float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"run {text!r}: {err}") from err
    return run


def train_run(run: dict, steps: int, batch_size: int, out_dir: Path, model: str = "full",
              progress: bool = True, simulator: str | None = None) -> dict:
    """Train one run (resuming its checkpoint) and return its log and timing.

    ``simulator``: the heatmap preset of the training data (default: the current default);
    a resumed run must keep the preset it was started with.
    """
    from ..heatmaps import DEFAULT_PRESET, HeatmapConfig
    from ..data import load_mocap, split_clips
    from ..modelfiles import build_model, train_config
    from ..pipeline import TrainStream
    from ..train import fit

    cfg = train_config(model, steps=steps, batch_size=batch_size, seed=run["seed"],
                       precision=run["precision"], grad_clip=run["grad_clip"])
    name = f"{model}_{run['precision']}_seed{run['seed']}_clip{run['grad_clip']:g}"
    torch.manual_seed(run["seed"])
    net = build_model(model)
    simulator = simulator or DEFAULT_PRESET
    stream = TrainStream(split_clips(load_mocap())[0], seed=run["seed"],
                         heatmap_config=HeatmapConfig.preset(simulator))
    t0 = time.perf_counter()
    res = fit(net, stream, cfg, checkpoint=out_dir / f"{name}.pt", progress=progress)
    return {**run, "name": name, "steps": res.steps, "losses": res.losses,
            "resumed_from": res.resumed_from, "seconds": time.perf_counter() - t0,
            "threads": torch.get_num_threads(), "simulator": simulator}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dphelpers.tools.curves", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=parse_run, action="append", required=True,
                   help="PRECISION:SEED[:clip=C], repeatable")
    p.add_argument("--model", default="full", help="model name (see dphelpers.modelfiles)")
    p.add_argument("--steps", type=int, default=5000, help="steps per run (default 5000)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--simulator", default=None, choices=("v1", "v2"),
                   help="heatmap simulator preset of the training data (default: the current "
                        "default; keep the preset a resumed run started with)")
    p.add_argument("--ckpt-dir", type=Path, default=Path("runs") / "curves",
                   help="checkpoints, for resuming (default runs/curves)")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write (appends runs)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    done = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    for run in args.run:
        result = train_run(run, args.steps, args.batch_size, args.ckpt_dir, args.model,
                           simulator=args.simulator)
        done["runs"] = [r for r in done["runs"] if r["name"] != result["name"]] + [result]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(done, indent=1))
        print(f"{result['name']}: last loss {result['losses'][-1]:.4f}, "
              f"{result['seconds']:.0f} s -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
