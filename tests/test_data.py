"""Tests for dphelpers.data: the embedded mocap file, the split, mirroring and bone scaling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dphelpers import data
from dphelpers.skeleton import H36M_FLIP_PAIRS, H36M_PARENTS, L_HIP, R_HIP


@pytest.fixture(scope="module")
def clips() -> list[data.Clip]:
    return data.load_mocap()


_SWAP = list(range(17))
for _r, _l in H36M_FLIP_PAIRS:
    _SWAP[_r], _SWAP[_l] = _l, _r


def _bone_lengths(poses: np.ndarray | torch.Tensor):
    parents = list(H36M_PARENTS[1:])
    return ((poses[:, 1:] - poses[:, parents]) ** 2).sum(-1) ** 0.5


def test_default_path_points_into_repo(monkeypatch):
    monkeypatch.delenv("DPHELPERS_DATA", raising=False)
    path = data.default_data_path()
    assert path.name == "mocap_h36m17.npz" and path.parent.name == "data" and path.is_file()
    monkeypatch.setenv("DPHELPERS_DATA", "/elsewhere/x.npz")
    assert str(data.default_data_path()) == "/elsewhere/x.npz"


ORIGINAL_FRAMES = {"cmu_01_01_jumps": 688, "cmu_01_03_climb": 1128, "boxing": 1024,
                   "holosoma_climb_0": 701, "holosoma_climb_1": 606, "holosoma_climb_2": 753,
                   "holosoma_climb_3": 601, "holosoma_climb_4": 576}
DEEPMIMIC = ("backflip", "cartwheel", "crawl", "dance_a", "dance_b", "getup_facedown",
             "getup_faceup", "jump", "kick", "punch", "roll", "run", "spin", "spinkick", "walk")
# floor and acrobatic clips: lying or upside down for a good part of the time
NOT_UPRIGHT = {"deepmimic_" + n for n in ("backflip", "cartwheel", "crawl", "getup_facedown",
                                          "getup_faceup", "roll")}


def test_real_file_shapes_and_values(clips):
    assert len(clips) == 8 + 15
    assert data.default_data_path().stat().st_size < 3e6
    for c in clips:
        assert c.poses_m.ndim == 3 and c.poses_m.shape[1:] == (17, 3)
        assert c.poses_m.dtype == np.float32 and np.isfinite(c.poses_m).all()
        assert 15 < c.fps < 34 and c.name and c.source
        assert "omomo" not in (c.name + c.source).lower()  # reserved, never embedded
        # pelvis is exactly the hip midpoint
        np.testing.assert_allclose(c.poses_m[:, 0],
                                   (c.poses_m[:, R_HIP] + c.poses_m[:, L_HIP]) / 2, atol=1e-6)
        # upright (Z up): head above pelvis in most frames
        upright = (c.poses_m[:, 10, 2] > c.poses_m[:, 0, 2]).mean()
        assert upright > (0.5 if c.name in NOT_UPRIGHT else 0.9), c.name
        bones = _bone_lengths(c.poses_m).mean(0)
        assert 0.33 < bones[[1, 4]].mean() < 0.47  # thigh
        assert 0.35 < bones[[2, 5]].mean() < 0.48  # shin
        assert 0.22 < bones[[11, 14]].mean() < 0.35  # upper arm
        # rigid data: a thigh keeps its length over time (< 2 cm spread)
        assert _bone_lengths(c.poses_m)[:, 1].std() < 0.02


def test_original_clips_unchanged(clips):
    """The first 8 clips keep their frame counts and ~30 Hz rate."""
    assert {c.name: c.poses_m.shape[0] for c in clips[:8]} == ORIGINAL_FRAMES
    assert all(29 < c.fps < 34 for c in clips[:8])


def test_deepmimic_clips(clips):
    dm = [c for c in clips if c.name.startswith("deepmimic_")]
    assert [c.name for c in dm] == ["deepmimic_" + n for n in DEEPMIMIC]
    assert all("pybullet 3.2.7" in c.source and "humanoid3d_" in c.source for c in dm)
    assert all(c.poses_m.shape[0] >= 25 for c in dm)
    assert sorted({c.fps for c in dm}) == [16.0, 24.0, 30.0]
    # one rigid skeleton for all 15 clips: every bone the same length everywhere (< 1 mm)
    lengths = _bone_lengths(np.concatenate([c.poses_m for c in dm]))
    assert lengths.std(axis=0).max() < 1e-3
    # human size: head top 1.5-1.8 m above the lowest ankle in the walk
    walk = dm[DEEPMIMIC.index("walk")].poses_m
    height = walk[:, 10, 2] - walk[:, [3, 6], 2].min(1)
    assert 1.4 < height.mean() < 1.8
    # no mirroring: in the walk the hips' facing direction points where the pelvis travels
    facing = np.cross(walk[:, L_HIP] - walk[:, R_HIP], walk[:, 8] - walk[:, 0])[:, :2]
    travel = np.gradient(walk[:, 0, :2], axis=0)
    assert ((facing * travel).sum(1) > 0).mean() > 0.95


def _rows(poses: np.ndarray) -> set[bytes]:
    return {p.tobytes() for p in poses}


def test_split_real_file(clips):
    plain_tr, plain_te = data.split_clips(clips, data.SplitConfig(mirror_train=False))
    train, test = data.split_clips(clips)  # mirror_train=True by default
    assert train.dtype == np.float32 and train.shape[1:] == (17, 3) and test.shape[1:] == (17, 3)
    total = sum(c.poses_m.shape[0] for c in clips)
    assert 0.15 < test.shape[0] / total < 0.25
    assert plain_tr.shape[0] + plain_te.shape[0] < total  # gap frames dropped
    # mirroring appends the mirror images to train only
    np.testing.assert_array_equal(test, plain_te)
    np.testing.assert_array_equal(train, np.concatenate([plain_tr, data.mirror_poses(plain_tr)]))
    # no test pose (nor its mirror image) is in the training split
    assert not _rows(test) & _rows(train)
    assert not _rows(data.mirror_poses(test)) & _rows(train)
    again = data.split_clips(clips)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(test, again[1])


def _numbered_clip(t: int, fps: float) -> data.Clip:
    poses = np.zeros((t, 17, 3), np.float32)
    poses[:, :, 2] = np.arange(t)[:, None]  # frame number in the height (mirroring keeps it)
    poses[:, :, 0] = np.arange(17)  # distinct joints so mirroring changes the pose
    return data.Clip("a", "synthetic", fps, poses)


def test_split_is_in_time_with_gap():
    clip = _numbered_clip(100, 10.0)
    config = data.SplitConfig(test_fraction=0.2, gap_s=1.0, mirror_train=False)
    train, test = data.split_clips([clip, clip], config)
    tr, te = train[:, 0, 2], test[:, 0, 2]
    np.testing.assert_array_equal(te, np.tile(np.arange(80, 100), 2))
    np.testing.assert_array_equal(tr, np.tile(np.arange(0, 70), 2))  # 10 frames = 1 s of gap
    assert not set(tr.tolist()) & set(te.tolist())
    train2, test2 = data.split_clips([clip], data.SplitConfig(stride=5, mirror_train=False))
    np.testing.assert_array_equal(train2[:, 0, 2], np.arange(0, 70, 5))
    np.testing.assert_array_equal(test2[:, 0, 2], np.arange(80, 100, 5))
    # with mirroring: the same frames twice in train (once mirrored), test untouched
    train3, test3 = data.split_clips([clip], data.SplitConfig(stride=5))
    np.testing.assert_array_equal(train3[:, 0, 2], np.tile(np.arange(0, 70, 5), 2))
    np.testing.assert_array_equal(test3, test2)
    np.testing.assert_array_equal(train3[14:], data.mirror_poses(train2))


def test_short_clips_go_whole_to_train():
    short, long = _numbered_clip(29, 10.0), _numbered_clip(100, 10.0)  # 2.9 s and 10 s
    train, test = data.split_clips([short, long], data.SplitConfig(mirror_train=False))
    np.testing.assert_array_equal(train[:, 0, 2], np.r_[np.arange(29), np.arange(70)])
    np.testing.assert_array_equal(test[:, 0, 2], np.arange(80, 100))
    # only short clips: an empty but well-shaped test split
    train, test = data.split_clips([short], data.SplitConfig())
    assert train.shape == (58, 17, 3) and test.shape == (0, 17, 3) and test.dtype == np.float32
    # min_split_s = 0 splits every clip: 29 frames -> 6 test, 10 gap, 13 train
    train, test = data.split_clips([short], data.SplitConfig(min_split_s=0, mirror_train=False))
    np.testing.assert_array_equal(train[:, 0, 2], np.arange(13))
    np.testing.assert_array_equal(test[:, 0, 2], np.arange(23, 29))


def test_split_config_errors():
    with pytest.raises(ValueError, match="test_fraction"):
        data.SplitConfig(test_fraction=1.0)
    with pytest.raises(ValueError, match="test_fraction"):
        data.SplitConfig(test_fraction=-0.1)
    with pytest.raises(ValueError, match="gap_s"):
        data.SplitConfig(gap_s=-1.0)
    with pytest.raises(ValueError, match="stride"):
        data.SplitConfig(stride=0)
    with pytest.raises(ValueError, match="stride"):
        data.SplitConfig(stride=1.5)
    with pytest.raises(ValueError, match="min_split_s"):
        data.SplitConfig(min_split_s=-1.0)
    with pytest.raises(ValueError, match="min_split_s"):
        data.SplitConfig(min_split_s=float("nan"))
    with pytest.raises(ValueError, match="mirror_train.*'yes'"):
        data.SplitConfig(mirror_train="yes")
    with pytest.raises(ValueError, match="mirror_train"):
        data.SplitConfig(mirror_train=1)
    with pytest.raises(TypeError, match="mirror"):
        data.SplitConfig(mirror=True)  # unknown key
    with pytest.raises(ValueError, match="empty"):
        data.split_clips([])


def test_mirror_poses_invariants(clips):
    poses = np.concatenate([c.poses_m[::25] for c in clips])  # ~280 poses from every clip
    mirrored = data.mirror_poses(poses)
    assert mirrored.shape == poses.shape and mirrored.dtype == np.float32
    np.testing.assert_array_equal(data.mirror_poses(mirrored), poses)  # an involution, exactly
    # bone lengths kept; a left bone takes its right partner's length (bone k ends at joint k+1)
    swapped_bones = [_SWAP[k + 1] - 1 for k in range(16)]
    np.testing.assert_allclose(_bone_lengths(mirrored), _bone_lengths(poses)[:, swapped_bones],
                               atol=1e-6)
    np.testing.assert_allclose(mirrored[:, 0], (mirrored[:, R_HIP] + mirrored[:, L_HIP]) / 2,
                               atol=1e-6)  # pelvis still the hip midpoint
    np.testing.assert_array_equal(mirrored[..., 2], poses[:, _SWAP, 2])  # Z stays up
    flip_x = np.array([-1.0, 1.0, 1.0], np.float32)
    for right, left in H36M_FLIP_PAIRS:  # left and right swap places (reflected)
        np.testing.assert_array_equal(mirrored[:, left], poses[:, right] * flip_x)
        np.testing.assert_array_equal(mirrored[:, right], poses[:, left] * flip_x)
    for centre in (0, 7, 8, 9, 10):  # joints on the midline are only reflected
        np.testing.assert_array_equal(mirrored[:, centre], poses[:, centre] * flip_x)
    # a mirror image, not a rotation: the rotation-invariant triple product of the hips' and
    # the wrists' left-minus-right vectors and the torso changes sign
    def triple(p):
        return np.linalg.det(np.stack([p[:, L_HIP] - p[:, R_HIP], p[:, 8] - p[:, 0],
                                       p[:, 13] - p[:, 16]], axis=1).astype(np.float64))
    np.testing.assert_allclose(triple(mirrored), -triple(poses), atol=1e-6)
    assert (np.abs(triple(poses)) > 1e-4).mean() > 0.9  # and it is not ~0 to begin with
    with pytest.raises(ValueError, match=r"mirror_poses: poses_m has shape \(4, 16, 3\)"):
        data.mirror_poses(np.zeros((4, 16, 3)))


def test_scale_bones_identity_and_double(clips):
    poses = torch.from_numpy(clips[0].poses_m[:50])
    same = data.scale_bones(poses, torch.ones(50, 16))
    torch.testing.assert_close(same, poses, atol=1e-6, rtol=0)
    double = data.scale_bones(poses, torch.full((50, 1), 2.0))
    torch.testing.assert_close(_bone_lengths(double), 2 * _bone_lengths(poses),
                               atol=1e-5, rtol=1e-5)
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


def test_hold_out_clips_by_name_and_prefix():
    clips = data.load_mocap()
    kept, held = data.hold_out_clips(clips, ("boxing", "deepmimic"))
    assert {c.name for c in held} == {"boxing"} | {c.name for c in clips
                                                   if c.name.startswith("deepmimic_")}
    assert len(held) == 16 and len(kept) + len(held) == len(clips)
    train_m, test_m = data.split_clips(kept)
    seen = {p.tobytes() for p in np.concatenate([train_m, test_m])}
    held_frames = np.concatenate([c.poses_m for c in held]).astype(np.float32)
    assert not any(p.tobytes() in seen for p in held_frames)     # no held-out frame leaks
    with pytest.raises(ValueError, match="'boxin' matches no clip.*boxing"):
        data.hold_out_clips(clips, ("boxin",))
    with pytest.raises(ValueError, match="leaves no clip"):
        data.hold_out_clips(clips, tuple(c.name for c in clips))
