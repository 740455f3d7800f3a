"""A model over a test set -> per-sample metrics and a results table (notebook 05).

Hypotheses are drawn in batches of images (all hypotheses of a batch as one tensor);
per-sample metrics are kept so that any subset (e.g. the ambiguous one) can be
summarised afterwards without sampling again.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .. import metrics
from ..diffusion import DiffPose
from ..pipeline import SampleBatch

__all__ = ["Evaluation", "evaluate", "mean_pose", "evaluate_fixed",
           "training_mean_pose", "table_rows"]


@dataclass
class Evaluation:
    """Per-sample metrics of one model on one test set (b = number of test samples).

    p1_min, p1_median, p2_min, p2_median: (b,) mm; pck: (b,) fraction; cps: (b,) mm;
    quantiles: (b, 17); joint_err: (b, 17) mm of the best hypothesis; ambiguous: (b,) bool;
    failed_limb: (b,) bool, some limb joint's heatmap argmax fails PCKh@0.5
    (:attr:`~dphelpers.pipeline.SampleBatch.failed_limb_sample`), None if unknown.
    """

    p1_min: torch.Tensor
    p1_median: torch.Tensor
    p2_min: torch.Tensor
    p2_median: torch.Tensor
    pck: torch.Tensor
    cps: torch.Tensor
    quantiles: torch.Tensor
    joint_err: torch.Tensor
    ambiguous: torch.Tensor
    n_hypo: int
    predictions: torch.Tensor | None = None  # (b, n_hypo, 17, 3) mm when evaluate(keep=True)
    failed_limb: torch.Tensor | None = None

    def summary(self, mask: torch.Tensor | None = None) -> dict[str, float]:
        """Mean metrics over the samples selected by ``mask`` (all if None)."""
        m = torch.ones_like(self.ambiguous) if mask is None else mask
        if not m.any():
            raise ValueError("the selected subset is empty")
        q = self.quantiles[m]
        return {
            "n": int(m.sum()),
            "P1_min": float(self.p1_min[m].mean()),
            "P1_median": float(self.p1_median[m].mean()),
            "P2_min": float(self.p2_min[m].mean()),
            "P2_median": float(self.p2_median[m].mean()),
            "PCK": 100.0 * float(self.pck[m].mean()),
            "CPS": float(self.cps[m].mean()),
            "ECE": metrics.ece_from_quantiles(q),
        }

    def table(self) -> dict[str, dict[str, float]]:
        """``{"full": summary, "ambiguous": summary, "failed limb": summary}``; a subset is
        omitted when empty (or, for "failed limb", unknown)."""
        out = {"full": self.summary()}
        if self.ambiguous.any():
            out["ambiguous"] = self.summary(self.ambiguous)
        if self.failed_limb is not None and self.failed_limb.any():
            out["failed limb"] = self.summary(self.failed_limb)
        return out


def _per_sample(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    e1, e2 = metrics.p1(pred, gt), metrics.p2(pred, gt)
    best = metrics.best_hypothesis(pred, gt)
    pj = metrics.per_joint_error(metrics.root_relative(pred), metrics.root_relative(gt))
    return {"p1_min": e1["min"], "p1_median": e1["median"], "p2_min": e2["min"],
            "p2_median": e2["median"], "pck": metrics.pck(pred, gt), "cps": metrics.cps(pred, gt),
            "quantiles": metrics.quantiles(pred, gt),
            "joint_err": pj[torch.arange(pj.shape[0]), best]}


def _collect(parts: list[dict], test: SampleBatch, n_hypo: int,
             predictions: list[torch.Tensor] | None = None) -> Evaluation:
    cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return Evaluation(**cat, ambiguous=test.ambiguous.cpu(), n_hypo=n_hypo,
                      predictions=torch.cat(predictions) if predictions else None,
                      failed_limb=test.failed_limb_sample.cpu())


def evaluate(model: DiffPose, test: SampleBatch, n_hypo: int = 200, batch_size: int = 8,
             seed: int = 0, progress: bool = True, autocast_dtype: torch.dtype | str | None = None,
             keep: bool = False, sample_kwargs: dict | None = None) -> Evaluation:
    """Sample ``n_hypo`` hypotheses for every test sample and score them (``keep``: also return
    them).

    Float32 by default, so that a seed gives the same numbers on any CPU; ``autocast_dtype=
    torch.bfloat16`` (or ``"auto"``) is faster.  ``sample_kwargs`` go to ``model.sample``.
    """
    for name, value in (("n_hypo", n_hypo), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"evaluate: {name} must be an int >= 1, got {value!r}")
    if len(test) == 0:
        raise ValueError("evaluate: the test batch holds no sample (length 0): nothing to score")
    model.eval()
    gen = torch.Generator(device=model.device).manual_seed(seed)
    parts, kept = [], []
    for i in tqdm(range(0, len(test), batch_size), disable=not progress,
                  desc=f"evaluate x{n_hypo}"):
        sl = slice(i, i + batch_size)
        pred = model.sample(test.heatmaps[sl].to(model.device), n_hypo, generator=gen,
                            autocast_dtype=autocast_dtype, **(sample_kwargs or {})).cpu()
        parts.append(_per_sample(pred, test.poses_3d_mm[sl].cpu()))
        if keep:
            kept.append(pred)
    return _collect(parts, test, n_hypo, kept)


def mean_pose(poses_3d_mm: torch.Tensor) -> torch.Tensor:
    """The mean root-relative pose of a set of poses ``(n, 17, 3) -> (17, 3)``: the baseline
    that ignores the image."""
    return metrics.root_relative(poses_3d_mm).mean(dim=0)


def training_mean_pose(train_poses_m, n: int = 4096, seed: int = 1) -> torch.Tensor:
    """The mean-pose baseline from the training split: ``n`` training poses seen by random
    cameras (no heatmaps needed), root-relative and averaged: ``(17, 3)`` mm."""
    import numpy as np

    from ..cameras import CameraConfig, make_views
    gen = torch.Generator().manual_seed(seed)
    poses = torch.as_tensor(np.asarray(train_poses_m), dtype=torch.float32)
    idx = torch.randint(0, poses.shape[0], (n,), generator=gen)
    return mean_pose(make_views(poses[idx], CameraConfig(), gen).poses_cam_mm)


def evaluate_fixed(poses_mm: torch.Tensor, test: SampleBatch) -> Evaluation:
    """Score a fixed prediction: one pose for all samples ``(17, 3)`` or one per sample
    ``(b, 17, 3)`` (a single hypothesis: min = median)."""
    pred = poses_mm.expand(len(test), 17, 3) if poses_mm.dim() == 2 else poses_mm
    return _collect([_per_sample(pred.unsqueeze(1), test.poses_3d_mm.cpu())], test, 1)


def table_rows(name: str, ev: Evaluation, full: str = "full") -> dict[str, dict[str, float]]:
    """``{"NAME (full)": summary, "NAME (ambiguous)": summary}`` rows (one per subset) of a
    metrics table; ``full``: how the whole test set is named (the book says ``"all"``)."""
    return {f"{name} ({full if subset == 'full' else subset})": row
            for subset, row in ev.table().items()}
