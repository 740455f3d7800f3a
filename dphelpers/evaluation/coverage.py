"""Do the hypotheses cover the depth-flip twins of the truth? (notebook 05)

A multi-hypothesis model should put some hypothesis near each real alternative of a pose,
its depth-flip twins (:mod:`dphelpers.evaluation.twins`).  :func:`nearest_distance` measures how far
each target is from its nearest hypothesis, :func:`coverage` the share of targets within a
radius, and :func:`coverage_table` sums it up for the twins and the ground truth.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..metrics import root_relative
from ..skeleton import N_H36M
from .twins import LIMB_JOINTS, TwinBatch, _check_pose

__all__ = ["nearest_distance", "coverage", "coverage_table", "subset_coverage", "mean_hypothesis",
           "split_hypotheses"]


def nearest_distance(hypotheses: Tensor, targets: Tensor, joints_mask: Tensor) -> Tensor:
    """Distance of each target to its nearest hypothesis, ``(b, k)`` mm: per hypothesis, the mean
    joint distance over the target's masked joints; then the minimum over hypotheses.

    hypotheses: (b, h, 17, 3); targets: (b, k, 17, 3); joints_mask: (b, k, 17) bool.
    A target with no masked joint gets ``inf``.
    """
    hyp = _check_pose(hypotheses, "hypotheses", ("b", "h"))
    tgt = _check_pose(targets, "targets", ("b", "k"))
    mask = torch.as_tensor(joints_mask)
    if hyp.shape[0] != tgt.shape[0] or mask.shape != tgt.shape[:2] + (N_H36M,):
        raise ValueError(f"hypotheses (b, h, 17, 3), targets (b, k, 17, 3) and joints_mask "
                         f"(b, k, 17) must agree, got {tuple(hyp.shape)}, {tuple(tgt.shape)}, "
                         f"{tuple(mask.shape)}")
    dtype = torch.promote_types(hyp.dtype, tgt.dtype)
    hyp, tgt, w = hyp.to(dtype), tgt.to(dtype), mask.to(dtype)
    count = w.sum(-1)                                                          # (b, k)
    best = []
    for k in range(tgt.shape[1]):                                               # targets are few
        d = torch.linalg.vector_norm(hyp - tgt[:, k].unsqueeze(1), dim=-1)    # (b, h, 17)
        mean = (d * w[:, k].unsqueeze(1)).sum(-1) / count[:, k:k + 1]          # (b, h)
        best.append(mean.min(dim=1).values)
    out = torch.stack(best, dim=1)
    return torch.where(count > 0, out, torch.full_like(out, float("inf")))


def coverage(hypotheses: Tensor, targets: Tensor, valid: Tensor, joints_mask: Tensor,
             thresholds: tuple[float, ...] = (50.0, 100.0)) -> dict[float, Tensor]:
    """Which targets some hypothesis lies near: ``{threshold_mm: (b, k) bool}``.

    A valid target is covered at ``t`` if the mean distance over its masked joints to some
    hypothesis is strictly below ``t`` (:func:`nearest_distance`).  Poses are compared as
    given: express hypotheses and targets in the same frame (root-relative, via
    :func:`dphelpers.metrics.root_relative`).  hypotheses: (b, h, 17, 3); targets: (b, k, 17, 3);
    valid: (b, k) bool; joints_mask: (b, k, 17) bool.
    """
    valid = torch.as_tensor(valid, dtype=torch.bool)
    if valid.shape != tuple(torch.as_tensor(targets).shape[:2]):
        raise ValueError("valid must have shape (b, k) = "
                         f"{tuple(torch.as_tensor(targets).shape[:2])}, "
                         f"got {tuple(valid.shape)}")
    dist = nearest_distance(hypotheses, targets, joints_mask)
    return {float(t): (dist < t) & valid for t in thresholds}


def coverage_table(hypotheses: Tensor, gt: Tensor, twins: TwinBatch,
                   thresholds: tuple[float, ...] = (50.0, 100.0)) -> dict[str, float]:
    """Twin coverage summary for ``hypotheses: (b, h, 17, 3)``, ``gt: (b, 17, 3)`` and the
    :class:`TwinBatch` of ``gt`` (absolute camera frame).  All three are made root-relative
    first (the hips never move in a twin, so the pelvis is shared).

    Keys: ``n_samples``, ``n_twins`` (valid), ``twins_per_sample``; per threshold ``t``:
    ``twin@t`` the fraction of valid twins covered, ``gt_same@t`` the fraction of the same
    twins for which the ground truth is covered over the same joints (the paired comparison),
    ``gt_limbs@t`` the fraction of samples whose ground truth is covered over all
    :data:`LIMB_JOINTS`.
    """
    hyp = root_relative(_check_pose(hypotheses, "hypotheses", ("b", "h")))
    gt = root_relative(_check_pose(gt, "gt", ("b",)))
    tw = root_relative(twins.poses)
    b, k = twins.valid.shape
    if hyp.shape[0] != b or gt.shape[0] != b:
        raise ValueError("hypotheses, gt and twins must share b, "
                         f"got {hyp.shape[0]}, {gt.shape[0]}, {b}")
    mask = twins.joints_mask.to(tw.device)
    cov_twin = coverage(hyp, tw, twins.valid, mask, thresholds)
    cov_same = coverage(hyp, gt.unsqueeze(1).expand(-1, k, -1, -1), twins.valid, mask, thresholds)
    limbs = torch.zeros(b, 1, N_H36M, dtype=torch.bool)
    limbs[..., list(LIMB_JOINTS)] = True
    cov_gt = coverage(hyp, gt.unsqueeze(1), torch.ones(b, 1, dtype=torch.bool), limbs, thresholds)
    n = int(twins.valid.sum())
    table: dict[str, float] = {"n_samples": float(b), "n_twins": float(n),
                               "twins_per_sample": n / max(b, 1)}
    for t in cov_twin:
        table[f"twin@{t:g}"] = float(cov_twin[t].sum()) / n if n else float("nan")
        table[f"gt_same@{t:g}"] = float(cov_same[t].sum()) / n if n else float("nan")
        table[f"gt_limbs@{t:g}"] = float(cov_gt[t].float().mean())
    return table


# --- helpers for the notebook --------------------------------------------------------------
def mean_hypothesis(hypotheses: Tensor) -> Tensor:
    """The single-hypothesis baseline: the mean over hypotheses,
    ``(b, h, 17, 3) -> (b, 1, 17, 3)``."""
    hyp = _check_pose(hypotheses, "hypotheses", ("b", "h"))
    return hyp.mean(dim=1, keepdim=True)


def split_hypotheses(hypotheses: Tensor, gt: Tensor, twin: Tensor, joints) -> Tensor:
    """Assign each hypothesis to the closer of ``gt`` (0) or ``twin`` (1) by mean distance over
    ``joints``: hypotheses (h, 17, 3), gt and twin (17, 3) -> (h,) int64 (ties go to gt)."""
    hyp = _check_pose(hypotheses, "hypotheses", ("h",))
    gt, twin = _check_pose(gt, "gt", ()), _check_pose(twin, "twin", ())
    joints = list(joints)
    if not joints or any(not 0 <= j < N_H36M for j in joints):
        raise ValueError(f"joints must be a non-empty list of indices in [0, {N_H36M}), "
                         f"got {joints}")
    d_gt = torch.linalg.vector_norm(hyp[:, joints] - gt[joints], dim=-1).mean(-1)
    d_tw = torch.linalg.vector_norm(hyp[:, joints] - twin[joints], dim=-1).mean(-1)
    return (d_tw < d_gt).long()


def subset_coverage(pred: torch.Tensor, test, twins: TwinBatch, full: str = "full") -> dict:
    """:func:`coverage_table` of hypotheses ``(b, h, 17, 3)`` mm on a test set and on its
    ambiguous subset: ``{full: ..., "ambiguous": ...}`` (no ambiguous key when it has none)."""
    out = {full: coverage_table(pred, test.poses_3d_mm, twins)}
    amb = test.ambiguous
    if amb.any():
        sub = TwinBatch(poses=twins.poses[amb], valid=twins.valid[amb], flips=twins.flips,
                        moved_mask=twins.moved_mask)
        out["ambiguous"] = coverage_table(pred[amb], test.poses_3d_mm[amb], sub)
    return out
