"""Tests of the real BlazePose-based 2D detector (dphelpers.detector, dphelpers.blazepose)."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data as skimage_data
import torch

from dphelpers.cameras import from_heatmap_px, to_heatmap_px
from dphelpers.candidates import validate_heatmaps
from dphelpers.detector.blazepose import (blazepose_heatmaps, decode_detections, detect_person,
                                          interpreter, ssd_anchors, weighted_nms)
from dphelpers.detector.detect import (BLAZEPOSE_TO_MPII, Detection, DetectorConfig, crop_person,
                                       detect_heatmaps, load_image, mpii_from_blazepose)
from dphelpers.skeleton import MPII_NAMES

J = {name: i for i, name in enumerate(MPII_NAMES)}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def det(astronaut) -> Detection:
    return detect_heatmaps(astronaut)


def _argmax_xy(hm: np.ndarray) -> np.ndarray:
    r, c = np.unravel_index(hm.argmax(), hm.shape)
    return np.array([c, r], dtype=np.float64)


def test_anchors_match_the_model():
    anchors = ssd_anchors()
    n_out = interpreter("detector").get_output_details()[0]["shape"][1]
    assert anchors.shape == (n_out, 2) == (2254, 2)
    assert anchors.min() > 0 and anchors.max() < 1
    np.testing.assert_allclose(anchors[0], [0.5 / 28, 0.5 / 28])      # first cell of the stride-8 grid
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7])        # last cell of the stride-32 grid


def test_decode_and_nms_merge_overlapping_boxes():
    anchors = np.array([[0.5, 0.5], [0.52, 0.5], [0.1, 0.1]])
    raw = np.zeros((3, 12))
    raw[:, 2:4] = 44.8                                                 # boxes 0.2 wide
    boxes, kps, scores = decode_detections(raw, np.array([3.0, 1.0, 2.0]), anchors)
    np.testing.assert_allclose(boxes[0], [0.4, 0.4, 0.6, 0.6])
    np.testing.assert_allclose(kps[1, 2], [0.52, 0.5])
    people = weighted_nms(boxes, kps, scores, 0.3)
    assert len(people) == 2 and people[0][0] == pytest.approx(scores[0])
    w = scores[:2] / scores[:2].sum()
    np.testing.assert_allclose(people[0][2][0], w @ anchors[:2])       # score-weighted key points
    with pytest.raises(ValueError, match="anchors"):
        decode_detections(raw[:2], np.zeros(2), anchors)


def test_person_found_and_crop_contains_her(astronaut, det):
    assert det.n_people == 1 and 0.5 <= det.score <= 1
    person = detect_person(astronaut)
    assert person.n_people == 1
    cx, cy, side = det.box
    assert side > 400 and 0 < cx < 512                                 # box around the person
    # her face (image px ~ (210, 170)) maps inside the crop, and crop px map back exactly
    face = np.array([210.0, 170.0])
    crop_xy = det.affine[:, :2] @ face + det.affine[:, 2]
    assert ((crop_xy > 0) & (crop_xy < 256)).all()
    # the affine agrees with cameras.to_heatmap_px for the same box
    box = torch.tensor(det.box, dtype=torch.float64)[None]
    hm_xy = to_heatmap_px(torch.tensor(face)[None, None], box)[0, 0].numpy()
    np.testing.assert_allclose(hm_xy, crop_xy / 4 - 0.5, atol=1e-9)
    # the crop is the image: a pixel deep inside the image reads the same colour
    p = np.array([300.0, 300.0])
    q = det.affine[:, :2] @ (p + 0.5) + det.affine[:, 2]
    crop_val = det.crop[int(q[1]), int(q[0])].astype(float)
    assert np.abs(crop_val - astronaut[300, 300].astype(float)).max() < 40


def test_output_contract(det):
    assert det.heatmaps.shape == (1, 16, 64, 64) and det.heatmaps.dtype == torch.float32
    validate_heatmaps(det.heatmaps)
    assert det.heatmaps.min() >= 0 and det.heatmaps.max() <= 1
    assert det.crop.shape == (256, 256, 3) and det.crop.dtype == np.uint8
    assert det.joints_hm.shape == (16, 2) and det.affine.shape == (2, 3)
    assert det.landmarks33.shape == (33, 5)
    assert set(det.timings_ms) >= {"detect", "landmarks", "mapping", "total"}


def test_upper_body_peaks_match_landmarks(det):
    hm = det.heatmaps[0].numpy()
    for name in ("RShoulder", "LShoulder", "RElbow", "LElbow", "RWrist"):
        j = J[name]
        lm = det.landmarks33[BLAZEPOSE_TO_MPII[j], :2] / 4 - 0.5
        np.testing.assert_allclose(det.joints_hm[j], lm)
        assert np.linalg.norm(_argmax_xy(hm[j]) - lm) <= 3.0, name
        assert hm[j].max() > 0.3, name
    # her left wrist is hidden behind the helmet: a weaker map, still near the landmark
    j = J["LWrist"]
    assert np.linalg.norm(_argmax_xy(hm[j]) - det.joints_hm[j]) <= 6.0


def test_left_right_and_derived_joints(det):
    x, y = det.joints_hm[:, 0], det.joints_hm[:, 1]
    # she faces the camera: her right side is on the image's left
    for r, l in (("RShoulder", "LShoulder"), ("RElbow", "LElbow"), ("RHip", "LHip")):
        assert x[J[r]] < x[J[l]], (r, l)
    hm = det.heatmaps[0].numpy()
    peaks = np.stack([_argmax_xy(h) for h in hm])
    # pelvis between the hips, upper neck between the shoulders, thorax (spine) between them
    np.testing.assert_allclose(det.joints_hm[J["Pelvis"]], det.joints_hm[[J["RHip"], J["LHip"]]].mean(0))
    np.testing.assert_allclose(det.joints_hm[J["UpperNeck"]],
                               det.joints_hm[[J["RShoulder"], J["LShoulder"]]].mean(0))
    assert y[J["HeadTop"]] < y[J["UpperNeck"]] < y[J["Thorax"]] < y[J["Pelvis"]]
    for name in ("Pelvis", "Thorax", "UpperNeck", "HeadTop"):
        assert np.linalg.norm(peaks[J[name]] - det.joints_hm[J[name]]) <= 1.5, name
        assert hm[J[name]].max() > 0.3, name
    # head top is above her eyes (landmarks 2, 5) in the crop
    assert y[J["HeadTop"]] < det.landmarks33[[2, 5], 1].min() / 4 - 0.5


def test_mapping_shifts_distributions():
    # two hip blobs: the pelvis map peaks at their midpoint
    yy, xx = np.mgrid[:64, :64]
    blob = lambda cx, cy: np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 8.0)
    hm33 = np.zeros((33, 64, 64), np.float32)
    lm = np.zeros((33, 5))
    for b, (cx, cy) in {23: (40, 30), 24: (24, 30), 11: (40, 10), 12: (24, 10),
                        7: (34, 4), 8: (30, 4), 2: (33, 4), 5: (31, 4)}.items():
        hm33[b] = 0.8 * blob(cx, cy)
        lm[b, :2] = (np.array([cx, cy]) + 0.5) * 4                        # heatmap px -> crop px
    out, joints = mpii_from_blazepose(hm33, lm, DetectorConfig(head_top_factor=0.5))
    np.testing.assert_allclose(_argmax_xy(out[J["Pelvis"]]), [32, 30])
    np.testing.assert_allclose(_argmax_xy(out[J["UpperNeck"]]), [32, 10])
    np.testing.assert_allclose(_argmax_xy(out[J["Thorax"]]), [32, 20])
    np.testing.assert_allclose(joints[J["HeadTop"]], [32, 1])            # 4 + 0.5 * (4 - 10)
    assert out[J["Pelvis"]].max() == pytest.approx(0.8, abs=1e-5)        # rescaled to the sources' peak
    assert out.dtype == np.float32 and (out >= 0).all()
    with pytest.raises(ValueError, match="heatmaps33"):
        mpii_from_blazepose(hm33[:16], lm)


def test_greyscale_float_and_rgba_inputs(astronaut, det):
    grey = (astronaut.astype(np.float64) @ [0.299, 0.587, 0.114]) / 255.0
    g = detect_heatmaps(grey)
    assert g.n_people == 1 and g.heatmaps.shape == (1, 16, 64, 64)
    for name in ("RShoulder", "LShoulder"):
        assert np.linalg.norm(g.joints_hm[J[name]] - det.joints_hm[J[name]]) < 3.0
    assert load_image(grey[..., None]).shape == (512, 512, 3)
    rgba = np.concatenate([astronaut, np.full((512, 512, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(load_image(rgba), astronaut)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="no person found"):
        detect_heatmaps(np.full((240, 320, 3), 128, np.uint8))
    with pytest.raises(ValueError, match="too small"):
        detect_heatmaps(np.zeros((10, 10, 3), np.uint8))
    bad = tmp_path / "x.png"
    bad.write_bytes(b"definitely not a png \x00\x01\x02")
    with pytest.raises(ValueError, match="x.png"):
        detect_heatmaps(bad)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        detect_heatmaps(str(tmp_path / "missing.jpg"))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(np.full((64, 64, 3), 2.0))
    with pytest.raises(ValueError, match="shape"):
        load_image(np.zeros((64, 64, 2), np.uint8))
    with pytest.raises(ValueError, match="256, 256, 3"):
        blazepose_heatmaps(np.zeros((128, 128, 3), np.uint8))


def test_path_input_and_crop_geometry(tmp_path, astronaut, det):
    import cv2
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), astronaut[..., ::-1])
    d = detect_heatmaps(path)
    np.testing.assert_allclose(d.box, det.box, rtol=1e-6)
    # a crop of a box equal to the image is the image, resampled
    crop, affine = crop_person(astronaut, np.array([256.0, 256.0, 512.0]))
    np.testing.assert_allclose(affine, [[0.5, 0, 0], [0, 0.5, 0]])
    small = astronaut.reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))
    assert np.abs(crop.astype(float) - small).mean() < 3.0
    # heatmap px -> image px round trip through cameras.from_heatmap_px
    box = torch.tensor(det.box)[None]
    pts = torch.tensor(det.joints_hm)[None]
    np.testing.assert_allclose(to_heatmap_px(from_heatmap_px(pts, box), box)[0].numpy(), det.joints_hm)


def test_several_people_pick_the_most_confident(astronaut):
    two = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)      # two astronauts side by side
    d = detect_heatmaps(two)
    assert d.n_people == 2 and d.person.n_people == 2
    assert d.heatmaps.shape == (1, 16, 64, 64)
