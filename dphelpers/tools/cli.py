"""Command line: ``python -m dphelpers VERB`` (or the ``dphelpers`` script).

Verbs: ``run`` (the main job: load-or-train the model on the embedded data, evaluate it
against the mean-pose baseline), ``train``, ``evaluate``, ``bench``, ``predict``, ``book``,
``sweep``, ``export``.  Every verb takes ``--device``
and ``--seed``; results are printed as a table and written as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

__all__ = ["main", "build_parser", "DEFAULT_CHECKPOINT", "model_file"]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "diffpose_full.pt"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ablation", default="full",
                   help="full, argmax_only, no_transformer, no_argmax, no_likelihood")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help=f"model file (default for 'full': {DEFAULT_CHECKPOINT})")
    p.add_argument("--data", type=Path, default=None, help="mocap npz (default: the embedded data)")
    p.add_argument("--out", type=Path, default=Path("runs"), help="folder for JSON results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=5_000, help="training steps (the shipped model: 5000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-hypo", type=int, default=200)
    p.add_argument("--n-test", type=int, default=None, help="test samples (default: the whole split)")
    p.add_argument("--eval-batch", type=int, default=8)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dphelpers", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("run", help="load-or-train on the embedded data, then evaluate")
    _common(p), _train_args(p), _eval_args(p)
    p = sub.add_parser("train", help="train (resumes a partial checkpoint)")
    _common(p), _train_args(p)
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on the embedded test split")
    _common(p), _eval_args(p)
    p = sub.add_parser("bench", help="accuracy of full vs ablations, and speed against the machine")
    _common(p)
    p.add_argument("--n-hypo", type=int, default=200)
    p.add_argument("--n-test", type=int, default=600, help="test samples for the accuracy table")
    p.add_argument("--eval-batch", type=int, default=8)
    p.add_argument("--models", nargs="+", default=["full", "argmax_only", "no_transformer"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--bf16", action="store_true", help="also time (and score) bfloat16 autocast sampling")
    p.add_argument("--threads", type=int, default=None)
    p = sub.add_parser("predict", help="a photo -> BlazePose heatmaps -> many 3D hypotheses")
    _common(p)
    p.add_argument("image", help="image file, or 'astronaut' for scikit-image's sample photo")
    p.add_argument("--n-hypo", type=int, default=200)
    p = sub.add_parser("book", help="execute the notebooks once (papermill) and build the HTML book")
    p.add_argument("--quick", action="store_true", help="run the notebooks with QUICK=True")
    p.add_argument("--no-execute", action="store_true", help="build from notebooks executed before")
    p.add_argument("--kernel", default="python3")
    p.add_argument("--executed-dir", type=Path, default=None)
    p.add_argument("notebooks", nargs="*", help="names like 01_data_and_skeletons (default: all)")
    p = sub.add_parser("export", help="write a training checkpoint as a small float16 model file")
    p.add_argument("source", type=Path)
    p.add_argument("dest", type=Path)
    from .sweep import add_sweep_parser
    add_sweep_parser(sub)
    return parser


def export(source: Path, dest: Path) -> Path:
    """Raw weights in float16 with the settings and the loss log; no optimizer, no EMA."""
    from .checkpoint import load_model, read_checkpoint, save_checkpoint
    state = read_checkpoint(source)
    model = load_model(source)
    extra = {k: v for k, v in state.get("extra", {}).items() if k.startswith("log_")}
    return save_checkpoint(dest, model, state["step"], extra=extra, half=True)


def model_file(ablation: str, writing: bool = False) -> Path:
    """The model file of an ablation: ``runs/diffpose_NAME.pt``; for reading 'full' without such a
    run, the shipped model.  Writers (``train``) never get the shipped file (``export`` makes it)."""
    run_path = Path("runs") / f"diffpose_{ablation}.pt"
    if not writing and ablation == "full" and not run_path.is_file():
        return DEFAULT_CHECKPOINT
    return run_path


def _checkpoint(args) -> Path:
    """The model file a verb reads (``evaluate``, ``run``, ``predict``) or writes (``train``)."""
    if args.checkpoint is not None:
        return args.checkpoint
    return model_file(args.ablation, writing=args.verb == "train")


def _splits(args):
    from .data import load_mocap, split_clips
    return split_clips(load_mocap(args.data))


def _train(args, train_m):
    from .diffusion import DiffPoseConfig
    from .pipeline import TrainStream
    from .train import TrainConfig, load_or_train
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed, threads=args.threads,
                      amp=args.device.startswith("cuda"))
    return load_or_train(_checkpoint(args), DiffPoseConfig.ablation(args.ablation),
                         lambda: TrainStream(train_m, seed=args.seed, device=args.device), cfg,
                         device=args.device, progress=not args.quiet)


def _evaluate(args, model, train_m, test_m) -> dict:
    from .evaluate import evaluate, evaluate_fixed, results_table, table_rows, training_mean_pose
    from .pipeline import make_test_set
    test = make_test_set(test_m, args.n_test)
    ev = evaluate(model, test, args.n_hypo, args.eval_batch, seed=args.seed, progress=not args.quiet)
    base = evaluate_fixed(training_mean_pose(train_m, seed=args.seed + 1), test)
    rows = {**table_rows(f"DiffPose {args.ablation}", ev), **table_rows("mean pose", base)}
    print(results_table(rows))
    return rows


def _predict(args) -> int:
    """Detect, sample, and write the hypotheses (npz) and an interactive 3D figure (html)."""
    import numpy as np

    from .checkpoint import load_model
    from .detector import detect_heatmaps
    from .viz import pose_figure
    image = args.image
    if image == "astronaut":
        from skimage.data import astronaut
        image = astronaut()
    model = load_model(_checkpoint(args), device=args.device)
    t0 = time.perf_counter()
    det = detect_heatmaps(image, device=args.device)
    t1 = time.perf_counter()
    gen = torch.Generator(device=model.device).manual_seed(args.seed)
    poses = model.sample(det.heatmaps, args.n_hypo, generator=gen)[0].cpu()
    t2 = time.perf_counter()
    spread = poses.std(dim=0).norm(dim=-1)
    print(f"person score {det.score:.2f} ({det.n_people} found), detection {1e3 * (t1 - t0):.0f} ms, "
          f"{args.n_hypo} hypotheses {1e3 * (t2 - t1):.0f} ms, total {1e3 * (t2 - t0):.0f} ms")
    from .skeleton import H36M_NAMES
    print("spread of the hypotheses per joint (mm): " +
          ", ".join(f"{n} {v:.0f}" for n, v in zip(H36M_NAMES, spread.tolist())))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "astronaut" if args.image == "astronaut" else Path(args.image).stem
    np.savez_compressed(args.out / f"predict_{stem}.npz", poses_mm=poses.numpy(),
                        heatmaps=det.heatmaps[0].cpu().numpy(), crop=det.crop)
    pose_figure(None, poses, title=f"{args.n_hypo} hypotheses for {stem}").write_html(
        args.out / f"predict_{stem}.html", include_plotlyjs=True)
    print(f"wrote {args.out / f'predict_{stem}.npz'} and .html")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb == "book":
        from .book import build_book
        t0 = time.time()
        html = build_book(out_dir=args.executed_dir, quick=args.quick, execute=not args.no_execute,
                          kernel=args.kernel, notebooks=args.notebooks or None)
        print(f"book built in {time.time() - t0:.0f} s: {html / 'index.html'}")
        return 0
    if args.verb == "sweep":
        from .sweep import run_sweep_cli
        return run_sweep_cli(args)
    if args.verb == "export":
        path = export(args.source, args.dest)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return 0
    t0 = time.time()
    torch.manual_seed(args.seed)
    if args.verb == "predict":
        return _predict(args)
    if args.verb == "bench":
        from .benchcli import run_bench
        return run_bench(args)
    train_m, test_m = _splits(args)
    result: dict = {"verb": args.verb, "device": args.device, "ablation": args.ablation}
    path = _checkpoint(args)
    if args.verb == "run" and path.is_file():
        from .checkpoint import load_model, read_checkpoint
        print(f"using the trained model {path} (delete it, or pass --checkpoint, to train anew)")
        model = load_model(path, device=args.device)
        result["trained_steps"] = int(read_checkpoint(path)["step"])
    elif args.verb in ("run", "train"):
        model, log = _train(args, train_m)
        result["trained_steps"] = log["trained_steps"]
        if log["losses"]:
            result["loss_first_last"] = [log["losses"][0], log["losses"][-1]]
    if args.verb == "evaluate":
        from .checkpoint import load_model
        model = load_model(path, device=args.device)
    if args.verb in ("run", "evaluate"):
        result["metrics"] = _evaluate(args, model, train_m, test_m)
    result["seconds"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.verb}_{args.ablation}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
