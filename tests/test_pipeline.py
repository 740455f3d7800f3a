import pytest
import torch

from dphelpers.pipeline import SampleBatch, TrainStream, make_test_set


def test_test_set_deterministic_and_consistent(splits):
    a = make_test_set(splits[1], 40, seed=5)
    b = make_test_set(splits[1], 40, seed=5)
    c = make_test_set(splits[1], 40, seed=6)
    assert len(a) == 40
    assert torch.equal(a.heatmaps, b.heatmaps) and not torch.equal(a.heatmaps, c.heatmaps)
    assert a.heatmaps.shape == (40, 16, 64, 64) and a.poses_3d_mm.shape == (40, 17, 3)
    # the heatmap argmax sits near the true joint for most joints
    flat = a.heatmaps.flatten(2).argmax(-1)
    arg = torch.stack([flat % 64, flat // 64], -1).float()
    close = ((arg - a.joints_hm).norm(dim=-1) < 3).float().mean()
    assert close > 0.85
    # people are in front of the camera, a few metres away
    assert (a.poses_3d_mm[..., 2] > 2000).all()
    assert 0.1 < a.ambiguous.float().mean() < 0.7


def test_stream_batches_and_errors(splits):
    s = TrainStream(splits[0], seed=0)
    b1, b2 = s.next_batch(8), s.next_batch(8)
    assert not torch.equal(b1.heatmaps, b2.heatmaps)
    assert torch.equal(TrainStream(splits[0], seed=0).next_batch(8).heatmaps, b1.heatmaps)
    assert b1.subset(slice(0, 3)).heatmaps.shape[0] == 3
    with pytest.raises(ValueError, match=r"\(n>0, 17, 3\)"):
        TrainStream(splits[0][:, :16])


def test_failure_flags_and_keep_share_test_sets(splits):
    from dphelpers.heatmaps import HeatmapConfig
    from dphelpers.pckh import head_size_px, pckh_failures

    sets = [make_test_set(splits[1], 200, seed=7,
                          heatmap_config=HeatmapConfig.preset("v2", p_keep_true_mode=k))
            for k in (0.0, 0.5, 1.0)]
    a = sets[0]
    for name in ("failed_joints", "inverted_joints", "jittered_joints", "missed_joints",
                 "kept_true_mode", "truncated_joints"):
        flag = getattr(a, name)
        assert flag.shape == (200, 16) and flag.dtype == torch.bool
    head = head_size_px(a.joints_hm)
    assert torch.equal(a.failed_joints, pckh_failures(a.heatmaps, a.joints_hm, head))
    drawn = a.inverted_joints | a.jittered_joints | a.missed_joints
    assert drawn.any() and a.failed_limb_sample.any() and not a.kept_true_mode.any()
    assert a.failed_joints[drawn].float().mean() > a.failed_joints[~drawn].float().mean()
    # same poses, cameras and failures; only the kept modes differ (nested as the share grows)
    for s in sets[1:]:
        assert torch.equal(s.joints_hm, a.joints_hm)
        assert torch.equal(s.missed_joints, a.missed_joints)
        assert (s.failed_joints == a.failed_joints).float().mean() > 0.99
    assert torch.equal(sets[2].kept_true_mode, drawn)
    assert not (sets[1].kept_true_mode & ~sets[2].kept_true_mode).any()
    sub = a.subset(slice(0, 5)).to("cpu")
    assert torch.equal(sub.failed_joints, a.failed_joints[:5])
    with pytest.raises(ValueError, match="heatmap_config must be a HeatmapConfig"):
        make_test_set(splits[1], 4, heatmap_config="v2")


def test_sample_batch_without_flags_computes_failures(splits):
    from dphelpers.pipeline import SampleBatch

    t = make_test_set(splits[1], 6, seed=1)
    core = {k: getattr(t, k) for k in ("heatmaps", "poses_3d_mm", "poses_2d_px", "boxes",
                                       "joints_hm", "ambiguous_joints", "ambiguous")}
    shifted = dict(core, heatmaps=torch.roll(t.heatmaps, 20, dims=-1))   # every argmax 20 px off
    b = SampleBatch(**shifted)                          # as a set with stored heatmaps builds it
    assert b.failed_joints.all() and not b.kept_true_mode.any() and not b.truncated_joints.any()
    assert torch.equal(SampleBatch(**core).failed_joints, t.failed_joints)


def test_stream_augmentation_changes_poses_and_only_when_enabled(splits):
    from dphelpers.augment import AugmentConfig
    plain = TrainStream(splits[0], seed=3).next_batch(32)
    off = TrainStream(splits[0], seed=3, augment=AugmentConfig()).next_batch(32)
    assert torch.equal(off.heatmaps, plain.heatmaps)          # disabled: the same stream
    on_a = TrainStream(splits[0], seed=3, augment=AugmentConfig(enabled=True)).next_batch(32)
    on_b = TrainStream(splits[0], seed=3, augment=AugmentConfig(enabled=True)).next_batch(32)
    assert torch.equal(on_a.heatmaps, on_b.heatmaps)          # seeded
    assert not torch.allclose(on_a.poses_3d_mm, plain.poses_3d_mm)
    with pytest.raises(ValueError, match="AugmentConfig or None"):
        TrainStream(splits[0], augment={"enabled": True})


def test_a_lean_batch_is_the_full_batch_without_the_two_heatmap_flags(splits):
    """TrainStream's batches skip ``ambiguous`` and ``failed_joints`` (functions of the maps that
    training never reads); the draws, maps and every other field are make_batch's own."""
    from dphelpers.pipeline import make_batch

    poses = torch.as_tensor(splits[0][:24])
    full = make_batch(poses, torch.Generator().manual_seed(4))
    lean = make_batch(poses, torch.Generator().manual_seed(4), lean=True)
    assert lean.is_lean and not full.is_lean
    assert lean.ambiguous is None and lean.failed_joints is None
    for name, value in vars(full).items():
        if name not in ("ambiguous", "failed_joints"):
            assert torch.equal(getattr(lean, name), value), name
    part = lean.subset(slice(2, 5))
    assert part.is_lean and torch.equal(part.heatmaps, full.heatmaps[2:5])
    with pytest.raises(ValueError, match="lean"):
        lean.failed_limb_sample
    batch = TrainStream(splits[0], seed=0).next_batch(4)
    assert batch.is_lean and batch.heatmaps.shape == (4, 16, 64, 64)
    with pytest.raises(ValueError, match="ambiguous is None"):
        SampleBatch(**{**vars(full), "ambiguous": None})


def test_poses_with_nan_are_refused_once_at_the_stream_and_the_test_set(splits):
    """The batches skip the per-batch NaN checks (a device read on a GPU); the poses are
    checked once, where they come in, and the error names the first bad pose."""
    bad = splits[0][:50].copy()
    bad[7, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf in 1 pose.*index 7"):
        TrainStream(bad)
    with pytest.raises(ValueError, match="index 7"):
        make_test_set(bad)
