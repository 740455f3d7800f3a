"""The MPII PCKh rule on heatmaps: is a joint's argmax within half a head size? (notebook 02)

MPII scores a predicted joint as correct when it lies within ``0.5 * head_size`` of the truth,
with ``head_size = 0.6 * diagonal of the annotated head box`` (PCKh@0.5).  A simulated sample
has no head box, so we define one from its own 2D joints: the square whose side is the 2D
distance ``L`` from the upper neck (MPII 8) to the head top (MPII 9), so
``head_size = 0.6 * sqrt(2) * L`` (about ``0.85 L``).  On the embedded data (heatmap pixels of
the 64 x 64 map) ``L`` has a median of about 9 px, so the PCKh@0.5 radius is about 3.7 px.

``heatmaps: (b, 16, H, W)``, ``joints_hm: (b, 16, 2)`` (x, y) in heatmap pixels (pixel ``i`` has
its centre at coordinate ``i``), ``head_size_px: (b,)``.  Used by :mod:`dphelpers.heatmaps` (the
simulator's ``failed`` flag) and :mod:`dphelpers.calibration` (the calibration table).
"""
from __future__ import annotations

import math

import torch

from .skeleton import MPII_NAMES, N_MPII

__all__ = ["UPPER_NECK", "HEAD_TOP", "HEAD_BOX_FACTOR", "argmax_px", "head_size_px",
           "pckh_failures", "pckh_failures_own_head"]

UPPER_NECK = MPII_NAMES.index("UpperNeck")
HEAD_TOP = MPII_NAMES.index("HeadTop")
#: head size = HEAD_BOX_FACTOR * |head top - upper neck|: 0.6 x the diagonal of a square of
#: that side.
HEAD_BOX_FACTOR = 0.6 * math.sqrt(2.0)


def _shape(x) -> object:
    """A tensor's shape (for error messages), else its type's name."""
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def _check_joints(joints_hm: torch.Tensor, name: str = "joints_hm") -> None:
    if not isinstance(joints_hm, torch.Tensor) or joints_hm.ndim != 3 \
            or tuple(joints_hm.shape[1:]) != (N_MPII, 2):
        got = _shape(joints_hm)
        raise ValueError(f"{name} must be a tensor of shape (b, {N_MPII}, 2), got {got}")


def argmax_px(heatmaps: torch.Tensor) -> torch.Tensor:
    """Argmax pixel of each map: ``heatmaps: (b, j, H, W)`` -> ``(b, j, 2)`` float (x, y) =
    (column, row)."""
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be a tensor of shape (b, j, H, W), got {_shape(heatmaps)}")
    idx = heatmaps.flatten(2).argmax(dim=2)
    width = heatmaps.shape[3]
    return torch.stack([idx % width, idx // width], dim=-1).float()


def head_size_px(joints_hm: torch.Tensor) -> torch.Tensor:
    """Head size ``(b,)`` in heatmap pixels: ``0.6 * sqrt(2) * |head top - upper neck|`` (2D).

    ``joints_hm: (b, 16, 2)``.  The head box is the square whose side is the neck-to-top
    distance; MPII's head size is 0.6 x its diagonal.
    """
    _check_joints(joints_hm)
    neck_to_top = joints_hm[:, HEAD_TOP] - joints_hm[:, UPPER_NECK]              # (b, 2)
    return HEAD_BOX_FACTOR * neck_to_top.float().norm(dim=-1)


def pckh_failures(heatmaps: torch.Tensor, joints_hm: torch.Tensor, head_size_px: torch.Tensor,
                  alpha: float = 0.5) -> torch.Tensor:
    """PCKh@alpha failures ``(b, 16)`` bool: the argmax lies more than ``alpha * head_size_px``
    from the true joint.

    ``heatmaps: (b, 16, H, W)``; ``joints_hm: (b, 16, 2)`` true joints (x, y) in the maps'
    pixels; ``head_size_px: (b,)``.  Distances are Euclidean, between the argmax pixel's
    centre and the (sub-pixel) truth; a distance equal to the radius counts as correct.
    """
    _check_joints(joints_hm)
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.ndim != 4 \
            or tuple(heatmaps.shape[:2]) != tuple(joints_hm.shape[:2]):
        raise ValueError(f"heatmaps must have shape ({joints_hm.shape[0]}, {N_MPII}, H, W) to "
                         f"match joints_hm, got {_shape(heatmaps)}")
    b = joints_hm.shape[0]
    if not isinstance(head_size_px, torch.Tensor) or tuple(head_size_px.shape) != (b,):
        raise ValueError(f"head_size_px must have shape ({b},), got {_shape(head_size_px)}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    err_sq = ((argmax_px(heatmaps) - joints_hm.float()) ** 2).sum(dim=-1)         # (b, 16) px^2
    return err_sq > (alpha * head_size_px.float()[:, None]) ** 2


def pckh_failures_own_head(heatmaps: torch.Tensor, joints_hm: torch.Tensor,
                           alpha: float = 0.5) -> torch.Tensor:
    """:func:`pckh_failures` with each sample's head size from its own joints
    (:func:`head_size_px`), computed on squared distances (no square roots: cheap on the
    training stream).  ``heatmaps: (b, 16, H, W)``, ``joints_hm: (b, 16, 2)`` -> ``(b, 16)``."""
    _check_joints(joints_hm)
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.ndim != 4 \
            or tuple(heatmaps.shape[:2]) != tuple(joints_hm.shape[:2]):
        raise ValueError(f"heatmaps must have shape ({joints_hm.shape[0]}, {N_MPII}, H, W) to "
                         f"match joints_hm, got {_shape(heatmaps)}")
    neck_to_top = (joints_hm[:, HEAD_TOP] - joints_hm[:, UPPER_NECK]).float()
    head_sq = HEAD_BOX_FACTOR ** 2 * (neck_to_top ** 2).sum(dim=-1)                # (b,) px^2
    err_sq = ((argmax_px(heatmaps) - joints_hm.float()) ** 2).sum(dim=-1)         # (b, 16)
    return err_sq > alpha ** 2 * head_sq[:, None]
