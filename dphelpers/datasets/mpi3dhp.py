"""MPI-INF-3DHP test set: its 17-joint skeleton, the loader, 3D PCK and AUC (notebook 05).

MPI-INF-3DHP (https://vcai.mpi-inf.mpg.de/3dhp-dataset/) is licensed and not shipped here.
Each test sequence ``TS1`` ... ``TS6`` has an ``annot_data.mat``: MATLAB v7.3, i.e. HDF5
(read with ``h5py``; an older v5 ``.mat`` is read with ``scipy.io.loadmat``), holding

- ``univ_annot3`` / ``annot3``: 3D joints, mm, camera frame, e.g. ``(n, 1, 17, 3)`` or
  ``(3, 17, 1, n)`` (``univ_annot3`` is rescaled to a universal body size; the benchmark uses it);
- ``annot2``: 2D joints, px; ``valid_frame``: 0/1; ``activity_annotation``: 1-7 (see
  :data:`MPI3DHP_ACTIVITIES`).

Joint order of the 17 test joints (:data:`MPI3DHP_NAMES`) and the map to Human3.6M-17,
``pose_h36m = pose_3dhp[..., MPI3DHP_TO_H36M, :]``.  Joints whose meaning differs:

- 3DHP ``neck`` (base of the neck, between the shoulders) -> H36M ``Thorax``;
- 3DHP ``head`` (centre of the head) -> H36M ``Neck/Nose`` (H36M's is lower, near the nose);
- 3DHP ``head_top`` -> H36M ``Head`` (H36M's "head" marker is near the top of the head);
- 3DHP ``spine`` (mid-back) -> H36M ``Spine``.
The 14 PCK joints (:data:`skeleton.PCK_JOINTS`) leave out pelvis, spine and neck/nose, so
the differing ``head`` -> Neck/Nose and ``spine`` do not enter PCK or AUC.
"""
from __future__ import annotations

import re

import numpy as np
import torch

from ..metrics import best_hypothesis, per_joint_error, root_relative
from ..skeleton import N_H36M, PCK_JOINTS
from .base import LoadedSet, as_points, check_file, check_lengths, pick_key

__all__ = [
    "MPI3DHP_NAMES", "MPI3DHP_TO_H36M", "MPI3DHP_ACTIVITIES", "MPI3DHP_KEYS", "AUC_THRESHOLDS_MM",
    "load_3dhp_test", "pck3d", "auc3d",
]

MPI3DHP_NAMES: tuple[str, ...] = (
    "head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "pelvis", "spine", "head",
)
#: H36M joint ``k`` is 3DHP joint ``MPI3DHP_TO_H36M[k]``.
MPI3DHP_TO_H36M: tuple[int, ...] = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
#: ``activity_annotation`` codes 1..7.
MPI3DHP_ACTIVITIES: tuple[str, ...] = (
    "Standing/Walking", "Exercising", "Sitting", "Reaching/Crouching", "On the floor", "Sports",
    "Miscellaneous",
)
#: column -> (keys tried in order, required)
MPI3DHP_KEYS: dict[str, tuple[tuple[str, ...], bool]] = {
    "annot3": (("univ_annot3", "annot3"), True),
    "annot2": (("annot2",), True),
    "valid": (("valid_frame", "valid"), False),
    "activity": (("activity_annotation", "activity"), False),
}
AUC_THRESHOLDS_MM: tuple[float, ...] = tuple(float(t) for t in range(0, 151, 5))


