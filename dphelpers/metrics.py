"""Evaluation metrics of DiffPose: P1/P2 (min and median), PCK, CPS, calibration (notebook 05).

Conventions (REFERENCE.md "Evaluation"):

- Inputs are millimetres in Human3.6M-17 order: hypotheses ``pred: (b, h, 17, 3)`` and
  ground truth ``gt: (b, 17, 3)``.
- Every metric below (P1, P2, PCK, CPS, ECE, per joint) first makes both poses
  root-relative: the pelvis is replaced by the midpoint of the hips and subtracted from
  every joint (:func:`root_relative`).  The raw primitives :func:`mpjpe` and
  :func:`per_joint_error` do not; they compare what they are given.
- Everything is vectorised over batch and hypotheses (no Python loop over samples).
- "median" over hypotheses is numpy's median (the mean of the two middle values when the
  count is even), computed with :func:`torch.quantile`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .skeleton import CPS_JOINTS, L_HIP, N_H36M, NON_PELVIS, PCK_JOINTS, R_HIP

__all__ = [
    "root_relative", "mpjpe", "per_joint_error", "procrustes_align", "p1", "p2",
    "best_hypothesis", "pck", "cps", "quantiles", "reliability", "reliability_from_quantiles",
    "ece_from_quantiles",
]


# --- input checks -------------------------------------------------------------------------
def _as_float(x) -> Tensor:
    x = torch.as_tensor(x)
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    return x


def _check(pred, gt) -> tuple[Tensor, Tensor]:
    """Validate ``pred: (b, h, 17, 3)`` and ``gt: (b, 17, 3)``; return them as float tensors."""
    pred, gt = _as_float(pred), _as_float(gt)
    if pred.ndim != 4 or pred.shape[-2:] != (N_H36M, 3) or pred.shape[1] < 1:
        raise ValueError(f"pred must have shape (b, h, {N_H36M}, 3) with h >= 1, "
                         f"got {tuple(pred.shape)}")
    if gt.ndim != 3 or gt.shape[-2:] != (N_H36M, 3):
        raise ValueError(f"gt must have shape (b, {N_H36M}, 3), got {tuple(gt.shape)}")
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(f"pred and gt must share the batch size b, got pred {tuple(pred.shape)} "
                         f"and gt {tuple(gt.shape)}")
    if not torch.isfinite(pred).all():
        raise ValueError("pred contains NaN or infinite values")
    if not torch.isfinite(gt).all():
        raise ValueError("gt contains NaN or infinite values")
    dtype = torch.promote_types(pred.dtype, gt.dtype)
    return pred.to(dtype), gt.to(dtype)


def _median(x: Tensor, dim: int) -> Tensor:
    """numpy-style median along ``dim`` (average of the two middle values for an even count)."""
    return torch.quantile(x, 0.5, dim=dim)


# --- primitives ---------------------------------------------------------------------------
def root_relative(poses: Tensor) -> Tensor:
    """Complete the pelvis as the hips' midpoint and subtract it: ``(..., 17, 3) -> (..., 17, 3)``.

    Joint 0 (pelvis) of the result is exactly zero.
    """
    poses = _as_float(poses)
    if poses.ndim < 2 or poses.shape[-2:] != (N_H36M, 3):
        raise ValueError(f"poses must have shape (..., {N_H36M}, 3), got {tuple(poses.shape)}")
    pelvis = 0.5 * (poses[..., L_HIP, :] + poses[..., R_HIP, :])
    out = poses - pelvis.unsqueeze(-2)
    out[..., 0, :] = 0.0
    return out


def per_joint_error(pred: Tensor, gt: Tensor) -> Tensor:
    """Euclidean distance per joint, ``pred: (b, h, j, 3)``, ``gt: (b, j, 3)`` -> ``(b, h, j)``."""
    pred, gt = _check(pred, gt)
    return torch.linalg.vector_norm(pred - gt.unsqueeze(1), dim=-1)


def mpjpe(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean per-joint position error of every hypothesis, ``-> (b, h)`` (no root alignment)."""
    return per_joint_error(pred, gt).mean(dim=-1)


