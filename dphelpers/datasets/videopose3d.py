"""Human3.6M in the VideoPose3D ``.npz`` files: world-frame poses for the embedded pipeline
(notebook 05).

Files (made by VideoPose3D's preparation script from the licensed Human3.6M data):

- ``data_3d_h36m.npz``, key ``positions_3d``: a pickled dict ``subject ('S1') -> action
  ('Directions 1') -> (t, 32, 3)`` metres, **world frame** (Z up, like our mocap clips);
- ``data_2d_h36m_gt.npz`` / ``data_2d_h36m_cpn_ft_h36m_dbb.npz``, key ``positions_2d``:
  ``subject -> action -> [4 cameras x (t, 17, 2)]`` image px, Human3.6M-17 order; key
  ``metadata`` (``layout_name``, ``num_joints``) is checked when present.

These files hold no camera extrinsics, so the 3D poses stay in the world frame: they feed
:func:`dphelpers.pipeline.make_test_set` / :class:`~dphelpers.pipeline.TrainStream`
(random cameras), not the camera-frame :class:`~dphelpers.datasets.LoadedSet`.  With a 2D
file, each row is one (subject, action, camera, frame) and carries that camera's 2D joints
(detections or ground truth), e.g. to simulate heatmaps from real 2D; its 3D is still the
world-frame pose.
"""
from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..skeleton import H36M_RAW32_TO_17, N_H36M
from .base import check_file, subject_ids
from .h36m import normalize_action

__all__ = ["WorldPoses", "load_videopose3d"]

_N_CAMERAS = 4


@dataclass(frozen=True, eq=False)
class WorldPoses:
    """Poses for the embedded pipeline: ``poses_m: (n, 17, 3)`` world metres, Z up;
    ``poses_2d_px: (n, 17, 2)`` or None; ``meta``: subject, action (one of the 15 names),
    action_name (as stored), camera (0-3, or -1 without 2D), frame."""

    poses_m: np.ndarray
    poses_2d_px: np.ndarray | None
    meta: dict = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return self.poses_m.shape[0]


#: What a VideoPose3D pickle may name: ndarrays (numpy 1 and 2 module paths) and dtypes.
#: Dicts, lists, tuples, strings and numbers need no name; anything else is refused.
_SAFE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only plain containers, numbers, strings and numpy arrays: a crafted file
    that names any other callable (``os.system``, ``builtins.eval``, ...) is refused before
    anything runs."""

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which is not a plain container "
                                     "or array (refused: unpickling it could run code)")


def _read_member(zf: zipfile.ZipFile, path, key: str):
    """One ``key.npy`` member of the npz: an array, or the object an object array holds,
    unpickled with :class:`_PlainUnpickler`."""
    with zf.open(f"{key}.npy") as fp:
        version = np.lib.format.read_magic(fp)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fp)
        if not dtype.hasobject:
            count = int(np.prod(shape))
            data = np.frombuffer(fp.read(count * dtype.itemsize), dtype=dtype, count=count)
            return data.reshape(shape, order="F" if fortran else "C")
        obj = _PlainUnpickler(fp).load()
    return obj


def _load_pickled(path, key: str):
    """``np.load(path)[key]`` as a Python object, without running code from the file.

    This format *is* a pickled dict inside the .npz; instead of ``allow_pickle=True`` (which
    runs whatever the pickle names) it is unpickled with :class:`_PlainUnpickler`, which
    accepts dicts, lists, strings, numbers and numpy arrays and refuses the rest.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            keys = sorted(n[:-4] for n in zf.namelist() if n.endswith(".npy"))
            if key not in keys:
                raise KeyError(f"{path}: no key {key!r}; keys present: {keys}")
            obj = _read_member(zf, path, key)
            meta = _read_member(zf, path, "metadata") if "metadata" in keys else None
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: key {key!r} cannot be read safely: {e}") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz file (truncated or corrupt?): {e}") from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if isinstance(meta, np.ndarray) and meta.dtype == object and meta.shape == ():
        meta = meta.item()
    if not isinstance(obj, dict):
        what = (f"dtype {obj.dtype} shape {obj.shape}" if isinstance(obj, np.ndarray)
                else type(obj).__name__)
        raise ValueError(f"{path}: key {key!r} holds {what}, expected a pickled dict "
                         "subject -> action -> array")
    if meta is not None and not isinstance(meta, dict):
        raise ValueError(f"{path}: key 'metadata' holds {type(meta).__name__}, expected a dict")
    return obj, meta


