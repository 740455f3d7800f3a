"""Embedded motion-capture clips, a time-based train/test split, left/right mirroring and
bone-length scaling (notebook 01).

The clips live in ``data/mocap_h36m17.npz`` (made by ``data/make_mocap.py``): real motion
capture on the Human3.6M-17 skeleton, metres, world frame Z up, pelvis = hip midpoint.
Nothing here downloads anything.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .files import require_file
from .skeleton import H36M_FLIP_PAIRS, H36M_PARENTS, N_H36M

__all__ = [
    "Clip", "SplitConfig", "default_data_path", "new_people_path", "load_mocap", "clips_named",
    "hold_out_clips", "split_clips",
    "mirror_poses", "scale_bones", "random_bone_scales", "N_BONES",
]

#: One bone per non-pelvis joint: bone ``k`` ends at joint ``k + 1`` (parent
#: ``H36M_PARENTS[k + 1]``).
N_BONES = N_H36M - 1
_KEYS = ("poses_m", "clip_index", "clip_names", "clip_sources", "clip_fps", "format_version")
_FORMAT_VERSION = 1


def default_data_path() -> Path:
    """``$DPHELPERS_DATA`` if set, else ``<repo>/data/mocap_h36m17.npz`` next to the package."""
    env = os.environ.get("DPHELPERS_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "data" / "mocap_h36m17.npz"


def new_people_path() -> Path:
    """``<repo>/data/mocap_new_people_h36m17.npz``: three people from two sources outside the
    training data (made by ``data/make_new_people.py``), never training data: the
    unseen-people test."""
    return Path(__file__).resolve().parents[1] / "data" / "mocap_new_people_h36m17.npz"


@dataclass(frozen=True, eq=False)
class Clip:
    """One motion-capture clip. ``poses_m: (t, 17, 3)`` float32, metres, Z up, time order."""

    name: str
    source: str
    fps: float
    poses_m: np.ndarray


def _read(path: Path) -> dict[str, np.ndarray]:
    """All expected arrays of the npz at ``path``; errors name the file (and the key)."""
    require_file(path, "motion-capture file")
    bad = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)
    try:
        npz = np.load(path, allow_pickle=False)
    except bad as err:
        raise ValueError(f"{path}: not a valid or complete .npz file ({err})") from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not an .npz archive (got a single {type(npz).__name__})")
    with npz:
        present = set(npz.files)
        for key in _KEYS:
            if key not in present:
                raise KeyError(f"{path}: missing key {key!r} (has {sorted(present)})")
        try:
            return {key: npz[key] for key in _KEYS}
        except bad as err:
            raise ValueError(f"{path}: not a valid or complete .npz file ({err})") from err


def _check(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Validate shapes, dtypes and values; raise ValueError naming the key and shape."""
    poses, index = arrays["poses_m"], arrays["clip_index"]
    if (poses.ndim != 3 or poses.shape[1:] != (N_H36M, 3)
            or not np.issubdtype(poses.dtype, np.floating)):
        raise ValueError(f"{path}: 'poses_m' has shape {poses.shape} dtype {poses.dtype}, "
                         f"expected (n, {N_H36M}, 3) float")
    if not np.isfinite(poses).all():
        raise ValueError(f"{path}: 'poses_m' of shape {poses.shape} contains NaN or inf")
    if index.shape != (poses.shape[0],) or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"{path}: 'clip_index' has shape {index.shape} dtype {index.dtype}, "
                         f"expected ({poses.shape[0]},) integer")
    n_clips = arrays["clip_names"].shape[0] if arrays["clip_names"].ndim == 1 else -1
    for key in ("clip_names", "clip_sources", "clip_fps"):
        if arrays[key].shape != (max(n_clips, 0),) or n_clips < 1:
            raise ValueError(f"{path}: {key!r} has shape {arrays[key].shape}, expected (c,) "
                             f"with c = len(clip_names) >= 1")
    fps = arrays["clip_fps"]
    if (not np.issubdtype(fps.dtype, np.floating)
            or not (np.isfinite(fps).all() and (fps > 0).all())):
        raise ValueError(f"{path}: 'clip_fps' of shape {fps.shape} must be positive finite floats")
    if index.size and (index.min() < 0 or index.max() >= n_clips):
        raise ValueError(f"{path}: 'clip_index' values must lie in [0, {n_clips}), "
                         f"got [{index.min()}, {index.max()}]")
    if arrays["format_version"].shape != () or int(arrays["format_version"]) != _FORMAT_VERSION:
        raise ValueError(f"{path}: 'format_version' is {arrays['format_version']!r} (shape "
                         f"{arrays['format_version'].shape}), expected scalar {_FORMAT_VERSION}")


