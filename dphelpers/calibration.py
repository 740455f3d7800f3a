"""Calibrating the heatmap simulator to a real detector's failure rates (notebook 02).

A simulated detector is only useful if its argmax is wrong about as often as a real one's.
The reference is HRNet-W32 on MPII val (REFERENCE.md): a joint *fails* PCKh@0.5 when its
argmax lies more than half a head size from the truth (:mod:`dphelpers.pckh`).  Per joint
group, :func:`calibration_table` simulates training samples through the real pipeline
(:func:`dphelpers.pipeline.make_batch`: bone scaling, random cameras, crop, simulator) and
compares the failure rate with the published one; :func:`fit_failure_scales` is the procedure
that chose v2's per-group scales of PoseFix's rates (``dphelpers.heatmaps.V2_SCALES``).
Both use the simulator only, never a model.

Counting follows MPII: left and right joints are pooled per group, "head" is the head top,
and joints beyond the simulated image border (truncated) are left out, as MPII does not
annotate joints outside the image.  The H36MA row compares the share of samples that the
H36MA rule flags with Human3.6M's (about 6% of the stored test frames).
"""
from __future__ import annotations

import numpy as np
import torch

from .cameras import CameraConfig
from .data import load_mocap, split_clips
from .failures import GROUPS, JOINT_GROUP, scaled_rates
from .heatmaps import HeatmapConfig
from .pckh import head_size_px, pckh_failures
from .pipeline import SampleBatch, make_batch

__all__ = [
    "PUBLISHED_FAILURE_PCT", "PUBLISHED_SOURCE", "H36MA_PCT", "H36MA_SOURCE", "TOLERANCE",
    "pckh_failures", "head_size_px", "calibration_samples", "group_failure_rates",
    "calibration_table", "fit_failure_scales",
]

#: HRNet-W32, MPII val, 100 - PCKh@0.5 per group (head 97.1, shoulder 95.9, ... ankle 83.3).
PUBLISHED_FAILURE_PCT: dict[str, float] = {
    "head": 2.9, "shoulder": 4.1, "elbow": 9.7, "wrist": 13.6, "hip": 10.9, "knee": 12.9,
    "ankle": 16.7,
}
PUBLISHED_SOURCE = "HRNet-W32, MPII val PCKh@0.5, HRNet repository results table"
#: Human3.6M's H36MA share: 8,739 ambiguous frames, about 6% of the stored test frames.
H36MA_PCT = 6.0
H36MA_SOURCE = "Wehrbein et al. ICCV 2021: H36MA, 8,739 frames, ~6% of the stored test frames"
#: Calibration target: every group within +-30% (relative) of the published rate.
TOLERANCE = 0.30


