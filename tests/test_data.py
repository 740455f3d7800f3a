"""Tests for dphelpers.data: the embedded mocap file, the split and bone scaling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dphelpers import data
from dphelpers.skeleton import H36M_PARENTS, L_HIP, R_HIP


@pytest.fixture(scope="module")
def clips() -> list[data.Clip]:
    return data.load_mocap()


def _bone_lengths(poses: np.ndarray | torch.Tensor):
    parents = list(H36M_PARENTS[1:])
    return ((poses[:, 1:] - poses[:, parents]) ** 2).sum(-1) ** 0.5


def test_default_path_points_into_repo(monkeypatch):
    monkeypatch.delenv("DPHELPERS_DATA", raising=False)
    path = data.default_data_path()
    assert path.name == "mocap_h36m17.npz" and path.parent.name == "data" and path.is_file()
    monkeypatch.setenv("DPHELPERS_DATA", "/elsewhere/x.npz")
    assert str(data.default_data_path()) == "/elsewhere/x.npz"


def test_real_file_shapes_and_values(clips):
    assert len(clips) == 8
    assert sum(c.poses_m.shape[0] for c in clips) == 6077
    assert data.default_data_path().stat().st_size < 3e6
    for c in clips:
        assert c.poses_m.ndim == 3 and c.poses_m.shape[1:] == (17, 3) and c.poses_m.dtype == np.float32
        assert c.poses_m.shape[0] > 500 and np.isfinite(c.poses_m).all()
        assert 29 < c.fps < 34 and c.name and c.source
        # pelvis is exactly the hip midpoint
        np.testing.assert_allclose(c.poses_m[:, 0], (c.poses_m[:, R_HIP] + c.poses_m[:, L_HIP]) / 2,
                                   atol=1e-6)
        # upright (Z up): head above pelvis in most frames
        assert (c.poses_m[:, 10, 2] > c.poses_m[:, 0, 2]).mean() > 0.9
        bones = _bone_lengths(c.poses_m).mean(0)
        assert 0.33 < bones[[1, 4]].mean() < 0.47  # thigh
        assert 0.35 < bones[[2, 5]].mean() < 0.48  # shin
        assert 0.22 < bones[[11, 14]].mean() < 0.35  # upper arm
        # rigid data: a thigh keeps its length over time (< 2 cm spread)
        assert _bone_lengths(c.poses_m)[:, 1].std() < 0.02


def test_split_real_file(clips):
    train, test = data.split_clips(clips)
    assert train.dtype == np.float32 and train.shape[1:] == (17, 3) and test.shape[1:] == (17, 3)
    total = sum(c.poses_m.shape[0] for c in clips)
    assert 0.15 < test.shape[0] / total < 0.25
    assert train.shape[0] + test.shape[0] < total  # gap frames dropped
    again = data.split_clips(clips)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(test, again[1])


def test_split_is_in_time_with_gap():
    t, fps = 100, 10.0
    poses = np.zeros((t, 17, 3), np.float32)
    poses[:, 0, 0] = np.arange(t)  # frame number stored in the pose
    clip = data.Clip("a", "synthetic", fps, poses)
    train, test = data.split_clips([clip, clip], data.SplitConfig(test_fraction=0.2, gap_s=1.0))
    tr, te = train[:, 0, 0], test[:, 0, 0]
    np.testing.assert_array_equal(te, np.tile(np.arange(80, 100), 2))
    np.testing.assert_array_equal(tr, np.tile(np.arange(0, 70), 2))  # 10 frames = 1 s of gap
    assert not set(tr.tolist()) & set(te.tolist())
    train2, test2 = data.split_clips([clip], data.SplitConfig(stride=5))
    np.testing.assert_array_equal(train2[:, 0, 0], np.arange(0, 70, 5))
    np.testing.assert_array_equal(test2[:, 0, 0], np.arange(80, 100, 5))


def test_split_config_errors():
    with pytest.raises(ValueError, match="test_fraction"):
        data.SplitConfig(test_fraction=1.0)
    with pytest.raises(ValueError, match="stride"):
        data.SplitConfig(stride=0)
    with pytest.raises(ValueError, match="empty"):
        data.split_clips([])


def test_scale_bones_identity_and_double(clips):
    poses = torch.from_numpy(clips[0].poses_m[:50])
    same = data.scale_bones(poses, torch.ones(50, 16))
    torch.testing.assert_close(same, poses, atol=1e-6, rtol=0)
    double = data.scale_bones(poses, torch.full((50, 1), 2.0))
    torch.testing.assert_close(_bone_lengths(double), 2 * _bone_lengths(poses), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(double[:, 0], poses[:, 0])  # pelvis stays
    # directions kept, per-bone scales act on their own bone only
    scales = torch.ones(50, 16)
    scales[:, 1] = 3.0  # bone 1 ends at joint 2 (RKnee)
    one = data.scale_bones(poses, scales)
    ratio = _bone_lengths(one) / _bone_lengths(poses)
    torch.testing.assert_close(ratio[:, 1], torch.full((50,), 3.0))
    torch.testing.assert_close(ratio[:, [0, 2, 3]], torch.ones(50, 3))
    with pytest.raises(ValueError, match=r"scales has shape \(50, 3\)"):
        data.scale_bones(poses, torch.ones(50, 3))
    with pytest.raises(ValueError, match=r"poses_m has shape \(50, 16, 3\)"):
        data.scale_bones(poses[:, :16], torch.ones(50, 16))


def test_random_bone_scales():
    s1 = data.random_bone_scales(200, torch.Generator().manual_seed(3))
    s2 = data.random_bone_scales(200, torch.Generator().manual_seed(3))
    torch.testing.assert_close(s1, s2)
    assert s1.shape == (200, 16) and s1.dtype == torch.float32
    assert 0.75 < s1.min() and s1.max() < 1.3
    for r, l in ((1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16)):
        torch.testing.assert_close(s1[:, r - 1], s1[:, l - 1])
    assert s1.std(dim=0).mean() > 0.05  # the global size varies
    with pytest.raises(ValueError, match="global_range"):
        data.random_bone_scales(2, torch.Generator(), global_range=(1.2, 1.0))


# --- bad files -----------------------------------------------------------------------------
def _good_arrays() -> dict[str, np.ndarray]:
    return {
        "poses_m": np.zeros((4, 17, 3), np.float32), "clip_index": np.array([0, 0, 1, 1], np.int32),
        "clip_names": np.array(["a", "b"]), "clip_sources": np.array(["x", "y"]),
        "clip_fps": np.array([30.0, 30.0], np.float32), "format_version": np.array(1),
    }


def test_good_synthetic_file(tmp_path):
    path = tmp_path / "ok.npz"
    np.savez_compressed(path, **_good_arrays())
    loaded = data.load_mocap(path)
    assert [c.name for c in loaded] == ["a", "b"] and loaded[1].poses_m.shape == (2, 17, 3)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        data.load_mocap(tmp_path / "nope.npz")


def test_missing_key(tmp_path):
    arrays = _good_arrays()
    del arrays["clip_fps"]
    path = tmp_path / "nokey.npz"
    np.savez_compressed(path, **arrays)
    with pytest.raises(KeyError, match="nokey.npz.*clip_fps"):
        data.load_mocap(path)


def test_wrong_shape(tmp_path):
    arrays = _good_arrays()
    arrays["poses_m"] = np.zeros((4, 16, 3), np.float32)
    path = tmp_path / "shape.npz"
    np.savez_compressed(path, **arrays)
    with pytest.raises(ValueError, match=r"poses_m.*\(4, 16, 3\)"):
        data.load_mocap(path)


def test_nan(tmp_path):
    arrays = _good_arrays()
    arrays["poses_m"][2, 5, 1] = np.nan
    path = tmp_path / "nan.npz"
    np.savez_compressed(path, **arrays)
    with pytest.raises(ValueError, match=r"poses_m.*\(4, 17, 3\).*NaN"):
        data.load_mocap(path)


def test_truncated_and_garbage(tmp_path):
    good = tmp_path / "good.npz"
    np.savez_compressed(good, **_good_arrays())
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        data.load_mocap(cut)
    junk = tmp_path / "junk.npz"
    junk.write_text("not an archive")
    with pytest.raises(ValueError, match="junk.npz"):
        data.load_mocap(junk)
