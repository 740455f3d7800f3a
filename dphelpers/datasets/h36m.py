"""Human3.6M in the DiffPose authors' HDF5 layout, the official splits and the protocol mean
(notebook 05).

Human3.6M is licensed (http://vision.imar.ro/human3.6m/) and not shipped here; people who
have it and the authors' preprocessed heatmaps can evaluate on it with :func:`load_h36m_h5`.

Two layouts of the same columns are read with ``h5py``:

- *flat*: one dataset per column (in the file's root, or in the group named by ``table``);
- *table*: one compound dataset whose fields are the columns -- what PyTables writes; the
  authors' file holds two, ``dataset/trainset`` and ``dataset/testset`` (name one with
  ``table``; a file with a single compound dataset needs no name).

Columns, with the names accepted for each (the first present is used; the result's
``keys`` says which was found):

============  =====================================================  ==================
column        keys tried                                             shape, per row
============  =====================================================  ==================
heatmaps      heatmaps, heatmap, hm                                  (16, 64, 64) float
argmax_2d     argmax_2d, joints_2d_hm, joints_hm (optional)          (16, 2) or (2, 16)
gt_2d         gt_2d, poses_2d, joints_2d, pose_2d                    (17, 2) or (2, 17) px
gt_3d         gt_3d, poses_3d, joints_3d, pose_3d                    (17, 3) or (3, 17) mm
subject       subject, subjects, subj                                int or 'S9'
action        action, actions, action_name                           int or str
camera        camera, cam, cameras, camera_id                        int or '54138969'
frame         frame, frame_orig, frames, frame_idx                   int
hard          hard, hardsubset, h36ma, ambiguous (optional)          bool (H36MA flag)
subaction     subaction, subact (optional)                           int or str
============  =====================================================  ==================

``gt_3d`` is the camera frame in millimetres (``scale_to_mm`` converts other units).
String actions are reduced to the 15 names of :data:`ACTIONS` ('Directions 1' ->
'Directions', 'TakingPhoto' -> 'Photo', ...); integer actions are kept as stored.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..heatmaps import h36ma_ambiguous
from ..skeleton import N_H36M, N_MPII
from .base import LoadedSet, as_points, check_file, check_lengths, pick_key, subject_ids

__all__ = [
    "ACTIONS", "TRAIN_SUBJECTS", "TEST_SUBJECTS", "TEST_EVERY", "H5_KEYS", "normalize_action",
    "load_h36m_h5", "h36m_per_action", "h36m_protocol_mean",
]

TRAIN_SUBJECTS: tuple[int, ...] = (1, 5, 6, 7, 8)
TEST_SUBJECTS: tuple[int, ...] = (9, 11)
#: The protocol tests on every 16th stored row (the authors store every 4th frame).
TEST_EVERY = 16
ACTIONS: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "WalkTogether", "Walking",
)
_ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog",
                   "WalkingTogether": "WalkTogether"}

#: column -> (keys tried in order, required)
H5_KEYS: dict[str, tuple[tuple[str, ...], bool]] = {
    "heatmaps": (("heatmaps", "heatmap", "hm"), True),
    "argmax_2d": (("argmax_2d", "joints_2d_hm", "joints_hm"), False),
    "gt_2d": (("gt_2d", "poses_2d", "joints_2d", "pose_2d"), True),
    "gt_3d": (("gt_3d", "poses_3d", "joints_3d", "pose_3d"), True),
    "subject": (("subject", "subjects", "subj"), True),
    "action": (("action", "actions", "action_name"), True),
    "camera": (("camera", "cam", "cameras", "camera_id"), True),
    "frame": (("frame", "frame_orig", "frames", "frame_idx"), True),
    "hard": (("hard", "hardsubset", "h36ma", "ambiguous"), False),
    "subaction": (("subaction", "subact"), False),
}


def normalize_action(name, strict: bool = True) -> str:
    """'Directions 1', b'WalkingDog', 'TakingPhoto_2' -> a name of :data:`ACTIONS`.

    Unknown names raise ``ValueError`` (``strict``) or come back stripped of their suffix.
    """
    s = name.decode() if isinstance(name, bytes) else str(name)
    base = re.sub(r"[\s_.-]*\d+$", "", s.strip())
    base = _ACTION_ALIASES.get(base, base)
    if base not in ACTIONS and strict:
        raise ValueError(f"unknown Human3.6M action {s!r}; expected one of {ACTIONS}")
    return base


def _open_h5(path: Path):
    import h5py
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from None


def _columns(f, path: Path, table: str | None):
    """-> (names, read(name, sel)) of the flat group or compound dataset holding the columns."""
    import h5py
    if table is None:
        gt3d_keys = H5_KEYS["gt_3d"][0]
        if any(k in f for k in gt3d_keys):
            obj = f
        else:
            tables = []
            f.visititems(lambda n, o: tables.append(n) if isinstance(o, h5py.Dataset)
                         and o.dtype.names else None)
            if len(tables) != 1:
                where = f"compound datasets {tables}: name one with table=" if tables else \
                    f"keys present: {sorted(f.keys())}"
                raise KeyError(f"{path}: no key for 'gt_3d' (tried {list(gt3d_keys)}); {where}")
            obj = f[tables[0]]
    else:
        if table not in f:
            raise KeyError(f"{path}: no table {table!r}; keys present: {sorted(f.keys())}")
        obj = f[table]
    if isinstance(obj, h5py.Dataset):
        if not obj.dtype.names:
            raise ValueError(f"{path}: {table!r} is a plain dataset, "
                             "expected a group or a compound table")
        return (set(obj.dtype.names), lambda k, sel: obj.fields(k)[sel],
                {k: obj.shape[0] for k in obj.dtype.names})
    names = {k for k, v in obj.items() if isinstance(v, h5py.Dataset)}
    return names, lambda k, sel: obj[k][sel], {k: (obj[k].shape or (0,))[0] for k in names}


def _as_int(values, file, key: str) -> np.ndarray:
    a = np.asarray(values).reshape(-1)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    try:
        return np.asarray([int(v.decode() if isinstance(v, bytes) else v) for v in a],
                          dtype=np.int64)
    except ValueError:
        raise ValueError(f"{file}: key {key!r} has values like {a[:1]}, "
                         "expected integers") from None


def _actions(values) -> np.ndarray:
    a = np.asarray(values).reshape(-1)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    text = [v.decode() if isinstance(v, bytes) else str(v) for v in a]
    if all(t.strip().isdigit() for t in text):          # integer codes stored as text
        return np.asarray([int(t) for t in text], dtype=np.int64)
    return np.asarray([normalize_action(t, strict=False) for t in text])


def _checked_heatmaps(raw: dict, keys: dict, m: int, path) -> np.ndarray:
    """The stored heatmaps as float32 ``(m, 16, 64, 64)``, refused (naming the key) when their
    shape, dtype or values are wrong."""
    heat = np.asarray(raw["heatmaps"])
    if heat.shape != (m, N_MPII, 64, 64) or not np.issubdtype(heat.dtype, np.floating):
        raise ValueError(f"{path}: key {keys['heatmaps']!r} has shape {heat.shape} "
                         f"dtype {heat.dtype}, expected ({m}, 16, 64, 64) float")
    heat = heat.astype(np.float32)
    if not np.isfinite(heat).all():
        raise ValueError(f"{path}: key {keys['heatmaps']!r} contains NaN or inf")
    return heat


def _checked_meta(raw: dict, keys: dict, subjects: np.ndarray, m: int, path) -> dict:
    """Subject, action, camera, frame (and argmax_2d, subaction when stored), one row each of
    the ``m`` kept rows; a column of another length is refused, naming its key."""
    meta = {"subject": subjects, "action": _actions(raw["action"]),
            "camera": _as_int(raw["camera"], path, keys["camera"]),
            "frame": _as_int(raw["frame"], path, keys["frame"])}
    if "argmax_2d" in keys:
        meta["argmax_2d"] = as_points(raw["argmax_2d"], N_MPII, 2, path, keys["argmax_2d"])
    if "subaction" in keys:
        meta["subaction"] = np.asarray(raw["subaction"]).reshape(-1)
    for c, v in meta.items():
        if len(v) != m:
            raise ValueError(f"{path}: key {keys[c]!r} has {len(v)} rows, expected {m}")
    return meta


def load_h36m_h5(path, subjects=None, every: int = 1, table: str | None = None,
                 with_heatmaps: bool = True, scale_to_mm: float = 1.0) -> LoadedSet:
    """Read a Human3.6M HDF5 file (layouts and keys in the module docstring) -> :class:`LoadedSet`.

    Keeps every ``every``-th stored row (the protocol: ``every=TEST_EVERY`` on the test set),
    then the rows of ``subjects`` (ints or 'S9'; None = all).  ``with_heatmaps=False`` skips
    the stored heatmaps (they are then simulated by ``to_sample_batch``).  Without a ``hard``
    column the H36MA flag is computed from the heatmaps (:func:`heatmaps.h36ma_ambiguous`).
    Everything is read and checked before the result is built.
    """
    path = check_file(path)
    if int(every) < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    want = (None if subjects is None
            else set(subject_ids(list(subjects), "subjects", "subjects").tolist()))
    with _open_h5(path) as f:
        try:
            names, read, lengths = _columns(f, path, table)
            keys = {c: pick_key(names, aliases, path, c,
                                required and (c != "heatmaps" or with_heatmaps))
                    for c, (aliases, required) in H5_KEYS.items()}
            if not with_heatmaps:
                keys["heatmaps"] = None
            keys = {c: k for c, k in keys.items() if k is not None}
            order = [keys["gt_3d"]] + [k for k in keys.values() if k != keys["gt_3d"]]
            n = check_lengths({k: lengths[k] for k in order}, path)
            rows = slice(0, n, int(every))
            subj = subject_ids(read(keys["subject"], rows), path, keys["subject"])
            mask = np.ones(len(subj), bool) if want is None else np.isin(subj, list(want))
            if not mask.any():
                raise ValueError(f"{path}: no rows of subjects {sorted(want)} (every={every}); "
                                 f"subjects present: {sorted(set(subj.tolist()))}")
            sel = rows if mask.all() else (np.arange(n)[rows][mask]).tolist()
            raw = {c: read(k, sel) for c, k in keys.items()}
        except OSError as e:
            raise ValueError(f"{path}: could not read (truncated or corrupt?): {e}") from None
    # validate everything, then build
    m = int(mask.sum())
    p3d = as_points(raw["gt_3d"], N_H36M, 3, path, keys["gt_3d"]) * np.float32(scale_to_mm)
    p2d = as_points(raw["gt_2d"], N_H36M, 2, path, keys["gt_2d"])
    extent = np.abs(p3d - p3d[:, :1]).max()
    if extent < 20.0:
        raise ValueError(f"{path}: key {keys['gt_3d']!r} spans only {extent:.3g} units around the "
                         f"pelvis: metres? pass scale_to_mm=1000")
    heat = _checked_heatmaps(raw, keys, m, path) if "heatmaps" in keys else None
    meta = _checked_meta(raw, keys, subj[mask], m, path)
    hard = None
    if "hard" in keys:
        hard = np.asarray(raw["hard"]).reshape(-1).astype(bool)
        if hard.shape != (m,):
            raise ValueError(f"{path}: key {keys['hard']!r} has shape {hard.shape}, "
                             f"expected ({m},)")
    elif heat is not None:
        hard = np.concatenate([h36ma_ambiguous(torch.from_numpy(heat[i:i + 1024])).numpy()
                               for i in range(0, m, 1024)])
    return LoadedSet(heatmaps=heat, poses_3d_mm=p3d, poses_2d_px=p2d, meta=meta, ambiguous=hard,
                     source=str(path), keys=keys)


def h36m_per_action(per_sample_values, actions) -> dict:
    """``{action: mean of its samples}`` for ``per_sample_values: (n,)`` and ``actions: (n,)``."""
    v = np.asarray(per_sample_values.detach().cpu() if isinstance(per_sample_values, torch.Tensor)
                   else per_sample_values, dtype=np.float64).reshape(-1)
    a = np.asarray(actions).reshape(-1)
    if v.shape != a.shape or v.size == 0:
        raise ValueError(f"per_sample_values {v.shape} and actions {a.shape} "
                         "must be equal-length, non-empty")
    groups = np.unique(a)
    if len(groups) > len(ACTIONS):
        raise ValueError(f"actions has {len(groups)} distinct values, "
                         f"expected at most {len(ACTIONS)}")
    return {g.item() if hasattr(g, "item") else g: float(v[a == g].mean()) for g in groups}


def h36m_protocol_mean(per_sample_values, actions) -> float:
    """The Human3.6M score: the mean of the per-action means (REFERENCE.md, "Evaluation").

    Averages over the actions present (all 15 for the full protocol), so an action with
    few frames counts as much as one with many.
    """
    return float(np.mean(list(h36m_per_action(per_sample_values, actions).values())))
