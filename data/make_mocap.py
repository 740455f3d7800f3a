"""Regenerate ``data/mocap_h36m17.npz``: real motion capture mapped onto Human3.6M-17.

Sources (see ``data/README.md`` for provenance and licences):

* CMU subject 1, ``01_01.bvh`` and ``01_03.bvh`` (Debian ``assimp-testmodels``), 120 Hz;
* ``Boxing_Toes.bvh`` (same package), 100 Hz, centimetres;
* PyPI ``holosoma-retargeting==0.1.0`` demo clips ``mocap_climb_seq_{0..4}``, 120 Hz, metres.

Output: metres, world frame Z up (right-handed), pelvis = exact midpoint of the hips,
every clip subsampled to ~30 Hz.  Run with ``python data/make_mocap.py``; it may download the
holosoma wheel with ``pip download`` (the runtime package never downloads anything).

The BVH reader and forward kinematics below are a small self-contained numpy implementation.
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BVH_DIR = Path("/usr/share/assimp/models/BVH")
HOLO_WHEEL = "holosoma-retargeting==0.1.0"
OUT = Path(__file__).resolve().parent / "mocap_h36m17.npz"
# H36M-17 parents (copied here so the script runs without the package installed).
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
# Y-up (BVH) -> Z-up: (x, y, z) -> (x, -z, y), a proper rotation of +90 deg about X.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


# --- BVH --------------------------------------------------------------------------------
@dataclass
class BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)


def parse_bvh(path: Path) -> tuple[list[BvhJoint], np.ndarray, float]:
    """Joints (end sites named ``<parent>_end``), motion ``(t, n_channels)`` and frame time in s."""
    tokens = path.read_text().split()
    joints: list[BvhJoint] = []
    stack: list[int] = []
    i = 0
    while tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            joints.append(BvhJoint(tokens[i + 1], stack[-1] if stack else -1, np.zeros(3)))
            i += 2
        elif tok == "End":  # "End Site"
            parent = stack[-1]
            joints.append(BvhJoint(joints[parent].name + "_end", parent, np.zeros(3)))
            i += 2
        elif tok == "{":
            stack.append(len(joints) - 1)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            joints[stack[-1]].offset = np.array([float(v) for v in tokens[i + 1:i + 4]])
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            joints[stack[-1]].channels = tokens[i + 2:i + 2 + n]
            i += 2 + n
        else:  # HIERARCHY and the like
            i += 1
    # Motion: read line by line, keep complete rows (the header's frame count may be off).
    lines = path.read_text().splitlines()
    start = next(k for k, ln in enumerate(lines) if ln.strip() == "MOTION")
    n_header = int(lines[start + 1].split(":")[1])
    frame_time = float(lines[start + 2].split(":")[1])
    n_ch = sum(len(j.channels) for j in joints)
    rows = [ln.split() for ln in lines[start + 3:]]
    rows = [r for r in rows if len(r) == n_ch]
    if len(rows) != n_header:
        print(f"  note: {path.name}: header says {n_header} frames, file has {len(rows)} complete rows;"
              " using all complete rows")
    return joints, np.asarray(rows, dtype=np.float64), frame_time


def axis_rotation(axis: str, deg: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(t, 3, 3)`` about ``axis`` ('X', 'Y' or 'Z') by ``deg`` degrees."""
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    rows = {"X": [[o, z, z], [z, c, -s], [z, s, c]],
            "Y": [[c, z, s], [z, o, z], [-s, z, c]],
            "Z": [[c, -s, z], [s, c, z], [z, z, o]]}[axis]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def forward_kinematics(joints: list[BvhJoint], motion: np.ndarray) -> np.ndarray:
    """Global joint positions ``(t, n_joints, 3)`` in BVH units and axes.

    Rotation channels are applied in their declared order (intrinsic):
    ``R_local = R_c1 @ R_c2 @ R_c3``; ``p_child = p_parent + R_parent_global @ offset``.
    """
    t = motion.shape[0]
    pos = np.zeros((t, len(joints), 3))
    rot = np.zeros((t, len(joints), 3, 3))
    col = 0
    for k, j in enumerate(joints):
        r_local = np.broadcast_to(np.eye(3), (t, 3, 3)).copy()
        trans = np.zeros((t, 3))
        for ch in j.channels:
            if ch.endswith("position"):
                trans[:, "XYZ".index(ch[0])] = motion[:, col]
            else:
                r_local = r_local @ axis_rotation(ch[0], motion[:, col])
            col += 1
        if j.parent < 0:
            pos[:, k] = trans + j.offset
            rot[:, k] = r_local
        else:
            pos[:, k] = pos[:, j.parent] + np.einsum("tij,j->ti", rot[:, j.parent], j.offset)
            rot[:, k] = rot[:, j.parent] @ r_local
    return pos


