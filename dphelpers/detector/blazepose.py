"""BlazePose person detector and landmark model, run with LiteRT (notebook 06).

Two TFLite models ship inside the PyPI package ``mediapipe==0.10.21`` (Apache-2.0):

- ``pose_detection.tflite``: an SSD-style detector on a 224 x 224 letterboxed image in
  [-1, 1].  Per anchor it regresses 12 numbers (a face box: x, y, w, h, then 4 key points:
  0 mid-hip, 1 a point on the circle around the hips that encloses the whole body, 2 mid
  shoulder, 3 the same for the upper body) and one score logit.  The 2254 anchors are the
  documented SSD scheme of MediaPipe's ``pose_detection_cpu.pbtxt`` (5 layers, strides
  8, 16, 32, 32, 32, aspect ratio 1, fixed anchor size, interpolated scale: 2 anchors per
  cell and layer; layers of equal stride share one grid), so an anchor is only a cell centre.
- ``pose_landmark_full.tflite``: 256 x 256 crop in [0, 1] -> 39 landmarks (x, y, z,
  visibility, presence logits; x, y in crop px, area convention: 0 and 256 are the crop's
  edges), a pose-presence flag and 64 x 64 x 39 heatmap *logits*.  Measured here with a
  mirror test, heatmap column ``c`` sits at crop x = 4 c (MediaPipe normalises by c / 64),
  half a heatmap pixel off our convention (pixel ``i`` centre at crop x = 4 i + 2, see
  :func:`dphelpers.cameras.to_heatmap_px`): :func:`blazepose_heatmaps` resamples.

Landmarks 0-32: 0 nose, 2/5 left/right eye, 7/8 left/right ear, 11/12 shoulders,
13/14 elbows, 15/16 wrists, 23/24 hips, 25/26 knees, 27/28 ankles; BlazePose "left" is the
person's own left, as in MPII.  Interpreters are created lazily, once, and cached.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "model_path", "interpreter", "ssd_anchors", "decode_detections", "weighted_nms",
    "PersonBox", "detect_person", "blazepose_heatmaps",
    "DETECTOR_INPUT_PX", "LANDMARK_INPUT_PX", "N_BLAZEPOSE",
]

DETECTOR_INPUT_PX = 224
LANDMARK_INPUT_PX = 256
N_BLAZEPOSE = 33
_STRIDES = (8, 16, 32, 32, 32)          # pose_detection_cpu.pbtxt, SsdAnchorsCalculator
_MODELS = {"detector": "pose_detection/pose_detection.tflite",
           "landmarks": "pose_landmark/pose_landmark_full.tflite"}


def model_path(name: str) -> Path:
    """Path of the ``'detector'`` or ``'landmarks'`` TFLite file inside the installed mediapipe."""
    if name not in _MODELS:
        raise KeyError(f"model name must be one of {sorted(_MODELS)}, got {name!r}")
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the PyPI package mediapipe==0.10.21 (which ships the BlazePose "
                                "models) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "modules" / _MODELS[name]
    if not path.is_file():
        raise FileNotFoundError(f"BlazePose model {path} not found (mediapipe==0.10.21 ships it; "
                                "newer versions do not)")
    return path


@lru_cache(maxsize=None)
def interpreter(name: str):
    """The cached, allocated LiteRT ``Interpreter`` of model ``name`` (created on first use)."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(model_path(name)), num_threads=2)
    it.allocate_tensors()
    return it


def _run(name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    it = interpreter(name)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}


@lru_cache(maxsize=None)
def ssd_anchors(input_px: int = DETECTOR_INPUT_PX,
                strides: tuple[int, ...] = _STRIDES) -> np.ndarray:
    """Anchor centres ``(n_anchors, 2)`` (x, y normalised to [0, 1]) of the SSD scheme.

    Consecutive layers with one stride share a grid; each layer puts 2 anchors per cell
    (aspect ratio 1 plus the interpolated scale).  Fixed anchor size: only centres matter.
    """
    groups: list[tuple[int, int]] = []
    for s in strides:
        if groups and groups[-1][0] == s:
            groups[-1] = (s, groups[-1][1] + 2)
        else:
            groups.append((s, 2))
    out = []
    for s, per_cell in groups:
        f = int(np.ceil(input_px / s))
        ys, xs = np.meshgrid((np.arange(f) + 0.5) / f, (np.arange(f) + 0.5) / f, indexing="ij")
        out.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
    return np.concatenate(out).astype(np.float64)


