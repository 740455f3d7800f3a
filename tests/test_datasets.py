"""Tests of dphelpers.datasets on tiny hand-made files in each format."""
import re

import h5py
import numpy as np
import pytest
import torch

from dphelpers.cameras import CameraConfig, make_views
from dphelpers.datasets import (ACTIONS, AUC_THRESHOLDS_MM, MPI3DHP_NAMES, MPI3DHP_TO_H36M,
                                TEST_EVERY, TEST_SUBJECTS, LoadedSet, auc3d, h36m_per_action,
                                h36m_protocol_mean, load_3dhp_test, load_h36m_h5, load_videopose3d,
                                normalize_action, pck3d)
from dphelpers.heatmaps import HeatmapConfig, h36ma_ambiguous, simulate_heatmaps
from dphelpers.skeleton import H36M_NAMES, H36M_RAW32_TO_17, H36M_TO_MPII

STAND_M = np.array([
    [0, 0, .95], [-.13, 0, .95], [-.13, .02, .52], [-.13, 0, .1], [.13, 0, .95], [.13, .02, .52],
    [.13, 0, .1], [0, 0, 1.2], [0, 0, 1.45], [0, -.05, 1.55], [0, 0, 1.7], [.18, 0, 1.42],
    [.2, 0, 1.15], [.22, -.05, .9], [-.18, 0, 1.42], [-.2, 0, 1.15], [-.22, -.05, .9]], np.float32)


