"""Regenerate ``data/mocap_h36m17.npz``: real motion capture mapped onto Human3.6M-17.

Sources (see ``data/README.md`` for provenance and licences):

* CMU subject 1, ``01_01.bvh`` and ``01_03.bvh`` (Debian ``assimp-testmodels``), 120 Hz;
* ``Boxing_Toes.bvh`` (same package), 100 Hz, centimetres;
* PyPI ``holosoma-retargeting==0.1.0`` demo clips ``mocap_climb_seq_{0..4}``, 120 Hz, metres;
* PyPI ``pybullet==3.2.7``: the 15 DeepMimic clips ``pybullet_data/data/motions/humanoid3d_*.txt``
  (16-60 Hz), posed through ``pybullet_data/humanoid/humanoid.urdf``.

Output: metres, world frame Z up (right-handed), pelvis = exact midpoint of the hips,
every clip subsampled to ~30 Hz (16 and 24 Hz clips are kept as they are).  Run with
``python data/make_mocap.py``; it may download the holosoma and pybullet wheels with
``pip download --no-deps`` into temp folders and reads files out of them (nothing is installed;
the runtime package never downloads anything).

The BVH and URDF readers and forward kinematics below are small self-contained numpy code.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
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
        print(f"  note: {path.name}: header says {n_header} frames, file has {len(rows)} "
              "complete rows;"
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
        target = getattr(node.targets[0], "id", "") if isinstance(node, ast.Assign) else ""
        if target == "MOCAP_DEMO_JOINTS":
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


# --- DeepMimic (pybullet) --------------------------------------------------------------
PYBULLET_WHEEL = "pybullet==3.2.7"
DM_SCALE = 0.25  # pybullet loads humanoid.urdf with globalScaling=0.25: then units are metres
DM_URDF = "pybullet_data/humanoid/humanoid.urdf"
DM_MOTION = re.compile(r"pybullet_data/data/motions/humanoid3d_(\w+)\.txt$")


def pybullet_files(cache: Path) -> tuple[bytes, dict[str, bytes]]:
    """``humanoid.urdf`` and the ``humanoid3d_*.txt`` motions (by clip name) read out of the
    pybullet 3.2.7 archive, which pip downloads once into ``cache`` (nothing is installed)."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("pybullet-3.2.7*"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PYBULLET_WHEEL,
                        "-d", str(cache)], check=True)
        found = sorted(cache.glob("pybullet-3.2.7*"))
    archive = found[0]
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            files = {n: zf.read(n) for n in zf.namelist()
                     if n.endswith(DM_URDF) or DM_MOTION.search(n)}
    else:  # an sdist (.tar.gz) where no wheel fits this platform
        with tarfile.open(archive) as tf:
            files = {m.name: tf.extractfile(m).read() for m in tf.getmembers()
                     if m.isfile() and (m.name.endswith(DM_URDF) or DM_MOTION.search(m.name))}
    urdf = [v for n, v in sorted(files.items()) if n.endswith(DM_URDF)]
    motions = {DM_MOTION.search(n).group(1): v for n, v in sorted(files.items())
               if DM_MOTION.search(n)}
    if not urdf or len(motions) != 15:
        raise FileNotFoundError(f"{archive}: expected {DM_URDF} and 15 humanoid3d_*.txt motions, "
                                f"found {len(urdf)} URDF and {sorted(motions)}")
    return urdf[0], motions


@dataclass
class UrdfJoint:
    name: str
    kind: str  # fixed, spherical or revolute
    parent: str
    child: str
    origin: np.ndarray  # (3,) in URDF units, in the parent link's frame
    axis: np.ndarray  # (3,) revolute axis


def parse_urdf(text: bytes) -> tuple[list[UrdfJoint], dict[str, tuple[np.ndarray, float]]]:
    """Joints in file order (parents first) and each link's collision sphere (centre, radius)."""
    robot = ET.fromstring(text.rstrip(b"\x00\r\n "))  # the shipped file ends in a NUL byte
    vec = lambda el, key: np.array(el.get(key).split(), dtype=np.float64)  # noqa: E731
    joints = []
    for j in robot.findall("joint"):
        origin, axis = j.find("origin"), j.find("axis")
        if np.any(vec(origin, "rpy") != 0):
            raise ValueError(f"URDF joint {j.get('name')!r}: rpy {origin.get('rpy')!r}, "
                             "expected 0 0 0")
        joints.append(UrdfJoint(j.get("name"), j.get("type"), j.find("parent").get("link"),
                                j.find("child").get("link"), vec(origin, "xyz"),
                                vec(axis, "xyz") if axis is not None else np.zeros(3)))
    spheres = {}
    for link in robot.findall("link"):
        sphere = link.find("collision/geometry/sphere")
        if sphere is not None:
            spheres[link.get("name")] = (vec(link.find("collision/origin"), "xyz"),
                                         float(sphere.get("radius")))
    return joints, spheres