def calibration_samples(n: int = 4000, seed: int = 0, config: HeatmapConfig | None = None,
                        camera_config: CameraConfig = CameraConfig(),
                        poses_m: np.ndarray | torch.Tensor | None = None,
                        chunk: int = 1024) -> SampleBatch:
    """``n`` simulated training samples: poses evenly spaced over ``poses_m`` (default: the
    embedded training split; repeated when ``n`` exceeds it), each with bone scaling, a random
    camera and simulated heatmaps (``config``, default ``HeatmapConfig.preset("v2")``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    config = HeatmapConfig.preset("v2") if config is None else config
    if not isinstance(config, HeatmapConfig):
        raise ValueError(f"config must be a HeatmapConfig, got {type(config).__name__}")
    if poses_m is None:
        poses_m = split_clips(load_mocap())[0]
    poses = torch.as_tensor(np.asarray(poses_m), dtype=torch.float32)
    if poses.dim() != 3 or poses.shape[1:] != (17, 3) or poses.shape[0] == 0:
        raise ValueError(f"poses_m must have shape (n>0, 17, 3), got {tuple(poses.shape)}")
    idx = (torch.arange(n, dtype=torch.float64) * poses.shape[0] / n).long()
    gen = torch.Generator().manual_seed(seed)
    parts = [make_batch(poses[idx[i:i + chunk]], gen, camera_config, config)
             for i in range(0, n, chunk)]
    return SampleBatch(**{k: torch.cat([getattr(p, k) for p in parts]) for k in vars(parts[0])})


def group_failure_rates(batch: SampleBatch) -> dict[str, tuple[float, int]]:
    """``{group: (failure fraction, joints counted)}`` over the non-truncated joints of ``batch``,
    left and right pooled, for every group of :data:`dphelpers.failures.GROUPS`."""
    failed = pckh_failures(batch.heatmaps, batch.joints_hm, head_size_px(batch.joints_hm))
    counted = ~batch.truncated_joints
    out = {}
    for g in GROUPS:
        cols = [j for j, name in enumerate(JOINT_GROUP) if name == g]
        m = counted[:, cols]
        n = int(m.sum())
        out[g] = (float(failed[:, cols][m].float().mean()) if n else float("nan"), n)
    return out


def calibration_table(n: int = 4000, seed: int = 0, config: HeatmapConfig | None = None,
                      camera_config: CameraConfig = CameraConfig(),
                      poses_m: np.ndarray | torch.Tensor | None = None) -> list[dict]:
    """One row per joint group, then the H36MA row: simulated vs published failure rates.

    Keys: ``group``, ``simulated_pct``, ``published_pct``, ``relative_error`` (simulated /
    published - 1), ``within_tolerance`` (|relative error| <= :data:`TOLERANCE`), ``joints``
    (counted), ``source``.  The centre row (upper neck, thorax, pelvis) has no published rate.
    Samples as in :func:`calibration_samples` (``config`` default: v2).
    """
    batch = calibration_samples(n, seed, config, camera_config, poses_m)
    rows = []
    for g, (rate, count) in group_failure_rates(batch).items():
        pub = PUBLISHED_FAILURE_PCT.get(g)
        rel = 100 * rate / pub - 1 if pub else None
        rows.append({"group": g, "simulated_pct": 100 * rate, "published_pct": pub,
                     "relative_error": rel,
                     "within_tolerance": None if rel is None else abs(rel) <= TOLERANCE,
                     "joints": count,
                     "source": PUBLISHED_SOURCE if pub else "no published rate (not calibrated)"})
    amb = 100 * float(batch.ambiguous.float().mean())
    rows.append({"group": "H36MA rule (samples)", "simulated_pct": amb, "published_pct": H36MA_PCT,
                 "relative_error": amb / H36MA_PCT - 1, "within_tolerance": None,
                 "joints": len(batch), "source": H36MA_SOURCE + " (reported, not calibrated)"})
    return rows


def fit_failure_scales(n: int = 20000, seed: int = 100, iterations: int = 5,
                       base: HeatmapConfig | None = None,
                       poses_m: np.ndarray | torch.Tensor | None = None,
                       verbose: bool = False) -> tuple[float, ...]:
    """Per-group scales of PoseFix's rates that match the published failure rates.

    Starts at scale 1 (PoseFix's rates) and repeats ``scale_g *= published_g / simulated_g``
    on the same seeded samples (common random numbers make the update smooth); the centre
    group takes the shoulders' scale.  ``base`` gives every other setting (default v2's).
    Returns the scales in :data:`GROUPS` order, rounded to 3 decimals.  Simulator only.
    """
    base = HeatmapConfig.preset("v2") if base is None else base
    if poses_m is None:
        poses_m = split_clips(load_mocap())[0]
    scales = {g: 1.0 for g in GROUPS}
    for it in range(iterations):
        cfg = HeatmapConfig.preset("v2", **{**_other_fields(base),
                                            **scaled_rates(tuple(scales[g] for g in GROUPS))})
        rates = group_failure_rates(calibration_samples(n, seed, cfg, poses_m=poses_m))
        for g, pub in PUBLISHED_FAILURE_PCT.items():
            scales[g] *= pub / max(100 * rates[g][0], 1e-3)
        scales["centre"] = scales["shoulder"]
        if verbose:
            print(f"iteration {it}: " + ", ".join(
                f"{g} {100 * rates[g][0]:.2f}% -> x{scales[g]:.3f}" for g in PUBLISHED_FAILURE_PCT))
    return tuple(round(scales[g], 3) for g in GROUPS)


def _other_fields(config: HeatmapConfig) -> dict:
    """``config``'s settings other than the three failure-rate tuples."""
    skip = {"p_invert", "p_jitter", "p_miss"}
    return {k: v for k, v in vars(config).items() if k not in skip}
