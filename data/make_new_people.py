"""Regenerate ``data/mocap_new_people_h36m17.npz``: three people the models never trained on.

Sources (provenance and licences in ``data/README.md``):

* Debian's ``dart-doc`` (DART, BSD-2-clause), ``usr/share/doc/dart/data/c3d/``:
  ``nick_freeform_001.c3d`` (subject "Nick01") and ``squat.c3d`` (subject "SehoonVSK35"),
  Vicon optical marker captures at 120 Hz with a 53-marker full-body set.  Joint centres come
  from the markers (:func:`dphelpers.datasets.c3d.markers_to_h36m`: medial and lateral marker
  midpoints, Bell's hip regression), gaps of up to 0.2 s are filled, every complete stretch of
  at least one second becomes a clip, kept at every 4th frame (30 Hz).
* Debian's ``assimp-testmodels`` (installed by CI for the BVH clips), ``WRL/
  MotionCaptureROM.WRL``: a range-of-motion capture on a 3ds Max Biped ("free for any
  purpose"), 45 s at 30 Hz, read by the small VRML97 reader below; frames around recording
  glitches (a joint faster than 5 m/s relative to the pelvis) are dropped.

Standing still is thinned out of every clip (:func:`thin_static`), so a clip's frames are in
time order but not evenly spaced.  These are different people, capture systems and joint
definitions from every training clip: an unseen-people test (the ``heldout`` verb's ``--new``),
never training data.

Run with ``python data/make_new_people.py``; it runs ``apt-get download dart-doc`` into a temp
folder and reads the two files out of the package (nothing is installed; the runtime package
never downloads anything).  Or pass ``--c3d-dir`` with the two files.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dphelpers.datasets.c3d import markers_to_h36m, read_c3d, valid_runs  # noqa: E402
from make_mocap import clip_arrays, finish, report  # noqa: E402

OUT = Path(__file__).resolve().parent / "mocap_new_people_h36m17.npz"
#: (file, clip name prefix, who)
SOURCES = (("nick_freeform_001.c3d", "nick_freeform", "Nick01"),
           ("squat.c3d", "sehoon_squat", "SehoonVSK35"))
MAX_GAP_S = 0.2
MIN_RUN_S = 1.0
STEP = 4
#: a frame is kept only when its root-relative pose differs from the last kept frame by at least
#: this mean per-joint distance (m): the squat capture ends in 15 s of standing still
MIN_CHANGE_M = 0.015


def thin_static(poses: np.ndarray, min_change_m: float = MIN_CHANGE_M) -> np.ndarray:
    """The frames of ``poses (t, 17, 3)`` that moved: each kept frame's root-relative pose is at
    least ``min_change_m`` (mean per joint) from the last kept one; the first is kept."""
    rel = poses - poses[:, :1]
    keep = [0]
    for t in range(1, len(poses)):
        if np.linalg.norm(rel[t] - rel[keep[-1]], axis=-1).mean() >= min_change_m:
            keep.append(t)
    return poses[keep]


# --- VRML97 (3ds Max export): Transform tree, interpolators, ROUTEs --------------------------
ROM_IN_PACKAGE = Path("usr/share/assimp/models/WRL/MotionCaptureROM.WRL")
#: Human3.6M-17 joint -> Biped node (``Bip01_`` prefix); Neck/Nose is set apart below
ROM_MAP = ("Becken", "R_Oberschenkel", "R_Unterschenkel", "R_Fu_", "L_Oberschenkel",
           "L_Unterschenkel", "L_Fu_", "Wirbels_ule2", "Hals", None, "KopfNub", "L_Oberarm",
           "L_Unterarm", "L_Hand", "R_Oberarm", "R_Unterarm", "R_Hand")
#: Neck/Nose on the way from the head bone's base (``Kopf``, 5 cm above the neck) to its top
ROM_NOSE_FRACTION = 0.35
ROM_UNIT_M = 0.0254                    # inches: head top 1.75 m, thigh 0.40 m
ROM_MAX_SPEED = 5.0                    # m/s relative to the pelvis: above it, a glitch
_NUM = re.compile(r"^[-+0-9.eE]+$")


@dataclass
class VrmlNode:
    kind: str
    name: str | None
    fields: dict = field(default_factory=dict)
    children: list = field(default_factory=list)


def parse_vrml(text: str) -> tuple[list[VrmlNode], dict[str, VrmlNode], list[tuple[str, str]]]:
    """``(roots, DEF name -> node, [(from, to) ROUTEs])`` of a VRML97 file; fields are lists of
    numbers, strings or nodes (``children``: the child nodes)."""
    toks = [t for t in re.findall(r'"[^"]*"|[{}\[\],]|[^\s{}\[\],]+',
                                  re.sub(r"#[^\n]*", "", text)) if t != ","]
    pos, defs, routes = 0, {}, []

    def route() -> None:
        nonlocal pos
        routes.append((toks[pos + 1], toks[pos + 3]))
        pos += 4

    def value():
        nonlocal pos
        if toks[pos] == "[":
            pos += 1
            items = []
            while toks[pos] != "]":
                if toks[pos] == "ROUTE":
                    route()
                elif _NUM.match(toks[pos]):
                    items.append(float(toks[pos]))
                    pos += 1
                else:
                    items.append(node())
            pos += 1
            return items
        if _NUM.match(toks[pos]):
            nums = []
            while pos < len(toks) and _NUM.match(toks[pos]):
                nums.append(float(toks[pos]))
                pos += 1
            return nums
        if toks[pos] in ("TRUE", "FALSE") or toks[pos].startswith('"'):
            pos += 1
            return toks[pos - 1]
        return node()

    def node() -> VrmlNode:
        nonlocal pos
        name = None
        if toks[pos] == "DEF":
            name, pos = toks[pos + 1], pos + 2
        if toks[pos] == "USE":
            pos += 2
            return defs[toks[pos - 1]]
        n = VrmlNode(toks[pos], name)
        if toks[pos + 1] != "{":
            raise ValueError(f"VRML: expected '{{' after {toks[pos]!r}, got {toks[pos + 1]!r}")
        pos += 2
        while toks[pos] != "}":
            if toks[pos] == "ROUTE":
                route()
                continue
            key = toks[pos]
            pos += 1
            v = value()
            if key == "children":
                n.children = [c for c in v if isinstance(c, VrmlNode)]
            else:
                n.fields[key] = v
        pos += 1
        if name:
            defs[name] = n
        return n

    roots = []
    while pos < len(toks):
        if toks[pos] == "ROUTE":
            route()
        else:
            roots.append(node())
    return roots, defs, routes


def _quat(aa: np.ndarray) -> np.ndarray:
    """VRML axis-angle rows ``(n, 4)`` -> unit quaternions ``(n, 4)`` (w, x, y, z)."""
    aa = np.asarray(aa, float).reshape(-1, 4)
    axis = aa[:, :3] / np.maximum(np.linalg.norm(aa[:, :3], axis=1, keepdims=True), 1e-12)
    return np.concatenate([np.cos(aa[:, 3:] / 2), axis * np.sin(aa[:, 3:] / 2)], axis=1)


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = (q / np.linalg.norm(q, axis=-1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


def _interpolate(node: VrmlNode, f: np.ndarray) -> np.ndarray:
    """A Position- (``(n, 3)``) or OrientationInterpolator (``(n, 4)`` quaternions, linear then
    normalised, keys kept in one hemisphere) at fractions ``f``."""
    key = np.asarray(node.fields["key"], float)
    val = np.asarray(node.fields["keyValue"], float)
    if node.kind == "PositionInterpolator":
        val = val.reshape(-1, 3)
    else:
        val = _quat(val)
        for i in range(1, len(val)):
            if (val[i] * val[i - 1]).sum() < 0:
                val[i] = -val[i]
    out = np.stack([np.interp(f, key, val[:, k]) for k in range(val.shape[1])], axis=-1)
    return out if node.kind == "PositionInterpolator" else out / np.linalg.norm(
        out, axis=-1, keepdims=True)


def vrml_origins(text: str, fractions: np.ndarray) -> dict[str, np.ndarray]:
    """``{Transform name: (n, 3)}``: each Transform's origin in the world at the animation
    ``fractions``, with VRML's ``T R SR S SR^-1`` (centre 0) down the tree."""
    roots, defs, routes = parse_vrml(text)
    feeds = {tuple(dst.split(".set_")): defs[src.rsplit(".", 1)[0]]
             for src, dst in routes if src.endswith(".value_changed")}
    n = len(fractions)
    default = {"translation": [0, 0, 0], "scale": [1, 1, 1], "rotation": [0, 0, 1, 0],
               "scaleOrientation": [0, 0, 1, 0]}
    out: dict[str, np.ndarray] = {}

    def value(t: VrmlNode, key: str) -> np.ndarray:
        if (t.name, key) in feeds:
            return _interpolate(feeds[(t.name, key)], fractions)
        v = np.asarray(t.fields.get(key, default[key]), float)
        v = _quat(v) if key in ("rotation", "scaleOrientation") else v[None]
        return np.repeat(v, n, axis=0)

    def matrix(rot: np.ndarray) -> np.ndarray:
        m = np.repeat(np.eye(4)[None], n, axis=0)
        m[:, :3, :3] = rot
        return m

    def walk(t: VrmlNode, parent: np.ndarray) -> None:
        tr = np.repeat(np.eye(4)[None], n, axis=0)
        tr[:, :3, 3] = value(t, "translation")
        sr = matrix(_quat_matrix(value(t, "scaleOrientation")))
        sc = matrix(np.einsum("nk,kij->nij", value(t, "scale"), np.eye(3)[:, None] * np.eye(3)))
        m = parent @ tr @ matrix(_quat_matrix(value(t, "rotation"))) @ sr @ sc @ np.linalg.inv(sr)
        out[t.name] = m[:, :3, 3]
        for c in t.children:
            if c.kind == "Transform":
                walk(c, m)

    for r in roots:
        if r.kind == "Transform":
            walk(r, np.repeat(np.eye(4)[None], n, axis=0))
    return out