def decode_detections(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray,
                      input_px: int = DETECTOR_INPUT_PX
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw SSD outputs -> (boxes ``(n, 4)`` x0, y0, x1, y1; keypoints ``(n, 4, 2)``; scores
    ``(n,)``).

    raw: (n, 12) offsets in input px relative to the anchor centre; logits: (n,). Coordinates
    are normalised to the (letterboxed) detector input; scores are sigmoid(clip(logit, +-100)).
    """
    if raw.shape != (anchors.shape[0], 12) or logits.shape != (anchors.shape[0],):
        raise ValueError(f"decode_detections: raw {raw.shape} / logits {logits.shape} do not match "
                         f"{anchors.shape[0]} anchors x 12 values")
    centre = raw[:, :2] / input_px + anchors
    half = raw[:, 2:4] / input_px / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:].reshape(-1, 4, 2) / input_px + anchors[:, None, :]
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
    return boxes, keypoints, scores


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda b: np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = 0.3) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Weighted non-maximum suppression: each cluster (IoU > threshold with its best box) is
    replaced by the score-weighted mean of its boxes and key points; the score is the best one.

    Returns ``[(score, box (4,), keypoints (4, 2)), ...]`` best first.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    alive = np.ones(len(scores), dtype=bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        members = alive & (_iou(boxes[i], boxes) > iou_threshold)
        members[i] = True
        w = scores[members] / scores[members].sum()
        out.append((float(scores[i]), (w[:, None] * boxes[members]).sum(0),
                    (w[:, None, None] * keypoints[members]).sum(0)))
        alive &= ~members
    return out


@dataclass(frozen=True)
class PersonBox:
    """The most confident person: a square box ``[cx, cy, side]`` in image px (continuous,
    area convention) centred on the mid-hip, ``side = 2 * roi_scale * |kp1 - kp0|``.

    ``rotation_rad`` is the body's roll (mid-hip -> full-body point against straight up); it
    is reported but not applied: the crop stays axis-aligned, as DiffPose expects.
    ``keypoints_px``: (4, 2) the detector's key points in image px; ``n_people``: detections
    above the score threshold after NMS.
    """

    centre_px: tuple[float, float]
    side_px: float
    rotation_rad: float
    score: float
    n_people: int
    keypoints_px: np.ndarray

    @property
    def box(self) -> np.ndarray:
        """``(3,)`` [cx, cy, side] (the layout of :func:`dphelpers.cameras.crop_boxes`)."""
        return np.array([*self.centre_px, self.side_px], dtype=np.float64)


def detect_person(image_rgb: np.ndarray, min_score: float = 0.5, iou_threshold: float = 0.3,
                  roi_scale: float = 1.25) -> PersonBox:
    """Run the pose detector on ``image_rgb: (h, w, 3) uint8`` -> :class:`PersonBox`.

    The image is letterboxed (aspect kept, zero border) into 224 x 224.  Raises
    ``ValueError("no person found in image ...")`` when no anchor scores ``>= min_score``.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"detect_person: image_rgb must be (h, w, 3) uint8, got "
                         f"{image_rgb.shape} {image_rgb.dtype}")
    h, w = image_rgb.shape[:2]
    n = DETECTOR_INPUT_PX
    scale = n / max(h, w)
    rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image_rgb, (rw, rh), interpolation=interp)
    ox, oy = (n - rw) // 2, (n - rh) // 2
    x = np.zeros((1, n, n, 3), np.float32)
    x[0, oy:oy + rh, ox:ox + rw] = small.astype(np.float32) / 127.5 - 1.0
    out = _run("detector", x)
    boxes, keypoints, scores = decode_detections(out["Identity"][0].astype(np.float64),
                                                 out["Identity_1"][0, :, 0].astype(np.float64),
                                                 ssd_anchors())
    keep = scores >= min_score
    if not keep.any():
        raise ValueError(f"no person found in image of {w}x{h} px (best detector score "
                         f"{scores.max():.3f} < min_score {min_score})")
    people = weighted_nms(boxes[keep], keypoints[keep], scores[keep], iou_threshold)
    score, _, kp = people[0]
    kp_px = (kp * n - np.array([ox, oy])) / np.array([rw / w, rh / h])    # undo the letterbox
    vec = kp_px[1] - kp_px[0]
    rotation = float(np.pi / 2 - np.arctan2(-vec[1], vec[0]))
    rotation = float((rotation + np.pi) % (2 * np.pi) - np.pi)
    side = 2.0 * roi_scale * float(np.linalg.norm(vec))
    return PersonBox((float(kp_px[0, 0]), float(kp_px[0, 1])), side, rotation, score,
                     len(people), kp_px)


def blazepose_heatmaps(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose on ``crop: (256, 256, 3) uint8`` -> (heatmaps33 ``(33, 64, 64)``, landmarks33
    ``(33, 5)``).

    heatmaps33: sigmoid of the model's logits (per-pixel confidence in [0, 1]), resampled
    half a pixel so pixel ``i`` centres at crop x = 4 i + 2 (our convention).
    landmarks33: x, y in crop px (area convention), z, visibility and presence probabilities.
    """
    if crop.shape != (LANDMARK_INPUT_PX, LANDMARK_INPUT_PX, 3) or crop.dtype != np.uint8:
        raise ValueError(f"blazepose_heatmaps: crop must be (256, 256, 3) uint8, got "
                         f"{crop.shape} {crop.dtype}")
    out = _run("landmarks", (crop.astype(np.float32) / 255.0)[None])
    landmarks = out["Identity"][0].reshape(39, 5)[:N_BLAZEPOSE].astype(np.float64)
    landmarks[:, 3:] = 1.0 / (1.0 + np.exp(-landmarks[:, 3:]))
    logits = np.moveaxis(out["Identity_3"][0, :, :, :N_BLAZEPOSE], -1, 0)
    conf = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    # ours[i] = theirs at i + 0.5: mean of each 2 x 2 block (edge row/column repeated)
    padded = np.pad(conf, ((0, 0), (0, 1), (0, 1)), mode="edge")
    conf = (padded[:, :-1, :-1] + padded[:, 1:, :-1] + padded[:, :-1, 1:] + padded[:, 1:, 1:]) / 4
    return conf.astype(np.float32), landmarks
