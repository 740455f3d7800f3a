"""How well a 3D pose explains 2D joints: the weak-perspective fit (notebook 06, ``predict``).

A weak-perspective camera drops the depth and keeps one scale ``s`` and one 2D shift ``t``:
``u = s * X + t_u``, ``v = s * Y + t_v`` for a pose in camera coordinates (x right, y down,
the axes of the image).  For a 3D pose and the 2D joints of the same image, the least-squares
``s >= 0`` and ``t`` have a closed form, and the root-mean-square of what is left over (in the
2D joints' units, here heatmap pixels) says how well the pose fits the image.  On the test
split the 2D joints are the heatmaps' argmax; on a photo they are the detector's own joints,
so the two numbers compare like with like (:mod:`dphelpers.evaluation.realcheck`).

The 16 MPII joints of the heatmaps sit at the Human3.6M joints ``skeleton.H36M_TO_MPII``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..skeleton import H36M_TO_MPII, N_H36M, N_MPII

__all__ = ["WeakFit", "weak_perspective_fit"]


@dataclass(frozen=True)
class WeakFit:
    """``scale: (...,)`` pixels per mm, ``shift: (..., 2)`` pixels, ``rms: (...,)`` pixels
    (root-mean-square 2D distance over the 16 joints), ``residuals: (..., 16, 2)``."""

    scale: torch.Tensor
    shift: torch.Tensor
    rms: torch.Tensor
    residuals: torch.Tensor


def _shape(x) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def weak_perspective_fit(poses_mm: torch.Tensor, joints_2d: torch.Tensor) -> WeakFit:
    """Fit ``poses_mm: (..., 17, 3)`` (Human3.6M, camera axes) to ``joints_2d: (..., 16, 2)``
    (MPII order); the leading dimensions broadcast, e.g. ``(b, h, 17, 3)`` against
    ``(b, 1, 16, 2)`` fits every hypothesis of every image to that image's joints.

    Raises ValueError for wrong shapes or non-finite values, naming the argument.
    """
    for name, x, joints, dim in (("poses_mm", poses_mm, N_H36M, 3),
                                 ("joints_2d", joints_2d, N_MPII, 2)):
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or tuple(x.shape[-2:]) != (joints, dim):
            raise ValueError(f"weak_perspective_fit: {name} must be a tensor of shape "
                             f"(..., {joints}, {dim}), got {_shape(x)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"weak_perspective_fit: {name} holds non-finite values")
    xy = poses_mm[..., list(H36M_TO_MPII), :2].double()
    uv = joints_2d.double()
    xy, uv = torch.broadcast_tensors(xy, uv)
    xy_mean, uv_mean = xy.mean(-2, keepdim=True), uv.mean(-2, keepdim=True)
    xc, uc = xy - xy_mean, uv - uv_mean
    # least squares over both image axes at once; a negative scale would turn the pose upside
    # down, which no camera does: the best scale >= 0 is then 0.
    denom = (xc * xc).sum((-2, -1)).clamp_min(1e-12)
    scale = ((xc * uc).sum((-2, -1)) / denom).clamp_min(0.0)
    shift = (uv_mean - scale[..., None, None] * xy_mean).squeeze(-2)
    residuals = uv - (scale[..., None, None] * xy + shift[..., None, :])
    rms = residuals.pow(2).sum(-1).mean(-1).sqrt()
    return WeakFit(scale.float(), shift.float(), rms.float(), residuals.float())