def _views(n, seed=0):
    rng = np.random.default_rng(seed)
    poses = torch.from_numpy(STAND_M + rng.normal(0, 0.03, (n, 17, 3)).astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    views = make_views(poses, CameraConfig(), gen)
    heat = simulate_heatmaps(views.joints_hm, views.poses_cam_mm[:, list(H36M_TO_MPII), 2],
                             HeatmapConfig(), gen).heatmaps
    return views, heat


@pytest.fixture(scope="module")
def rows():
    """48 rows: subjects 1, 5, 9, 11 in blocks of 12."""
    views, heat = _views(48)
    return dict(heat=heat.numpy(), gt_3d=views.poses_cam_mm.numpy(), gt_2d=views.poses_2d_px.numpy(),
                argmax=views.joints_hm.numpy(), subject=np.repeat([1, 5, 9, 11], 12),
                action=np.array([f"{ACTIONS[i % 15]} {1 + i % 2}" for i in range(48)], dtype="S20"),
                camera=np.tile([0, 1, 2, 3], 12), frame=np.arange(48) * 4)


def _flat_h5(path, r, drop=(), override=None):
    data = {"heatmaps": r["heat"], "argmax_2d": r["argmax"], "gt_2d": r["gt_2d"], "gt_3d": r["gt_3d"],
            "subject": r["subject"], "action": r["action"], "camera": r["camera"], "frame": r["frame"]}
    data.update(override or {})
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            if k not in drop:
                f[k] = v
    return path


def test_h36m_flat_load_filter_and_subsample(tmp_path, rows):
    p = _flat_h5(tmp_path / "test.h5", rows)
    s = load_h36m_h5(p)
    assert len(s) == 48 and s.keys["gt_3d"] == "gt_3d" and s.keys["argmax_2d"] == "argmax_2d"
    np.testing.assert_allclose(s.poses_3d_mm, rows["gt_3d"])
    np.testing.assert_allclose(s.heatmaps, rows["heat"])
    assert s.heatmaps.dtype == np.float32 and s.heatmaps.shape == (48, 16, 64, 64)
    assert s.meta["action"][0] == "Directions" and s.meta["action"][1] == "Discussion"
    # no 'hard' key: the H36MA rule on the stored heatmaps
    assert np.array_equal(s.ambiguous, h36ma_ambiguous(torch.from_numpy(rows["heat"])).numpy())
    t = load_h36m_h5(p, subjects=TEST_SUBJECTS)
    assert set(t.meta["subject"]) == {9, 11} and len(t) == 24
    np.testing.assert_allclose(t.poses_2d_px, rows["gt_2d"][24:])
    # protocol: every 16th stored row first, then the subjects
    e = load_h36m_h5(p, subjects=["S9", "S11"], every=TEST_EVERY)
    assert e.meta["frame"].tolist() == [32 * 4] and e.meta["subject"].tolist() == [9]
    assert load_h36m_h5(p, every=16).meta["frame"].tolist() == [0, 64, 128]
    assert load_h36m_h5(p, with_heatmaps=False).heatmaps is None


def test_h36m_table_layout_aliases_and_transposed_joints(tmp_path, rows):
    n = 48
    dt = np.dtype([("subject", "S4"), ("action", "S20"), ("cam", "S8"), ("frame_orig", "<i4"),
                   ("hardsubset", "?"), ("gt_3d", "<f4", (3, 17)), ("gt_2d", "<f4", (2, 17)),
                   ("argmax_2d", "<f4", (2, 16)), ("heatmap", "<f2", (16, 64, 64))])
    tab = np.zeros(n, dt)
    tab["subject"] = [f"S{s}".encode() for s in rows["subject"]]
    tab["action"] = rows["action"]
    tab["cam"] = b"54138969"
    tab["frame_orig"] = rows["frame"]
    tab["hardsubset"] = np.arange(n) % 3 == 0
    tab["gt_3d"] = rows["gt_3d"].transpose(0, 2, 1)
    tab["gt_2d"] = rows["gt_2d"].transpose(0, 2, 1)
    tab["argmax_2d"] = rows["argmax"].transpose(0, 2, 1)
    tab["heatmap"] = rows["heat"]
    p = tmp_path / "authors.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("dataset/testset", data=tab)
        f.create_dataset("dataset/trainset", data=tab[:4])
    with pytest.raises(KeyError, match=r"authors\.h5.*dataset/testset.*table="):
        load_h36m_h5(p)
    s = load_h36m_h5(p, table="dataset/testset", subjects=TEST_SUBJECTS)
    assert s.keys["heatmaps"] == "heatmap" and s.keys["camera"] == "cam" and s.keys["hard"] == "hardsubset"
    np.testing.assert_allclose(s.poses_3d_mm, rows["gt_3d"][24:], rtol=1e-6)
    np.testing.assert_allclose(s.meta["argmax_2d"], rows["argmax"][24:], rtol=1e-6)
    np.testing.assert_allclose(s.heatmaps, rows["heat"][24:].astype(np.float16), rtol=1e-3)
    assert np.array_equal(s.ambiguous, (np.arange(24, 48) % 3 == 0))
    assert (s.meta["camera"] == 54138969).all() and s.meta["subject"].tolist() == [9] * 12 + [11] * 12
    with pytest.raises(KeyError, match="no table 'nope'"):
        load_h36m_h5(p, table="nope")


def test_h36m_bad_inputs(tmp_path, rows):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load_h36m_h5(tmp_path / "missing.h5")
    p = _flat_h5(tmp_path / "nocam.h5", rows, drop=("camera",))
    with pytest.raises(KeyError, match=r"nocam\.h5.*'camera'.*keys present.*gt_3d"):
        load_h36m_h5(p)
    p = _flat_h5(tmp_path / "shape.h5", rows, override={"gt_3d": rows["gt_3d"][:, :16]})
    with pytest.raises(ValueError, match=r"shape\.h5.*'gt_3d'.*\(48, 16, 3\).*expected \(n, 17, 3\)"):
        load_h36m_h5(p)
    p = _flat_h5(tmp_path / "hm.h5", rows, override={"heatmaps": rows["heat"][..., :32]})
    with pytest.raises(ValueError, match=r"hm\.h5.*'heatmaps'.*\(48, 16, 64, 32\).*\(48, 16, 64, 64\)"):
        load_h36m_h5(p)
    p = _flat_h5(tmp_path / "dtype.h5", rows, override={"gt_2d": np.zeros((48, 17, 2), "S2")})
    with pytest.raises(ValueError, match=r"dtype\.h5.*'gt_2d'.*dtype"):
        load_h36m_h5(p)
    p = _flat_h5(tmp_path / "len.h5", rows, override={"frame": np.arange(47)})
    with pytest.raises(ValueError, match=r"len\.h5: keys 'gt_3d' and 'frame' have different lengths \(48 vs 47\)"):
        load_h36m_h5(p)
    p = _flat_h5(tmp_path / "metres.h5", rows, override={"gt_3d": rows["gt_3d"] / 1000})
    with pytest.raises(ValueError, match="scale_to_mm=1000"):
        load_h36m_h5(p)
    assert len(load_h36m_h5(p, scale_to_mm=1000)) == 48
    p = _flat_h5(tmp_path / "ok.h5", rows)
    with pytest.raises(ValueError, match=r"ok\.h5.*no rows of subjects \[2\]"):
        load_h36m_h5(p, subjects=[2])
    good = p.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(good[: len(good) // 3])
    with pytest.raises(ValueError, match=r"trunc\.h5"):
        load_h36m_h5(tmp_path / "trunc.h5")
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(ValueError, match=r"junk\.h5.*not a readable HDF5"):
        load_h36m_h5(tmp_path / "junk.h5")


def test_to_sample_batch_matches_embedded_pipeline():
    views, _ = _views(6, seed=3)
    s = LoadedSet(heatmaps=None, poses_3d_mm=views.poses_cam_mm.numpy(),
                  poses_2d_px=views.poses_2d_px.numpy(), meta={"frame": np.arange(6)})
    with pytest.raises(ValueError, match="torch.Generator"):
        s.to_sample_batch(None)
    b = s.to_sample_batch(torch.Generator().manual_seed(7), chunk=4)
    assert b.heatmaps.shape == (6, 16, 64, 64) and b.heatmaps.dtype == torch.float32
    assert b.poses_3d_mm.shape == (6, 17, 3) and b.ambiguous.shape == (6,) and b.boxes.shape == (6, 3)
    torch.testing.assert_close(b.joints_hm, views.joints_hm)          # same crop, same coordinates
    # the simulator with the same generator state gives the same maps (chunking changes nothing
    # but the draw order, so compare chunk by chunk)
    g = torch.Generator().manual_seed(7)
    depth = views.poses_cam_mm[:, list(H36M_TO_MPII), 2]
    first = simulate_heatmaps(views.joints_hm[:4], depth[:4], HeatmapConfig(), g)
    torch.testing.assert_close(b.heatmaps[:4], first.heatmaps)
    assert torch.equal(b.ambiguous, h36ma_ambiguous(b.heatmaps))
    # the simulator's failure flags come along (not recomputed, not all False)
    for mine, theirs in (("failed_joints", "failed"), ("inverted_joints", "inverted"),
                         ("missed_joints", "missed"), ("kept_true_mode", "kept_true_mode")):
        assert torch.equal(getattr(b, mine)[:4], getattr(first, theirs)), mine
    forced = s.to_sample_batch(torch.Generator().manual_seed(7),
                               HeatmapConfig.preset("v2", p_invert=(0.9,) * 8))
    assert forced.inverted_joints.any() and forced.failed_limb_sample.any()
    b2 = s.to_sample_batch(torch.Generator().manual_seed(7), chunk=4)
    assert torch.equal(b.heatmaps, b2.heatmaps)
    # 16 MPII joints in, 17 H36M joints out
    m = LoadedSet(None, views.poses_cam_mm.numpy(), views.poses_2d_px[:, list(H36M_TO_MPII)].numpy())
    bm = m.to_sample_batch(torch.Generator().manual_seed(7))
    assert bm.poses_2d_px.shape == (6, 17, 2) and torch.isfinite(bm.poses_2d_px).all()
    torch.testing.assert_close(bm.poses_2d_px[:, 3], views.poses_2d_px[:, 3])
    with pytest.raises(ValueError, match=r"poses_2d_px.*\(6, 17, 2\) or \(6, 16, 2\)"):
        LoadedSet(None, views.poses_cam_mm.numpy(), views.poses_2d_px[:, :5].numpy())


def test_stored_heatmaps_pass_through(tmp_path, rows):
    s = load_h36m_h5(_flat_h5(tmp_path / "a.h5", rows), subjects=[9])
    b = s.to_sample_batch(None)
    assert torch.equal(b.heatmaps, torch.from_numpy(rows["heat"][24:36]))
    assert torch.equal(b.ambiguous, torch.from_numpy(s.ambiguous))
    torch.testing.assert_close(b.joints_hm, torch.from_numpy(rows["argmax"][24:36]))


def _vp3d(tmp_path, frames=(10, 12), extra_2d=2, name="data_3d_h36m.npz"):
    raw = np.broadcast_to(np.arange(32, dtype=np.float32)[:, None], (32, 3))
    pos3d = {"S1": {"Walking 1": np.stack([raw + t for t in range(frames[0])])},
             "S9": {"Directions": np.stack([raw + 100 + t for t in range(frames[1])])}}
    pos2d = {s: {a: [np.full((v.shape[0] + extra_2d, 17, 2), 10 * c, np.float32) for c in range(4)]
                 for a, v in acts.items()} for s, acts in pos3d.items()}
    np.savez(tmp_path / name, positions_3d=pos3d)
    np.savez(tmp_path / "data_2d_h36m_gt.npz", positions_2d=pos2d,
             metadata={"layout_name": "h36m", "num_joints": 17})
    return tmp_path / name, tmp_path / "data_2d_h36m_gt.npz"


def test_videopose3d_world_poses_map_and_2d(tmp_path):
    p3, p2 = _vp3d(tmp_path)
    w = load_videopose3d(p3)
    assert w.poses_m.shape == (22, 17, 3) and w.poses_2d_px is None
    assert np.array_equal(w.poses_m[0, :, 0], np.asarray(H36M_RAW32_TO_17, np.float32))   # the 32 -> 17 map
    assert w.meta["subject"].tolist() == [1] * 10 + [9] * 12
    assert w.meta["action"][0] == "Walking" and w.meta["action_name"][0] == "Walking 1"
    assert (w.meta["camera"] == -1).all()
    e = load_videopose3d(p3, subjects=["S9"], every=4)
    assert e.meta["frame"].tolist() == [0, 4, 8] and e.poses_m[1, 0, 0] == 104
    d = load_videopose3d(p3, p2, subjects=[9], every=4)
    assert d.poses_2d_px.shape == (12, 17, 2) and d.meta["camera"].tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert d.poses_2d_px[3, 0, 0] == 10 and np.array_equal(d.poses_m[0], d.poses_m[3])


def test_videopose3d_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load_videopose3d(tmp_path / "nothing.npz")
    p3, p2 = _vp3d(tmp_path, extra_2d=-1)
    with pytest.raises(ValueError, match=r"data_2d_h36m_gt\.npz.*9 frames.*data_3d_h36m\.npz.*Walking 1.*10"):
        load_videopose3d(p3, p2)
    with pytest.raises(KeyError, match=r"data_2d_h36m_gt\.npz.*no key 'positions_3d'.*positions_2d"):
        load_videopose3d(p2)
    np.savez(tmp_path / "bad.npz", positions_3d={"S1": {"Walking": np.zeros((5, 30, 3))}})
    with pytest.raises(ValueError, match=r"bad\.npz.*positions_3d\['S1'\]\['Walking'\].*\(5, 30, 3\).*\(t, 32, 3\)"):
        load_videopose3d(tmp_path / "bad.npz")
    np.savez(tmp_path / "d2.npz", positions_2d={"S1": {"Other": []}})
    with pytest.raises(KeyError, match=r"d2\.npz.*positions_2d\['S1'\]\['Walking 1'\]"):
        load_videopose3d(p3, tmp_path / "d2.npz")
    good = p3.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"trunc\.npz.*truncated or corrupt"):
        load_videopose3d(tmp_path / "trunc.npz")
    np.savez(tmp_path / "plain.npz", positions_3d=np.zeros((3, 17, 3)))
    with pytest.raises(ValueError, match=r"plain\.npz.*'positions_3d'.*pickled dict"):
        load_videopose3d(tmp_path / "plain.npz")


def test_3dhp_map_by_name():
    pairs = {"Pelvis": "pelvis", "RHip": "r_hip", "RKnee": "r_knee", "RAnkle": "r_ankle", "LHip": "l_hip",
             "LKnee": "l_knee", "LAnkle": "l_ankle", "Spine": "spine", "Thorax": "neck",
             "Neck/Nose": "head", "Head": "head_top", "LShoulder": "l_shoulder", "LElbow": "l_elbow",
             "LWrist": "l_wrist", "RShoulder": "r_shoulder", "RElbow": "r_elbow", "RWrist": "r_wrist"}
    assert [MPI3DHP_NAMES[i] for i in MPI3DHP_TO_H36M] == [pairs[n] for n in H36M_NAMES]
    assert sorted(MPI3DHP_TO_H36M) == list(range(17))


def _3dhp_pose_mm():
    """STAND_M in 3DHP order, camera-like frame, mm."""
    inverse = np.argsort(MPI3DHP_TO_H36M)
    return (STAND_M * 1000 + [0, 0, 4000])[inverse].astype(np.float32)


def _write_3dhp(path, n=10, layout="h5", drop=()):
    pose = _3dhp_pose_mm()
    a3 = np.stack([pose + i for i in range(n)])                 # (n, 17, 3), frame i shifted by i mm
    a2 = a3[..., :2] / 4
    data = {"annot3": a3 * 1.1, "univ_annot3": a3, "annot2": a2,
            "valid_frame": (np.arange(n) % 4 != 1).astype(float)[:, None],
            "activity_annotation": (np.arange(n) % 7 + 1).astype(float)[:, None]}
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout == "h5":                                           # MATLAB v7.3: HDF5 after a 512-byte header
        with h5py.File(path, "w", userblock_size=512) as f:
            for k, v in data.items():
                if k not in drop:
                    f[k] = v[:, None] if k in ("annot3", "univ_annot3", "annot2") else v   # (n, 1, 17, c)
        with open(path, "r+b") as f:
            f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")
    else:                                                        # MATLAB order, a v5 .mat
        from scipy.io import savemat
        savemat(path, {k: (v.transpose(2, 1, 0) if v.ndim == 3 else v) for k, v in data.items() if k not in drop})
    return path


@pytest.mark.parametrize("layout", ["h5", "v5"])
def test_3dhp_load(tmp_path, layout):
    p = _write_3dhp(tmp_path / "TS3" / "annot_data.mat", layout=layout)
    s = load_3dhp_test(p)
    assert s.keys["annot3"] == "univ_annot3" and s.heatmaps is None and s.ambiguous is None
    assert s.meta["frame"].tolist() == [0, 2, 3, 4, 6, 7, 8] and (s.meta["subject"] == 3).all()
    assert s.meta["action"].tolist() == [1, 3, 4, 5, 7, 1, 2]
    np.testing.assert_allclose(s.poses_3d_mm[0], STAND_M * 1000 + [0, 0, 4000], atol=1e-3)
    np.testing.assert_allclose(s.poses_3d_mm[1], STAND_M * 1000 + [2, 2, 4002], atol=1e-3)
    np.testing.assert_allclose(s.poses_2d_px[0], (STAND_M[:, :2] * 1000) / 4, atol=1e-3)
    assert len(load_3dhp_test(p, valid_only=False, every=3)) == 4
    b = s.to_sample_batch(torch.Generator().manual_seed(0))
    assert b.heatmaps.shape == (7, 16, 64, 64) and b.ambiguous.dtype == torch.bool


def test_3dhp_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="annot_data.mat"):
        load_3dhp_test(tmp_path / "annot_data.mat")
    p = _write_3dhp(tmp_path / "a" / "annot_data.mat", drop=("annot2",))
    with pytest.raises(KeyError, match=r"annot_data\.mat.*'annot2'.*keys present.*univ_annot3"):
        load_3dhp_test(p)
    p = tmp_path / "b" / "annot_data.mat"
    p.parent.mkdir()
    with h5py.File(p, "w") as f:
        f["annot3"] = np.zeros((5, 1, 16, 3))
        f["annot2"] = np.zeros((5, 1, 17, 2))
    with pytest.raises(ValueError, match=re.escape("'annot3' has shape (5, 1, 16, 3), expected (n, 17, 3)")):
        load_3dhp_test(p)
    p = _write_3dhp(tmp_path / "c" / "annot_data.mat")
    with h5py.File(p, "a") as f:
        del f["valid_frame"]
        f["valid_frame"] = np.ones((9, 1))
    with pytest.raises(ValueError, match=r"'univ_annot3' and 'valid_frame'.*10 vs 9"):
        load_3dhp_test(p)
    (tmp_path / "junk.mat").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ValueError, match=r"junk\.mat.*not a readable \.mat"):
        load_3dhp_test(tmp_path / "junk.mat")


