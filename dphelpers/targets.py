"""The network's own units: poses in millimetres <-> targets ``x0`` (notebook 04).

Both models (:class:`~dphelpers.diffusion.DiffPose` and :class:`~dphelpers.lifter.Lifter`)
predict the same 48 numbers: the 16 non-pelvis joints in metres, centred per axis over those
16 joints and multiplied by ``pose_scale`` (REFERENCE.md "Targets"), so both are scored alike.
Poses enter and leave in millimetres (H36M-17, camera frame).
"""
from __future__ import annotations

import torch
from einops import rearrange

from .skeleton import L_HIP, N_H36M, R_HIP

__all__ = ["poses_to_x0", "x0_to_poses"]


def poses_to_x0(poses_3d_mm: torch.Tensor, pose_scale: float = 10.0) -> torch.Tensor:
    """``(b, 17, 3)`` mm -> network targets ``(b, 48)``: 16 non-pelvis joints, metres,
    centred per axis over those joints, times ``pose_scale``."""
    if poses_3d_mm.dim() != 3 or poses_3d_mm.shape[1:] != (N_H36M, 3):
        raise ValueError(f"poses_3d_mm must have shape (b, 17, 3), got {tuple(poses_3d_mm.shape)}")
    p = poses_3d_mm[:, 1:] / 1000.0
    p = p - p.mean(dim=1, keepdim=True)
    return rearrange(p * pose_scale, "b j c -> b (j c)")


def x0_to_poses(x0: torch.Tensor, pose_scale: float = 10.0) -> torch.Tensor:
    """``(..., 48)`` -> ``(..., 17, 3)`` mm, pelvis re-inserted at the hips' midpoint = origin."""
    p = rearrange(x0, "... (j c) -> ... j c", c=3) / pose_scale * 1000.0
    pelvis = 0.5 * (p[..., R_HIP - 1, :] + p[..., L_HIP - 1, :])
    p = p - pelvis.unsqueeze(-2)
    return torch.cat([torch.zeros_like(p[..., :1, :]), p], dim=-2)