def procrustes_align(pred: Tensor, gt: Tensor, eps: float = 1e-12) -> Tensor:
    """Similarity-align every hypothesis onto the ground truth (least squares).

    Finds the rotation ``R``, uniform scale ``s`` and translation ``t`` minimising
    ``|| s * x @ R + t - y ||^2`` per hypothesis (Umeyama/Kabsch with a batched SVD of the
    3 x 3 cross-covariance).  Reflections are corrected: when ``det < 0`` the last singular
    vector is flipped, so a mirrored pose is *not* aligned to zero error.

    pred: (b, h, j, 3), gt: (b, j, 3) -> aligned pred (b, h, j, 3), in pred's dtype.
    Computed in float64 internally.
    """
    pred, gt = _check(pred, gt)
    x = pred.to(torch.float64)
    y = gt.to(torch.float64).unsqueeze(1)                      # (b, 1, j, 3)
    mu_x, mu_y = x.mean(dim=-2, keepdim=True), y.mean(dim=-2, keepdim=True)
    x0, y0 = x - mu_x, y - mu_y
    cov = x0.transpose(-1, -2) @ y0                            # (b, h, 3, 3)
    u, sing, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u @ vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    signs = torch.ones_like(sing)
    signs[..., -1] = d
    rot = (u * signs.unsqueeze(-2)) @ vh                       # U diag(1, 1, d) V^T
    var_x = (x0 ** 2).sum(dim=(-1, -2))
    scale = (sing * signs).sum(dim=-1) / var_x.clamp_min(eps)  # (b, h)
    aligned = scale[..., None, None] * (x0 @ rot) + mu_y
    return aligned.to(pred.dtype)


# --- protocol 1 and 2 -----------------------------------------------------------------------
def p1(pred: Tensor, gt: Tensor) -> dict[str, Tensor]:
    """Protocol 1: root-relative MPJPE of the best and the median hypothesis.

    pred: (b, h, 17, 3), gt: (b, 17, 3) -> {"min": (b,), "median": (b,)} in mm.
    """
    pred, gt = _check(pred, gt)
    err = mpjpe(root_relative(pred), root_relative(gt))
    return {"min": err.min(dim=1).values, "median": _median(err, dim=1)}


def p2(pred: Tensor, gt: Tensor) -> dict[str, Tensor]:
    """Protocol 2: like :func:`p1` after Procrustes alignment of every hypothesis."""
    pred, gt = _check(pred, gt)
    gt_rr = root_relative(gt)
    err = mpjpe(procrustes_align(root_relative(pred), gt_rr), gt_rr)
    return {"min": err.min(dim=1).values, "median": _median(err, dim=1)}


def best_hypothesis(pred: Tensor, gt: Tensor) -> Tensor:
    """Index of the hypothesis with the lowest root-relative MPJPE, ``-> (b,)`` long."""
    pred, gt = _check(pred, gt)
    return mpjpe(root_relative(pred), root_relative(gt)).argmin(dim=1)


def _best_joint_errors(pred: Tensor, gt: Tensor) -> Tensor:
    """Root-relative per-joint errors of the best hypothesis (by MPJPE): ``(b, 17)``."""
    err = per_joint_error(root_relative(pred), root_relative(gt))  # (b, h, 17)
    best = err.mean(dim=-1).argmin(dim=1)
    return err[torch.arange(err.shape[0]), best]


def pck(pred: Tensor, gt: Tensor, threshold_mm: float = 150.0) -> Tensor:
    """PCK: fraction of ``PCK_JOINTS`` of the best hypothesis closer than the threshold.

    Best hypothesis by root-relative MPJPE, no alignment; distance strictly ``< threshold_mm``.
    pred: (b, h, 17, 3), gt: (b, 17, 3) -> (b,) in [0, 1].
    """
    pred, gt = _check(pred, gt)
    err = _best_joint_errors(pred, gt)[:, list(PCK_JOINTS)]
    return (err < threshold_mm).to(pred.dtype).mean(dim=-1)


