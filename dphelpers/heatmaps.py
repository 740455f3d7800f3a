"""Detector-heatmap simulator, v1 and v2 (notebook 02).

A 2D detector (HRNet in the paper) outputs one 64x64 heatmap per MPII joint.  We have
no detector for our motion-capture clips, so :func:`simulate_heatmaps` renders what a
detector would plausibly say: a Gaussian peak near each joint, jittered; left/right
confusions (a weaker second mode at the symmetric joint); occluded joints (faint and wide);
and truncated crops (joints beyond an image border get a faint, very wide blob near
the border).  All maps are batched tensors: ``heatmaps: (b, 16, 64, 64)`` float32,
MPII order, row = y, column = x; pixel index ``i`` has its centre at coordinate ``i``.

Two presets (:meth:`HeatmapConfig.preset`): ``"v1"``, the first simulator, whose argmax is
almost never wrong; ``"v2"``, which adds failures where the argmax itself is wrong
(:mod:`dphelpers.failures`: inversion, jitter, miss), calibrated per joint group to HRNet-W32's
MPII PCKh@0.5 failure rates by :mod:`dphelpers.calibration`; in a share ``p_keep_true_mode``
of the failures a weaker mode stays at the true joint.  ``HeatmapConfig()`` equals the preset
named by :data:`DEFAULT_PRESET`.

The H36MA rule (:func:`fit_gaussian_sigma`, :func:`h36ma_ambiguous`) lives in
:mod:`dphelpers.h36ma` and is re-exported here.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .configs import from_dict
from .failures import (GROUPS, INVERTED, JITTERED, MISSED, MPII_PARTNER, NO_FAILURE, by_group,
                       draw_failures, scaled_rates)
from .h36ma import fit_gaussian_sigma, h36ma_ambiguous
from .pckh import pckh_failures_own_head
from .skeleton import MPII_BONES, N_MPII

__all__ = [
    "HeatmapConfig", "SimulatedHeatmaps", "PRESETS", "DEFAULT_PRESET", "V2_SCALES",
    "occlusion_mask", "render_gaussians", "simulate_heatmaps", "fit_gaussian_sigma",
    "h36ma_ambiguous",
]

Range = tuple[float, float]
_NONE = by_group()
#: v2's per-group scales of PoseFix's rates (:data:`dphelpers.failures.POSEFIX_RATES`), fitted
#: by :func:`dphelpers.calibration.fit_failure_scales` (n=20000, seed=100) on the simulator
#: alone, before any model was trained; the centre joints take the shoulders' scale.
V2_SCALES: tuple[float, ...] = by_group(head=0.293, shoulder=0.235, elbow=0.51, wrist=0.876,
                                        hip=0.303, knee=0.539, ankle=0.98, centre=0.235)
#: Settings that differ between the presets (every other field has one default for both).
PRESETS: dict[str, dict[str, tuple[float, ...]]] = {
    "v1": {"p_invert": _NONE, "p_jitter": _NONE, "p_miss": _NONE},
    "v2": scaled_rates(V2_SCALES),
}
#: The preset ``HeatmapConfig()`` equals.  Switching the default simulator is this one line.
DEFAULT_PRESET = "v2"
_DEFAULT = PRESETS[DEFAULT_PRESET]


@dataclass(frozen=True)
class HeatmapConfig:
    """Settings of the detector simulator (pixels of the ``size`` x ``size`` map).

    The failure rates ``p_invert``, ``p_jitter``, ``p_miss`` hold one probability per joint
    group of :data:`dphelpers.failures.GROUPS` (head, shoulder, elbow, wrist, hip, knee,
    ankle, centre); all zero (v1) draws no failures and leaves the random stream as v1's.
    """

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
    # --- v2: failures where the argmax is wrong (dphelpers.failures) ---
    p_invert: tuple[float, ...] = _DEFAULT["p_invert"]   # peak on the left/right partner
    p_jitter: tuple[float, ...] = _DEFAULT["p_jitter"]   # peak between the ks 0.85 and 0.5 radii
    p_miss: tuple[float, ...] = _DEFAULT["p_miss"]       # peak between the ks 0.5 and 0.1 radii
    occluded_rate_scale: float = 2.0          # failure rates x this for occluded joints
    few_visible_rate_scale: Range = (1.5, 2.5)  # x this with <= 10 (<= 5) visible joints
    max_failure_rate: float = 0.9             # cap of a joint's total failure probability
    p_keep_true_mode: float = 0.5             # share of failures keeping a mode at the truth
    kept_mode_weight: Range = (0.3, 0.8)      # that mode's height / the wrong peak's height

    def __post_init__(self) -> None:
        for name in ("p_invert", "p_jitter", "p_miss"):
            rates = tuple(float(v) for v in getattr(self, name))
            if len(rates) != len(GROUPS) or not all(0.0 <= v <= 1.0 for v in rates):
                raise ValueError(f"HeatmapConfig.{name} must hold {len(GROUPS)} probabilities in "
                                 f"[0, 1], one per group {GROUPS}, got {getattr(self, name)!r}")
            object.__setattr__(self, name, rates)
        for name in ("p_swap", "p_truncate", "p_keep_true_mode", "max_failure_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"HeatmapConfig.{name} must be in [0, 1], "
                                 f"got {getattr(self, name)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "Range" and not (len(value) == 2 and 0.0 <= value[0] <= value[1]):
                raise ValueError(f"HeatmapConfig.{f.name} must be (lo, hi) with 0 <= lo <= hi, "
                                 f"got {value!r}")
        if self.occluded_rate_scale < 0 or self.size < 2 or self.loc_noise_px < 0 \
                or self.background_noise < 0:
            raise ValueError("HeatmapConfig: occluded_rate_scale, loc_noise_px and "
                             "background_noise must be >= 0 and size >= 2, got "
                             f"{self.occluded_rate_scale}, {self.loc_noise_px}, "
                             f"{self.background_noise}, {self.size}")

    @classmethod
    def preset(cls, name: str, **overrides) -> "HeatmapConfig":
        """The named preset (``"v1"`` or ``"v2"``, see :data:`PRESETS`), with ``overrides``."""
        if name not in PRESETS:
            raise ValueError(f"unknown heatmap preset {name!r}; expected one of {sorted(PRESETS)}")
        return from_dict(cls, {**PRESETS[name], **overrides})

    @property
    def has_failures(self) -> bool:
        """True if any failure rate is positive (v2); False draws no failures at all (v1)."""
        return any(v > 0 for v in self.p_invert + self.p_jitter + self.p_miss)


@dataclass
class SimulatedHeatmaps:
    """Output of :func:`simulate_heatmaps`.

    ``heatmaps: (b, 16, size, size)``; every flag is ``(b, 16)`` bool.  What the simulator
    did: ``occluded``, ``swapped`` (a weaker mode at the partner, argmax right),
    ``truncated``, ``inverted`` / ``jittered`` / ``missed`` (the peak put in the wrong place),
    ``kept_true_mode`` (a failure that keeps a weaker mode at the truth), and
    ``ambiguous = occluded | swapped | truncated | kept_true_mode``.  What the rendered map
    says: ``failed``, the argmax misses the truth by more than half the head size (PCKh@0.5,
    :mod:`dphelpers.pckh`; truncated joints usually fail too), ``None`` when not asked for.
    """

    heatmaps: torch.Tensor
    occluded: torch.Tensor
    swapped: torch.Tensor
    truncated: torch.Tensor
    ambiguous: torch.Tensor
    inverted: torch.Tensor
    jittered: torch.Tensor
    missed: torch.Tensor
    kept_true_mode: torch.Tensor
    failed: torch.Tensor | None
    ambiguous_sigma_px: float = 5.0

    @property
    def ambiguous_sample(self) -> torch.Tensor:
        """``(b,)`` bool: the H36MA rule on the rendered maps (any joint sigma > threshold)."""
        return h36ma_ambiguous(self.heatmaps, self.ambiguous_sigma_px)


def _shape(x) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def _check_points(joints_hm: torch.Tensor, depth_mm: torch.Tensor | None,
                  finite: bool = True) -> None:
    """Shapes always; ``finite``: no NaN or inf either (a read-back from the device)."""
    if not isinstance(joints_hm, torch.Tensor) or joints_hm.ndim != 3 \
            or joints_hm.shape[1:] != (N_MPII, 2):
        got = _shape(joints_hm)
        raise ValueError(f"joints_hm must be a tensor of shape (b, {N_MPII}, 2), got {got}")
    if finite and not torch.isfinite(joints_hm).all():
        raise ValueError("joints_hm contains NaN or inf")
    if depth_mm is not None:
        if not isinstance(depth_mm, torch.Tensor) \
                or tuple(depth_mm.shape) != tuple(joints_hm.shape[:2]):
            got = _shape(depth_mm)
            raise ValueError(f"depth_mm must have shape {tuple(joints_hm.shape[:2])}, got {got}")
        if finite and not torch.isfinite(depth_mm).all():
            raise ValueError("depth_mm contains NaN or inf")


def occlusion_mask(joints_hm: torch.Tensor, depth_mm: torch.Tensor,
                   bones: tuple[tuple[int, int], ...] = MPII_BONES, radius_px: float = 2.0,
                   margin_mm: float = 100.0, validate: bool = True) -> torch.Tensor:
    """Joints hidden behind a bone: ``joints_hm: (b, j, 2)``, ``depth_mm: (b, j)`` -> ``(b, j)``.
    ``validate=False`` skips the NaN/inf check (shapes are always checked).

    Joint ``q`` is occluded if a bone segment that does not touch it passes within
    ``radius_px`` of it in 2D and, at the closest point (depth interpolated along the
    bone), is nearer to the camera than ``q`` by more than ``margin_mm``.
    """
    _check_points(joints_hm, depth_mm, finite=validate)
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
    g = torch.exp(-0.5 * ((grid - centres_px[..., None]) / sigma_px[..., None]) ** 2)
    # g: (b, j, k, 2, s)
    gy = g[..., 1, :] * amplitude[..., None]
    maps = gy[..., :, None] * g[..., 0, None, :]                                # (b, j, k, s, s)
    return maps[:, :, 0] if maps.shape[2] == 1 else maps.amax(dim=2)


def _uniform(rng: Range, shape, gen, device) -> torch.Tensor:
    lo, hi = rng
    return lo + (hi - lo) * torch.rand(shape, generator=gen, device=device)


def _truncate(pts: torch.Tensor, loc: torch.Tensor, amp: torch.Tensor, sigma: torch.Tensor,
              cfg: HeatmapConfig, gen: torch.Generator | None):
    """Truncation: per sample, a border on one side of one axis cuts the extreme joints off;
    their peak becomes a faint, wide blob just inside the border.  Returns the new
    ``(loc, amp, sigma, truncated)``; draws from ``gen`` in a fixed order."""
    b, j = pts.shape[:2]
    dev = pts.device
    cut_sample = torch.rand(b, generator=gen, device=dev) < cfg.p_truncate
    axis = torch.randint(0, 2, (b,), generator=gen, device=dev)
    high_side = torch.rand(b, generator=gen, device=dev) < 0.5
    frac = _uniform(cfg.truncate_fraction, (b,), gen, dev)
    coord = pts.gather(2, axis[:, None, None].expand(b, j, 1))[..., 0]          # (b, j)
    lo, hi = coord.min(dim=1).values, coord.max(dim=1).values
    cut = torch.where(high_side, lo + frac * (hi - lo), hi - frac * (hi - lo))
    cut = cut.clamp(0, cfg.size - 1)
    beyond = torch.where(high_side[:, None], coord > cut[:, None], coord < cut[:, None])
    truncated = beyond & cut_sample[:, None]
    inward = torch.where(high_side, -1.0, 1.0)[:, None] * _uniform((0.0, 3.0), (b, j), gen, dev)
    blob_loc = loc.clone()
    is_x = (axis == 0)[:, None]
    blob_loc[..., 0] = torch.where(is_x, cut[:, None] + inward, loc[..., 0])
    blob_loc[..., 1] = torch.where(is_x, loc[..., 1], cut[:, None] + inward)
    loc = torch.where(truncated[..., None], blob_loc, loc)
    amp = torch.where(truncated, _uniform(cfg.truncated_amplitude, (b, j), gen, dev), amp)
    blob_sigma = _uniform(cfg.truncated_sigma_px, (b, j, 2), gen, dev)
    sigma = torch.where(truncated[..., None], blob_sigma, sigma)
    return loc, amp, sigma, truncated


def _main_peaks(pts: torch.Tensor, occluded: torch.Tensor, cfg: HeatmapConfig,
                gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each joint's main peak: jittered location ``(b, j, 2)``, per-axis width ``(b, j, 2)`` and
    height ``(b, j)``; occlusion makes it faint and wide."""
    b, j, dev = pts.shape[0], pts.shape[1], pts.device
    loc = pts + cfg.loc_noise_px * torch.randn(b, j, 2, generator=gen, device=dev)
    sigma = _uniform(cfg.sigma_px, (b, j, 2), gen, dev)
    amp = _uniform(cfg.amplitude, (b, j), gen, dev)
    occ_amp = _uniform(cfg.occluded_amplitude, (b, j), gen, dev)
    occ_sig = _uniform(cfg.occluded_sigma_scale, (b, j, 1), gen, dev)
    amp = torch.where(occluded, amp * occ_amp, amp)
    sigma = torch.where(occluded[..., None], sigma * occ_sig, sigma)
    return loc, sigma, amp