def bvh_to_h36m(path: Path, mapping: list[str], unit_m: float) -> tuple[np.ndarray, float]:
    """H36M-17 poses ``(t, 17, 3)`` metres Z up (pelvis filled later) and the source fps."""
    joints, motion, frame_time = parse_bvh(path)
    pos = forward_kinematics(joints, motion)
    names = [j.name for j in joints]
    out = np.stack([pos[:, names.index(n)] if n else np.zeros_like(pos[:, 0]) for n in mapping], 1)
    return out @ Y_UP_TO_Z_UP.T * unit_m, round(1.0 / frame_time, 2)  # .0083333 s -> 120 Hz


# Torso and head are chosen for H36M-like proportions (thorax at shoulder height, where the
# shoulders branch; neck/nose ~0.1 m above it; head = head top):
#   CMU:    Spine=Spine, Thorax=Neck1, Neck/Nose=Head, Head=Head end site
#   Boxing: Spine=Chest (Ab sits just above the hips), Thorax=Neck, Neck/Nose=Head, Head=end site
# H36M order: Pelvis, RHip, RKnee, RAnkle, LHip, LKnee, LAnkle, Spine, Thorax, Neck/Nose, Head,
#             LShoulder, LElbow, LWrist, RShoulder, RElbow, RWrist   ("" = pelvis, set later)
CMU_MAP = ["", "RightUpLeg", "RightLeg", "RightFoot", "LeftUpLeg", "LeftLeg", "LeftFoot",
           "Spine", "Neck1", "Head", "Head_end", "LeftArm", "LeftForeArm", "LeftHand",
           "RightArm", "RightForeArm", "RightHand"]
BOXING_MAP = ["", "RightHip", "RightKnee", "RightAnkle", "LeftHip", "LeftKnee", "LeftAnkle",
              "Chest", "Neck", "Head", "Head_end", "LeftShoulder", "LeftElbow", "LeftWrist",
              "RightShoulder", "RightElbow", "RightWrist"]