def load_mocap(path: str | os.PathLike | None = None) -> list[Clip]:
    """Load and validate the clips; ``path`` defaults to :func:`default_data_path`.

    Returns one :class:`Clip` per clip with ``poses_m: (t, 17, 3)`` float32 in time order.
    """
    path = Path(path) if path is not None else default_data_path()
    arrays = _read(path)
    _check(path, arrays)
    poses = arrays["poses_m"].astype(np.float32)
    return [
        Clip(name=str(arrays["clip_names"][c]), source=str(arrays["clip_sources"][c]),
             fps=float(arrays["clip_fps"][c]), poses_m=poses[arrays["clip_index"] == c])
        for c in range(arrays["clip_names"].shape[0])
    ]


def clips_named(clips: list[Clip], name: str) -> list[Clip]:
    """The clips called ``name`` or named ``name + "_..."`` (``"deepmimic"``: all 15
    DeepMimic clips); a name that matches nothing is an error naming the clips there are."""
    found = [c for c in clips if c.name == name or c.name.startswith(name + "_")]
    if not found:
        raise ValueError(f"clip name {name!r} matches no clip; the clips are "
                         f"{', '.join(c.name for c in clips)} (a prefix such as 'deepmimic' "
                         "matches all clips named deepmimic_*)")
    return found


def hold_out_clips(clips: list[Clip], names: tuple[str, ...] | list[str]
                   ) -> tuple[list[Clip], list[Clip]]:
    """``(kept, held)``: the clips named in ``names`` held out whole (an unseen-motion test).

    A name matches a clip of that name or every clip whose name starts with ``name + "_"``
    (:func:`clips_named`: ``"holosoma_climb"`` holds out the five climbing subjects).  A name
    that matches nothing is an error naming the clips there are; holding out every clip is
    one too (nothing would be left to train on).
    """
    names = tuple(names)
    held_ids = {id(c) for name in names for c in clips_named(clips, name)}
    held = [c for c in clips if id(c) in held_ids]
    kept = [c for c in clips if id(c) not in held_ids]
    if not kept:
        raise ValueError(f"holding out {', '.join(names)} leaves no clip to train on")
    return kept, held


@dataclass(frozen=True)
class SplitConfig:
    """How :func:`split_clips` cuts every clip in time.

    Per clip the last ``test_fraction`` of frames is test and ``gap_s`` seconds before it are
    dropped; a clip shorter than ``min_split_s`` seconds is too short for that (a test segment,
    a gap and a useful training part) and goes whole into the training split. Then every
    ``stride``-th frame is kept in both parts, and with ``mirror_train`` the left/right mirror
    image of every training pose is appended to the training split (never to the test split).
    """

    test_fraction: float = 0.2
    gap_s: float = 1.0
    stride: int = 1
    min_split_s: float = 3.0
    mirror_train: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError("SplitConfig.test_fraction must be in [0, 1), "
                             f"got {self.test_fraction}")
        if self.gap_s < 0:
            raise ValueError(f"SplitConfig.gap_s must be >= 0, got {self.gap_s}")
        if int(self.stride) != self.stride or self.stride < 1:
            raise ValueError(f"SplitConfig.stride must be an integer >= 1, got {self.stride}")
        if not self.min_split_s >= 0:
            raise ValueError("SplitConfig.min_split_s must be >= 0 seconds, "
                             f"got {self.min_split_s}")
        if not isinstance(self.mirror_train, (bool, np.bool_)):
            raise ValueError("SplitConfig.mirror_train must be True or False, "
                             f"got {self.mirror_train!r}")


