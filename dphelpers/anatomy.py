"""What a plausible human pose is: bone lengths and joint angles within limits (used by
:mod:`dphelpers.augment`, which keeps every augmented pose inside them).

``poses_m: (b, 17, 3)`` world metres, Z up, on the Human3.6M skeleton.  :data:`BONE_RANGE_M`
holds each bone's range over the embedded training data; :data:`LIMITS_DEG` holds the largest
angle of each measure of :func:`joint_angles`: anatomical ranges of motion, widened where the
embedded training data (all 10,882 training frames, mirrored) goes further, so that every
training pose passes.
"""
from __future__ import annotations

import torch

from .skeleton import H36M_PARENTS, L_HIP, N_H36M, R_HIP

__all__ = ["BONE_RANGE_M", "LIMITS_DEG", "bone_lengths", "within_bone_range", "joint_angles",
           "within_limits"]

_PARENTS = list(H36M_PARENTS[1:])
#: Per bone (bone k ends at joint k + 1), the (min, max) length in metres over the embedded
#: training split (``split_clips(load_mocap())``: CMU, boxing, holosoma climb, DeepMimic),
#: rounded outward to 0.1 mm; the test split lies within it too.
BONE_RANGE_M: tuple[tuple[float, float], ...] = (
    (0.0752, 0.1201), (0.3725, 0.4223), (0.4098, 0.4535), (0.0752, 0.1201), (0.3725, 0.4223),
    (0.4098, 0.4535), (0.1836, 0.3270), (0.2029, 0.2664), (0.0997, 0.1618), (0.0999, 0.1701),
    (0.1343, 0.2447), (0.2559, 0.3205), (0.1942, 0.2590), (0.1343, 0.2447), (0.2559, 0.3205),
    (0.1942, 0.2590))
#: Largest allowed angle (degrees) of each measure of :func:`joint_angles`: the larger of an
#: anatomical range of motion (AAOS normal values: elbow flexion 150, knee flexion 150, hip
#: flexion 140, hip extension 30, trunk flexion 80, neck flexion/extension 70, trunk rotation
#: 45) and the training data's maximum plus 5 degrees (knee 162.6, hip flexion 165.8 in the
#: DeepMimic and climbing clips, hip extension 29.3, spine 74.9, twist 59.6), rounded up.
LIMITS_DEG: dict[str, float] = {
    "elbow_flexion": 150.0, "knee_flexion": 168.0, "hip_flexion": 171.0,
    "hip_extension": 35.0, "spine_bend": 80.0, "neck_bend": 70.0, "torso_twist": 65.0}


def _check(poses_m: torch.Tensor, fn: str) -> None:
    if not isinstance(poses_m, torch.Tensor) or poses_m.ndim != 3 \
            or poses_m.shape[1:] != (N_H36M, 3) or not poses_m.is_floating_point():
        shape = tuple(poses_m.shape) if isinstance(poses_m, torch.Tensor) else type(poses_m)
        raise ValueError(f"{fn}: poses_m must be a float tensor (b, {N_H36M}, 3) in world "
                         f"metres, got {shape}")


def bone_lengths(poses_m: torch.Tensor) -> torch.Tensor:
    """``(b, 17, 3) -> (b, 16)`` metres; bone k ends at joint k + 1."""
    _check(poses_m, "bone_lengths")
    return torch.linalg.vector_norm(poses_m[:, 1:] - poses_m[:, _PARENTS], dim=-1)


def within_bone_range(poses_m: torch.Tensor, tol_m: float = 1e-5) -> torch.Tensor:
    """``(b,)`` bool: every bone within :data:`BONE_RANGE_M` (+- ``tol_m``)."""
    rng = torch.tensor(BONE_RANGE_M, dtype=poses_m.dtype, device=poses_m.device)
    lengths = bone_lengths(poses_m)
    return ((lengths >= rng[:, 0] - tol_m) & (lengths <= rng[:, 1] + tol_m)).all(dim=1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-9)


def _angle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Degrees between vectors ``(..., 3)``."""
    cos = (_unit(u) * _unit(v)).sum(-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def _frame(poses: torch.Tensor, left: int, right: int, low: int, high: int) -> torch.Tensor:
    """``(b, 3, 3)``, columns: left (from right to left joint), forward, up (low -> high,
    made orthogonal to left)."""
    x = _unit(poses[:, left] - poses[:, right])
    up = poses[:, high] - poses[:, low]
    z = _unit(up - (up * x).sum(-1, keepdim=True) * x)
    return torch.stack([x, torch.linalg.cross(x, z), z], dim=-1)


def _pelvis_frame(poses: torch.Tensor) -> torch.Tensor:
    return _frame(poses, L_HIP, R_HIP, 0, 7)


def _thorax_frame(poses: torch.Tensor) -> torch.Tensor:
    return _frame(poses, 11, 14, 7, 8)


def joint_angles(poses_m: torch.Tensor) -> dict[str, torch.Tensor]:
    """The measures :data:`LIMITS_DEG` bounds, degrees, ``(b, 2)`` (left, right) or ``(b,)``.

    elbow/knee flexion: angle between the two bones; hip flexion: thigh against the pelvis'
    down axis; hip extension: thigh behind the pelvis' coronal plane (0 when in front);
    spine bend: pelvis->spine against spine->thorax; neck bend: spine->thorax against
    thorax->head; torso twist: shoulder line against hip line, seen along the trunk.
    """
    _check(poses_m, "joint_angles")
    p = poses_m
    frame = _pelvis_frame(p)
    fwd, down = frame[..., 1], -frame[..., 2]
    thighs = torch.stack([p[:, 5] - p[:, 4], p[:, 2] - p[:, 1]], dim=1)         # (b, 2, 3)
    shins = torch.stack([p[:, 6] - p[:, 5], p[:, 3] - p[:, 2]], dim=1)
    upper = torch.stack([p[:, 12] - p[:, 11], p[:, 15] - p[:, 14]], dim=1)
    fore = torch.stack([p[:, 13] - p[:, 12], p[:, 16] - p[:, 15]], dim=1)
    behind = -(_unit(thighs) * fwd[:, None]).sum(-1).clamp(-1.0, 1.0)
    trunk = _unit(p[:, 8] - p[:, 0])
    hip_line, sh_line = p[:, L_HIP] - p[:, R_HIP], p[:, 11] - p[:, 14]
    flat = [v - (v * trunk).sum(-1, keepdim=True) * trunk for v in (hip_line, sh_line)]
    return {"elbow_flexion": _angle(upper, fore), "knee_flexion": _angle(thighs, shins),
            "hip_flexion": _angle(thighs, down[:, None]),
            "hip_extension": torch.rad2deg(torch.asin(behind)).clamp_min(0.0),
            "spine_bend": _angle(p[:, 7] - p[:, 0], p[:, 8] - p[:, 7]),
            "neck_bend": _angle(p[:, 8] - p[:, 7], p[:, 10] - p[:, 8]),
            "torso_twist": _angle(*flat)}


def within_limits(poses_m: torch.Tensor, limits: dict[str, float] | None = None
                  ) -> torch.Tensor:
    """``(b,)`` bool: every measure of :func:`joint_angles` at most its limit."""
    limits = LIMITS_DEG if limits is None else limits
    ok = torch.ones(poses_m.shape[0], dtype=torch.bool, device=poses_m.device)
    for name, value in joint_angles(poses_m).items():
        ok &= (value <= limits[name]).reshape(value.shape[0], -1).all(dim=1)
    return ok
