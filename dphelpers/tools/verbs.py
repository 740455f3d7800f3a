"""The work behind ``python -m dphelpers run | train | evaluate | predict``.

The parser and the error handling live in :mod:`dphelpers.tools.cli`, ``bench`` in
:mod:`dphelpers.tools.bench`, ``export`` in :mod:`dphelpers.tools.export`.  Every verb prints
which model file it read (path, model name, training steps), shows progress for long work, and
ends with one line: what it did, how long it took, what it wrote.  Result files are named after
the model file (:func:`~dphelpers.tools.modelref.result_stem`), so two models' results never
collide.  Which file is read or written is :mod:`dphelpers.models.modelfiles`' rule.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..evaluation.evaluate import Evaluation
from ..evaluation.tables import Table, table
from ..files import FileLock, check_destination
from ..models.checkpoint import CheckpointError, check_config, read_checkpoint
from ..models.modelfiles import display_path
from . import modelref

__all__ = ["METRICS", "evaluation_table", "duration", "run", "train", "evaluate", "predict"]

METRICS = ("n", "P1_min", "P1_median", "P2_min", "PCK", "CPS", "ECE")


def duration(seconds: float) -> str:
    """``"42 s"``, ``"6.1 min"`` or ``"1 h 25 min"``."""
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{int(seconds // 3600)} h {round(seconds % 3600 / 60)} min"


def evaluation_table(evaluations: dict[str, Evaluation], caption: str = "") -> Table:
    """One row per model and subset (full test set, ambiguous subset); millimetres, PCK in %."""
    rows = [{"model": label, "subset": subset, **{k: row[k] for k in METRICS}}
            for label, ev in evaluations.items() for subset, row in ev.table().items()]
    return table(rows, columns=["model", "subset", *METRICS], caption=caption)


@contextlib.contextmanager
def _native_info_dropped():
    """LiteRT's C++ code writes ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``
    straight to file descriptor 2 (no setting turns it off); inside this block fd 2 goes to a
    temporary file, and afterwards every line but those ``INFO:`` ones is written back."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not ln.startswith("INFO: ")]
            sys.stderr.write("".join(kept))


def _splits(data: Path | None, hold_out: tuple[str, ...] = ()):
    from ..data import hold_out_clips, load_mocap, split_clips
    clips = load_mocap(data)
    if hold_out:
        clips = hold_out_clips(clips, hold_out)[0]
    return split_clips(clips)


def _write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    return path


def _precision(bf16: bool) -> str:
    return "bfloat16 autocast" if bf16 else "float32"


def _score(args, loaded: modelref.Loaded, train_m, test_m) -> tuple[dict, int]:
    """Evaluate the model and the mean-pose baseline on the test split; print the table.
    Returns the JSON rows and the number of test samples."""
    from ..evaluation.evaluate import evaluate as evaluate_model
    from ..evaluation.evaluate import evaluate_fixed, table_rows, training_mean_pose
    from ..pipeline import make_test_set
    test = make_test_set(test_m, args.n_test)
    print(f"evaluating {loaded.label} on {len(test):,} test samples ({int(test.ambiguous.sum()):,} "
          f"ambiguous) x {args.n_hypo} hypotheses in {_precision(args.bf16)}")
    ev = evaluate_model(loaded.model, test, args.n_hypo, args.eval_batch, seed=args.seed,
                        progress=not args.quiet,
                        autocast_dtype=torch.bfloat16 if args.bf16 else None)
    base = evaluate_fixed(training_mean_pose(train_m, seed=args.seed + 1), test)
    evals = {loaded.label: ev, "mean pose (ignores the image)": base}
    print(evaluation_table(evals, caption="millimetres; PCK@150 in %; ECE 0 = calibrated"))
    return {k: v for label, e in evals.items() for k, v in table_rows(label, e).items()}, len(test)


def _model_json(loaded: modelref.Loaded) -> dict:
    info = loaded.info
    return {"label": loaded.label, "name": info.name, "file": display_path(info.path),
            "source": info.source, "trained_steps": info.trained_steps}


def _evaluated(args, verb: str, loaded: modelref.Loaded, train_m, test_m, t0: float) -> int:
    rows, n_test = _score(args, loaded, train_m, test_m)
    seconds = time.time() - t0
    path = _write_json(args.out / f"{verb}_{loaded.stem}.json", {
        "verb": verb, "model": _model_json(loaded), "device": str(args.device),
        "precision": "bf16" if args.bf16 else "fp32", "n_hypo": args.n_hypo, "seed": args.seed,
        "metrics": rows, "seconds": round(seconds, 1)})
    print(f"{verb}: {loaded.label} on {n_test:,} test samples x {args.n_hypo} hypotheses "
          f"({'bf16' if args.bf16 else 'fp32'}) in {duration(seconds)}; wrote {path}")
    return 0


