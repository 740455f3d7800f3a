"""``python -m dphelpers bench``: the benchmark table (accuracy and speed), printed and written as JSON."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from . import bench
from .checkpoint import load_model
from .data import load_mocap, split_clips
from .diffusion import DiffPose
from .evaluate import evaluate, evaluate_fixed, results_table, table_rows, training_mean_pose
from .metrics import reliability_from_quantiles
from .pipeline import TrainStream, make_test_set
from .twins import TwinBatch, coverage_table, depth_flip_twins_batch, mean_hypothesis

__all__ = ["run_bench", "model_path"]


def model_path(name: str) -> Path:
    """The model file of ablation ``name`` (see :func:`dphelpers.cli.model_file`), which must exist."""
    from .cli import model_file
    path = model_file(name)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint for {name!r} at {path}: train it with "
                                f"`python -m dphelpers train --ablation {name}`")
    return path


def _coverage(pred: torch.Tensor, test, twins) -> dict:
    """Twin coverage on the full test set and on its ambiguous subset."""
    out = {"full": coverage_table(pred, test.poses_3d_mm, twins)}
    amb = test.ambiguous
    if amb.any():
        sub = TwinBatch(poses=twins.poses[amb], valid=twins.valid[amb], flips=twins.flips,
                        moved_mask=twins.moved_mask)
        out["ambiguous"] = coverage_table(pred[amb], test.poses_3d_mm[amb], sub)
    return out


def _accuracy(args, train_m, test_m, out: dict) -> None:
    test = make_test_set(test_m, args.n_test)
    twins = depth_flip_twins_batch(test.poses_3d_mm)
    rows, cover, reliab = {}, {}, {}
    for name in args.models:
        model = load_model(model_path(name), device=args.device)
        ev = evaluate(model, test, args.n_hypo, args.eval_batch, seed=args.seed, progress=not args.quiet,
                      keep=True, autocast_dtype=None)  # float32; the bf16 rows below compare
        rows.update(table_rows(name, ev))
        cover[name] = _coverage(ev.predictions, test, twins)
        levels, freq = reliability_from_quantiles(ev.quantiles)
        reliab[name] = {"levels": levels.tolist(), "freq": freq[1:].mean(0).tolist()}
        if name == "full":
            cover["single hypothesis (one sample)"] = _coverage(ev.predictions[:, :1], test, twins)
            cover["single hypothesis (mean)"] = _coverage(mean_hypothesis(ev.predictions), test, twins)
        del ev
        if args.bf16 and name == "full":
            ev16 = evaluate(model, test, args.n_hypo, args.eval_batch, seed=args.seed,
                            progress=not args.quiet, autocast_dtype=torch.bfloat16)
            rows.update(table_rows("full bf16", ev16))
    base = evaluate_fixed(training_mean_pose(train_m, seed=args.seed + 1), test)
    rows.update(table_rows("mean pose", base))
    print(results_table(rows))
    print("twin coverage (fraction of depth-flip twins with a hypothesis within 50 / 100 mm; ground truth alike)")
    for name, parts in cover.items():
        for subset, c in parts.items():
            print(f"  {name + ' (' + subset + ')':44s} twins {c['twin@50']:.3f} / {c['twin@100']:.3f}"
                  f"   gt {c['gt_same@50']:.3f} / {c['gt_same@100']:.3f}   n_twins {int(c['n_twins'])}")
    out["accuracy"] = rows
    out["coverage"] = cover
    out["reliability"] = reliab
    out["accuracy_setup"] = {"n_test": len(test), "n_ambiguous": int(test.ambiguous.sum()),
                             "n_hypo": args.n_hypo}


def _speed(args, test_m, out: dict) -> None:
    try:
        model = load_model(model_path("full"), device=args.device)
    except FileNotFoundError:
        model = DiffPose().to(args.device).eval()  # speed does not depend on the weights
    test = make_test_set(test_m, max(args.batches + [64]))
    rows = []
    for b in args.batches:
        rows.append(bench.bench_sampling(model, test.heatmaps, b, args.n_hypo))
        if args.bf16:
            rows.append(bench.bench_sampling(model, test.heatmaps, b, args.n_hypo,
                                             autocast_dtype=torch.bfloat16))
    rows.append(bench.bench_training(model, test.heatmaps[:64], test.poses_3d_mm[:64]))
    stream = TrainStream(test_m, seed=0, device=args.device)
    stream.next_batch(64)
    t0 = time.perf_counter()
    for _ in range(10):
        stream.next_batch(64)
    data_s = (time.perf_counter() - t0) / 10
    print(f"{'what':18s}{'batch':>6s}{'per s':>10s}{'GFLOP/s':>10s}{'matmul':>10s}{'fraction':>10s}{'peak MB':>10s}")
    for r in rows:
        print(f"{r.what:18s}{r.batch:>6d}{r.per_second:>10.1f}{r.gflops:>10.1f}{r.matmul_gflops:>10.1f}"
              f"{r.fraction:>10.2f}{r.peak_mb:>10.0f}")
    print(f"data stream: {1 / data_s:.1f} batches of 64 per second (heatmap simulation, not in the step)")
    out["speed"] = [r.as_dict() for r in rows]
    out["data_batches_per_s"] = 1 / data_s
    out["flops_per_hypothesis"] = bench.sampling_flops(model.config)
    out["flops_per_training_sample"] = bench.training_flops(model.config)


def run_bench(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    train_m, test_m = split_clips(load_mocap(args.data))
    out: dict = {"machine": bench.machine_info(args.device)}
    if not args.skip_accuracy:
        _accuracy(args, train_m, test_m, out)
    if not args.skip_speed:
        _speed(args, test_m, out)
    out["seconds"] = round(time.time() - t0, 1)
    path = bench.write_json(args.out / "bench.json", out)
    print(f"wrote {path} ({out['seconds']} s)")
    return 0
