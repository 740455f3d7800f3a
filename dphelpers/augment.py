"""Pose augmentation that stays a plausible human pose (issue 25, item 2; no notebook yet).

Ideas from PoseAug (Gong et al., CVPR 2021: change joint angles, bone lengths and the body's
global orientation) and the usual practice of lifting networks (swap body parts between
poses), written for this project.  One entry point, called once per training batch::

    poses_m = augment_poses(poses_m, generator, AugmentConfig(enabled=True))

``poses_m: (b, 17, 3)`` world metres, Z up, pelvis at the hip midpoint (the mocap files'
convention).  Pure torch, batch-vectorised, on the poses' device with no host sync; every
random number comes from ``generator`` (on that device).  ``enabled=False`` (the default, so
today's models stay reproducible) returns the input tensor itself and draws nothing.

Transforms, in this order, each applied per pose with its probability:

1. **joint angles**: the subtree below a shoulder, elbow, hip, knee, the spine or the neck
   turns about that joint by a random rotation (angle ~ N(0, angle_std_deg), cut at
   angle_max_deg): bone lengths stay exactly;
2. **body swap**: the upper body (spine and up) of another pose of the batch, carried over in
   the pelvis frame; **limb swap**: one arm (thorax frame) or leg (pelvis frame) of another;
3. **bones**: body proportions (legs, arms, torso, head scaled apart, left = right) and a
   little per-bone jitter; every bone length is then clamped into :data:`BONE_RANGE_M`;
4. **global rotation**: a lean (tilt about a random horizontal axis through the pelvis,
   up to lean_max_deg) or, with p_lie, lying (a tilt of 75-105 degrees).

A proposal is kept only where the result passes :func:`~dphelpers.anatomy.within_limits`
(joint angles) and :func:`~dphelpers.anatomy.within_bone_range`, else that pose keeps its
previous state: a pose that starts within the limits ends within them.  The limits are in
:mod:`dphelpers.anatomy`.
Wider cameras: :func:`wide_camera_config` (CameraConfig already has elevation and roll).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from .anatomy import (_PARENTS, BONE_RANGE_M, _check, _pelvis_frame, _thorax_frame, _unit,
                      within_bone_range, within_limits)
from .cameras import CameraConfig
from .configs import from_dict
from .skeleton import H36M_PARENTS, L_HIP, N_H36M, R_HIP

__all__ = ["AugmentConfig", "augment_poses", "wide_camera_config"]

# joint -> the joints that turn with it (its subtree); the rotation centre is the joint
_SUBTREES = {11: (12, 13), 14: (15, 16), 12: (13,), 15: (16,), 1: (2, 3), 4: (5, 6),
             2: (3,), 5: (6,), 7: (8, 9, 10, 11, 12, 13, 14, 15, 16), 8: (9, 10)}
_UPPER = (7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
_LIMBS = ((11, 12, 13), (14, 15, 16), (1, 2, 3), (4, 5, 6))     # shoulder/hip, mid, end
# bone groups for proportions (bone index = child joint - 1): legs, arms, torso, head
_BONE_GROUP = (0, 0, 0, 0, 0, 0, 2, 2, 3, 3, 2, 1, 1, 2, 1, 1)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (per pose) and ranges of the transforms; ``enabled=False``: identity."""

    enabled: bool = False
    p_angles: float = 0.5
    angle_std_deg: float = 15.0
    angle_max_deg: float = 35.0
    p_swap_body: float = 0.2
    p_swap_limb: float = 0.2
    p_bones: float = 0.5
    proportion_range: tuple[float, float] = (0.85, 1.15)
    bone_jitter: float = 0.03
    p_lean: float = 0.3
    lean_max_deg: float = 45.0
    p_lie: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"AugmentConfig.enabled must be True or False, got {self.enabled!r}")
        for f in fields(self):
            if f.name.startswith("p_") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"AugmentConfig.{f.name} must be in [0, 1], "
                                 f"got {getattr(self, f.name)}")
        lo, hi = self.proportion_range
        if not 0 < lo <= hi:
            raise ValueError(f"AugmentConfig.proportion_range must be (lo, hi) with "
                             f"0 < lo <= hi, got {self.proportion_range}")
        if self.p_lean + self.p_lie > 1.0:
            raise ValueError(f"AugmentConfig: p_lean + p_lie must be <= 1, got "
                             f"{self.p_lean} + {self.p_lie}")
        for name in ("angle_std_deg", "angle_max_deg", "bone_jitter", "lean_max_deg"):
            if getattr(self, name) < 0:
                raise ValueError(f"AugmentConfig.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def at_strength(cls, strength: float) -> "AugmentConfig":
        """The default transforms made weaker or stronger, enabled (``train --augment-strength``).

        Every probability and magnitude of the defaults times ``strength``: probabilities
        capped at 1 (and ``p_lean + p_lie`` at 1), joint-angle and lean angles at 90 degrees,
        the proportion range ``1 +- 0.15 strength`` kept above 0.5.  ``1.0`` is
        ``AugmentConfig(enabled=True)`` exactly.  Whatever the strength, a proposal outside the
        joint limits or bone range is still refused (:func:`_accept`)."""
        if not (isinstance(strength, (int, float)) and math.isfinite(strength) and strength > 0):
            raise ValueError(f"augmentation strength must be a number > 0, got {strength!r}")
        d = cls(enabled=True)
        if strength == 1.0:
            return d
        p = {f.name: min(1.0, getattr(d, f.name) * strength) for f in fields(d)
             if f.name.startswith("p_")}
        if p["p_lean"] + p["p_lie"] > 1.0:
            total = p["p_lean"] + p["p_lie"]
            p["p_lean"], p["p_lie"] = p["p_lean"] / total, p["p_lie"] / total
        lo, hi = d.proportion_range
        return replace(d, **p, angle_std_deg=min(90.0, d.angle_std_deg * strength),
                       angle_max_deg=min(90.0, d.angle_max_deg * strength),
                       proportion_range=(max(0.5, 1 - (1 - lo) * strength),
                                         1 + (hi - 1) * strength),
                       bone_jitter=d.bone_jitter * strength,
                       lean_max_deg=min(90.0, d.lean_max_deg * strength))

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        """From ``asdict(config)``; an unknown key is an error naming it
        (:func:`~dphelpers.configs.from_dict`)."""
        return from_dict(cls, d)


def _rotation(axis: torch.Tensor, angle_rad: torch.Tensor) -> torch.Tensor:
    """Rodrigues: unit ``axis (b, 3)``, ``angle_rad (b,)`` -> ``(b, 3, 3)``."""
    k = _unit(axis)
    zero = torch.zeros_like(angle_rad)
    kx = torch.stack([torch.stack([zero, -k[:, 2], k[:, 1]], -1),
                      torch.stack([k[:, 2], zero, -k[:, 0]], -1),
                      torch.stack([-k[:, 1], k[:, 0], zero], -1)], dim=1)
    s, c = angle_rad.sin()[:, None, None], angle_rad.cos()[:, None, None]
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device).expand_as(kx)
    return eye + s * kx + (1 - c) * (kx @ kx)


