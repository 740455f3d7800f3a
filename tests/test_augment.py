"""Pose augmentation: plausible poses (bones, joint limits), conventions, seeds, identity."""
from dataclasses import asdict

import pytest
import torch

from dphelpers import anatomy
from dphelpers import augment as A
from dphelpers.cameras import CameraConfig
from dphelpers.skeleton import L_HIP, R_HIP

ONLY = {"p_angles": 0.0, "p_swap_body": 0.0, "p_swap_limb": 0.0, "p_bones": 0.0,
        "p_lean": 0.0, "p_lie": 0.0}


@pytest.fixture(scope="module")
def poses(splits):
    """256 training poses, evenly spaced over the split: (256, 17, 3) metres."""
    train = torch.as_tensor(splits[0])
    return train[torch.linspace(0, len(train) - 1, 256).round().long()]


def _aug(poses, seed=0, **kw):
    cfg = A.AugmentConfig(enabled=True, **kw)
    return A.augment_poses(poses, torch.Generator().manual_seed(seed), cfg)


def test_training_and_test_data_lie_within_the_stated_ranges(splits):
    for split in splits:
        p = torch.as_tensor(split)
        assert anatomy.within_bone_range(p).all() and anatomy.within_limits(p).all()


def test_augmented_poses_stay_plausible(poses):
    for seed in range(3):
        out = _aug(poses, seed=seed, p_angles=1.0, p_swap_body=0.5, p_swap_limb=0.5,
                   p_bones=1.0, p_lean=0.5, p_lie=0.2)
        assert out.shape == poses.shape and out.dtype == poses.dtype
        assert torch.isfinite(out).all()
        assert anatomy.within_bone_range(out).all()
        assert anatomy.within_limits(out).all()


def test_pelvis_is_kept_and_stays_at_the_hip_midpoint(poses):
    out = _aug(poses, p_lean=0.5, p_lie=0.5, p_angles=1.0, p_bones=1.0)
    assert torch.equal(out[:, 0], 0.5 * (out[:, L_HIP] + out[:, R_HIP]))
    assert torch.allclose(out[:, 0], poses[:, 0], atol=1e-5)


