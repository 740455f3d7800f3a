"""Heatmap candidate sampling, the key idea of DiffPose (notebook 02).

Each joint's heatmap, clamped at 0, is an unnormalised distribution over its 64x64
pixels.  Per joint we keep the argmax plus ``n_samples - 1`` pixels drawn with
replacement, each with its clamped heatmap value as its likelihood, and redraw them for
every hypothesis so that each hypothesis sees its own condition (REFERENCE.md).

``candidates: (b, n_hypo, 16, n_samples, 3)`` float32 with ``[..., 0] = x = col/32 - 1``,
``[..., 1] = y = row/32 - 1`` and ``[..., 2]`` the clamped (not normalised) heatmap value.

A joint whose clamped map is all zero (no evidence at all) gets candidates drawn
uniformly over the grid, all with likelihood exactly 0; its argmax candidate is pixel
(0, 0), also with likelihood 0.  Since the embedding multiplies every candidate by its
likelihood, such a joint looks missing, like a joint dropped out in training.

:func:`validate_heatmaps` checks the model's input contract (``(b, 16, 64, 64)`` float,
finite, at most :data:`HEATMAP_MAX`); :func:`sample_candidates` runs it on every call (unless
told not to) and the lifter (:mod:`dphelpers.lifter`) on its own input.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange, repeat

from .skeleton import N_MPII

__all__ = [
    "HEATMAP_MAX", "SamplingConfig", "validate_heatmaps", "sample_candidates",
    "candidates_to_pixels", "pixels_to_coords",
]


#: The largest heatmap value the model accepts.  Detectors' heatmaps peak near 1 (the
#: simulator's and HRNet's at about 1, BlazePose's mapped ones below 1); the likelihood
#: multiplies the embedding, so values like 1e20 overflow the transformer into NaN poses.
HEATMAP_MAX = 1e3


@dataclass(frozen=True)
class SamplingConfig:
    """Candidates per joint.  Ablations: argmax only = ``n_samples=1, use_argmax=True``;
    "no argmax" = ``use_argmax=False`` (all ``n_samples`` drawn at random)."""

    n_samples: int = 32
    use_argmax: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.n_samples, int) or self.n_samples < 1:
            raise ValueError(f"n_samples must be an int >= 1, got {self.n_samples!r}")


def _check_4d(heatmaps: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(heatmaps, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (b, {N_MPII}, H, W), "
                         f"got {type(heatmaps).__name__}")
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
    if heatmaps.shape[0] == 0:
        raise ValueError(f"{name} holds no sample (shape {tuple(heatmaps.shape)}): give at least "
                         "one")
    top = float(heatmaps.abs().amax())
    if top > HEATMAP_MAX:
        raise ValueError(f"{name} reach {top:.3g}, far outside a detector's range (peaks near 1; "
                         f"at most {HEATMAP_MAX:g} accepted): rescale them, e.g. divide each map "
                         "by its maximum")
    return heatmaps.float()


def validate_heatmaps(heatmaps: torch.Tensor, name: str = "heatmaps") -> torch.Tensor:
    """Check ``heatmaps: (b, 16, 64, 64)`` float, finite, ``b >= 1`` and no value beyond
    :data:`HEATMAP_MAX`; return it as float32.

    Raises ``ValueError`` naming the problem (shape got vs expected, dtype, the first sample
    and joint holding NaN/inf, or the largest value).
    """
    heatmaps = _check_4d(heatmaps, name)
    if heatmaps.shape[2:] != (64, 64):
        raise ValueError(f"{name} must be 64x64 per joint (b, {N_MPII}, 64, 64), "
                         f"got {tuple(heatmaps.shape)}")
    return heatmaps


def pixels_to_coords(index: torch.Tensor, size: int = 64) -> torch.Tensor:
    """Pixel index ``i`` (centre at coordinate ``i``) -> normalised ``i / (size/2) - 1`` in
    [-1, 1)."""
    return index.float() / (size / 2) - 1.0


def sample_candidates(heatmaps: torch.Tensor, n_hypo: int, config: SamplingConfig | None = None,
                      generator: torch.Generator | None = None,
                      validate: bool = True) -> torch.Tensor:
    """Draw candidates from ``heatmaps: (b, 16, 64, 64)`` -> ``(b, n_hypo, 16, n_samples, 3)``.

    With ``config.use_argmax`` candidate 0 is the argmax pixel (the same for every
    hypothesis, with the clamped maximum as likelihood); the rest are drawn with replacement
    from the clamped map, afresh for every hypothesis, by one ``torch.multinomial`` call
    over the ``b * 16`` maps.  Runs on the heatmaps' device; ``generator`` must be on it.
    ``validate=False`` skips :func:`validate_heatmaps` (whose value checks read back from the
    device): for heatmaps the package made itself, e.g. the training stream's.  Beyond that
    check nothing here reads a value back, so a GPU never waits on the host.
    """
    if isinstance(n_hypo, bool) or not isinstance(n_hypo, int) or n_hypo < 1:
        raise ValueError(f"n_hypo must be an int >= 1, got {n_hypo!r}")
    config = SamplingConfig() if config is None else config
    hm = (validate_heatmaps(heatmaps) if validate else heatmaps.float()).clamp_min(0.0)
    b, size = hm.shape[0], hm.shape[-1]
    flat = rearrange(hm, "b j h w -> (b j) (h w)")
    n_random = config.n_samples - 1 if config.use_argmax else config.n_samples

    parts = []
    if config.use_argmax:
        best = repeat(flat.argmax(dim=1), "(b j) -> b n j 1", b=b, n=n_hypo)
        parts.append(best)
    if n_random > 0:
        empty = flat.sum(dim=1, keepdim=True) <= 0                             # (b j, 1)
        weights = flat + empty.to(flat.dtype)     # an all-zero map -> uniform; others unchanged
        drawn = torch.multinomial(weights, n_hypo * n_random, replacement=True, generator=generator)
        parts.append(rearrange(drawn, "(b j) (n s) -> b n j s", b=b, n=n_hypo))
    index = torch.cat(parts, dim=-1)                                            # (b, n, j, s)

    values = flat.gather(1, rearrange(index, "b n j s -> (b j) (n s)"))
    values = rearrange(values, "(b j) (n s) -> b n j s", b=b, n=n_hypo)
    row, col = index // size, index % size
    return torch.stack([pixels_to_coords(col, size), pixels_to_coords(row, size), values], dim=-1)


def candidates_to_pixels(candidates: torch.Tensor,
                         size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel indices ``(ix, iy)`` (long, shape ``candidates.shape[:-1]``) of
    ``candidates: (..., 3)``.

    The exact inverse of ``x = i / (size/2) - 1``: ``i = round((x + 1) * size/2)``, clamped
    to ``[0, size - 1]`` (the embedding's table look-up snaps candidates to pixels the same
    way).
    """
    if not isinstance(candidates, torch.Tensor) or candidates.ndim < 1 or candidates.shape[-1] != 3:
        got = (tuple(candidates.shape) if isinstance(candidates, torch.Tensor)
               else type(candidates).__name__)
        raise ValueError(f"candidates must have shape (..., 3) = (x, y, likelihood), got {got}")
    half = size / 2
    ix = torch.round((candidates[..., 0] + 1.0) * half).long().clamp(0, size - 1)
    iy = torch.round((candidates[..., 1] + 1.0) * half).long().clamp(0, size - 1)
    return ix, iy