def cps(pred: Tensor, gt: Tensor, r_max: int = 300) -> Tensor:
    """Correct Poses Score: area under the correct-pose rate for r = 1..r_max mm.

    After Procrustes alignment, a hypothesis is correct at ``r`` when every joint of
    ``CPS_JOINTS`` lies within ``r`` (``<= r``); a pose is correct when any hypothesis is
    (so the best hypothesis is taken separately at each r).  The area uses the trapezoid
    rule with unit steps, so a perfect prediction scores ``r_max - 1``.
    pred: (b, h, 17, 3), gt: (b, 17, 3) -> (b,).
    """
    pred, gt = _check(pred, gt)
    if int(r_max) < 2:
        raise ValueError(f"r_max must be an integer >= 2, got {r_max}")
    gt_rr = root_relative(gt)
    err = per_joint_error(procrustes_align(root_relative(pred), gt_rr), gt_rr)
    worst = err[..., list(CPS_JOINTS)].amax(dim=-1)              # (b, h)
    best = worst.amin(dim=1)                                       # (b,)
    radii = torch.arange(1, int(r_max) + 1, dtype=pred.dtype)
    correct = (best.unsqueeze(1) <= radii).to(pred.dtype)          # (b, r)
    return torch.trapezoid(correct, dim=1)


# --- calibration ----------------------------------------------------------------------------
def quantiles(pred: Tensor, gt: Tensor) -> Tensor:
    """The ground truth's quantile per pose and joint, ``-> (b, 17)`` in [0, 1].

    The median pose is the coordinate-wise median over hypotheses; the quantile is the
    fraction of hypotheses farther from it than the ground truth (root-relative poses).
    The pelvis is always 0 here (every pose has it at the origin).
    """
    pred, gt = _check(pred, gt)
    pred, gt = root_relative(pred), root_relative(gt)
    centre = _median(pred, dim=1)                                  # (b, 17, 3)
    d_hyp = torch.linalg.vector_norm(pred - centre.unsqueeze(1), dim=-1)  # (b, h, 17)
    d_gt = torch.linalg.vector_norm(gt - centre, dim=-1)           # (b, 17)
    return (d_hyp > d_gt.unsqueeze(1)).to(pred.dtype).mean(dim=1)


def reliability_from_quantiles(q: Tensor, n_levels: int = 21) -> tuple[Tensor, Tensor]:
    """Reliability curve from quantiles ``q: (b, 17)``: ``levels: (n,)`` and ``freq: (17, n)``.

    ``freq[j, k]`` is the fraction of poses whose quantile for joint ``j`` is ``<= levels[k]``,
    with ``levels = linspace(0, 1, n_levels)``; a calibrated model has ``freq ~ levels``.
    """
    if int(n_levels) < 2:
        raise ValueError(f"n_levels must be >= 2, got {n_levels}")
    if q.dim() != 2 or q.shape[1] != N_H36M:
        raise ValueError(f"quantiles must have shape (b, {N_H36M}), got {tuple(q.shape)}")
    levels = torch.linspace(0.0, 1.0, int(n_levels), dtype=q.dtype)
    freq = (q.unsqueeze(-1) <= levels).to(q.dtype).mean(dim=0)     # (17, n)
    return levels, freq


def ece_from_quantiles(q: Tensor, n_levels: int = 21) -> float:
    """Expected calibration error from quantiles ``q: (b, 17)``: per joint mean ``|freq - level|``,
    median over joints.

    The median runs over the 16 non-pelvis joints only: after :func:`root_relative` the
    pelvis is identical in every pose, its quantile is always 0 and its error a constant.
    """
    levels, freq = reliability_from_quantiles(q, n_levels)
    per_joint = (freq - levels).abs().mean(dim=-1)[list(NON_PELVIS)]
    return float(_median(per_joint, dim=0))


def reliability(pred: Tensor, gt: Tensor, n_levels: int = 21) -> tuple[Tensor, Tensor]:
    """Reliability curve of hypotheses ``pred`` against ``gt`` (see
    :func:`reliability_from_quantiles`)."""
    return reliability_from_quantiles(quantiles(pred, gt), n_levels)