def test_seeded_determinism(poses):
    a, b, c = _aug(poses, seed=3), _aug(poses, seed=3), _aug(poses, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_disabled_is_the_identity_and_draws_nothing(poses):
    gen = torch.Generator().manual_seed(7)
    state = gen.get_state()
    out = A.augment_poses(poses, gen, A.AugmentConfig())
    assert out is poses
    assert torch.equal(gen.get_state(), state)


def test_enabled_draws_a_fixed_amount_whatever_the_probabilities(poses):
    states = []
    for kw in (ONLY, {}):
        gen = torch.Generator().manual_seed(1)
        A.augment_poses(poses, gen, A.AugmentConfig(enabled=True, **kw))
        states.append(gen.get_state())
    assert torch.equal(*states)


@pytest.mark.parametrize("name", sorted(ONLY))
def test_each_transform_changes_poses(poses, name):
    before_angles = anatomy.joint_angles(poses)
    out = _aug(poses, **{**ONLY, name: 1.0})
    moved = torch.linalg.vector_norm(out - poses, dim=-1).amax(dim=1)       # (b,)
    assert (moved > 0.01).float().mean() > 0.5, f"{name} changed too few poses"
    if name in ("p_lean", "p_lie"):               # a rigid turn: articulation unchanged
        after = anatomy.joint_angles(out)
        for key in before_angles:
            assert torch.allclose(after[key], before_angles[key], atol=0.05)
        tilt = torch.rad2deg(torch.acos(torch.nn.functional.cosine_similarity(
            out[:, 8] - out[:, 0], poses[:, 8] - poses[:, 0], dim=-1).clamp(-1, 1)))
        assert tilt.max() > (60 if name == "p_lie" else 10)
    if name == "p_bones":
        assert not torch.allclose(anatomy.bone_lengths(out), anatomy.bone_lengths(poses), atol=1e-3)
    if name == "p_angles":                         # rotations about joints keep every bone
        assert torch.allclose(anatomy.bone_lengths(out), anatomy.bone_lengths(poses), atol=1e-5)


def test_transforms_off_leave_poses_unchanged(poses):
    out = _aug(poses, **ONLY)
    assert torch.allclose(out, poses, atol=1e-6)


def test_limits_catch_an_impossible_pose(poses):
    bad = poses[:1].clone()
    elbow, wrist = bad[0, 12], bad[0, 13]
    shoulder = bad[0, 11]
    # fold the forearm back onto the upper arm: elbow flexion ~180 degrees
    bad[0, 13] = elbow + (shoulder - elbow) / torch.linalg.vector_norm(shoulder - elbow) \
        * torch.linalg.vector_norm(wrist - elbow)
    assert anatomy.within_limits(poses[:1]).all() and not anatomy.within_limits(bad).any()
    long = poses[:1].clone()
    long[0, 13] = long[0, 12] + 2 * (long[0, 13] - long[0, 12])            # forearm x2
    assert not anatomy.within_bone_range(long).any()


def test_bad_input_and_config_errors(poses):
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"\(b, 17, 3\)"):
        A.augment_poses(poses[:, :16], gen, A.AugmentConfig(enabled=True))
    with pytest.raises(ValueError, match="float tensor"):
        A.augment_poses(poses.long(), gen, A.AugmentConfig(enabled=True))
    with pytest.raises(ValueError, match="AugmentConfig"):
        A.augment_poses(poses, gen, {"enabled": True})
    with pytest.raises(ValueError, match="p_bones"):
        A.AugmentConfig(p_bones=1.5)
    with pytest.raises(ValueError, match="p_lean"):
        A.AugmentConfig(p_lean=0.8, p_lie=0.5)
    with pytest.raises(ValueError, match="no field"):
        A.AugmentConfig.from_dict({"enabled": True, "p_wobble": 0.1})
    cfg = A.AugmentConfig(enabled=True, proportion_range=(0.9, 1.1))
    assert A.AugmentConfig.from_dict(asdict(cfg)) == cfg


def test_single_pose_batch_and_float64(poses):
    one = _aug(poses[:1].double(), p_swap_body=1.0, p_swap_limb=1.0)
    assert one.shape == (1, 17, 3) and one.dtype == torch.float64
    assert anatomy.within_limits(one).all() and anatomy.within_bone_range(one).all()


def test_wide_camera_config():
    wide = A.wide_camera_config()
    base = CameraConfig()
    assert wide.elevation_deg[0] < base.elevation_deg[0]
    assert wide.elevation_deg[1] > base.elevation_deg[1]
    assert wide.roll_deg[1] > base.roll_deg[1] and wide.distance_m == base.distance_m


def test_strength_scales_the_defaults_and_stays_plausible(poses):
    assert A.AugmentConfig.at_strength(1.0) == A.AugmentConfig(enabled=True)
    weak, strong = A.AugmentConfig.at_strength(0.5), A.AugmentConfig.at_strength(2.0)
    assert weak.enabled and strong.enabled
    assert weak.p_angles == 0.25 and strong.p_angles == 1.0            # capped at 1
    assert strong.angle_std_deg == 30.0 and strong.lean_max_deg == 90.0
    assert strong.proportion_range == pytest.approx((0.7, 1.3))
    assert A.AugmentConfig.at_strength(10.0).p_lean + A.AugmentConfig.at_strength(10.0).p_lie \
        == pytest.approx(1.0)
    gen = torch.Generator().manual_seed(0)
    out = A.augment_poses(poses, gen, strong)
    assert anatomy.within_bone_range(out).all() and anatomy.within_limits(out).all()
    moved = lambda cfg: (A.augment_poses(poses, torch.Generator().manual_seed(0), cfg)  # noqa: E731
                         - poses).norm(dim=-1).mean()
    assert moved(weak) < moved(A.AugmentConfig(enabled=True)) < moved(strong)
    for bad in (0.0, -1.0, float("nan"), "2"):
        with pytest.raises(ValueError, match="strength must be a number > 0"):
            A.AugmentConfig.at_strength(bad)
