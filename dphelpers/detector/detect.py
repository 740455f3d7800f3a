"""The real 2D detector: image -> person crop -> 16 MPII heatmaps (notebook 06).

BlazePose (:mod:`dphelpers.detector.blazepose`) finds the person and predicts 33 landmark heatmaps
on a 256 x 256 crop; this module turns them into the heatmaps DiffPose reads, ``(1, 16, 64,
64)`` in MPII order, the same contract as the simulator in :mod:`dphelpers.heatmaps`.

- Crop: the detector's square box ``[cx, cy, side]`` (centred on the mid-hip, side = 2.5 x
  the hip-to-full-body-point distance: about 1.25 x the body height of a standing person,
  close to REFERENCE.md's "joints' box enlarged 1.2x, squared"), axis-aligned (the body's
  roll is reported, not undone), resized to 256 x 256 with ``cv2.warpAffine``; ``affine``
  (2 x 3) maps image px to crop px (both continuous, area convention), so heatmap px are
  ``crop / 4 - 0.5`` exactly as :func:`dphelpers.cameras.to_heatmap_px` with that box.
- Heatmaps are per-pixel confidences (sigmoid of BlazePose's logits): non-negative, the peak
  ~ the model's confidence.  Direct joints take their landmark's channel (BlazePose left =
  the person's left = MPII left): ankles 28/27, knees 26/25, hips 24/23, shoulders 12/11,
  elbows 14/13, wrists 16/15 (MPII right/left).
- Derived joints are distributions too: each source map is shifted (bilinear) so its landmark
  lands on the derived point, the shifted maps are averaged, blurred by ``derived_blur_px``
  (a derived joint is less certain) and rescaled to the sources' mean peak.
  Pelvis (6) = hips 23, 24 at their midpoint; UpperNeck (8, H36M Thorax) = shoulders 11, 12
  at their midpoint; Thorax (7, H36M Spine) = the pelvis and upper-neck maps at
  ``pelvis + spine_fraction * (neck - pelvis)``; HeadTop (9, H36M Head) = ears 7, 8 and eyes
  2, 5 at ``ear_mid + head_top_factor * (ear_mid - shoulder_mid)`` (above the ears along
  the neck).
- Images: a path (read with cv2) or an array: (h, w), (h, w, 1), (h, w, 3) or (h, w, 4);
  uint8 or float in [0, 1].  Sides under ``min_side_px`` are refused; images with a side
  over ``max_side_px`` are downscaled (INTER_AREA) before detection and cropping; the box
  and ``affine`` still refer to the original image's pixels.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import ndimage

from .blazepose import PersonBox, blazepose_heatmaps, detect_person
from ..files import require_file
from ..skeleton import N_MPII

__all__ = ["DetectorConfig", "Detection", "load_image", "crop_person", "mpii_from_blazepose",
           "detect_heatmaps", "BLAZEPOSE_TO_MPII"]

#: MPII joint -> BlazePose landmark for the 12 limb joints (None: derived, see module docstring).
BLAZEPOSE_TO_MPII: tuple[int | None, ...] = (28, 26, 24, 23, 25, 27, None, None, None, None,
                                             16, 14, 12, 11, 13, 15)
CROP_PX, HEATMAP_PX = 256, 64


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of :func:`detect_heatmaps` (see the module docstring)."""

    min_score: float = 0.5
    iou_threshold: float = 0.3
    roi_scale: float = 1.25
    min_side_px: int = 32
    max_side_px: int = 1280
    derived_blur_px: float = 1.0
    spine_fraction: float = 0.5
    head_top_factor: float = 0.6


@dataclass(frozen=True)
class Detection:
    """Output of :func:`detect_heatmaps`.

    heatmaps: (1, 16, 64, 64) float32 torch; crop: (256, 256, 3) uint8; box: (3,) [cx, cy,
    side] in original image px; affine: (2, 3) image px -> crop px; joints_hm: (16, 2) MPII
    joints in heatmap px (x = column); landmarks33: (33, 5) BlazePose landmarks (crop px,
    z, visibility, presence); person: the detector's :class:`PersonBox` (original image px);
    timings_ms: milliseconds per stage.
    """

    heatmaps: torch.Tensor
    crop: np.ndarray
    box: np.ndarray
    affine: np.ndarray
    joints_hm: np.ndarray
    landmarks33: np.ndarray
    person: PersonBox
    n_people: int
    score: float
    timings_ms: dict = field(default_factory=dict)


