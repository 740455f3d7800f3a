"""Detector failures where the heatmap's argmax itself is wrong (simulator v2, notebook 02).

Real detectors do not only blur: their peak is sometimes in the wrong place.  Following the
error taxonomy of Ronchi & Perona (ICCV 2017) and the error synthesis of PoseFix (Moon et al.,
CVPR 2019), a joint's peak can be

- **inverted**: on its left/right partner (within the ``ks = 0.5`` radius of the partner);
- **jittered**: near the joint but off, between the ``ks = 0.85`` and ``ks = 0.5`` radii;
- **missed**: far off, between the ``ks = 0.5`` and ``ks = 0.1`` radii;

each with a per-joint-group rate, raised for occluded joints and for people with few visible
joints (PoseFix's rule).  ``ks`` is the keypoint similarity of COCO's OKS,
``ks = exp(-d^2 / (2 s^2 k^2))``: ``d`` the distance to the truth, ``k = 2 sigma_j`` with COCO's
per-keypoint ``sigma_j`` (:data:`KS_SIGMA`), ``s`` the person's scale.  COCO takes ``s^2`` as the
person's segment area; a person covers about half of its box, so here
``s = sqrt(w * h / 2)`` with ``w, h`` the 2D joints' bounding box in heatmap pixels (median
about 25 px on the embedded data).  The radius of a ks level is ``k s sqrt(-2 ln ks)``.

This module only draws *where* the peaks go; :func:`dphelpers.heatmaps.simulate_heatmaps`
renders them (and, in a share of failures, a weaker mode left at the truth).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from .skeleton import MPII_FLIP_PAIRS, N_MPII


__all__ = [
    "GROUPS", "JOINT_GROUP", "KS_SIGMA", "MPII_PARTNER", "NO_FAILURE", "INVERTED", "JITTERED",
    "MISSED", "POSEFIX_RATES", "FailureSettings", "Failures", "by_group", "scaled_rates",
    "person_scale_px", "failure_probabilities", "draw_failures",
]

#: Joint groups of MPII's PCKh table, plus the centre joints it does not report.
GROUPS: tuple[str, ...] = ("head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "centre")
#: Group of each MPII joint ("head" is the head top, as in MPII's and HRNet's table; the upper
#: neck, thorax and pelvis are "centre").
JOINT_GROUP: tuple[str, ...] = (
    "ankle", "knee", "hip", "hip", "knee", "ankle", "centre", "centre", "centre", "head",
    "wrist", "elbow", "shoulder", "shoulder", "elbow", "wrist",
)
#: COCO's per-keypoint OKS sigmas, mapped onto MPII; joints COCO lacks take their neighbour's:
#: head top, upper neck and thorax the shoulders' 0.079, the pelvis the hips' 0.107.
KS_SIGMA: tuple[float, ...] = (
    0.089, 0.087, 0.107, 0.107, 0.087, 0.089, 0.107, 0.079, 0.079, 0.079,
    0.062, 0.072, 0.079, 0.079, 0.072, 0.062,
)
_partner = list(range(N_MPII))
for _a, _b in MPII_FLIP_PAIRS:
    _partner[_a], _partner[_b] = _b, _a
#: Left/right partner of each MPII joint (itself for the centre joints).
MPII_PARTNER: tuple[int, ...] = tuple(_partner)
NO_FAILURE, INVERTED, JITTERED, MISSED = 0, 1, 2, 3


def by_group(**rates: float) -> tuple[float, ...]:
    """Per-group values in :data:`GROUPS` order from keywords; a missing group is 0."""
    unknown = set(rates) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown joint groups {sorted(unknown)}; expected some of {GROUPS}")
    return tuple(float(rates.get(g, 0.0)) for g in GROUPS)


#: PoseFix's synthesis rates (more than 10 visible joints) per kind and group: the *shape* of
#: the v2 rates, which :mod:`dphelpers.calibration` scales per group.  Face = 0.01 / 0.15 / 0.02
#: for the head top (it has no partner), upper body 0.03 / 0.15 and lower body 0.06 inversion and
#: jitter with hips 0.20 and knees/ankles 0.10, miss 0.05 for shoulders/ankles and 0.10 for the
#: rest; the centre joints (no COCO keypoint) take the shoulders' jitter and miss, no inversion.
POSEFIX_RATES: dict[str, tuple[float, ...]] = {
    "p_invert": by_group(shoulder=0.03, elbow=0.03, wrist=0.03, hip=0.06, knee=0.06, ankle=0.06),
    "p_jitter": by_group(head=0.15, shoulder=0.15, elbow=0.15, wrist=0.15, hip=0.20, knee=0.10,
                         ankle=0.10, centre=0.15),
    "p_miss": by_group(head=0.02, shoulder=0.05, elbow=0.10, wrist=0.10, hip=0.10, knee=0.10,
                       ankle=0.05, centre=0.05),
}


def scaled_rates(scales: tuple[float, ...]) -> dict[str, tuple[float, ...]]:
    """``{p_invert, p_jitter, p_miss}``: :data:`POSEFIX_RATES` times one scale per group."""
    if len(scales) != len(GROUPS) or any(s < 0 for s in scales):
        raise ValueError(f"scales must hold {len(GROUPS)} values >= 0 (groups {GROUPS}), "
                         f"got {scales!r}")
    return {kind: tuple(round(min(r * s, 1.0), 6) for r, s in zip(rates, scales))
            for kind, rates in POSEFIX_RATES.items()}


class FailureSettings(Protocol):
    """The settings failures are drawn from: the failure fields of
    :class:`~dphelpers.heatmaps.HeatmapConfig` (which owns their defaults and checks).
    ``p_invert``, ``p_jitter``, ``p_miss``: one rate per joint group of :data:`GROUPS`."""

    size: int
    p_invert: tuple[float, ...]
    p_jitter: tuple[float, ...]
    p_miss: tuple[float, ...]
    occluded_rate_scale: float
    few_visible_rate_scale: tuple[float, float]
    max_failure_rate: float
    p_keep_true_mode: float
    kept_mode_weight: tuple[float, float]


@dataclass
class Failures:
    """Drawn failures, all ``(b, 16)``: ``kind`` long (NO_FAILURE, INVERTED, JITTERED, MISSED),
    ``peak_px: (b, 16, 2)`` where the failed joint's peak goes (x, y; equal to the input joints
    where ``kind == 0``), ``keep`` bool (a failure that keeps a weaker mode at the truth) and
    ``keep_weight`` (that mode's height / the peak's height)."""

    kind: torch.Tensor
    peak_px: torch.Tensor
    keep: torch.Tensor
    keep_weight: torch.Tensor


def person_scale_px(joints_hm: torch.Tensor) -> torch.Tensor:
    """OKS scale ``s = sqrt(w * h / 2)`` ``(b,)`` of ``joints_hm: (b, j, 2)`` (heatmap px, >= 1)."""
    wh = joints_hm.amax(dim=1) - joints_hm.amin(dim=1)                           # (b, 2)
    return (0.5 * wh[:, 0] * wh[:, 1]).clamp_min(1.0).sqrt()


def failure_probabilities(config: FailureSettings, occluded: torch.Tensor,
                          truncated: torch.Tensor) -> torch.Tensor:
    """Per-joint probabilities ``(b, 16, 3)`` of (inverted, jittered, missed).

    The group rates of ``config`` times ``occluded_rate_scale`` for occluded joints and times
    ``few_visible_rate_scale[0]`` (``[1]``) when at most 10 (5) of the 16 joints are visible
    (neither occluded nor truncated); scaled down where their sum exceeds
    ``max_failure_rate``.  Truncated joints (already lost) and inversions onto a truncated or
    missing partner get 0.  ``occluded, truncated: (b, 16)`` bool.
    """
    dev = occluded.device
    group = [GROUPS.index(g) for g in JOINT_GROUP]
    base = torch.tensor([[config.p_invert[k], config.p_jitter[k], config.p_miss[k]]
                         for k in group], device=dev)                           # (16, 3)
    visible = (~occluded & ~truncated).sum(dim=1, keepdim=True)                # (b, 1)
    few, very_few = config.few_visible_rate_scale
    scale = torch.where(visible <= 5, very_few, torch.where(visible <= 10, few, 1.0))
    scale = scale * torch.where(occluded, config.occluded_rate_scale, 1.0)      # (b, 16)
    prob = base * scale[..., None]
    partner = torch.tensor(MPII_PARTNER, device=dev)
    no_partner = (partner == torch.arange(N_MPII, device=dev))[None] | truncated[:, partner]
    prob[..., 0] = torch.where(no_partner, 0.0, prob[..., 0])
    prob = torch.where(truncated[..., None], 0.0, prob)
    total = prob.sum(dim=-1, keepdim=True)
    return prob * (config.max_failure_rate / total.clamp_min(1e-12)).clamp(max=1.0)


def _annulus(lo: torch.Tensor, hi: torch.Tensor, u_rad: torch.Tensor,
             angle: torch.Tensor) -> torch.Tensor:
    """Offsets ``(..., 2)`` uniform over the area between radii ``lo`` and ``hi``."""
    r = (lo ** 2 + u_rad * (hi ** 2 - lo ** 2)).sqrt()
    return torch.stack([r * angle.cos(), r * angle.sin()], dim=-1)


def draw_failures(joints_hm: torch.Tensor, occluded: torch.Tensor, truncated: torch.Tensor,
                  config: FailureSettings, generator: torch.Generator | None = None) -> Failures:
    """Draw each joint's failure kind and wrong peak location.

    ``joints_hm: (b, 16, 2)`` true joints (x, y) in heatmap px; ``occluded, truncated: (b, 16)``.
    Five uniform draws of shape ``(b, 16)`` per call, in a fixed order and whatever the
    rates, so that configs differing only in ``p_keep_true_mode`` give the same failures
    (and ``keep`` grows monotonically with it).  Peaks are clamped onto the map.
    """
    b, j = joints_hm.shape[:2]
    dev, gen = joints_hm.device, generator
    u_kind = torch.rand(b, j, generator=gen, device=dev)
    angle = 2.0 * math.pi * torch.rand(b, j, generator=gen, device=dev)
    u_rad = torch.rand(b, j, generator=gen, device=dev)
    u_keep = torch.rand(b, j, generator=gen, device=dev)
    lo_w, hi_w = config.kept_mode_weight
    keep_weight = lo_w + (hi_w - lo_w) * torch.rand(b, j, generator=gen, device=dev)

    cum = failure_probabilities(config, occluded, truncated).cumsum(dim=-1)      # (b, 16, 3)
    kind = (u_kind[..., None] >= cum).sum(dim=-1) + 1                           # 1..4
    kind = torch.where(kind == 4, NO_FAILURE, kind)

    # radii of each joint's band in units of k_j * s (one sqrt/cos/sin for all kinds)
    f85, f50, f10 = (math.sqrt(-2.0 * math.log(ks)) for ks in (0.85, 0.5, 0.1))
    is_jit, is_miss = kind == JITTERED, kind == MISSED
    lo = torch.where(is_jit, f85, torch.where(is_miss, f50, 0.0))
    hi = torch.where(is_jit, f50, torch.where(is_miss, f10, f50))
    kappa = 2.0 * torch.tensor(KS_SIGMA, dtype=joints_hm.dtype, device=dev)
    unit = kappa * person_scale_px(joints_hm)[:, None]                          # (b, 16) px
    centre = torch.where((kind == INVERTED)[..., None], joints_hm[:, list(MPII_PARTNER)],
                         joints_hm)
    peak = centre + _annulus(lo * unit, hi * unit, u_rad, angle)
    peak = torch.where((kind == NO_FAILURE)[..., None], joints_hm, peak)
    peak = peak.clamp(0.0, config.size - 1.0)
    keep = (kind != NO_FAILURE) & (u_keep < config.p_keep_true_mode)
    return Failures(kind, peak, keep, keep_weight)