def _render_modes(peak: torch.Tensor, second: torch.Tensor, sigma: torch.Tensor,
                  amp: torch.Tensor, second_amp: torch.Tensor, size: int) -> torch.Tensor:
    """The maps of both modes, as :func:`render_gaussians` draws them.  On the CPU the second
    mode is drawn only where it has a height (a mode of height 0 adds nothing to the maximum):
    the same maps at about half the work, since few joints have one.  Elsewhere both are drawn
    densely, since picking the few would read their count back from the device."""
    if peak.device.type != "cpu":
        return render_gaussians(torch.stack([peak, second], dim=2),
                                torch.stack([sigma, sigma], dim=2),
                                torch.stack([amp, second_amp], dim=2), size)
    heat = render_gaussians(peak[:, :, None], sigma[:, :, None], amp[..., None], size)
    has = second_amp > 0
    if bool(has.any()):
        two = render_gaussians(second[has][:, None, None], sigma[has][:, None, None],
                               second_amp[has][:, None, None], size)[:, 0]
        heat[has] = torch.maximum(heat[has], two)
    return heat


def simulate_heatmaps(joints_hm: torch.Tensor, depth_mm: torch.Tensor | None = None,
                      config: HeatmapConfig | None = None,
                      generator: torch.Generator | None = None,
                      flags: bool = True, validate: bool = True) -> SimulatedHeatmaps:
    """Detector-like heatmaps for 2D joints: ``joints_hm: (b, 16, 2)`` (x, y) in heatmap px.

    ``depth_mm: (b, 16)`` camera depth of each joint, used for :func:`occlusion_mask`
    (``None``: no occlusion).  Runs on ``joints_hm.device``; all randomness from
    ``generator`` (on that device).  Returns unnormalised, non-negative maps whose
    maximum is about the peak amplitude, and the per-joint flags.  With v1's config (no
    failure rates) the draws and maps are exactly those of the first simulator.
    ``flags=False`` leaves ``failed`` (an argmax over every map, no random draw) as ``None``:
    the draws and maps are the same.  ``validate=False`` skips the NaN/inf checks of the
    inputs, which on a GPU read a value back from the device (shapes are always checked): for
    points the project made itself (:func:`dphelpers.pipeline.make_batch`).
    """
    _check_points(joints_hm, depth_mm, finite=validate)
    cfg = HeatmapConfig() if config is None else config
    gen, dev = generator, joints_hm.device
    pts = joints_hm.float()
    b, j = pts.shape[:2]
    occluded = (occlusion_mask(pts, depth_mm, validate=False) if depth_mm is not None
                else torch.zeros(b, j, dtype=torch.bool, device=dev))

    loc, sigma, amp = _main_peaks(pts, occluded, cfg, gen)
    loc, amp, sigma, truncated = _truncate(pts, loc, amp, sigma, cfg, gen)

    # left/right confusion: a second mode at the symmetric joint's (jittered) peak
    flip_t = torch.tensor(MPII_PARTNER, device=dev)
    limb = flip_t != torch.arange(j, device=dev)
    swapped = (torch.rand(b, j, generator=gen, device=dev) < cfg.p_swap) & limb
    swapped &= ~truncated & ~truncated[:, flip_t]
    swap_weight = _uniform(cfg.swap_weight, (b, j), gen, dev)

    # v2 failures: the peak goes to the wrong place; a weaker mode may stay at the truth
    peak, second = loc, loc[:, flip_t]
    kind = torch.zeros(b, j, dtype=torch.long, device=dev)
    kept = torch.zeros(b, j, dtype=torch.bool, device=dev)
    keep_weight = torch.zeros(b, j, device=dev)
    if cfg.has_failures:                      # v1 draws nothing here: its stream is unchanged
        drawn = draw_failures(pts, occluded, truncated, cfg, gen)
        kind, kept, keep_weight = drawn.kind, drawn.keep, drawn.keep_weight
        failing = kind != NO_FAILURE
        swapped &= ~failing
        peak = torch.where(failing[..., None], drawn.peak_px, loc)
        second = torch.where(failing[..., None], loc, second)
    second_amp = torch.where(swapped, amp * swap_weight, 0.0)
    second_amp = torch.where(kept, amp * keep_weight, second_amp)

    heat = _render_modes(peak, second, sigma, amp, second_amp, cfg.size)
    noise = torch.randn(heat.shape, generator=gen, device=dev).mul_(cfg.background_noise)
    heat = heat.add_(noise).clamp_min_(0.0)
    failed = pckh_failures_own_head(heat, pts) if flags else None
    return SimulatedHeatmaps(heat, occluded, swapped, truncated,
                             occluded | swapped | truncated | kept,
                             inverted=kind == INVERTED, jittered=kind == JITTERED,
                             missed=kind == MISSED, kept_true_mode=kept, failed=failed,
                             ambiguous_sigma_px=cfg.ambiguous_sigma_px)