def _array(a, path, key: str, joints: tuple[int, ...], dims: int) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[1] not in joints or a.shape[2] != dims or a.dtype.kind not in "fiu":
        want = " or ".join(f"(t, {j}, {dims})" for j in joints)
        raise ValueError(f"{path}: key {key} has shape {a.shape} dtype {a.dtype}, "
                         f"expected {want} numbers")
    if not np.isfinite(a).all():
        raise ValueError(f"{path}: key {key} contains NaN or inf")
    return a.astype(np.float32)


def _cameras_2d(pos2d: dict, p2, s: str, a: str, t: int, where_3d: str) -> list[np.ndarray]:
    """The 4 cameras' 2D sequences of (subject ``s``, action ``a``) from ``positions_2d``, each
    at least ``t`` frames long (``where_3d`` names the 3D sequence in the error)."""
    key2 = f"positions_2d[{s!r}][{a!r}]"
    if s not in pos2d or a not in pos2d[s]:
        raise KeyError(f"{p2}: no key {key2} (present for {s!r}: {sorted(pos2d.get(s, {}))})")
    if len(pos2d[s][a]) != _N_CAMERAS:
        raise ValueError(f"{p2}: key {key2} holds {len(pos2d[s][a])} cameras, expected 4")
    cams = [_array(c, p2, f"{key2}[{i}]", (N_H36M,), 2) for i, c in enumerate(pos2d[s][a])]
    for i, c in enumerate(cams):
        if c.shape[0] < t:
            raise ValueError(f"{p2}: key {key2}[{i}] has {c.shape[0]} frames but {where_3d} "
                             f"has {t}")
    return cams


def load_videopose3d(path_3d, path_2d=None, subjects=None, every: int = 1) -> WorldPoses:
    """Read VideoPose3D's Human3.6M files -> :class:`WorldPoses` (world frame, metres).

    ``subjects``: ints or 'S9' (None = all); ``every``: keep every ``every``-th frame of each
    sequence.  32-joint poses are reduced with ``skeleton.H36M_RAW32_TO_17`` (17-joint ones are
    kept).  With ``path_2d``, every (subject, action) needs its 4 cameras there; a 2D sequence
    longer than the 3D one is cut to it (a known quirk of these files), a shorter one is an error.
    """
    p3 = check_file(path_3d)
    p2 = None if path_2d is None else check_file(path_2d)
    if int(every) < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    want = (None if subjects is None
            else set(subject_ids(list(subjects), "subjects", "subjects").tolist()))
    pos3d, _ = _load_pickled(p3, "positions_3d")
    pos2d, meta2d = _load_pickled(p2, "positions_2d") if p2 is not None else (None, None)
    if meta2d is not None:
        layout, nj = meta2d.get("layout_name", "h36m"), meta2d.get("num_joints", N_H36M)
        if layout != "h36m" or nj != N_H36M:
            raise ValueError(f"{p2}: metadata says layout {layout!r} with {nj} joints, "
                             "expected 'h36m', 17")
    poses, twod, cols = [], [], {k: [] for k in ("subject", "action", "action_name", "camera",
                                                 "frame")}
    subj_ids = dict(zip(pos3d, subject_ids(list(pos3d), p3, "positions_3d").tolist()))
    for s in sorted(pos3d, key=subj_ids.get):
        if want is not None and subj_ids[s] not in want:
            continue
        if not isinstance(pos3d[s], dict):
            raise ValueError(f"{p3}: positions_3d[{s!r}] is {type(pos3d[s]).__name__}, "
                             "expected a dict")
        for a in sorted(pos3d[s]):
            key3 = f"positions_3d[{s!r}][{a!r}]"
            seq = _array(pos3d[s][a], p3, key3, (32, N_H36M), 3)
            seq = seq[:, list(H36M_RAW32_TO_17)] if seq.shape[1] == 32 else seq
            t = seq.shape[0]
            frames = np.arange(0, t, int(every))
            cams = ([None] if pos2d is None
                    else _cameras_2d(pos2d, p2, s, a, t, f"{p3}: key {key3}"))
            for i, c in enumerate(cams):
                poses.append(seq[frames])
                if c is not None:
                    twod.append(c[:t][frames])
                for k, v in (("subject", subj_ids[s]),
                             ("action", normalize_action(a, strict=False)),
                             ("action_name", a), ("camera", i if c is not None else -1)):
                    cols[k].append(np.full(len(frames), v))
                cols["frame"].append(frames)
    if not poses:
        raise ValueError(f"{p3}: no sequences for subjects {sorted(want or [])}; "
                         f"present: {sorted(subj_ids.values())}")
    meta = {k: np.concatenate(v) for k, v in cols.items()}
    return WorldPoses(poses_m=np.concatenate(poses), meta=meta, source=str(p3),
                      poses_2d_px=np.concatenate(twod) if twod else None)