def run(args) -> int:
    """Load the shipped model (or ``--checkpoint``); train only when there is no file; evaluate."""
    from ..models.modelfiles import load_or_train
    t0 = time.time()
    train_m, test_m = _splits(args.data)
    model, info = load_or_train(args.model, args.checkpoint, train_m, steps=args.steps,
                                device=args.device, seed=args.seed, progress=not args.quiet)
    loaded = modelref.from_info(model, info, explicit=args.checkpoint is not None)
    print(loaded.info)
    return _evaluated(args, "run", loaded, train_m, test_m, t0)


def evaluate(args) -> int:
    """Evaluate the model file :func:`~dphelpers.models.modelfiles.reading_file` names."""
    t0 = time.time()
    loaded = modelref.load(None if args.checkpoint else args.model, args.checkpoint, args.device)
    print(loaded.info)
    train_m, test_m = _splits(args.data)
    return _evaluated(args, "evaluate", loaded, train_m, test_m, t0)


def _resumable_step(target: Path, model, config, force: bool) -> int:
    """The step of the training checkpoint at ``target`` (0 if none); refuses model files and
    checkpoints trained with other settings (unless ``force``)."""
    from ..training.train import check_resume_config
    check_destination(target, "training checkpoint")
    if not target.exists():
        return 0
    state = read_checkpoint(target)
    if state.get("optimizer") is None:
        raise CheckpointError(f"{target} is a model file (no optimizer state), not a training "
                              "checkpoint, so it cannot be resumed: pass another --checkpoint")
    check_config(state, model.config, target)
    check_resume_config(state, config, target, force=force)
    return int(state["step"])


def train(args) -> int:
    """Train into :func:`~dphelpers.models.modelfiles.writing_file` (never a shipped model),
    resuming.

    Several ``--model`` names train together on one stream
    (:func:`~dphelpers.training.many.fit_many`).
    """
    from ..models.modelfiles import build_model, train_config, writing_file
    t0 = time.time()
    names = (args.model,) if isinstance(args.model, str) else tuple(args.model)
    if len(names) > 1 and args.checkpoint is not None:
        raise ValueError(f"--checkpoint names one file but {len(names)} models train "
                         f"({', '.join(names)}): each writes runs/<model>.pt; leave it out")
    targets = {n: writing_file(n, args.checkpoint) for n in names}
    from ..training.train import scaled_lr
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")
    extra = {"warmup_steps": args.warmup, "compile": args.compile, "graphs": args.graphs,
             "prefetch": args.prefetch,
             "stream_chunk": args.stream_chunk, "augment": args.augment,
             "augment_strength": args.augment_strength, "hold_out": args.hold_out}
    if args.lr is not None:
        extra["lr"] = scaled_lr(args.batch_size) if args.lr == "scaled" else args.lr
    configs = {n: train_config(n, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                               precision=args.precision, ckpt_every=args.ckpt_every,
                               threads=args.threads, **extra) for n in names}
    models = {n: build_model(n).to(args.device) for n in names}
    with contextlib.ExitStack() as locks:         # one writer per checkpoint, checked first
        for n in names:
            check_destination(targets[n], "training checkpoint")
            locks.enter_context(FileLock(targets[n], "training checkpoint"))
        starts = {n: _resumable_step(targets[n], models[n], configs[n], args.force)
                  for n in names}                   # before any work
        return _train_locked(args, names, targets, configs, models, starts, t0)