def _moving(poses: np.ndarray, step: int) -> tuple[np.ndarray, int]:
    """``(kept, n)``: every ``step``-th frame with the pelvis at the hip midpoint, float32
    (``make_mocap.finish``: ``n`` of them), then standing still thinned out
    (:func:`thin_static`)."""
    p = finish(poses, step)
    return thin_static(p), len(p)


def debian_file(package: str, inside: Path, cache: Path) -> Path:
    """``/inside`` when the package is installed, else ``inside`` of ``apt-get download
    package`` unpacked into ``cache`` (nothing is installed)."""
    if (Path("/") / inside).is_file():
        return Path("/") / inside
    if not (cache / inside).is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=cache, check=True)
        deb = next(cache.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(cache)], check=True)
    return cache / inside


def rom_poses(path: Path) -> tuple[np.ndarray, float]:
    """The range-of-motion capture on Human3.6M-17 ``(t, 17, 3)`` metres, Z up, and its rate."""
    text = path.read_text(encoding="latin-1")
    timer = re.search(r"TimeSensor\s*{[^}]*cycleInterval\s+([0-9.]+)", text)
    fps = 30.0                                              # 3ds Max's default frame rate
    n = int(round(float(timer.group(1)) * fps)) + 1          # 45.27 s: 1,359 frames
    origins = vrml_origins(text, np.linspace(0.0, 1.0, n))
    joints = [origins["Bip01_" + b] if b else None for b in ROM_MAP]
    kopf = origins["Bip01_Kopf"]
    joints[9] = kopf + ROM_NOSE_FRACTION * (origins["Bip01_KopfNub"] - kopf)
    poses = np.stack(joints, axis=1) * ROM_UNIT_M
    return poses @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]).T, fps   # Y up -> Z up


