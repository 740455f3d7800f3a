"""The H36MA ambiguity rule: a 2D Gaussian fitted to each heatmap (notebook 02).

Wehrbein et al. (ICCV 2021) call a frame ambiguous if some joint's heatmap, fitted with a 2D
Gaussian, has ``sigma_x`` or ``sigma_y`` > 5 px (2.5 x the detector's 2 px training sigma).
The rule needs no ground truth, so it applies to any heatmaps: the simulator's
(:mod:`dphelpers.heatmaps`, which re-exports both functions), a real detector's or stored
ones.  ``heatmaps: (b, j, H, W)``, row = y, column = x.
"""
from __future__ import annotations

import math

import torch

__all__ = ["fit_gaussian_sigma", "h36ma_ambiguous"]


def _check_maps(heatmaps: torch.Tensor) -> torch.Tensor:
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.ndim != 4:
        got = tuple(heatmaps.shape) if isinstance(heatmaps, torch.Tensor) \
            else type(heatmaps).__name__
        raise ValueError(f"heatmaps must be a tensor of shape (b, j, H, W), got {got}")
    if not heatmaps.is_floating_point():
        raise ValueError(f"heatmaps must be a float tensor, got dtype {heatmaps.dtype}")
    # one reduction: a finite sum means finite values; otherwise search (an overflowing sum of
    # huge finite values passes the search)
    if not torch.isfinite(heatmaps.sum()):
        bad = ~torch.isfinite(heatmaps).flatten(2).all(dim=2)                    # (b, j)
        if bad.any():
            i, k = (int(v) for v in bad.nonzero()[0])
            raise ValueError(f"heatmaps has NaN or inf values: first in sample {i}, joint {k}")
    return heatmaps.float()


def _thresholded_moment_factor(rel_floor: float) -> float:
    """E[u] for a Gaussian weighted by ``max(g - tau, 0)``: per-axis variance = sigma^2 E[u]."""
    if rel_floor <= 0.0:
        return 1.0
    big_l = -math.log(rel_floor)                                                # g > tau <=> u < L
    num = 1.0 - (1.0 + big_l) * rel_floor - rel_floor * big_l ** 2 / 2.0
    den = 1.0 - rel_floor - rel_floor * big_l
    return num / den


def fit_gaussian_sigma(heatmaps: torch.Tensor, rel_floor: float = 0.1) -> torch.Tensor:
    """Per-joint Gaussian widths ``(b, j, 2)`` (sigma_x, sigma_y px) of ``heatmaps: (b, j, H, W)``.

    Weighted second moments of the map clamped at 0.  To keep low background noise from
    inflating the moments, ``rel_floor`` times each map's maximum is subtracted first
    (weights ``max(h - rel_floor * max, 0)``) and the known shrinkage of a Gaussian's
    moments under that floor is undone, so a clean Gaussian of width ``s`` gives ``s``
    exactly; ``rel_floor=0`` is the plain moment fit.  An all-zero map gives 0.
    """
    if not 0.0 <= rel_floor < 1.0:
        raise ValueError(f"rel_floor must be in [0, 1), got {rel_floor}")
    h = _check_maps(heatmaps).clamp_min(0.0)
    peak = h.flatten(2).max(dim=2).values[..., None, None]
    w = (h - rel_floor * peak).clamp_min(0.0)
    wx, wy = w.sum(dim=2), w.sum(dim=3)                       # marginals (b, j, W), (b, j, H)
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