def _refuse_truncated(path: Path) -> None:
    """OpenCV decodes a cut-off JPEG or PNG without an error (grey below the cut, a warning
    on stderr); Pillow's full decode notices.  A truncated file is refused, naming it."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im.load()
    except UnidentifiedImageError:
        return                                      # a format only OpenCV reads: trust it
    except (OSError, SyntaxError) as err:
        raise ValueError(f"image file {str(path)!r} is truncated or damaged ({err}): the "
                         "picture below the damage would be grey") from None


def load_image(image, min_side_px: int = 32) -> np.ndarray:
    """A path or array -> ``(h, w, 3)`` uint8 RGB (see the module docstring for what is
    accepted)."""
    if isinstance(image, (str, os.PathLike)):
        path = require_file(image, "image file")
        _refuse_truncated(path)                 # before OpenCV, which warns on stderr
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"could not read image file {str(path)!r} "
                             "(not an image cv2 can decode)")
        image = bgr[..., ::-1]
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError("image must be (h, w), (h, w, 1), (h, w, 3) or (h, w, 4), "
                         f"got shape {arr.shape}")
    arr = arr[..., :3]
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"float image must be finite and in [0, 1], got range "
                             f"[{np.nanmin(arr):.3g}, {np.nanmax(arr):.3g}]")
        arr = np.round(arr * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ValueError(f"image dtype must be uint8 or float in [0, 1], got {arr.dtype}")
    if min(arr.shape[:2]) < min_side_px:
        raise ValueError(f"image of {arr.shape[1]}x{arr.shape[0]} px is too small: each side "
                         f"must be at least {min_side_px} px")
    return np.ascontiguousarray(arr)


def crop_person(image_rgb: np.ndarray, box: np.ndarray,
                size: int = CROP_PX) -> tuple[np.ndarray, np.ndarray]:
    """Square ``box = [cx, cy, side]`` (image px) of ``image_rgb: (h, w, 3)`` -> (crop ``(size,
    size, 3)``, affine ``(2, 3)`` image px -> crop px).  Outside the image is black.

    Shrinking more than 2x first downsamples the whole image with INTER_AREA (no aliasing).
    """
    cx, cy, side = (float(v) for v in box)
    if not side > 0:
        raise ValueError(f"crop_person: box side must be > 0, got {side}")
    s = size / side
    affine = np.array([[s, 0.0, size / 2 - s * cx], [0.0, s, size / 2 - s * cy]])
    src, pre = image_rgb, np.eye(3)
    if s < 0.5:                                       # pre-shrink to ~2x the crop's resolution
        h, w = image_rgb.shape[:2]
        nw, nh = max(1, round(w * 2 * s)), max(1, round(h * 2 * s))
        src = cv2.resize(image_rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        pre = np.diag([nw / w, nh / h, 1.0])
    a = np.vstack([affine, [0, 0, 1]]) @ np.linalg.inv(pre)    # src px -> crop px (continuous)
    # OpenCV works on pixel-centre indices: index = continuous - 0.5 on both sides
    m = a[:2].copy()
    m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    crop = cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crop, affine


def _combine(maps: np.ndarray, points: np.ndarray, target: np.ndarray,
             blur_px: float) -> np.ndarray:
    """Shift each map ``(k, 64, 64)`` by ``target - point`` ((k, 2) x, y), average, blur,
    rescale."""
    shifted = [ndimage.shift(m, (t[1], t[0]), order=1, mode="constant", cval=0.0)
               for m, t in zip(maps, target[None] - points)]
    out = np.mean(shifted, axis=0)
    if blur_px > 0:
        out = ndimage.gaussian_filter(out, blur_px, mode="constant")
    peak = out.max()
    return out * (maps.max(axis=(1, 2)).mean() / peak) if peak > 0 else out


def mpii_from_blazepose(heatmaps33: np.ndarray, landmarks33: np.ndarray,
                        config: DetectorConfig = DetectorConfig()) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose ``heatmaps33: (33, 64, 64)``, ``landmarks33: (33, 5)`` (crop px) -> MPII
    (heatmaps ``(16, 64, 64)`` float32, joints_hm ``(16, 2)`` heatmap px).  See the module
    docstring."""
    if heatmaps33.shape != (33, HEATMAP_PX, HEATMAP_PX) or landmarks33.shape[0] != 33:
        raise ValueError(f"mpii_from_blazepose: expected heatmaps33 (33, 64, 64) and landmarks33 "
                         f"(33, 5), got {heatmaps33.shape} and {landmarks33.shape}")
    hm = np.clip(heatmaps33.astype(np.float64), 0.0, None)
    pts = (landmarks33[:, :2].astype(np.float64) * HEATMAP_PX / CROP_PX
           - 0.5)   # crop px -> heatmap px
    out = np.zeros((N_MPII, HEATMAP_PX, HEATMAP_PX))
    joints = np.zeros((N_MPII, 2))
    for j, b in enumerate(BLAZEPOSE_TO_MPII):
        if b is not None:
            out[j], joints[j] = hm[b], pts[b]
    blur = config.derived_blur_px

    def derive(j: int, src: list[int], maps: np.ndarray, points: np.ndarray, target: np.ndarray,
               blur_px: float) -> None:
        out[j] = _combine(maps[src], points[src], target, blur_px)
        joints[j] = target

    hips, shoulders = [23, 24], [11, 12]
    pelvis, neck = pts[hips].mean(0), pts[shoulders].mean(0)
    derive(6, hips, hm, pts, pelvis, 0.0)
    derive(8, shoulders, hm, pts, neck, 0.0)
    spine = pelvis + config.spine_fraction * (neck - pelvis)
    derive(7, [6, 8], out.copy(), joints.copy(), spine, blur)
    ears = pts[[7, 8]].mean(0)
    head_top = ears + config.head_top_factor * (ears - neck)
    derive(9, [7, 8, 2, 5], hm, pts, head_top, blur)
    return out.astype(np.float32), joints


