"""Does a model's 3D explain a real photo as well as it explains the test split?

``python -m dphelpers.tools.realcheck --models full=runs/diffpose_full_5k_v1.pt \\
full=data/checkpoints/diffpose_full.pt --out data/results/realcheck.json``

For every model: BlazePose's heatmaps of a photo (the astronaut by default) -> ``n_hypo``
hypotheses -> their spread around the medoid (:func:`~dphelpers.evaluation.vizpages.joint_spread_mm`)
and how well the medoid hypothesis reprojects onto BlazePose's own 2D joints
(:func:`~dphelpers.evaluation.reprojection.weak_perspective_fit`, RMS in heatmap pixels).  The same two
numbers on ``n_test`` samples of the test split, where the 2D joints are the simulated
heatmaps' argmax, give the scale to read the photo's numbers against: a photo ratio near 1
means the model treats the real detector's maps like the simulated ones.

Float32, seeds explicit.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["photo_check", "test_check", "add_arguments", "main", "run_verb"]


def _medoids(poses: torch.Tensor) -> torch.Tensor:
    """``(b, h, 17, 3)`` -> the medoid hypothesis of each image, ``(b, 17, 3)``."""
    from ..evaluation.vizpages import medoid_index
    return torch.stack([p[medoid_index(p)] for p in poses])


def photo_check(model, detection, n_hypo: int = 200, seed: int = 0) -> dict:
    """Spread and medoid reprojection of ``model``'s hypotheses for one detected photo."""
    from ..evaluation.reprojection import weak_perspective_fit
    from ..evaluation.vizpages import joint_spread_mm
    from ..skeleton import H36M_NAMES
    gen = torch.Generator(device=model.device).manual_seed(seed)
    poses = model.sample(detection.heatmaps.to(model.device), n_hypo, generator=gen,
                         autocast_dtype=None).float().cpu()
    joints = torch.as_tensor(np.asarray(detection.joints_hm), dtype=torch.float32)[None]
    medoid = _medoids(poses)
    fit = weak_perspective_fit(medoid, joints)
    every = weak_perspective_fit(poses[0], joints)
    spread = joint_spread_mm(poses[0].numpy())
    return {"medoid_rms_px": float(fit.rms[0]),
            "hypotheses_rms_px_median": float(every.rms.median()),
            "spread_mm_mean": float(spread.mean()),
            "spread_mm": {n: round(float(s), 1) for n, s in zip(H36M_NAMES, spread)}}


def test_check(model, test, n_hypo: int = 200, seed: int = 0, batch_size: int = 8,
               progress: bool = True) -> dict:
    """The same numbers on a test set: medoid RMS onto the heatmaps' argmax (like BlazePose's
    joints on a photo) and onto the true 2D joints; medians and quartiles over the samples."""
    from tqdm.auto import tqdm

    from ..evaluation.reprojection import weak_perspective_fit
    from ..evaluation.vizpages import joint_spread_mm
    from ..pckh import argmax_px
    gen = torch.Generator(device=model.device).manual_seed(seed)
    rms_arg, rms_true, spread = [], [], []
    for i in tqdm(range(0, len(test), batch_size), desc="test split", disable=not progress):
        hm = test.heatmaps[i:i + batch_size]
        poses = model.sample(hm.to(model.device), n_hypo, generator=gen,
                             autocast_dtype=None).float().cpu()
        medoid = _medoids(poses)
        rms_arg.append(weak_perspective_fit(medoid, argmax_px(hm)).rms)
        rms_true.append(weak_perspective_fit(medoid, test.joints_hm[i:i + batch_size]).rms)
        spread += [float(joint_spread_mm(p.numpy()).mean()) for p in poses]
    arg, true = torch.cat(rms_arg), torch.cat(rms_true)

    def stats(x: torch.Tensor) -> dict:
        q = torch.quantile(x, torch.tensor([0.25, 0.5, 0.75]))
        return {"q25": float(q[0]), "median": float(q[1]), "q75": float(q[2])}

    return {"n": len(test), "medoid_rms_px_vs_argmax": stats(arg),
            "medoid_rms_px_vs_truth": stats(true),
            "spread_mm_mean": float(np.mean(spread))}


def add_arguments(p) -> None:
    """The ``realcheck`` verb's options."""
    from . import options as o
    o.models(p, "models to check")
    p.add_argument("--image", default="astronaut",
                   help="photo file, or 'astronaut' (scikit-image's sample photo)")
    p.add_argument("--n-hypo", type=o.positive, default=200, help="hypotheses")
    p.add_argument("--n-test", type=o.positive, default=100, help="test samples")
    o.compute(p, "seed of the sampling")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")


def main(argv: list[str] | None = None) -> int:
    """``python -m dphelpers.tools.realcheck ARGS`` = ``python -m dphelpers realcheck ARGS``."""
    from .cli import main as cli_main
    return cli_main(["realcheck", *(sys.argv[1:] if argv is None else argv)])


def run_verb(args) -> int:
    """The ``realcheck`` verb."""
    from ..data import load_mocap, split_clips
    from ..detector import detect_heatmaps, load_image
    from ..pipeline import make_test_set
    from .benchcli import load_models, resolve_entries
    t0 = time.time()
    if args.image == "astronaut":
        from skimage.data import astronaut
        image = astronaut()
    else:
        image = load_image(args.image)            # a bad file fails here, before any model work
    det = detect_heatmaps(image)
    models = load_models(resolve_entries(args.models), args.device)
    test = make_test_set(split_clips(load_mocap())[1], args.n_test)
    out = {"command": args.command,
           "setup": {"image": str(args.image), "n_hypo": args.n_hypo, "n_test": args.n_test,
                     "seed": args.seed, "dtype": "float32", "units": "heatmap px (64 x 64)"},
           "models": {}}
    for m in models:
        photo = photo_check(m.model, det, args.n_hypo, args.seed)
        split = test_check(m.model, test, args.n_hypo, args.seed, progress=not args.quiet)
        ratio = photo["medoid_rms_px"] / split["medoid_rms_px_vs_argmax"]["median"]
        out["models"][m.label] = {"name": m.info.name, "file": str(m.path),
                                  "trained_steps": m.info.trained_steps, "photo": photo,
                                  "test": split, "photo_over_test": ratio}
        print(f"{m.label}: photo medoid reprojection RMS {photo['medoid_rms_px']:.2f} px "
              f"(test split median {split['medoid_rms_px_vs_argmax']['median']:.2f} px, "
              f"x{ratio:.2f}); spread {photo['spread_mm_mean']:.0f} mm on the photo, "
              f"{split['spread_mm_mean']:.0f} mm on the test split", flush=True)
    out["seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"realcheck: {len(models)} model(s) in {out['seconds']:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