def test_pck_and_auc_on_hand_built_poses():
    gt = torch.from_numpy(STAND_M * 1000)[None]
    assert pck3d(gt, gt) == 100.0
    assert auc3d(gt, gt) == pytest.approx(100.0 * 30 / 31)          # threshold 0 counts nothing
    pred = gt.clone()
    pred[0, 3, 0] += 62.0                                            # RAnkle 62 mm off
    pred[0, 9, 1] += 500.0                                           # Neck/Nose is not a PCK joint
    assert pck3d(pred, gt) == 100.0
    assert pck3d(pred, gt, threshold_mm=60.0) == pytest.approx(100.0 * 13 / 14)
    far = gt.clone()
    far[0, 16, 2] += 150.0                                           # RWrist exactly at the threshold
    assert pck3d(far, gt) == pytest.approx(100.0 * 13 / 14)          # strictly closer counts
    assert auc3d(pred, gt) == pytest.approx(100.0 * (12 * 13 / 14 + 18) / 31)
    assert len(AUC_THRESHOLDS_MM) == 31
    # with hypotheses the best one (by MPJPE) is scored
    hypos = torch.stack([pred[0], gt[0] + 0.5], 0)[None]
    assert pck3d(hypos, gt) == 100.0
    with pytest.raises(ValueError, match=r"gt must have shape"):
        pck3d(gt, gt[:, :16])