def detect_heatmaps(image, config: DetectorConfig = DetectorConfig(),
                    device: torch.device | str = "cpu") -> Detection:
    """Image (path or array) -> :class:`Detection` with ``heatmaps: (1, 16, 64, 64)`` on ``device``.

    Raises FileNotFoundError (missing path), ValueError (unreadable file, bad shape/dtype,
    too small, or ``"no person found in image ..."``).
    """
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    rgb = load_image(image, config.min_side_px)
    scale = min(1.0, config.max_side_px / max(rgb.shape[:2]))
    work = rgb
    if scale < 1.0:
        nw, nh = round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)
        work = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    sx, sy = work.shape[1] / rgb.shape[1], work.shape[0] / rgb.shape[0]
    t1 = time.perf_counter()
    try:
        person = detect_person(work, config.min_score, config.iou_threshold, config.roi_scale)
    except ValueError as err:                   # name the user's image size, not ours
        if scale < 1.0 and "no person found" in str(err):
            raise ValueError(str(err).replace(
                f"image of {work.shape[1]}x{work.shape[0]} px",
                f"image of {rgb.shape[1]}x{rgb.shape[0]} px (searched at {work.shape[1]}x"
                f"{work.shape[0]})")) from None
        raise
    t2 = time.perf_counter()
    crop, affine_work = crop_person(work, person.box)
    heatmaps33, landmarks33 = blazepose_heatmaps(crop)
    t3 = time.perf_counter()
    heatmaps16, joints_hm = mpii_from_blazepose(heatmaps33, landmarks33, config)
    t4 = time.perf_counter()
    # back to the original image's pixels
    affine = affine_work @ np.diag([sx, sy, 1.0])
    back = np.array([1 / sx, 1 / sy])
    person = PersonBox((person.centre_px[0] / sx, person.centre_px[1] / sy), person.side_px / sx,
                       person.rotation_rad, person.score, person.n_people,
                       person.keypoints_px * back)
    if not np.isfinite(heatmaps16).all():           # the contract of heatmaps.validate_heatmaps
        raise ValueError("detect_heatmaps: BlazePose produced non-finite heatmaps")
    heatmaps = torch.from_numpy(heatmaps16)[None].to(device)
    times.update(load=(t1 - t0) * 1e3, detect=(t2 - t1) * 1e3, landmarks=(t3 - t2) * 1e3,
                 mapping=(t4 - t3) * 1e3, total=(time.perf_counter() - t0) * 1e3)
    return Detection(heatmaps, crop, person.box, affine, joints_hm, landmarks33, person,
                     person.n_people, person.score, times)
