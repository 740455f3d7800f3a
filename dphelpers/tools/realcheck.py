"""Does a model's 3D explain a real photo as well as it explains the test split? (``realcheck``)

``python -m dphelpers realcheck --models full=runs/diffpose_full_5k_v1.pt \\
full=data/checkpoints/diffpose_full.pt --out data/results/realcheck.json``

For every model: BlazePose's heatmaps of a photo (the astronaut by default) -> ``n_hypo``
hypotheses -> their spread around the medoid
(:func:`~dphelpers.evaluation.vizpages.joint_spread_mm`) and how well the medoid hypothesis
reprojects onto BlazePose's own 2D joints
(:func:`~dphelpers.evaluation.reprojection.weak_perspective_fit`, RMS in heatmap pixels).  The
same two numbers on ``n_test`` samples of the test split, where the 2D joints are the simulated
heatmaps' argmax, give the scale to read the photo's numbers against: a photo ratio near 1
means the model treats the real detector's maps like the simulated ones (the checks:
:func:`~dphelpers.evaluation.realcheck.photo_check`,
:func:`~dphelpers.evaluation.realcheck.test_check`).

Float32, seeds explicit.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..evaluation.realcheck import photo_check, test_check
from ..models.modelfiles import display_path

__all__ = ["add_arguments", "run_verb"]



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



def run_verb(args) -> int:
    """The ``realcheck`` verb."""
    from ..data import load_mocap, split_clips
    from ..detector import detect_heatmaps, load_image
    from ..pipeline import make_test_set
    from .bench import load_models, resolve_entries
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
        out["models"][m.label] = {"name": m.info.name, "file": display_path(m.path),
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