def _accept(old: torch.Tensor, new: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """``new`` where ``apply`` and the result is within limits and bone range, else ``old``."""
    ok = apply & within_limits(new) & within_bone_range(new)
    return torch.where(ok[:, None, None], new, old)


def _turn(poses: torch.Tensor, joint: int, rot: torch.Tensor) -> torch.Tensor:
    sub = list(_SUBTREES[joint])
    centre = poses[:, joint:joint + 1]
    out = poses.clone()
    out[:, sub] = centre + torch.einsum("bij,bkj->bki", rot, poses[:, sub] - centre)
    return out


def _angles_step(p, cfg, gen, b):
    """Turn the subtree below each joint of ``_SUBTREES`` by a small random rotation."""
    apply = torch.rand(b, generator=gen, device=gen.device) < cfg.p_angles
    for joint in _SUBTREES:
        axis = torch.randn(b, 3, generator=gen, device=gen.device, dtype=p.dtype)
        ang = torch.randn(b, generator=gen, device=gen.device, dtype=p.dtype)
        ang = torch.deg2rad((ang * cfg.angle_std_deg).clamp(-cfg.angle_max_deg,
                                                            cfg.angle_max_deg))
        p = _accept(p, _turn(p, joint, _rotation(axis, ang)), apply)
    return p


def _carry(p: torch.Tensor, src: torch.Tensor, joints: tuple[int, ...], frame_fn
           ) -> torch.Tensor:
    """The bones ending at ``joints`` (parents first) taken from ``src``, turned from src's
    frame into p's (``frame_fn``), hung from p's joints: ``(b, 17, 3)``."""
    rel = frame_fn(p) @ frame_fn(src).transpose(1, 2)                       # (b, 3, 3)
    out = p.clone()
    for j in joints:                                   # H36M order: parents come first
        parent = H36M_PARENTS[j]
        out[:, j] = out[:, parent] + torch.einsum("bij,bj->bi", rel, src[:, j] - src[:, parent])
    return out


def _swap_step(p, cfg, gen, b):
    """Upper body, then one limb, from another pose of the batch (shifted by a random k)."""
    dev = gen.device
    shift = torch.randint(1, max(b, 2), (1,), generator=gen, device=dev)
    src = p[(torch.arange(b, device=dev) + shift) % b]
    body = torch.rand(b, generator=gen, device=dev) < cfg.p_swap_body
    p = _accept(p, _carry(p, src, _UPPER, _pelvis_frame), body)
    limb = torch.rand(b, generator=gen, device=dev) < cfg.p_swap_limb
    which = torch.randint(0, len(_LIMBS), (b,), generator=gen, device=dev)
    for k, (_, mid, end) in enumerate(_LIMBS):
        frame_fn = _thorax_frame if k < 2 else _pelvis_frame
        p = _accept(p, _carry(p, src, (mid, end), frame_fn), limb & (which == k))
    return p


def _bones_step(p, cfg, gen, b):
    """Proportions (4 groups) times per-bone jitter, clamped into ``BONE_RANGE_M``."""
    dev = gen.device
    apply = torch.rand(b, generator=gen, device=dev) < cfg.p_bones
    lo, hi = cfg.proportion_range
    groups = lo + (hi - lo) * torch.rand(b, 4, generator=gen, device=dev, dtype=p.dtype)
    jitter = 1 + cfg.bone_jitter * torch.randn(b, N_H36M - 1, generator=gen, device=dev,
                                               dtype=p.dtype)
    for right, left in ((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)):
        jitter[:, left - 1] = jitter[:, right - 1]                 # left and right bones equal
    scale = groups[:, list(_BONE_GROUP)] * jitter
    rng = torch.tensor(BONE_RANGE_M, dtype=p.dtype, device=p.device)
    bones = p[:, 1:] - p[:, _PARENTS]
    length = torch.linalg.vector_norm(bones, dim=-1)
    target = (length * scale).clamp(rng[:, 0], rng[:, 1])
    bones = bones * (target / length.clamp_min(1e-9))[..., None]
    joints = [p[:, 0]]
    for child in range(1, N_H36M):
        joints.append(joints[H36M_PARENTS[child]] + bones[:, child - 1])
    return _accept(p, torch.stack(joints, dim=1), apply)


def _global_step(p, cfg, gen, b):
    """Lean or lie: a tilt about a random horizontal axis through the pelvis."""
    dev, dt = gen.device, p.dtype
    lean = torch.deg2rad(cfg.lean_max_deg * torch.rand(b, generator=gen, device=dev, dtype=dt))
    lie = torch.deg2rad(75.0 + 30.0 * torch.rand(b, generator=gen, device=dev, dtype=dt))
    heading = 2 * math.pi * torch.rand(b, generator=gen, device=dev, dtype=dt)
    which = torch.rand(b, generator=gen, device=dev)
    angle = torch.where(which < cfg.p_lie, lie, torch.where(
        which < cfg.p_lie + cfg.p_lean, lean, torch.zeros_like(lean)))
    axis = torch.stack([heading.cos(), heading.sin(), torch.zeros_like(heading)], dim=-1)
    centre = p[:, :1]
    return centre + torch.einsum("bij,bkj->bki", _rotation(axis, angle), p - centre)


def augment_poses(poses_m: torch.Tensor, generator: torch.Generator,
                  config: AugmentConfig | None = None) -> torch.Tensor:
    """Augmented poses ``(b, 17, 3) -> (b, 17, 3)``, world metres, Z up, same dtype and device.

    Disabled: returns ``poses_m`` itself and draws nothing.  Enabled: a fixed number of draws
    from ``generator`` per call (whatever the probabilities), so a seed gives the same poses;
    the pelvis stays where it was and equals the hip midpoint; bones stay within
    :data:`BONE_RANGE_M`, angles within :data:`LIMITS_DEG` (for inputs within them).
    """
    _check(poses_m, "augment_poses")
    config = AugmentConfig() if config is None else config
    if not isinstance(config, AugmentConfig):
        raise ValueError(f"augment_poses: config must be an AugmentConfig, "
                         f"got {type(config).__name__}")
    if not config.enabled:
        return poses_m
    if generator.device.type != poses_m.device.type:
        raise ValueError(f"augment_poses: generator on {generator.device}, poses on "
                         f"{poses_m.device}: put them on one device")
    b = poses_m.shape[0]
    p = poses_m
    for step in (_angles_step, _swap_step, _bones_step, _global_step):
        p = step(p, config, generator, b)
    pelvis = 0.5 * (p[:, L_HIP] + p[:, R_HIP])
    return torch.cat([pelvis[:, None], p[:, 1:]], dim=1)


def wide_camera_config(base: CameraConfig | None = None, elevation_deg=(-30.0, 70.0),
                       roll_deg=(-20.0, 20.0)) -> CameraConfig:
    """``base`` (default ``CameraConfig()``) with a wider camera elevation and roll (for
    training with augmentation)."""
    return replace(CameraConfig() if base is None else base, elevation_deg=tuple(elevation_deg),
                   roll_deg=tuple(roll_deg))
