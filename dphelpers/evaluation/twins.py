"""Depth-flip twins of a pose (notebook 05); whether hypotheses cover them is
:mod:`dphelpers.evaluation.coverage`.

A single image fixes each joint's camera ray, not its depth.  Given a parent joint and a bone
length, the child joint can sit at either intersection of its ray with the sphere of that
radius around the parent: "forward" or "backward" in depth.  Flipping one limb bone to its
other solution gives a *depth-flip twin*: a pose with identical 2D projection and identical
bone lengths.  These are the real alternatives a multi-hypothesis model should cover.

Conventions:

- Camera frame, millimetres, pinhole through the origin: ``P`` projects to ``P_xy / P_z``;
  its ray is ``{s * P / |P|}``.  Twins must be built from *absolute* camera-frame poses
  (e.g. ``ViewBatch.poses_cam_mm``), not root-relative ones: the rays go through the camera.
- Only the 8 limb bones are flipped (:data:`FLIP_LIMBS`, upper arm, forearm, thigh, shin).
  A thigh is hip -> knee: the hips never move, so the pelvis (the hips' midpoint) never moves
  and :func:`dphelpers.metrics.root_relative` subtracts the same point from a pose and from
  every one of its twins.  Compare twins with hypotheses only after making both
  root-relative that way (:func:`coverage_table` does).
- After a flip, the descendants of the moved joint are re-solved on their own rays so that
  they keep their 2D position and bone length; of the two roots the one whose depth offset to
  its parent is closer to the original offset is kept (which keeps the offset's sign).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from ..skeleton import H36M_PARENTS, N_H36M

__all__ = [
    "FLIP_LIMBS", "LIMB_JOINTS", "Twin", "TwinBatch", "limb_flip", "flip_table", "depth_flip_twins",
    "depth_flip_twins_batch",
]

#: The 8 limb bones as (parent, child) H36M indices, in tree order: right thigh, right shin,
#: left thigh, left shin, left upper arm, left forearm, right upper arm, right forearm.
FLIP_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 3), (4, 5), (5, 6), (11, 12), (12, 13), (14, 15), (15, 16),
)
#: Joints that some flip can move: knees, ankles, elbows, wrists.
LIMB_JOINTS: tuple[int, ...] = tuple(sorted(c for _, c in FLIP_LIMBS))


def _descendants(joint: int) -> tuple[int, ...]:
    """Descendants of ``joint`` in tree order (H36M indices grow away from the root)."""
    out: list[int] = []
    for j in range(N_H36M):
        p = H36M_PARENTS[j]
        if p == joint or p in out:
            out.append(j)
    return tuple(out)


def _moved(flips: tuple[int, ...]) -> tuple[int, ...]:
    joints: set[int] = set()
    for f in flips:
        c = FLIP_LIMBS[f][1]
        joints.update((c, *_descendants(c)))
    return tuple(sorted(joints))


def _check_pose(x, name: str, lead: tuple[int, ...] | None = None) -> Tensor:
    x = torch.as_tensor(x)
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    want = len(lead) if lead is not None else None
    if x.shape[-2:] != (N_H36M, 3) or (want is not None and x.ndim != want + 2):
        dims = ", ".join(lead) if lead else "..."
        raise ValueError(f"{name} must have shape ({dims}, {N_H36M}, 3), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


# --- one limb ------------------------------------------------------------------------------
def limb_flip(parent: Tensor, child: Tensor) -> Tensor | None:
    """The other point of the child's camera ray at the bone's length from the parent.

    parent, child: (3,) camera frame.  With ``u = child / |child|`` the ray point ``s u`` is at
    distance ``L = |child - parent|`` from the parent when ``s^2 - 2 s (u . parent) + |parent|^2
    - L^2 = 0``.  The child is the root ``s0 = |child|``; the roots sum to ``2 u . parent``, so
    the other one is ``2 u . parent - s0``.  Returns ``None`` when the discriminant is negative
    numerically (the ray only grazes the sphere).
    """
    parent, child = torch.as_tensor(parent), torch.as_tensor(child)
    if parent.shape != (3,) or child.shape != (3,):
        raise ValueError(f"limb_flip: parent and child must have shape (3,), got "
                         f"{tuple(parent.shape)} and {tuple(child.shape)}")
    p, c = parent.double(), child.double()
    s0 = torch.linalg.vector_norm(c)
    if s0 == 0:
        raise ValueError("limb_flip: child is at the camera centre, it has no ray")
    u = c / s0
    a = u @ p
    disc = a * a - p @ p + (c - p) @ (c - p)
    if disc < 0:
        return None
    return ((2 * a - s0) * u).to(child.dtype)


def _resolve(parent: Tensor, ray: Tensor, length: Tensor, offset_z: Tensor) -> Tensor | None:
    """Point on ``ray`` (unit, (3,)) at ``length`` from ``parent`` whose depth offset to the parent
    is closest to ``offset_z``; ``None`` without a real solution."""
    a = ray @ parent
    disc = a * a - parent @ parent + length * length
    if disc < 0:
        return None
    roots = a + torch.stack([disc.sqrt(), -disc.sqrt()])
    err = (roots * ray[2] - parent[2] - offset_z).abs()
    return roots[int(torch.argmin(err))] * ray


# --- twins of one pose ---------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Twin:
    """A depth-flip twin: ``pose: (17, 3)`` (same frame and units as the input), the indices into
    :data:`FLIP_LIMBS` that were flipped, and the joints that moved (flipped children and their
    descendants)."""

    pose: Tensor
    flipped: tuple[int, ...]
    moved_joints: tuple[int, ...]


def flip_table(max_flips: int = 2) -> tuple[tuple[int, ...], ...]:
    """All combinations of 1..``max_flips`` limbs (indices into :data:`FLIP_LIMBS`, ascending =
    tree order): 8 singles then 28 pairs for ``max_flips=2``."""
    if int(max_flips) != max_flips or not 1 <= max_flips <= len(FLIP_LIMBS):
        raise ValueError(f"max_flips must be an integer in [1, {len(FLIP_LIMBS)}], got {max_flips}")
    return tuple(c for n in range(1, int(max_flips) + 1)
                 for c in itertools.combinations(range(len(FLIP_LIMBS)), n))


def depth_flip_twins(pose_cam_mm: Tensor, max_flips: int = 2,
                     min_separation_mm: float = 30.0) -> list[Twin]:
    """All depth-flip twins of one absolute camera-frame pose ``(17, 3)``, as :class:`Twin`\\ s.

    Flips are applied in tree order; a flip whose two solutions are closer than
    ``min_separation_mm`` (measured when it is applied) is no real alternative and its
    combination is skipped, as is one whose descendants have no real solution.
    """
    pose = _check_pose(pose_cam_mm, "pose_cam_mm", ())
    if min_separation_mm < 0:
        raise ValueError(f"min_separation_mm must be >= 0, got {min_separation_mm}")
    orig = pose.double()
    if (orig[:, 2] <= 0).any():
        raise ValueError("pose_cam_mm must lie in front of the camera (z > 0 for every joint)")
    rays = orig / torch.linalg.vector_norm(orig, dim=-1, keepdim=True)
    twins = []
    for combo in flip_table(max_flips):
        cur, ok = orig.clone(), True
        for f in combo:
            p, c = FLIP_LIMBS[f]
            new = limb_flip(cur[p], cur[c])
            if new is None or torch.linalg.vector_norm(new - cur[c]) < min_separation_mm:
                ok = False
                break
            cur[c] = new
            for d in _descendants(c):
                q = H36M_PARENTS[d]
                length = torch.linalg.vector_norm(orig[d] - orig[q])
                pt = _resolve(cur[q], rays[d], length, orig[d, 2] - orig[q, 2])
                if pt is None:
                    ok = False
                    break
                cur[d] = pt
            if not ok:
                break
        if ok:
            twins.append(Twin(cur.to(pose.dtype), combo, _moved(combo)))
    return twins


@dataclass(frozen=True, eq=False)
class TwinBatch:
    """Twins of a batch, padded: ``poses: (b, k, 17, 3)`` (an invalid slot holds the original
    pose), ``valid: (b, k)`` bool, ``flips``: the k combinations (:func:`flip_table`) and
    ``moved_mask: (k, 17)`` bool, the joints each combination moves."""

    poses: Tensor
    valid: Tensor
    flips: tuple[tuple[int, ...], ...]
    moved_mask: Tensor

    @property
    def joints_mask(self) -> Tensor:
        """``moved_mask`` expanded to ``(b, k, 17)``, as :func:`coverage` wants it."""
        return self.moved_mask.unsqueeze(0).expand(self.valid.shape[0], -1, -1)


def depth_flip_twins_batch(poses_cam_mm: Tensor, max_flips: int = 2,
                           min_separation_mm: float = 30.0) -> TwinBatch:
    """:func:`depth_flip_twins` for ``poses_cam_mm: (b, 17, 3)`` at once (loops over the flip
    combinations only, never over samples)."""
    poses = _check_pose(poses_cam_mm, "poses_cam_mm", ("b",))
    if min_separation_mm < 0:
        raise ValueError(f"min_separation_mm must be >= 0, got {min_separation_mm}")
    orig = poses.double()
    if (orig[..., 2] <= 0).any():
        raise ValueError("poses_cam_mm must lie in front of the camera (z > 0 for every joint)")
    rays = orig / torch.linalg.vector_norm(orig, dim=-1, keepdim=True)
    parents = torch.tensor([max(p, 0) for p in H36M_PARENTS])
    lengths = torch.linalg.vector_norm(orig - orig[:, parents], dim=-1)      # (b, 17)
    offsets = orig[..., 2] - orig[:, parents, 2]                              # (b, 17)
    flips = flip_table(max_flips)
    out, valid = [], []
    for combo in flips:
        cur = orig.clone()
        ok = torch.ones(orig.shape[0], dtype=torch.bool, device=orig.device)
        for f in combo:
            p, c = FLIP_LIMBS[f]
            u, s0 = rays[:, c], torch.linalg.vector_norm(cur[:, c], dim=-1)
            a = (u * cur[:, p]).sum(-1)
            disc = a * a - (cur[:, p] ** 2).sum(-1) + lengths[:, c] ** 2
            new = (2 * a - s0).unsqueeze(-1) * u
            ok &= (disc >= 0) & (torch.linalg.vector_norm(new - cur[:, c], dim=-1)
                                 >= min_separation_mm)
            cur[:, c] = new
            for d in _descendants(c):
                q, u = H36M_PARENTS[d], rays[:, d]
                a = (u * cur[:, q]).sum(-1)
                disc = a * a - (cur[:, q] ** 2).sum(-1) + lengths[:, d] ** 2
                ok &= disc >= 0
                root = disc.clamp_min(0).sqrt()
                roots = torch.stack([a + root, a - root], dim=-1)               # (b, 2)
                err = (roots * u[:, 2:3] - cur[:, q, 2:3] - offsets[:, d:d + 1]).abs()
                s = torch.where(err[:, 0] <= err[:, 1], roots[:, 0], roots[:, 1])
                cur[:, d] = s.unsqueeze(-1) * u
        out.append(torch.where(ok[:, None, None], cur, orig))
        valid.append(ok)
    moved = torch.zeros(len(flips), N_H36M, dtype=torch.bool, device=orig.device)
    for i, combo in enumerate(flips):
        moved[i, list(_moved(combo))] = True
    return TwinBatch(torch.stack(out, dim=1).to(poses.dtype), torch.stack(valid, dim=1), flips,
                     moved)