def _train_locked(args, names, targets, configs, models, starts, t0) -> int:
    from ..augment import AugmentConfig
    from ..pipeline import TrainStream
    from ..training.many import fit_many
    from ..training.train import fit
    start = max(starts.values())
    config = configs[names[0]]
    train_m, _ = _splits(args.data, config.hold_out)
    stream = TrainStream(train_m, seed=args.seed, device=args.device,
                         augment=(AugmentConfig.at_strength(config.augment_strength)
                                  if config.augment else None))
    what = ", ".join(f"{n!r} -> {targets[n]}" for n in names)
    resumed = f", resuming at step {start:,}" if start else ""
    data = (f"; holding out {', '.join(config.hold_out)}" if config.hold_out else "") + (
        f"; pose augmentation on (strength {config.augment_strength:g})" if config.augment
        else "")
    print(f"train: model {what}: {config.steps:,} steps at batch {config.batch_size}, "
          f"{config.precision}{resumed} (checkpoint every {config.ckpt_every:,} steps{data})")
    if start >= config.steps:
        print(f"train: already at step {start:,} >= --steps {config.steps:,}; nothing to do "
              "(raise --steps to train on)")
        return 0
    if len(names) == 1:
        results = {names[0]: fit(models[names[0]], stream, config, checkpoint=targets[names[0]],
                                 progress=not args.quiet, keep_at=args.keep_at)}
    else:
        results = fit_many(models, stream, configs, targets, progress=not args.quiet,
                           keep_at=args.keep_at)
    for name, res in results.items():
        target = targets[name]
        loss = (f", loss {res.losses[0]:.4f} -> {res.losses[-1]:.4f} (means over "
                f"{config.log_every} steps)" if len(res.losses) > 1 else
                f", loss {res.losses[0]:.4f}" if res.losses else "")
        print(f"train: model {name!r} steps {start:,} -> {config.steps:,} in "
              f"{duration(time.time() - t0)}{loss}; wrote {target} "
              f"({target.stat().st_size / 1e6:.0f} MB training checkpoint; make a model file of "
              f"it with `python -m dphelpers export {target} DEST`)")
    return 0


def predict(args) -> int:
    """A photo -> BlazePose heatmaps -> ``n_hypo`` 3D hypotheses (npz and interactive html)."""
    import numpy as np

    from ..detector import detect_heatmaps, load_image
    from ..diffusion import resolve_autocast
    from ..evaluation.reprojection import weak_perspective_fit
    from ..evaluation.vizpages import joint_spread_mm, medoid_index, prediction_page
    from ..skeleton import H36M_NAMES
    t0 = time.time()
    if args.image == "astronaut":
        from skimage.data import astronaut
        image, image_stem = astronaut(), "astronaut"
    else:
        image, image_stem = load_image(args.image), Path(args.image).stem   # bad files fail here
    loaded = modelref.load(None if args.checkpoint else args.model, args.checkpoint, args.device)
    print(loaded.info)
    t1 = time.perf_counter()
    with _native_info_dropped():
        det = detect_heatmaps(image, device=args.device)
    t2 = time.perf_counter()
    dtype = resolve_autocast(None if args.fp32 else "auto", loaded.model.device)
    gen = torch.Generator(device=loaded.model.device).manual_seed(args.seed)
    poses = loaded.model.sample(det.heatmaps, args.n_hypo, generator=gen,
                                autocast_dtype=dtype)[0].float().cpu()
    t3 = time.perf_counter()
    medoid = poses[medoid_index(poses)]
    spread = joint_spread_mm(poses.numpy(), medoid.numpy())   # what the page's bars show
    fit = weak_perspective_fit(medoid, torch.as_tensor(det.joints_hm, dtype=torch.float32))
    print(f"person score {det.score:.2f} ({det.n_people} found), detection "
          f"{1e3 * (t2 - t1):.0f} ms, {args.n_hypo} hypotheses in "
          f"{'float32' if dtype is None else 'bfloat16 autocast'} {1e3 * (t3 - t2):.0f} ms")
    print("spread of the hypotheses per joint, RMS distance from the medoid (mm): " +
          ", ".join(f"{n} {v:.0f}" for n, v in zip(H36M_NAMES, spread.tolist())))
    print(f"the medoid hypothesis reprojects onto BlazePose's 2D joints with RMS "
          f"{float(fit.rms):.2f} heatmap px (weak perspective, 64 px maps)")
    base = args.out / f"predict_{image_stem}_{loaded.stem}"
    base.parent.mkdir(parents=True, exist_ok=True)
    npz, html = base.with_suffix(".npz"), base.with_suffix(".html")
    np.savez_compressed(npz, poses_mm=poses.numpy(), heatmaps=det.heatmaps[0].cpu().numpy(),
                        crop=det.crop)
    prediction_page(image, det, poses, title=f"{args.n_hypo} hypotheses for {image_stem}, "
                    f"model {loaded.label}", path=html,
                    note=f"detection {1e3 * (t2 - t1):.0f} ms, sampling {1e3 * (t3 - t2):.0f} ms")
    print(f"predict: {image_stem} with {loaded.label}, {args.n_hypo} hypotheses, in "
          f"{duration(time.time() - t0)}; wrote {npz} and {html}")
    return 0