def split_clips(
    clips: list[Clip], config: SplitConfig = SplitConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic time split: ``(train_poses_m (n, 17, 3), test_poses_m (m, 17, 3))`` float32.

    For a clip of ``t`` frames at ``fps``: if ``t < min_split_s * fps`` all of it is training
    data; otherwise test = the last ``round(t * test_fraction)`` frames and train = the frames
    before them minus ``round(gap_s * fps)`` frames of gap. Never random frames. With
    ``mirror_train`` the training split is ``[train, mirror_poses(train)]`` (twice as long).
    """
    if not clips:
        raise ValueError("split_clips: clips is empty")
    train, test = [], []
    for clip in clips:
        t = clip.poses_m.shape[0]
        if t < config.min_split_s * clip.fps:  # too short to hold test + gap + train
            train.append(clip.poses_m[:: config.stride])
            continue
        n_test = int(round(t * config.test_fraction))
        n_gap = int(round(config.gap_s * clip.fps))
        train.append(clip.poses_m[: max(t - n_test - n_gap, 0): config.stride])
        test.append(clip.poses_m[t - n_test:: config.stride])
    train_m = np.concatenate(train).astype(np.float32)
    test_m = (np.concatenate(test) if test else np.zeros((0, N_H36M, 3))).astype(np.float32)
    if config.mirror_train:
        train_m = np.concatenate([train_m, mirror_poses(train_m)])
    return train_m, test_m


def mirror_poses(poses_m: np.ndarray) -> np.ndarray:
    """Left/right mirror images: ``(n, 17, 3) -> (n, 17, 3)``, same dtype.

    Reflects across the world's vertical Y-Z plane (x -> -x; Z stays up) and swaps every
    left joint with its right partner (``H36M_FLIP_PAIRS``), so a left step becomes a right
    step. Exact: mirroring twice gives the input back bit for bit; bone lengths and the
    pelvis = hip midpoint invariant are kept.
    """
    poses = np.asarray(poses_m)
    if poses.ndim != 3 or poses.shape[1:] != (N_H36M, 3):
        raise ValueError(f"mirror_poses: poses_m has shape {poses.shape}, "
                         f"expected (n, {N_H36M}, 3)")
    order = list(range(N_H36M))
    for right, left in H36M_FLIP_PAIRS:
        order[right], order[left] = left, right
    out = poses[:, order]  # fancy indexing copies
    out[..., 0] = -out[..., 0]
    return out


def scale_bones(poses_m: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Multiply every bone vector by its scale, keeping the pelvis and all bone directions.

    poses_m: (b, 17, 3); scales: (b, 16) (bone ``k`` ends at joint ``k + 1``) or (b, 1).
    Returns (b, 17, 3), rebuilt from the pelvis along ``H36M_PARENTS``.
    """
    if poses_m.ndim != 3 or poses_m.shape[1:] != (N_H36M, 3):
        raise ValueError(f"scale_bones: poses_m has shape {tuple(poses_m.shape)}, "
                         f"expected (b, 17, 3)")
    b = poses_m.shape[0]
    if scales.ndim != 2 or scales.shape[0] != b or scales.shape[1] not in (1, N_BONES):
        raise ValueError(f"scale_bones: scales has shape {tuple(scales.shape)}, "
                         f"expected ({b}, {N_BONES}) or ({b}, 1)")
    scales = scales.to(poses_m).expand(b, N_BONES)
    parents = list(H36M_PARENTS[1:])
    bones = (poses_m[:, 1:] - poses_m[:, parents]) * scales[..., None]  # (b, 16, 3)
    joints = [poses_m[:, 0]]
    for child in range(1, N_H36M):  # parents always precede their children
        joints.append(joints[H36M_PARENTS[child]] + bones[:, child - 1])
    return torch.stack(joints, dim=1)


def random_bone_scales(
    b: int,
    generator: torch.Generator,
    global_range: tuple[float, float] = (0.85, 1.15),
    per_bone_std: float = 0.03,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Bone scales ``(b, 16)``: a global body size ``U(global_range)`` times per-bone jitter
    ``1 + per_bone_std * N(0, 1)`` (clamped to [0.5, 1.5]), left and right bones equal."""
    lo, hi = global_range
    if not 0 < lo <= hi:
        raise ValueError(f"random_bone_scales: global_range must satisfy 0 < lo <= hi, "
                         f"got {global_range}")
    if per_bone_std < 0:
        raise ValueError(f"random_bone_scales: per_bone_std must be >= 0, got {per_bone_std}")
    gdev = generator.device
    size = lo + (hi - lo) * torch.rand(b, 1, generator=generator, device=gdev)
    jitter = 1 + per_bone_std * torch.randn(b, N_BONES, generator=generator, device=gdev)
    right, left = zip(*H36M_FLIP_PAIRS)  # pairs are (right, left) joints
    jitter[:, [j - 1 for j in left]] = jitter[:, [j - 1 for j in right]]
    return (size * jitter.clamp(0.5, 1.5)).to(device=device, dtype=torch.float32)
