"""Does a model's 3D explain a real photo as well as it explains the test split? (notebook 06)

For one photo: the spread of the hypotheses around their medoid and how well the medoid
reprojects onto the detector's own 2D joints (:func:`~dphelpers.evaluation.reprojection.
weak_perspective_fit`, RMS in heatmap pixels); the same two numbers on test samples, where the
2D joints are the simulated heatmaps' argmax, give the scale to read the photo's numbers
against.  The ``realcheck`` verb (:mod:`dphelpers.tools.realcheck`) stores them.
"""
from __future__ import annotations

import numpy as np
import torch

from .reprojection import weak_perspective_fit

__all__ = ["photo_check", "test_check"]


def _medoids(poses: torch.Tensor) -> torch.Tensor:
    """``(b, h, 17, 3)`` -> the medoid hypothesis of each image, ``(b, 17, 3)``."""
    from .vizpages import medoid_index
    return torch.stack([p[medoid_index(p)] for p in poses])


def photo_check(model, detection, n_hypo: int = 200, seed: int = 0) -> dict:
    """Spread and medoid reprojection of ``model``'s hypotheses for one detected photo."""
    from ..skeleton import H36M_NAMES
    from .vizpages import joint_spread_mm
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

    from ..pckh import argmax_px
    from .vizpages import joint_spread_mm
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