def glitch_free(poses: np.ndarray, fps: float, max_speed: float = ROM_MAX_SPEED,
                margin: int = 2) -> np.ndarray:
    """``(t,)`` bool: frames at least ``margin`` frames away from a jump faster than
    ``max_speed`` m/s of any joint relative to the pelvis."""
    rel = poses - poses[:, :1]
    speed = np.linalg.norm(np.diff(rel, axis=0), axis=-1).max(axis=1) * fps
    bad = np.zeros(len(poses), bool)
    for i in np.flatnonzero(speed > max_speed):
        bad[max(i - margin + 1, 0):i + margin + 1] = True
    return ~bad


def build(c3d_dir: Path, rom_file: Path) -> dict[str, np.ndarray]:
    clips: list[tuple[str, str, float, np.ndarray]] = []
    for fname, prefix, who in SOURCES:
        markers = read_c3d(c3d_dir / fname)
        poses = markers_to_h36m(markers, max_gap=int(round(MAX_GAP_S * markers.rate)))
        runs = valid_runs(poses, int(round(MIN_RUN_S * markers.rate)))
        for k, (a, b) in enumerate(runs, start=1):
            p, n_all = _moving(poses[a:b], STEP)
            src = (f"DART 6.12.1 (Debian dart-doc) data/c3d/{fname}, subject {who}, frames "
                   f"{a}-{b - 1} of {len(poses)} at {markers.rate:.0f} Hz, every {STEP}th, "
                   f"{len(p)} of those {n_all} moved >= {MIN_CHANGE_M * 1000:.0f} mm")
            clips.append((f"{prefix}_{k}", src, markers.rate / STEP, p))
    poses, fps = rom_poses(rom_file)
    ok = glitch_free(poses, fps)
    marked = np.where(ok[:, None, None], poses, np.nan)
    for k, (a, b) in enumerate(valid_runs(marked, int(round(MIN_RUN_S * fps))), start=1):
        p, n_all = _moving(poses[a:b], 1)
        src = (f"assimp-testmodels (Debian) WRL/MotionCaptureROM.WRL, 3ds Max Biped, frames "
               f"{a}-{b - 1} of {len(poses)} at {fps:.0f} Hz, {len(p)} of those {n_all} moved "
               f">= {MIN_CHANGE_M * 1000:.0f} mm")
        clips.append((f"range_of_motion_{k}", src, fps, p))
    for name, _, fps, p in clips:
        report(name, p, fps)
    return clip_arrays(clips)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--c3d-dir", type=Path, default=None,
                    help="folder with nick_freeform_001.c3d and squat.c3d (default: from dart-doc)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "newpeople",
                    help="where Debian packages that are not installed are unpacked")
    args = ap.parse_args()
    c3d_dir = args.c3d_dir or debian_file(
        "dart-doc", Path("usr/share/doc/dart/data/c3d/squat.c3d"), args.cache).parent
    arrays = build(c3d_dir, debian_file("assimp-testmodels", ROM_IN_PACKAGE, args.cache))
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, "
          f"{len(arrays['poses_m'])} frames, {len(arrays['clip_names'])} clips)")


if __name__ == "__main__":
    main()