# --- holosoma ---------------------------------------------------------------------------
def holosoma_root(cache: Path) -> Path:
    """Unpacked ``holosoma_retargeting`` package folder (downloads the wheel once with pip)."""
    pkg = cache / "x" / "holosoma_retargeting"
    if not pkg.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", HOLO_WHEEL,
                        "-d", str(cache)], check=True)
        wheel = next(cache.glob("holosoma_retargeting-0.1.0-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(cache / "x")
    return pkg


def holosoma_names(pkg: Path) -> list[str]:
    """``MOCAP_DEMO_JOINTS`` read from the source text (importing it needs the whole package)."""
    tree = ast.parse((pkg / "config_types" / "data_type.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MOCAP_DEMO_JOINTS":
            return list(ast.literal_eval(node.value))
    raise KeyError("MOCAP_DEMO_JOINTS not found in holosoma config_types/data_type.py")


def holosoma_to_h36m(arr: np.ndarray, names: list[str]) -> np.ndarray:
    """``(t, 53, 3)`` Mixamo-style joints (metres, Z up) -> H36M-17 ``(t, 17, 3)``.

    Mixamo's Spine sits just above the hips and its Neck at shoulder height, so:
    Spine = Spine1, Thorax = Neck, Neck/Nose = Head (base of skull), Head (top) = Head
    extended 0.8x the Neck->Head vector (there is no head-top joint).
    """
    if arr.ndim != 3 or arr.shape[1:] != (len(names), 3):
        raise ValueError(f"holosoma array shape {arr.shape}, expected (t, {len(names)}, 3)")
    g = {n: arr[:, names.index(n)] for n in names}
    head_top = g["Head"] + 0.8 * (g["Head"] - g["Neck"])
    cols = [np.zeros_like(g["Hips"]), g["RightUpLeg"], g["RightLeg"], g["RightFoot"],
            g["LeftUpLeg"], g["LeftLeg"], g["LeftFoot"], g["Spine1"], g["Neck"], g["Head"],
            head_top, g["LeftArm"], g["LeftForeArm"], g["LeftHand"], g["RightArm"],
            g["RightForeArm"], g["RightHand"]]
    return np.stack(cols, axis=1)


# --- checks and assembly ----------------------------------------------------------------
def finish(poses: np.ndarray, step: int) -> np.ndarray:
    """Subsample in time, set pelvis := hip midpoint, float32."""
    poses = poses[::step].copy()
    poses[:, 0] = 0.5 * (poses[:, 1] + poses[:, 4])
    return poses.astype(np.float32)


def report(name: str, poses: np.ndarray, fps: float) -> None:
    """Print mean bone lengths and an uprightness / facing check; fail on implausible data."""
    bones = np.linalg.norm(poses[:, 1:] - poses[:, list(PARENTS[1:])], axis=-1).mean(0)
    upright = float((poses[:, 10, 2] > poses[:, 0, 2]).mean())
    print(f"{name:22s} {poses.shape[0]:5d} frames @ {fps:.0f} Hz  upright {upright:.2f}  "
          f"thigh {bones[[1, 4]].mean():.3f} shin {bones[[2, 5]].mean():.3f} "
          f"upper arm {bones[[11, 14]].mean():.3f} forearm {bones[[12, 15]].mean():.3f} "
          f"pelvis-spine {bones[6]:.3f} spine-thorax {bones[7]:.3f} "
          f"thorax-neck {bones[8]:.3f} neck-head {bones[9]:.3f} hip {bones[[0, 3]].mean():.3f} "
          f"shoulder {bones[[10, 13]].mean():.3f}")
    assert upright > 0.8, f"{name}: head above pelvis in only {upright:.0%} of frames"
    assert 0.3 < bones[[1, 4, 2, 5]].mean() < 0.5, f"{name}: implausible leg bones {bones[:6]}"
    assert 0.2 < bones[[11, 14]].mean() < 0.36, f"{name}: implausible upper arm {bones[[11, 14]]}"


def build(cache: Path) -> dict[str, np.ndarray]:
    clips: list[tuple[str, str, float, np.ndarray]] = []
    for fname, label in (("01_01.bvh", "cmu_01_01_jumps"), ("01_03.bvh", "cmu_01_03_climb")):
        p, fps = bvh_to_h36m(BVH_DIR / fname, CMU_MAP, unit_m=0.0564)
        step = int(round(fps / 30))
        clips.append((label, f"CMU mocap subject 1 ({fname}, assimp-testmodels)", fps / step,
                      finish(p, step)))
    p, fps = bvh_to_h36m(BVH_DIR / "Boxing_Toes.bvh", BOXING_MAP, unit_m=0.01)
    step = int(round(fps / 30))
    clips.append(("boxing", "Boxing_Toes.bvh (assimp-testmodels)", fps / step, finish(p, step)))
    pkg = holosoma_root(cache)
    names = holosoma_names(pkg)
    for k in range(5):
        f = next((pkg / "demo_data" / "climb" / f"mocap_climb_seq_{k}").glob("*_joint_positions_*.npy"))
        arr = np.load(f).astype(np.float64)
        clips.append((f"holosoma_climb_{k}", f"holosoma-retargeting 0.1.0 demo_data/climb/{f.name}",
                      120.0 / 4, finish(holosoma_to_h36m(arr, names), 4)))
    for name, _, fps, poses in clips:
        report(name, poses, fps)
    return {
        "poses_m": np.concatenate([c[3] for c in clips]).astype(np.float32),
        "clip_index": np.concatenate([np.full(len(c[3]), i, np.int32) for i, c in enumerate(clips)]),
        "clip_names": np.array([c[0] for c in clips]),
        "clip_sources": np.array([c[1] for c in clips]),
        "clip_fps": np.array([c[2] for c in clips], np.float32),
        "format_version": np.array(1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "holo")
    args = ap.parse_args()
    arrays = build(args.cache)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, "
          f"{len(arrays['poses_m'])} frames, {len(arrays['clip_names'])} clips)")


if __name__ == "__main__":
    main()