def test_protocol_mean_and_actions():
    v = np.array([1.0, 1.0, 1.0, 10.0])
    a = np.array(["Walking", "Walking", "Walking", "Eating"])
    assert h36m_protocol_mean(v, a) == pytest.approx(5.5)          # not the frame mean 3.25
    assert h36m_per_action(torch.tensor(v), a) == {"Eating": 10.0, "Walking": 1.0}
    all15 = np.repeat(np.arange(15), [1 + i for i in range(15)])
    assert h36m_protocol_mean(all15.astype(float), all15) == pytest.approx(7.0)
    with pytest.raises(ValueError, match="equal-length"):
        h36m_protocol_mean(v, a[:3])
    with pytest.raises(ValueError, match="16 distinct values"):
        h36m_protocol_mean(np.zeros(16), np.arange(16))
    assert normalize_action("Directions 1") == "Directions"
    assert normalize_action(b"TakingPhoto") == "Photo" and normalize_action("WalkingDog 2") == "WalkDog"
    with pytest.raises(ValueError, match="unknown Human3.6M action 'Juggling'"):
        normalize_action("Juggling")


class _Payload:
    """Unpickling this calls ``pathlib.Path.touch(marker)``: what a crafted file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_videopose3d_refuses_a_pickle_payload(tmp_path):
    """A crafted .npz whose pickle calls a function is refused, and the function never runs
    (with np.load(..., allow_pickle=True) the marker file would appear)."""
    marker = tmp_path / "pwned"
    for where in ("positions_3d", "metadata"):
        payload = {"S1": {"Walking": _Payload(marker)}} if where == "positions_3d" else _Payload(marker)
        good = {"S1": {"Walking": np.zeros((5, 32, 3))}}
        arrays = {"positions_3d": payload} if where == "positions_3d" else {"positions_3d": good,
                                                                            "metadata": payload}
        path = tmp_path / f"evil_{where}.npz"
        np.savez(path, **{k: np.array(v, dtype=object) for k, v in arrays.items()})
        with pytest.raises(ValueError, match=rf"evil_{where}\.npz.*cannot be read safely: it names .*refused"):
            load_videopose3d(path)
        assert not marker.exists()
    # the same payload does run under allow_pickle=True: the test can fail
    with np.load(tmp_path / "evil_positions_3d.npz", allow_pickle=True) as z:
        z["positions_3d"]
    assert marker.exists()
