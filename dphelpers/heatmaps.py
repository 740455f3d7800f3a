"""Detector-heatmap simulator and the H36MA ambiguity rule (notebook 02).

A 2D detector (HRNet in the paper) outputs one 64x64 heatmap per MPII joint.  We have
no detector for our motion-capture clips, so :func:`simulate_heatmaps` renders what a
detector would plausibly say: a Gaussian peak near each joint, jittered; left/right
confusions (a second mode at the symmetric joint); occluded joints (faint and wide);
and truncated crops (joints beyond an image border get a faint, very wide blob near
the border).  All maps are batched tensors: ``heatmaps: (b, 16, 64, 64)`` float32,
MPII order, row = y, column = x; pixel index ``i`` has its centre at coordinate ``i``.

:func:`fit_gaussian_sigma` and :func:`h36ma_ambiguous` implement the H36MA rule
(Wehrbein et al. 2021): a frame is ambiguous if some joint's heatmap, fitted with a 2D
Gaussian, has ``sigma_x`` or ``sigma_y`` > 5 px.  :func:`validate_heatmaps` is the
input check shared with :mod:`dphelpers.sampling`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .skeleton import MPII_BONES, MPII_FLIP_PAIRS, N_MPII

__all__ = [
    "HeatmapConfig", "SimulatedHeatmaps", "occlusion_mask", "render_gaussians",
    "simulate_heatmaps", "fit_gaussian_sigma", "h36ma_ambiguous", "validate_heatmaps",
]

Range = tuple[float, float]


@dataclass(frozen=True)
class HeatmapConfig:
    """Settings of the detector simulator (pixels of the ``size`` x ``size`` map)."""

    size: int = 64
    sigma_px: Range = (1.5, 2.5)              # clean peak width, drawn per axis
    amplitude: Range = (0.6, 1.0)             # clean peak height
    loc_noise_px: float = 0.8                 # std of the Gaussian jitter of every peak
    p_swap: float = 0.02                      # per limb joint: left/right confusion
    swap_weight: Range = (0.3, 0.9)           # second mode's height / main peak's height
    occluded_amplitude: Range = (0.25, 0.6)   # amplitude factor of occluded joints
    occluded_sigma_scale: Range = (1.3, 2.5)  # sigma factor of occluded joints
    p_truncate: float = 0.08                  # per sample: an image border cuts the crop
    truncate_fraction: Range = (0.55, 0.9)    # where the cut lies, between the joints' extremes
    truncated_amplitude: Range = (0.1, 0.3)   # height of a truncated joint's blob
    truncated_sigma_px: Range = (5.0, 9.0)    # width of a truncated joint's blob
    background_noise: float = 0.003            # std of additive noise; the map is clamped at 0
    ambiguous_sigma_px: float = 5.0           # H36MA threshold


@dataclass
class SimulatedHeatmaps:
    """Output of :func:`simulate_heatmaps`.

    ``heatmaps: (b, 16, size, size)``; the flags are ``(b, 16)`` bool, with
    ``ambiguous = occluded | swapped | truncated`` (what the simulator did, per joint).
    """

    heatmaps: torch.Tensor
    occluded: torch.Tensor
    swapped: torch.Tensor
    truncated: torch.Tensor
    ambiguous: torch.Tensor
    ambiguous_sigma_px: float = 5.0

    @property
    def ambiguous_sample(self) -> torch.Tensor:
        """``(b,)`` bool: the H36MA rule on the rendered maps (any joint sigma > threshold)."""
        return h36ma_ambiguous(self.heatmaps, self.ambiguous_sigma_px)


def _check_points(joints_hm: torch.Tensor, depth_mm: torch.Tensor | None) -> None:
    if not isinstance(joints_hm, torch.Tensor) or joints_hm.ndim != 3 or joints_hm.shape[1:] != (N_MPII, 2):
        got = tuple(joints_hm.shape) if isinstance(joints_hm, torch.Tensor) else type(joints_hm).__name__
        raise ValueError(f"joints_hm must be a tensor of shape (b, {N_MPII}, 2), got {got}")
    if not torch.isfinite(joints_hm).all():
        raise ValueError("joints_hm contains NaN or inf")
    if depth_mm is not None:
        if not isinstance(depth_mm, torch.Tensor) or tuple(depth_mm.shape) != tuple(joints_hm.shape[:2]):
            got = tuple(depth_mm.shape) if isinstance(depth_mm, torch.Tensor) else type(depth_mm).__name__
            raise ValueError(f"depth_mm must have shape {tuple(joints_hm.shape[:2])}, got {got}")
        if not torch.isfinite(depth_mm).all():
            raise ValueError("depth_mm contains NaN or inf")


def occlusion_mask(joints_hm: torch.Tensor, depth_mm: torch.Tensor,
                   bones: tuple[tuple[int, int], ...] = MPII_BONES, radius_px: float = 2.0,
                   margin_mm: float = 100.0) -> torch.Tensor:
    """Joints hidden behind a bone: ``joints_hm: (b, j, 2)``, ``depth_mm: (b, j)`` -> ``(b, j)`` bool.

    Joint ``q`` is occluded if a bone segment that does not touch it passes within
    ``radius_px`` of it in 2D and, at the closest point (depth interpolated along the
    bone), is nearer to the camera than ``q`` by more than ``margin_mm``.
    """
    _check_points(joints_hm, depth_mm)
    joints_hm, depth_mm = joints_hm.float(), depth_mm.float()
    bone_idx = torch.tensor(bones, dtype=torch.long, device=joints_hm.device)   # (k, 2)
    a, c = joints_hm[:, bone_idx[:, 0]], joints_hm[:, bone_idx[:, 1]]           # (b, k, 2)
    da, dc = depth_mm[:, bone_idx[:, 0]], depth_mm[:, bone_idx[:, 1]]           # (b, k)
    q = joints_hm[:, :, None]                                                   # (b, j, 1, 2)
    seg = (c - a)[:, None]                                                      # (b, 1, k, 2)
    t = ((q - a[:, None]) * seg).sum(-1) / (seg * seg).sum(-1).clamp_min(1e-9)
    t = t.clamp(0.0, 1.0)                                                       # (b, j, k)
    closest = a[:, None] + t[..., None] * seg
    dist_px = (q - closest).norm(dim=-1)
    depth_at = da[:, None] + t * (dc - da)[:, None]
    joint_ids = torch.arange(joints_hm.shape[1], device=joints_hm.device)[:, None]
    touches = (joint_ids == bone_idx[None, :, 0]) | (joint_ids == bone_idx[None, :, 1])  # (j, k)
    hides = (dist_px < radius_px) & (depth_at < depth_mm[:, :, None] - margin_mm) & ~touches
    return hides.any(dim=-1)


def render_gaussians(centres_px: torch.Tensor, sigma_px: torch.Tensor, amplitude: torch.Tensor,
                     size: int = 64) -> torch.Tensor:
    """Pixel-wise maximum of ``k`` axis-aligned Gaussians on a ``size`` x ``size`` grid.

    ``centres_px, sigma_px: (b, j, k, 2)`` as (x, y); ``amplitude: (b, j, k)`` ->
    ``(b, j, size, size)``; each is ``a * exp(-dx^2/2sx^2) * exp(-dy^2/2sy^2)``.  The
    maximum (not the sum) keeps two overlapping modes from exceeding the larger amplitude.
    """
    grid = torch.arange(size, dtype=centres_px.dtype, device=centres_px.device)
    g = torch.exp(-0.5 * ((grid - centres_px[..., None]) / sigma_px[..., None]) ** 2)  # (b, j, k, 2, s)
    gy = g[..., 1, :] * amplitude[..., None]
    return (gy[..., :, None] * g[..., 0, None, :]).amax(dim=2)


def _uniform(rng: Range, shape, gen, device) -> torch.Tensor:
    lo, hi = rng
    return lo + (hi - lo) * torch.rand(shape, generator=gen, device=device)


def simulate_heatmaps(joints_hm: torch.Tensor, depth_mm: torch.Tensor | None = None,
                      config: HeatmapConfig = HeatmapConfig(),
                      generator: torch.Generator | None = None) -> SimulatedHeatmaps:
    """Detector-like heatmaps for 2D joints: ``joints_hm: (b, 16, 2)`` (x, y) in heatmap px.

    ``depth_mm: (b, 16)`` camera depth of each joint, used for :func:`occlusion_mask`
    (``None``: no occlusion).  Runs on ``joints_hm.device``; all randomness from
    ``generator`` (on that device).  Returns unnormalised, non-negative maps whose
    maximum is about the peak amplitude, and the per-joint flags.
    """
    _check_points(joints_hm, depth_mm)
    cfg, gen, dev = config, generator, joints_hm.device
    pts = joints_hm.float()
    b, j = pts.shape[:2]
    occluded = (occlusion_mask(pts, depth_mm) if depth_mm is not None
                else torch.zeros(b, j, dtype=torch.bool, device=dev))

    # main peak: jittered location, per-axis width, height; occlusion makes it faint and wide
    loc = pts + cfg.loc_noise_px * torch.randn(b, j, 2, generator=gen, device=dev)
    sigma = _uniform(cfg.sigma_px, (b, j, 2), gen, dev)
    amp = _uniform(cfg.amplitude, (b, j), gen, dev)
    occ_amp = _uniform(cfg.occluded_amplitude, (b, j), gen, dev)
    occ_sig = _uniform(cfg.occluded_sigma_scale, (b, j, 1), gen, dev)
    amp = torch.where(occluded, amp * occ_amp, amp)
    sigma = torch.where(occluded[..., None], sigma * occ_sig, sigma)

    # truncation: per sample, a border on one side of one axis cuts the extreme joints off
    cut_sample = torch.rand(b, generator=gen, device=dev) < cfg.p_truncate
    axis = torch.randint(0, 2, (b,), generator=gen, device=dev)
    high_side = torch.rand(b, generator=gen, device=dev) < 0.5
    frac = _uniform(cfg.truncate_fraction, (b,), gen, dev)
    coord = pts.gather(2, axis[:, None, None].expand(b, j, 1))[..., 0]          # (b, j)
    lo, hi = coord.min(dim=1).values, coord.max(dim=1).values
    cut = torch.where(high_side, lo + frac * (hi - lo), hi - frac * (hi - lo)).clamp(0, cfg.size - 1)
    beyond = torch.where(high_side[:, None], coord > cut[:, None], coord < cut[:, None])
    truncated = beyond & cut_sample[:, None]
    inward = torch.where(high_side, -1.0, 1.0)[:, None] * _uniform((0.0, 3.0), (b, j), gen, dev)
    blob_loc = loc.clone()
    is_x = (axis == 0)[:, None]
    blob_loc[..., 0] = torch.where(is_x, cut[:, None] + inward, loc[..., 0])
    blob_loc[..., 1] = torch.where(is_x, loc[..., 1], cut[:, None] + inward)
    loc = torch.where(truncated[..., None], blob_loc, loc)
    amp = torch.where(truncated, _uniform(cfg.truncated_amplitude, (b, j), gen, dev), amp)
    sigma = torch.where(truncated[..., None], _uniform(cfg.truncated_sigma_px, (b, j, 2), gen, dev), sigma)

    # left/right confusion: a second mode at the symmetric joint's (jittered) peak
    flip = list(range(j))
    for left, right in MPII_FLIP_PAIRS:
        flip[left], flip[right] = right, left
    flip_t = torch.tensor(flip, device=dev)
    limb = flip_t != torch.arange(j, device=dev)
    swapped = (torch.rand(b, j, generator=gen, device=dev) < cfg.p_swap) & limb
    swapped &= ~truncated & ~truncated[:, flip_t]
    swap_amp = torch.where(swapped, amp * _uniform(cfg.swap_weight, (b, j), gen, dev), 0.0)

    centres = torch.stack([loc, loc[:, flip_t]], dim=2)                         # (b, j, 2, 2)
    sigmas = torch.stack([sigma, sigma], dim=2)
    heat = render_gaussians(centres, sigmas, torch.stack([amp, swap_amp], dim=2), cfg.size)
    noise = cfg.background_noise * torch.randn(heat.shape, generator=gen, device=dev)
    heat = (heat + noise).clamp_min(0.0)
    return SimulatedHeatmaps(heat, occluded, swapped, truncated, occluded | swapped | truncated,
                             cfg.ambiguous_sigma_px)


def _check_4d(heatmaps: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(heatmaps, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (b, {N_MPII}, H, W), got {type(heatmaps).__name__}")
    if heatmaps.ndim != 4 or heatmaps.shape[1] != N_MPII:
        raise ValueError(f"{name} must have shape (b, {N_MPII}, H, W), got {tuple(heatmaps.shape)}")
    if not heatmaps.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got dtype {heatmaps.dtype}")
    # Fast path: one reduction.  A finite sum means every value is finite; a non-finite sum
    # (NaN/inf, or an overflow of huge finite values) triggers the exact per-map search.
    if not torch.isfinite(heatmaps.sum()):
        bad = ~torch.isfinite(heatmaps).flatten(2).all(dim=2)                    # (b, 16)
    else:
        bad = None
    if bad is not None and bad.any():
        i, k = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"{name} has NaN or inf values: first in sample {i}, joint {k}")
    return heatmaps.float()


def validate_heatmaps(heatmaps: torch.Tensor, name: str = "heatmaps") -> torch.Tensor:
    """Check ``heatmaps: (b, 16, 64, 64)`` float and finite; return it as float32.

    Raises ``ValueError`` naming the problem (shape got vs expected, dtype, or the first
    sample and joint holding NaN/inf).
    """
    heatmaps = _check_4d(heatmaps, name)
    if heatmaps.shape[2:] != (64, 64):
        raise ValueError(f"{name} must be 64x64 per joint (b, {N_MPII}, 64, 64), "
                         f"got {tuple(heatmaps.shape)}")
    return heatmaps


def _thresholded_moment_factor(rel_floor: float) -> float:
    """E[u] for a Gaussian weighted by ``max(g - tau, 0)``: per-axis variance = sigma^2 E[u]."""
    if rel_floor <= 0.0:
        return 1.0
    big_l = -math.log(rel_floor)                                                # g > tau <=> u < L
    num = 1.0 - (1.0 + big_l) * rel_floor - rel_floor * big_l ** 2 / 2.0
    den = 1.0 - rel_floor - rel_floor * big_l
    return num / den


def fit_gaussian_sigma(heatmaps: torch.Tensor, rel_floor: float = 0.1) -> torch.Tensor:
    """Per-joint Gaussian widths ``(b, j, 2)`` (sigma_x, sigma_y in px) of ``heatmaps: (b, j, H, W)``.

    Weighted second moments of the map clamped at 0.  To keep low background noise from
    inflating the moments, ``rel_floor`` times each map's maximum is subtracted first
    (weights ``max(h - rel_floor * max, 0)``) and the known shrinkage of a Gaussian's
    moments under that floor is undone, so a clean Gaussian of width ``s`` gives ``s``
    exactly; ``rel_floor=0`` is the plain moment fit.  An all-zero map gives 0.
    """
    if not 0.0 <= rel_floor < 1.0:
        raise ValueError(f"rel_floor must be in [0, 1), got {rel_floor}")
    h = _check_4d(heatmaps, "heatmaps").clamp_min(0.0)
    peak = h.flatten(2).max(dim=2).values[..., None, None]
    w = (h - rel_floor * peak).clamp_min(0.0)
    wx, wy = w.sum(dim=2), w.sum(dim=3)                                         # marginals (b, j, W), (b, j, H)
    xs = torch.arange(h.shape[3], dtype=h.dtype, device=h.device)
    ys = torch.arange(h.shape[2], dtype=h.dtype, device=h.device)
    mass = wx.sum(dim=-1).clamp_min(1e-12)
    mx, my = (wx * xs).sum(dim=-1) / mass, (wy * ys).sum(dim=-1) / mass
    vx = (wx * (xs - mx[..., None]) ** 2).sum(dim=-1) / mass
    vy = (wy * (ys - my[..., None]) ** 2).sum(dim=-1) / mass
    var = torch.stack([vx, vy], dim=-1) / _thresholded_moment_factor(rel_floor)
    return var.clamp_min(0.0).sqrt()


def h36ma_ambiguous(heatmaps: torch.Tensor, threshold_px: float = 5.0) -> torch.Tensor:
    """H36MA rule: ``(b,)`` bool, True where any joint's sigma_x or sigma_y > ``threshold_px``."""
    return (fit_gaussian_sigma(heatmaps) > threshold_px).flatten(1).any(dim=1)