def _read_mat(path, names: list[str]) -> dict:
    """The arrays ``names`` (those present) of a v7.3 (HDF5) or v5 .mat file -> (keys, dict)."""
    import h5py
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                keys = set(f.keys())
                return keys, {k: np.asarray(f[k][()]) for k in names if k in keys}
        from scipy.io import loadmat
        mat = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
        return set(mat), {k: np.asarray(mat[k]) for k in names if k in mat}
    except (OSError, ValueError, TypeError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .mat file (truncated or corrupt?): {e}") from None


def load_3dhp_test(path, valid_only: bool = True, subject: int | None = None,
                   every: int = 1) -> LoadedSet:
    """Read one 3DHP test sequence's ``annot_data.mat`` -> :class:`LoadedSet` in H36M-17 order.

    Keeps the valid frames (``valid_only``), then every ``every``-th.  The set has no
    heatmaps (``to_sample_batch`` simulates them from ``annot2``) and no H36MA flag (computed
    on those heatmaps).  meta: subject (``subject``, else the ``TS<k>`` folder name, else 0),
    action (activity code 1-7, 0 if absent), camera (-1: one camera per sequence), frame
    (index in the sequence), valid.  The 3D key used is ``keys['annot3']``.
    """
    path = check_file(path)
    if int(every) < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    names = [a for aliases, _ in MPI3DHP_KEYS.values() for a in aliases]
    present, raw = _read_mat(path, names)
    keys = {c: pick_key(present, aliases, path, c, required)
            for c, (aliases, required) in MPI3DHP_KEYS.items()}
    keys = {c: k for c, k in keys.items() if k is not None}
    p3d = as_points(raw[keys["annot3"]], N_H36M, 3, path, keys["annot3"])[:, list(MPI3DHP_TO_H36M)]
    p2d = as_points(raw[keys["annot2"]], N_H36M, 2, path, keys["annot2"])[:, list(MPI3DHP_TO_H36M)]
    cols = {keys["annot3"]: len(p3d), keys["annot2"]: len(p2d)}
    valid = np.ones(len(p3d), bool)
    if "valid" in keys:
        valid = raw[keys["valid"]].reshape(-1).astype(bool)
        cols[keys["valid"]] = len(valid)
    activity = np.zeros(len(p3d), np.int64)
    if "activity" in keys:
        activity = raw[keys["activity"]].reshape(-1).astype(np.int64)
        cols[keys["activity"]] = len(activity)
    n = check_lengths(cols, path)
    extent = np.abs(p3d - p3d[:, :1]).max() if n else 0.0
    if extent < 20.0:
        raise ValueError(f"{path}: key {keys['annot3']!r} spans only {extent:.3g} units around the "
                         f"pelvis, expected millimetres")
    rows = np.flatnonzero(valid) if valid_only else np.arange(n)
    rows = rows[::int(every)]
    if rows.size == 0:
        raise ValueError(f"{path}: no valid frames (key {keys.get('valid')!r})")
    if subject is None:
        m = re.fullmatch(r"TS(\d+)", path.parent.name)
        subject = int(m.group(1)) if m else 0
    meta = {"subject": np.full(rows.size, int(subject)), "action": activity[rows],
            "camera": np.full(rows.size, -1), "frame": rows, "valid": valid[rows]}
    return LoadedSet(heatmaps=None, poses_3d_mm=p3d[rows], poses_2d_px=p2d[rows], meta=meta,
                     ambiguous=None, source=str(path), keys=keys)


def _best_errors(pred, gt) -> torch.Tensor:
    """Root-relative per-joint errors ``(b, 17)`` of the best hypothesis (by MPJPE)."""
    pred, gt = torch.as_tensor(pred), torch.as_tensor(gt)
    if pred.ndim == 3:
        pred = pred[:, None]
    best = best_hypothesis(pred, gt)                              # checks the shapes
    chosen = pred[torch.arange(pred.shape[0]), best][:, None]
    return per_joint_error(root_relative(chosen), root_relative(gt).to(chosen.dtype))[:, 0]


def pck3d(pred, gt, threshold_mm: float = 150.0) -> float:
    """3D PCK in %: the share of the 14 ``PCK_JOINTS`` closer than ``threshold_mm`` (strictly).

    ``pred: (b, 17, 3)`` or ``(b, h, 17, 3)`` (best hypothesis by MPJPE), ``gt: (b, 17, 3)``;
    mm, Human3.6M-17 order, root-relative with the pelvis at the hips' midpoint (as
    :func:`metrics.pck`).
    """
    err = _best_errors(pred, gt)[:, list(PCK_JOINTS)]
    return 100.0 * float((err < threshold_mm).double().mean())


def auc3d(pred, gt, thresholds_mm=AUC_THRESHOLDS_MM) -> float:
    """Area under the PCK curve in %: the mean of :func:`pck3d` over ``thresholds_mm``
    (0..150 step 5)."""
    err = _best_errors(pred, gt)[:, list(PCK_JOINTS)]
    t = torch.as_tensor(thresholds_mm, dtype=err.dtype).reshape(-1)
    if t.numel() == 0:
        raise ValueError("thresholds_mm must not be empty")
    return 100.0 * float((err[None] < t[:, None, None]).double().mean())
