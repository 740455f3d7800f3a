"""The common contract of the real-dataset loaders, and the checks they share (notebook 05).

Every loader returns a :class:`LoadedSet`: 3D poses in the camera frame (mm, Human3.6M-17
order), the 2D joints (px), the detector heatmaps when the file has them, metadata arrays
and the H36MA flag.  :meth:`LoadedSet.to_sample_batch` turns it into the
:class:`~dphelpers.pipeline.SampleBatch` the model and :mod:`dphelpers.evaluation.evaluate` use;
when the file has no heatmaps they are simulated from the 2D joints exactly like the embedded
data (crop = 1.2x joint box, :func:`~dphelpers.heatmaps.simulate_heatmaps` with the joints'
camera depth for occlusion), so the model never knows where its input came from.

The helpers below make every loader fail the same way: a missing file is a
``FileNotFoundError`` with the path; a missing key a ``KeyError`` naming the file, the key
and the keys present; a wrong shape or dtype, an unreadable (truncated, corrupt) file, or
keys of different lengths a ``ValueError`` naming the file and keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from ..cameras import crop_boxes, to_heatmap_px
from ..files import require_file
from ..heatmaps import HeatmapConfig, fit_gaussian_sigma, h36ma_ambiguous, simulate_heatmaps
from ..pipeline import SampleBatch
from ..skeleton import H36M_TO_MPII, N_H36M, N_MPII

__all__ = ["LoadedSet", "as_points", "check_file", "pick_key", "check_lengths", "subject_ids"]


def check_file(path) -> Path:
    """``path`` as a :class:`Path`; ``FileNotFoundError`` naming it if it is not a file."""
    return require_file(path, "dataset file")


def pick_key(keys, aliases: tuple[str, ...], file, field_name: str,
             required: bool = True) -> str | None:
    """The first of ``aliases`` present in ``keys``; ``KeyError`` (file, field, keys present) if
    none."""
    for a in aliases:
        if a in keys:
            return a
    if required:
        raise KeyError(f"{file}: no key for {field_name!r} (tried {list(aliases)}); "
                       f"keys present: {sorted(keys)}")
    return None


def check_lengths(lengths: dict[str, int], file) -> int:
    """All ``{key: n}`` equal -> n; else ``ValueError`` naming the two keys that differ."""
    items = list(lengths.items())
    k0, n0 = items[0]
    for k, n in items[1:]:
        if n != n0:
            raise ValueError(f"{file}: keys {k0!r} and {k!r} have different lengths ({n0} vs {n})")
    return n0


def as_points(arr, joints: int, dims: int, file, key: str) -> np.ndarray:
    """Joint arrays in the layouts found in the wild -> ``(n, joints, dims)`` float32.

    Accepted, after dropping axes of size 1: ``(n, j, d)``, ``(n, d, j)``, ``(j, d, n)``,
    ``(d, j, n)`` (MATLAB files read through HDF5 or scipy) and flat ``(n, d * j)``
    coordinate-major (all x, then all y, ...), the authors' flat layout.  Earlier layouts win
    when ``n`` happens to equal ``j`` or ``d``.
    """
    a = np.asarray(arr)
    expect = f"(n, {joints}, {dims}) or a transposed / flat variant"
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{file}: key {key!r} has dtype {a.dtype}, "
                         f"expected a number array {expect}")
    core = [s for s in a.shape if s != 1]
    if len(core) == 2 and sorted(core) == sorted((joints, dims)):
        a = a.reshape(1, *core)                                 # a single frame
    elif len(core) == 3:
        a = a.reshape(core)
    out = None
    if a.ndim == 3:
        if a.shape[1:] == (joints, dims):
            out = a
        elif a.shape[1:] == (dims, joints):
            out = rearrange(a, "n d j -> n j d")
        elif a.shape[:2] == (joints, dims):
            out = rearrange(a, "j d n -> n j d")
        elif a.shape[:2] == (dims, joints):
            out = rearrange(a, "d j n -> n j d")
    elif a.ndim == 2 and a.shape[1] == joints * dims:
        out = rearrange(a, "n (d j) -> n j d", d=dims)
    if out is None:
        raise ValueError(f"{file}: key {key!r} has shape {np.shape(arr)}, expected {expect}")
    out = np.ascontiguousarray(out, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{file}: key {key!r} contains NaN or inf")
    return out


def subject_ids(values, file, key: str) -> np.ndarray:
    """Subjects as ints: ``9``, ``b'S9'``, ``'S9'`` or ``'TS1'`` -> 9 / 1; ValueError otherwise."""
    a = np.asarray(values).reshape(-1)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    out = []
    for v in a:
        s = v.decode() if isinstance(v, bytes) else str(v)
        digits = s.strip().lstrip("TS").lstrip("S")
        if not digits.isdigit():
            raise ValueError(f"{file}: key {key!r} holds subject {s!r}, expected an int or 'S<k>'")
        out.append(int(digits))
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class LoadedSet:
    """A real data set in the project's contract.

    heatmaps: ``(n, 16, 64, 64)`` float32 MPII order, or None (simulate them);
    poses_3d_mm: ``(n, 17, 3)`` float32, camera frame, Human3.6M-17 order;
    poses_2d_px: ``(n, 17, 2)`` Human3.6M-17 order or ``(n, 16, 2)`` MPII order, image px
    (the batch's 17-joint 2D then puts Neck/Nose midway between upper neck and head top);
    meta: ``{name: (n,) array}``, at least subject, action, camera, frame;
    ambiguous: ``(n,)`` bool H36MA flag, or None (computed from the heatmaps used);
    source: file the set came from; keys: ``{field: key found in the file}``.
    """

    heatmaps: np.ndarray | None
    poses_3d_mm: np.ndarray
    poses_2d_px: np.ndarray
    meta: dict = field(default_factory=dict)
    ambiguous: np.ndarray | None = None
    source: str = ""
    keys: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.poses_3d_mm.shape[0]
        if self.poses_3d_mm.shape != (n, N_H36M, 3):
            raise ValueError(f"LoadedSet.poses_3d_mm has shape {self.poses_3d_mm.shape}, "
                             "expected (n, 17, 3)")
        if self.poses_2d_px.shape not in ((n, N_H36M, 2), (n, N_MPII, 2)):
            raise ValueError(f"LoadedSet.poses_2d_px has shape {self.poses_2d_px.shape}, "
                             f"expected ({n}, 17, 2) or ({n}, 16, 2)")
        if self.heatmaps is not None and self.heatmaps.shape != (n, N_MPII, 64, 64):
            raise ValueError(f"LoadedSet.heatmaps has shape {self.heatmaps.shape}, "
                             f"expected ({n}, 16, 64, 64)")
        if self.ambiguous is not None and self.ambiguous.shape != (n,):
            raise ValueError(f"LoadedSet.ambiguous has shape {self.ambiguous.shape}, "
                             f"expected ({n},)")
        for k, v in self.meta.items():
            if np.shape(v)[:1] != (n,):
                raise ValueError(f"LoadedSet.meta[{k!r}] has shape {np.shape(v)}, expected ({n},)")

    def __len__(self) -> int:
        return self.poses_3d_mm.shape[0]

    def to_sample_batch(self, generator: torch.Generator | None,
                        heatmap_config: HeatmapConfig = HeatmapConfig(), crop_scale: float = 1.2,
                        chunk: int = 512) -> SampleBatch:
        """-> :class:`SampleBatch` on ``generator``'s device (CPU if None), float32.

        The crop is the 2D joints' box enlarged ``crop_scale`` (the paper's 1.2x);
        ``joints_hm`` are the true MPII joints in heatmap pixels.  Without stored heatmaps,
        they are simulated in chunks of ``chunk`` rows with ``generator`` (required then),
        and ``ambiguous_joints`` are the simulator's flags; with stored heatmaps,
        ``ambiguous_joints`` are the joints whose fitted Gaussian is wider than the H36MA
        threshold.  ``ambiguous`` is the stored flag, else the H36MA rule on the heatmaps.
        Simulated heatmaps carry the simulator's per-joint failure flags (inverted, jittered,
        missed, kept mode, truncated; ``failed_joints`` the PCKh rule); stored ones get
        ``failed_joints`` from the PCKh rule on their argmax and no simulator flags.
        """
        if self.heatmaps is None and generator is None:
            raise ValueError("to_sample_batch: this set has no heatmaps, so they are simulated: "
                             "pass a torch.Generator")
        device = generator.device if generator is not None else torch.device("cpu")
        p2d = torch.as_tensor(self.poses_2d_px, dtype=torch.float32, device=device)
        p3d = torch.as_tensor(self.poses_3d_mm, dtype=torch.float32, device=device)
        mpii_2d = p2d[:, list(H36M_TO_MPII)] if p2d.shape[1] == N_H36M else p2d
        boxes = crop_boxes(p2d, crop_scale)
        joints_hm = to_heatmap_px(mpii_2d, boxes, heatmap_config.size)
        flags = {}                  # the simulator's failure flags; None = unknown (stored maps)
        if self.heatmaps is not None:
            heat = torch.as_tensor(self.heatmaps, dtype=torch.float32, device=device)
            amb_joints = (fit_gaussian_sigma(heat) > heatmap_config.ambiguous_sigma_px).any(dim=-1)
        else:
            depth_mm = p3d[:, list(H36M_TO_MPII), 2]
            parts = [simulate_heatmaps(joints_hm[i:i + chunk], depth_mm[i:i + chunk],
                                       heatmap_config, generator)
                     for i in range(0, len(self), chunk)]
            heat = torch.cat([s.heatmaps for s in parts])
            amb_joints = torch.cat([s.ambiguous for s in parts])
            flags = {"failed_joints": torch.cat([s.failed for s in parts]),
                     **{f"{k}_joints": torch.cat([getattr(s, k) for s in parts])
                        for k in ("inverted", "jittered", "missed", "truncated")},
                     "kept_true_mode": torch.cat([s.kept_true_mode for s in parts])}
        if self.ambiguous is not None:
            amb = torch.as_tensor(self.ambiguous, dtype=torch.bool, device=device)
        else:
            amb = h36ma_ambiguous(heat, heatmap_config.ambiguous_sigma_px)
        if p2d.shape[1] != N_H36M:   # SampleBatch holds H36M-17: reorder, approximate Neck/Nose
            full = torch.zeros((len(self), N_H36M, 2), device=device)
            full[:, list(H36M_TO_MPII)] = p2d
            full[:, 9] = (full[:, 8] + full[:, 10]) / 2      # midway upper neck -> head top
            p2d = full
        return SampleBatch(heatmaps=heat, poses_3d_mm=p3d, poses_2d_px=p2d, boxes=boxes,
                           joints_hm=joints_hm, ambiguous_joints=amb_joints, ambiguous=amb,
                           **flags)