def quat_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(t, 3, 3)`` from quaternions ``(t, 4)`` stored (w, x, y, z)."""
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    rows = [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def axis_angle_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(t, 3, 3)`` about the unit ``axis`` by ``angle`` radians (Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = angle[:, None, None]
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def deepmimic_fk(joints: list[UrdfJoint], frames: np.ndarray) -> tuple[dict, dict]:
    """World positions ``(t, 3)`` (metres, Y up) and rotations ``(t, 3, 3)`` of every link.

    A frame is ``[duration, root xyz (3), root quaternion (4)]`` and then, for each movable
    joint in URDF order, a quaternion (w, x, y, z; spherical) or one angle (revolute);
    ``p_child = p_parent + R_parent @ (0.25 origin)``, ``R_child = R_parent @ R_joint``.
    """
    t = frames.shape[0]
    base = joints[0].parent
    pos, rot = {base: frames[:, 1:4]}, {base: quat_matrix(frames[:, 4:8])}
    col = 8
    for j in joints:
        if j.kind == "spherical":
            r_joint, col = quat_matrix(frames[:, col:col + 4]), col + 4
        elif j.kind == "revolute":
            r_joint, col = axis_angle_matrix(j.axis, frames[:, col]), col + 1
        elif j.kind == "fixed":
            r_joint = np.broadcast_to(np.eye(3), (t, 3, 3))
        else:
            raise ValueError(f"URDF joint {j.name!r}: unsupported type {j.kind!r}")
        pos[j.child] = pos[j.parent] + rot[j.parent] @ (DM_SCALE * j.origin)
        rot[j.child] = rot[j.parent] @ r_joint
    if col != frames.shape[1]:
        raise ValueError(f"DeepMimic frame has {frames.shape[1]} values, the URDF needs {col}")
    return pos, rot


def deepmimic_to_h36m(pos: dict, rot: dict, spheres: dict) -> tuple[np.ndarray, np.ndarray]:
    """H36M-17 ``(t, 17, 3)`` metres Z up (pelvis set later) and the left toe direction ``(t, 3)``.

    Spine = chest joint (the waist), Thorax = neck joint (at shoulder height, where the arms
    branch); the head is the neck link's collision sphere: Neck/Nose = its centre less half a
    radius along the neck axis, Head = its top.
    """
    centre, radius = DM_SCALE * spheres["neck"][0], DM_SCALE * spheres["neck"][1]
    head_c = pos["neck"] + rot["neck"] @ centre
    up = rot["neck"][:, :, 1]  # the neck link's local +Y in the world
    g = dict(pos, nose=head_c - 0.5 * radius * up, head_top=head_c + radius * up)
    cols = [np.zeros_like(g["root"])] + [g[n] for n in (
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "chest",
        "neck", "nose", "head_top", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
        "right_elbow", "right_wrist")]
    toe = rot["left_ankle"][:, :, 0]  # the foot box sits along the ankle's local +X
    return np.stack(cols, axis=1) @ Y_UP_TO_Z_UP.T, toe @ Y_UP_TO_Z_UP.T


def facing_agreement(poses: np.ndarray, toe: np.ndarray) -> float:
    """Fraction of frames where (left hip - right hip) x (pelvis -> thorax) points along the toes;
    near 1 for a correctly handed skeleton, near 0 for a mirrored one."""
    facing = np.cross(poses[:, 4] - poses[:, 1], poses[:, 8] - poses[:, 0])
    return float((np.einsum("ti,ti->t", facing, toe) > 0).mean())


def deepmimic_clips(cache: Path) -> list[tuple[str, str, float, np.ndarray]]:
    """The 15 DeepMimic clips, each subsampled to ~30 Hz (every 2nd frame of the 60 Hz ones)."""
    urdf, motions = pybullet_files(cache)
    joints, spheres = parse_urdf(urdf)
    clips = []
    for name, text in motions.items():
        frames = np.asarray(json.loads(text)["Frames"], dtype=np.float64)
        fps = round(1.0 / float(np.median(frames[frames[:, 0] > 0, 0])), 2)
        step = max(1, int(round(fps / 30)))
        poses, toe = deepmimic_to_h36m(*deepmimic_fk(joints, frames), spheres)
        print(f"  deepmimic_{name}: {len(frames)} frames @ {fps:g} Hz, facing agrees with the "
              f"toes in {facing_agreement(poses, toe):.0%} of frames")
        clips.append((f"deepmimic_{name}", f"pybullet 3.2.7 pybullet_data/data/motions/"
                      f"humanoid3d_{name}.txt (DeepMimic)", fps / step, finish(poses, step)))
    return clips


# --- checks and assembly ----------------------------------------------------------------
def finish(poses: np.ndarray, step: int) -> np.ndarray:
    """Subsample in time, set pelvis := hip midpoint, float32."""
    poses = poses[::step].copy()
    poses[:, 0] = 0.5 * (poses[:, 1] + poses[:, 4])
    return poses.astype(np.float32)


def report(name: str, poses: np.ndarray, fps: float, min_upright: float = 0.8) -> None:
    """Print mean bone lengths and an uprightness check; fail on implausible data."""
    bones = np.linalg.norm(poses[:, 1:] - poses[:, list(PARENTS[1:])], axis=-1).mean(0)
    upright = float((poses[:, 10, 2] > poses[:, 0, 2]).mean())
    print(f"{name:22s} {poses.shape[0]:5d} frames @ {fps:.0f} Hz  upright {upright:.2f}  "
          f"thigh {bones[[1, 4]].mean():.3f} shin {bones[[2, 5]].mean():.3f} "
          f"upper arm {bones[[11, 14]].mean():.3f} forearm {bones[[12, 15]].mean():.3f} "
          f"pelvis-spine {bones[6]:.3f} spine-thorax {bones[7]:.3f} "
          f"thorax-neck {bones[8]:.3f} neck-head {bones[9]:.3f} hip {bones[[0, 3]].mean():.3f} "
          f"shoulder {bones[[10, 13]].mean():.3f}")
    assert upright >= min_upright, f"{name}: head above pelvis in only {upright:.0%} of frames"
    assert 0.3 < bones[[1, 4, 2, 5]].mean() < 0.5, f"{name}: implausible leg bones {bones[:6]}"
    assert 0.2 < bones[[11, 14]].mean() < 0.36, f"{name}: implausible upper arm {bones[[11, 14]]}"


DM_NOT_UPRIGHT = {f"deepmimic_{n}" for n in ("backflip", "cartwheel", "crawl", "getup_facedown",
                                               "getup_faceup", "roll")}


def build(cache: Path, dm_cache: Path) -> dict[str, np.ndarray]:
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
        folder = pkg / "demo_data" / "climb" / f"mocap_climb_seq_{k}"
        f = next(folder.glob("*_joint_positions_*.npy"))
        arr = np.load(f).astype(np.float64)
        clips.append((f"holosoma_climb_{k}", f"holosoma-retargeting 0.1.0 demo_data/climb/{f.name}",
                      120.0 / 4, finish(holosoma_to_h36m(arr, names), 4)))
    clips += deepmimic_clips(dm_cache)
    for name, _, fps, poses in clips:
        # DeepMimic's floor and acrobatic clips spend long stretches lying or upside down
        report(name, poses, fps, 0.0 if name in DM_NOT_UPRIGHT else 0.8)
    return clip_arrays(clips)


def clip_arrays(clips: list[tuple[str, str, float, np.ndarray]]) -> dict[str, np.ndarray]:
    """``[(name, source, fps, poses), ...]`` -> the npz's arrays (``format_version`` 1)."""
    return {
        "poses_m": np.concatenate([c[3] for c in clips]).astype(np.float32),
        "clip_index": np.concatenate([np.full(len(c[3]), i, np.int32)
                                      for i, c in enumerate(clips)]),
        "clip_names": np.array([c[0] for c in clips]),
        "clip_sources": np.array([c[1] for c in clips]),
        "clip_fps": np.array([c[2] for c in clips], np.float32),
        "format_version": np.array(1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "holo")
    ap.add_argument("--pybullet-cache", type=Path,
                    default=Path(tempfile.gettempdir()) / "pybullet327")
    args = ap.parse_args()
    arrays = build(args.cache, args.pybullet_cache)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, "
          f"{len(arrays['poses_m'])} frames, {len(arrays['clip_names'])} clips)")


if __name__ == "__main__":
    main()
