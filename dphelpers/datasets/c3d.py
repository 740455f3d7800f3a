"""Optical motion capture in C3D files: markers read, Human3.6M-17 joint centres estimated.

A C3D file (the format of Vicon, Qualisys, Motion Analysis, ...) holds marker trajectories,
not joints.  :func:`read_c3d` reads the 3D points of any such file (integer or float storage,
Intel byte order; DEC and MIPS files are refused by name); :func:`markers_to_h36m` turns a
full-body marker set with medial markers at the knees, elbows and wrists (Vicon's 53-marker
set: ``LKNE``/``LKNI``, ``LELB``/``LIEL``, ``LOWR``/``LIWR``, waist ``LFWT``/``LBWT``, head
``ARIEL``, ...) into Human3.6M-17 joint centres:

- knee, elbow, wrist: the midpoint of the lateral and medial marker;
- ankle: the lateral malleolus marker moved half an ankle width (35 mm) along the knee's
  medial-lateral axis; shoulder: midpoint of the front and back shoulder markers;
- hip: Bell et al.'s regression from the pelvis markers (front and back waist markers as
  ASIS and PSIS): 30% of the ASIS distance down, 19% back, 36% out from the ASIS midpoint;
- pelvis = hip midpoint (as everywhere in the book); thorax = midpoint of the shoulders;
  spine = midpoint of pelvis and thorax; head = the head-top marker ``ARIEL``; neck/nose on
  the line from the thorax to the centre of the four head markers (:data:`NECK_FRACTION`).

The lab's vertical axis is found from the data (:func:`up_rotation`) and turned to +Z.  Gaps
(a negative residual or an all-zero point, as C3D marks them) up to ``max_gap`` frames are
filled linearly per marker (:func:`fill_gaps`), a missing pelvis marker from the other pelvis
markers (:func:`rigid_fill`); frames with a longer gap in a needed marker are NaN in the
result, and :func:`valid_runs` finds the complete stretches.  Used by
``data/make_new_people.py`` for the embedded new-people clips; nothing here downloads.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import check_file

__all__ = ["C3dMarkers", "read_c3d", "fill_gaps", "rigid_fill", "up_rotation",
           "markers_to_h36m", "valid_runs", "MARKERS_NEEDED", "PELVIS_CLUSTER",
           "ANKLE_HALF_WIDTH_M", "NECK_FRACTION"]

#: processor types of the parameter section
_INTEL, _DEC, _MIPS = 84, 85, 86
#: half the ankle's width between the malleoli (metres), for the ankle centre
ANKLE_HALF_WIDTH_M = 0.035
#: where Neck/Nose sits on the line from the thorax to the centre of the head markers
NECK_FRACTION = 0.5
#: the markers :func:`markers_to_h36m` uses, per side where ``{s}`` is ``L`` or ``R``
MARKERS_NEEDED = ("ARIEL", "LFHD", "RFHD", "LBHD", "RBHD", "{s}FWT", "{s}BWT", "{s}KNE",
                  "{s}KNI", "{s}ANK", "{s}FSH", "{s}BSH", "{s}ELB", "{s}IEL", "{s}OWR", "{s}IWR")


@dataclass(frozen=True, eq=False)
class C3dMarkers:
    """Markers of one C3D file: ``points (n, m, 3)`` in the file's unit (``unit``) and lab
    frame, NaN where a marker is missing; ``labels`` without the subject prefix
    (``"Nick01:LKNE"`` -> ``"LKNE"``); ``rate`` in Hz."""

    labels: tuple[str, ...]
    points: np.ndarray
    rate: float
    unit: str
    source: str

    def marker(self, name: str) -> np.ndarray:
        """``(n, 3)`` trajectory of ``name``; ``KeyError`` naming the file and the labels."""
        if name not in self.labels:
            raise KeyError(f"{self.source}: no marker {name!r}; the file has "
                           f"{', '.join(self.labels)}")
        return self.points[:, self.labels.index(name)]


def _parameters(buf: bytes, start: int, path) -> dict[str, tuple[int, tuple, bytes]]:
    """``{"GROUP:NAME": (type, dims, raw bytes)}`` of the parameter section at ``start``."""
    n_blocks, proc = buf[start + 2], buf[start + 3]
    if proc != _INTEL:
        kind = {_DEC: "DEC", _MIPS: "MIPS (big-endian)"}.get(proc, f"unknown ({proc})")
        raise ValueError(f"{path}: C3D processor type {kind}; only Intel files are read here "
                         "(re-save the file as Intel/PC in the capture software)")
    end = min(len(buf), start + 512 * n_blocks)
    groups, params = {}, []
    pos = start + 4
    while pos + 2 <= end:
        n_chars, gid = struct.unpack_from("<bb", buf, pos)
        if n_chars == 0:
            break
        name = buf[pos + 2: pos + 2 + abs(n_chars)].decode("latin-1").upper()
        nxt_at = pos + 2 + abs(n_chars)
        (offset,) = struct.unpack_from("<h", buf, nxt_at)
        body = nxt_at + 2
        if gid < 0:
            groups[-gid] = name
        else:
            dtype, ndim = struct.unpack_from("<bB", buf, body)
            dims = tuple(buf[body + 2: body + 2 + ndim])
            size = abs(dtype) * int(np.prod(dims)) if ndim else abs(dtype)
            data = buf[body + 2 + ndim: body + 2 + ndim + size]
            params.append((gid, name, dtype, dims, data))
        if offset == 0:
            break
        pos = nxt_at + offset
    return {f"{groups.get(g, g)}:{n}": (t, d, raw) for g, n, t, d, raw in params}


def _strings(entry, path, key) -> list[str]:
    dtype, dims, raw = entry
    if dtype != -1 or len(dims) not in (1, 2):
        raise ValueError(f"{path}: parameter {key} has type {dtype} dims {dims}, "
                         "expected characters")
    width, count = (dims[0], dims[1]) if len(dims) == 2 else (dims[0], 1)
    return [raw[i * width:(i + 1) * width].decode("latin-1").strip() for i in range(count)]


def read_c3d(path) -> C3dMarkers:
    """Read the 3D points of a C3D file (header, ``POINT`` parameters, frame data).

    Errors name the file and the field: not a C3D file, a processor type other than Intel, a
    truncated data section, or missing point labels."""
    path = check_file(path)
    buf = path.read_bytes()
    if len(buf) < 512 or buf[1] != 0x50:
        raise ValueError(f"{path}: not a C3D file (byte 2 of the header is not 0x50)")
    param_block = buf[0]
    n_points, n_analog, first, last = struct.unpack_from("<hhhh", buf, 2)  # analog: per frame
    (scale,) = struct.unpack_from("<f", buf, 12)
    (data_block,) = struct.unpack_from("<h", buf, 16)
    (rate,) = struct.unpack_from("<f", buf, 20)
    params = _parameters(buf, 512 * (param_block - 1), path)
    if "POINT:LABELS" not in params:
        raise KeyError(f"{path}: no POINT:LABELS parameter (has {sorted(params)})")
    labels = _strings(params["POINT:LABELS"], path, "POINT:LABELS")
    for extra in ("POINT:LABELS2", "POINT:LABELS3"):
        if extra in params:
            labels += _strings(params[extra], path, extra)
    labels = [lab.split(":")[-1] for lab in labels][:n_points]
    if len(labels) < n_points:
        raise ValueError(f"{path}: POINT:LABELS has {len(labels)} names for {n_points} points")
    unit = _strings(params["POINT:UNITS"], path, "POINT:UNITS")[0] if (
        "POINT:UNITS" in params) else "mm"
    n_frames = last - first + 1
    is_float = scale < 0
    word = 4 if is_float else 2
    frame_len = word * (4 * n_points + n_analog)
    start = 512 * (data_block - 1)
    if n_frames < 1 or start + frame_len * n_frames > len(buf):
        raise ValueError(f"{path}: data section holds {max(len(buf) - start, 0)} bytes, "
                         f"{n_frames} frames of {frame_len} bytes need "
                         f"{frame_len * max(n_frames, 0)} (truncated file?)")
    raw = np.frombuffer(buf, np.float32 if is_float else np.int16,
                        count=(4 * n_points + n_analog) * n_frames, offset=start)
    raw = raw.reshape(n_frames, 4 * n_points + n_analog)[:, :4 * n_points]
    raw = raw.reshape(n_frames, n_points, 4).astype(np.float64)
    xyz = raw[..., :3] * (1.0 if is_float else scale)
    residual = raw[..., 3]
    xyz[residual < 0] = np.nan                      # C3D marks a gap with a negative residual
    xyz[np.all(xyz == 0, axis=-1)] = np.nan         # ... and some writers with zeros
    return C3dMarkers(tuple(labels), xyz, float(rate), unit, str(path))


def _unit_m(unit: str, source: str) -> float:
    table = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}
    if unit.lower() not in table:
        raise ValueError(f"{source}: POINT:UNITS is {unit!r}, expected mm, cm or m")
    return table[unit.lower()]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def fill_gaps(points: np.ndarray, max_gap: int) -> np.ndarray:
    """``points (n, m, 3)`` with every NaN run of at most ``max_gap`` frames between two
    present frames filled linearly (per marker); longer gaps and gaps at either end stay NaN."""
    out = points.copy()
    for j in range(points.shape[1]):
        ok = np.isfinite(points[:, j]).all(axis=-1)
        idx = np.flatnonzero(ok)
        for a, b in zip(idx[:-1], idx[1:]):
            if 1 < b - a <= max_gap + 1:
                t = (np.arange(a + 1, b) - a)[:, None] / (b - a)
                out[a + 1:b, j] = (1 - t) * points[a, j] + t * points[b, j]
    return out


#: markers on one rigid segment (the pelvis): a missing one is placed from the others
PELVIS_CLUSTER = ("LFWT", "LMWT", "LBWT", "RFWT", "RMWT", "RBWT")


def rigid_fill(points: np.ndarray, columns: list[int]) -> np.ndarray:
    """``points (n, m, 3)`` with the missing markers among ``columns`` (one rigid segment)
    placed from at least three present ones: the nearest frame in time where all of them are
    present is fitted onto the present markers (Kabsch, rotation + translation) and carries
    the missing ones along.  Frames with fewer than three present stay as they are."""
    out = points.copy()
    seg = points[:, columns]                                       # (n, k, 3)
    present = np.isfinite(seg).all(axis=-1)                       # (n, k)
    full = np.flatnonzero(present.all(axis=1))
    if not len(full):
        return out
    for t in np.flatnonzero(~present.all(axis=1) & (present.sum(axis=1) >= 3)):
        ref = seg[full[np.argmin(np.abs(full - t))]]
        have = present[t]
        a, b = ref[have], seg[t, have]
        ca, cb = a.mean(axis=0), b.mean(axis=0)
        u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
        d = np.sign(np.linalg.det(vt.T @ u.T))
        rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
        placed = (ref[~have] - ca) @ rot.T + cb
        out[t, np.asarray(columns)[~have]] = placed
    return out


def up_rotation(head_top: np.ndarray, feet: np.ndarray, source: str = "") -> np.ndarray:
    """The proper rotation ``(3, 3)`` that turns the lab's vertical axis to +Z.

    The vertical is the coordinate axis (with its sign) nearest to the mean of ``head_top -
    feet`` over the frames where both are present (``(n, 3)`` each); ``ValueError`` if that
    mean is not clearly along one axis (less than 0.8 of its length), as for a person lying."""
    d = head_top - feet
    d = d[np.isfinite(d).all(axis=-1)]
    if not len(d):
        raise ValueError(f"{source}: the head-top and foot markers are never both present")
    mean = d.mean(axis=0)
    k = int(np.argmax(np.abs(mean)))
    if abs(mean[k]) < 0.8 * np.linalg.norm(mean):
        raise ValueError(f"{source}: no clear vertical axis (mean head-above-feet vector "
                         f"{np.round(mean, 1).tolist()})")
    r3 = np.sign(mean[k]) * np.eye(3)[k]
    r1 = np.eye(3)[1 if k == 0 else 0]          # Y up: (x, y, z) -> (x, -z, y), as for BVH
    return np.stack([r1, np.cross(r3, r1), r3])


def markers_to_h36m(markers: C3dMarkers, max_gap: int = 0) -> np.ndarray:
    """Human3.6M-17 joint centres ``(n, 17, 3)`` in metres, Z up (:func:`up_rotation`), NaN
    in frames where a needed marker (:data:`MARKERS_NEEDED`) is missing after filling gaps of
    up to ``max_gap`` frames (:func:`fill_gaps`)."""
    s = _unit_m(markers.unit, markers.source)
    points = fill_gaps(markers.points, max_gap) if max_gap > 0 else markers.points
    if all(c in markers.labels for c in PELVIS_CLUSTER):
        points = rigid_fill(points, [markers.labels.index(c) for c in PELVIS_CLUSTER])
    filled = C3dMarkers(markers.labels, points, markers.rate, markers.unit, markers.source)
    m = {}
    for name in MARKERS_NEEDED:
        for side in ("L", "R") if "{s}" in name else ("",):
            key = name.format(s=side)
            m[key] = filled.marker(key) * s
    rot = up_rotation(m["ARIEL"], 0.5 * (m["LANK"] + m["RANK"]), markers.source)
    m = {k: v @ rot.T for k, v in m.items()}
    joints = {}
    asis_mid = 0.5 * (m["LFWT"] + m["RFWT"])
    psis_mid = 0.5 * (m["LBWT"] + m["RBWT"])
    lateral = _unit(m["LFWT"] - m["RFWT"])                        # towards the left
    forward = asis_mid - psis_mid
    forward = _unit(forward - (forward * lateral).sum(-1, keepdims=True) * lateral)
    up = np.cross(forward, lateral)
    width = np.linalg.norm(m["LFWT"] - m["RFWT"], axis=-1, keepdims=True)
    for side, sign in (("L", 1.0), ("R", -1.0)):
        joints[f"{side}hip"] = (asis_mid + width * (-0.19 * forward + sign * 0.36 * lateral
                                                    - 0.30 * up))
        joints[f"{side}knee"] = 0.5 * (m[f"{side}KNE"] + m[f"{side}KNI"])
        medial = _unit(m[f"{side}KNI"] - m[f"{side}KNE"])
        joints[f"{side}ankle"] = m[f"{side}ANK"] + ANKLE_HALF_WIDTH_M * medial
        joints[f"{side}shoulder"] = 0.5 * (m[f"{side}FSH"] + m[f"{side}BSH"])
        joints[f"{side}elbow"] = 0.5 * (m[f"{side}ELB"] + m[f"{side}IEL"])
        joints[f"{side}wrist"] = 0.5 * (m[f"{side}OWR"] + m[f"{side}IWR"])
    pelvis = 0.5 * (joints["Lhip"] + joints["Rhip"])
    thorax = 0.5 * (joints["Lshoulder"] + joints["Rshoulder"])
    head_centre = 0.25 * (m["LFHD"] + m["RFHD"] + m["LBHD"] + m["RBHD"])
    order = [pelvis, joints["Rhip"], joints["Rknee"], joints["Rankle"],
             joints["Lhip"], joints["Lknee"], joints["Lankle"],
             0.5 * (pelvis + thorax), thorax, thorax + NECK_FRACTION * (head_centre - thorax),
             m["ARIEL"], joints["Lshoulder"], joints["Lelbow"], joints["Lwrist"],
             joints["Rshoulder"], joints["Relbow"], joints["Rwrist"]]
    return np.stack(order, axis=1)


def valid_runs(poses: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: the stretches of frames with every joint finite, at least
    ``min_len`` frames long."""
    ok = np.isfinite(poses).all(axis=(1, 2))
    runs, start = [], None
    for i, good in enumerate(np.append(ok, False)):
        if good and start is None:
            start = i
        elif not good and start is not None:
            if i - start >= min_len:
                runs.append((start, i))
            start = None
    return runs
