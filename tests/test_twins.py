"""Tests of dphelpers.evaluation.twins: depth-flip twins keep the 2D pose and the bones; coverage."""
import math

import pytest
import torch

from dphelpers.cameras import CameraConfig, make_views
from dphelpers.data import load_mocap
from dphelpers.evaluation import coverage as C
from dphelpers.evaluation import twins as T
from dphelpers.metrics import root_relative
from dphelpers.skeleton import H36M_BONES, L_HIP, R_HIP


@pytest.fixture(scope="module")
def poses_cam_mm():
    """Real poses from every embedded clip, seen by seeded random cameras: (b, 17, 3) mm."""
    clips = load_mocap()
    poses_m = torch.cat([torch.as_tensor(c.poses_m[::300]) for c in clips])
    return make_views(poses_m, CameraConfig(), torch.Generator().manual_seed(0)).poses_cam_mm


def _bones(pose):
    return torch.stack([torch.linalg.vector_norm(pose[..., c, :] - pose[..., p, :], dim=-1)
                        for p, c in H36M_BONES], dim=-1)


def _proj(pose):
    return pose[..., :2] / pose[..., 2:]


def test_flip_table_and_moved_joints():
    table = T.flip_table(2)
    assert len(table) == 8 + 28 and table[:8] == tuple((i,) for i in range(8))
    assert len(T.flip_table(1)) == 8
    tb = T.depth_flip_twins_batch(torch.tensor([[0.0, 0.0, 5000.0]]).repeat(1, 17, 1) +
                                  torch.randn(1, 17, 3, generator=torch.Generator().manual_seed(0)) * 300)
    thigh = table.index((0,))                       # right thigh: knee and ankle move
    assert tb.moved_mask[thigh].nonzero().flatten().tolist() == [2, 3]
    assert tb.moved_mask[table.index((7,))].nonzero().flatten().tolist() == [16]
    with pytest.raises(ValueError, match="max_flips"):
        T.flip_table(0)


def test_known_flip_perpendicular_to_depth():
    parent = torch.tensor([0.0, 0.0, 5000.0], dtype=torch.float64)
    child = torch.tensor([300.0, 0.0, 5000.0], dtype=torch.float64)
    other = T.limb_flip(parent, child)
    lam = (5000.0**2 - 300.0**2) / (5000.0**2 + 300.0**2)     # the other root, worked by hand
    torch.testing.assert_close(other, lam * child)
    assert math.isclose(float(torch.linalg.vector_norm(other - parent)), 300.0, rel_tol=1e-12)
    assert float(torch.linalg.vector_norm(other - child)) > 30.0


@pytest.mark.parametrize("child", [(300.0, 0.0, 4800.0), (150.0, -200.0, 5250.0)])
def test_known_flip_tilted(child):
    parent = torch.tensor([0.0, 0.0, 5000.0], dtype=torch.float64)
    c = torch.tensor(child, dtype=torch.float64)
    other = T.limb_flip(parent, c)
    lam = (2 * float(c @ parent) - float(c @ c)) / float(c @ c)
    torch.testing.assert_close(other, lam * c)                # on the same ray
    torch.testing.assert_close(torch.linalg.vector_norm(other - parent),
                               torch.linalg.vector_norm(c - parent))
    assert abs(lam - 1.0) > 1e-3                               # a genuinely different point


def test_tangent_limb_has_no_twin(poses_cam_mm):
    pose = poses_cam_mm[0].double().clone()
    p, c = T.FLIP_LIMBS[7]                                     # right forearm, no descendants
    parent, length = pose[p], float(torch.linalg.vector_norm(pose[c] - pose[p]))
    a = float(torch.linalg.vector_norm(parent))
    e = torch.linalg.cross(parent, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    e = e / torch.linalg.vector_norm(e)
    pose[c] = parent * (1 - length**2 / a**2) + e * length * math.sqrt(a**2 - length**2) / a
    assert abs(float(pose[c] @ (pose[c] - parent))) < 1e-6     # the bone is perpendicular to the ray
    other = T.limb_flip(pose[p], pose[c])
    assert other is None or float(torch.linalg.vector_norm(other - pose[c])) < 1e-3
    # no twin flips that forearm unless the upper arm (6) moved its elbow first
    twins = T.depth_flip_twins(pose)
    assert all(7 not in tw.flipped or 6 in tw.flipped for tw in twins)
    assert len(twins) > 0                                      # the other limbs still flip
    tb = T.depth_flip_twins_batch(pose[None])
    assert not any(tb.valid[0, i] for i, f in enumerate(tb.flips) if 7 in f and 6 not in f)


def test_twins_keep_projection_and_bones(poses_cam_mm):
    for pose in poses_cam_mm[:8]:
        twins = T.depth_flip_twins(pose, min_separation_mm=30.0)
        assert len(twins) > 0
        for tw in twins:
            assert tw.pose.shape == (17, 3) and tw.pose.dtype == pose.dtype
            torch.testing.assert_close(_proj(tw.pose), _proj(pose), atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(_bones(tw.pose), _bones(pose), atol=1e-2, rtol=1e-5)
            moved = list(tw.moved_joints)
            still = [j for j in range(17) if j not in moved]
            assert torch.equal(tw.pose[still], pose[still])    # hips and pelvis never move
            shift = torch.linalg.vector_norm(tw.pose - pose, dim=-1).max()
            assert shift >= 30.0 - 1e-3
            flipped_children = [T.FLIP_LIMBS[f][1] for f in tw.flipped]
            assert set(flipped_children) <= set(moved)


def test_twins_share_root_relative_frame(poses_cam_mm):
    pose = poses_cam_mm[1]
    for tw in T.depth_flip_twins(pose):
        torch.testing.assert_close(tw.pose[[0, L_HIP, R_HIP]], pose[[0, L_HIP, R_HIP]])
        rr = root_relative(torch.stack([pose, tw.pose]))
        still = [j for j in range(17) if j not in tw.moved_joints]
        torch.testing.assert_close(rr[0, still], rr[1, still])


def test_min_separation_filters(poses_cam_mm):
    n = {sep: T.depth_flip_twins_batch(poses_cam_mm, min_separation_mm=sep).valid.sum(1)
         for sep in (0.0, 30.0, 1e5)}
    assert (n[0.0] >= n[30.0]).all() and (n[1e5] == 0).all()
    assert n[0.0].sum() > n[30.0].sum()                        # some flips are too close to count


def test_pairs_give_distinct_poses(poses_cam_mm):
    twins = T.depth_flip_twins(poses_cam_mm[3])
    pairs = [tw for tw in twins if len(tw.flipped) == 2]
    assert len(pairs) >= 5
    stack = torch.stack([tw.pose for tw in twins])
    diff = torch.linalg.vector_norm(stack[:, None] - stack[None], dim=-1).amax(-1)
    off = diff[~torch.eye(len(twins), dtype=torch.bool)]
    assert off.min() >= 30.0 - 1e-3                            # every twin is its own alternative


def test_chained_flip_order():
    """Thigh then shin of the same leg: the ankle flips relative to the moved knee."""
    pose = torch.zeros(17, 3, dtype=torch.float64) + torch.tensor([0.0, 0.0, 5000.0], dtype=torch.float64)
    pose += torch.randn(17, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 200
    pose[1], pose[2], pose[3] = (torch.tensor(v, dtype=torch.float64) for v in
                                 ((100.0, 0.0, 5000.0), (120.0, 420.0, 4850.0), (140.0, 820.0, 5000.0)))
    twins = {tw.flipped: tw.pose for tw in T.depth_flip_twins(pose)}
    knee = T.limb_flip(pose[1], pose[2])
    torch.testing.assert_close(twins[(0,)][2], knee)
    both = twins[(0, 1)]
    torch.testing.assert_close(both[2], knee)
    torch.testing.assert_close(both[3], T.limb_flip(both[2], twins[(0,)][3]))
    # the re-solved ankle keeps the sign of its depth offset to the knee
    assert (twins[(0,)][3, 2] - knee[2]) * (pose[3, 2] - pose[2, 2]) > 0


def test_unsolvable_descendant_is_skipped():
    pose = torch.zeros(17, 3, dtype=torch.float64) + torch.tensor([0.0, 0.0, 5000.0], dtype=torch.float64)
    pose += torch.randn(17, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 200
    pose[1], pose[2], pose[3] = (torch.tensor(v, dtype=torch.float64) for v in
                                 ((0.0, 0.0, 5000.0), (0.0, 400.0, 4800.0), (0.0, 800.0, 4830.0)))
    assert T.limb_flip(pose[1], pose[2]) is not None           # the knee itself can flip
    assert all(tw.flipped != (0,) for tw in T.depth_flip_twins(pose))   # but the ankle cannot follow
    tb = T.depth_flip_twins_batch(pose[None])
    assert not tb.valid[0, tb.flips.index((0,))]
    assert tb.valid[0, tb.flips.index((1,))]                   # flipping the shin alone works
    assert torch.equal(tb.poses[0, tb.flips.index((0,))], pose)  # invalid slots hold the pose


def test_batch_matches_single(poses_cam_mm):
    tb = T.depth_flip_twins_batch(poses_cam_mm)
    assert tb.poses.shape == (len(poses_cam_mm), 36, 17, 3) and tb.valid.shape == (len(poses_cam_mm), 36)
    assert tb.joints_mask.shape == (len(poses_cam_mm), 36, 17)
    for i in range(0, len(poses_cam_mm), 3):
        single = T.depth_flip_twins(poses_cam_mm[i])
        assert [tw.flipped for tw in single] == [f for f, v in zip(tb.flips, tb.valid[i]) if v]
        for tw in single:
            k = tb.flips.index(tw.flipped)
            torch.testing.assert_close(tb.poses[i, k], tw.pose, atol=1e-2, rtol=1e-5)
            assert tb.moved_mask[k].nonzero().flatten().tolist() == list(tw.moved_joints)


def _hand_case():
    g = torch.Generator().manual_seed(3)
    targets = torch.randn(2, 3, 17, 3, generator=g) * 300
    valid = torch.tensor([[True, True, False], [True, True, True]])
    mask = torch.zeros(2, 3, 17, dtype=torch.bool)
    mask[..., [2, 3]] = True
    return targets, valid, mask


def test_coverage_hand_built():
    targets, valid, mask = _hand_case()
    far = targets[:, :1] + 1000.0                               # (2, 1, 17, 3): far from all
    hyp = torch.cat([far, targets[:, 1:2].clone()], dim=1)      # hypothesis 1 equals target 1
    hyp[:, 1, [5, 6]] += 5000.0                                # unmasked joints don't matter
    cov = C.coverage(hyp, targets, valid, mask, thresholds=(50.0, 100.0))
    assert set(cov) == {50.0, 100.0}
    for t in cov:
        assert cov[t][:, 1].all() and cov[t].shape == (2, 3)
    assert not cov[100.0][:, 0].any()
    near = targets.clone()                                      # every target has a copy ...
    near[..., 2:4, 0] += 70.0                                   # ... 70 mm off on the masked joints
    cov = C.coverage(near, targets, valid, mask)
    assert not cov[50.0].any()
    assert torch.equal(cov[100.0], valid)                       # invalid targets never count


def test_coverage_errors():
    targets, valid, mask = _hand_case()
    with pytest.raises(ValueError, match="hypotheses"):
        C.coverage(torch.zeros(2, 17, 3), targets, valid, mask)
    with pytest.raises(ValueError, match="joints_mask"):
        C.coverage(targets, targets, valid, mask[:, :, :5])
    with pytest.raises(ValueError, match="valid"):
        C.coverage(targets, targets, valid[:, :2], mask)
    with pytest.raises(ValueError, match="pose_cam_mm"):
        T.depth_flip_twins(torch.zeros(16, 3))
    with pytest.raises(ValueError, match="in front of the camera"):
        T.depth_flip_twins_batch(torch.zeros(1, 17, 3))
    with pytest.raises(ValueError, match="shape \\(3,\\)"):
        T.limb_flip(torch.zeros(2), torch.ones(3))


def test_coverage_table(poses_cam_mm):
    gt = poses_cam_mm[:6]
    tb = T.depth_flip_twins_batch(gt)
    hyp_gt = root_relative(gt).unsqueeze(1)                     # a perfect single hypothesis
    table = C.coverage_table(hyp_gt, gt, tb)
    assert table["n_twins"] == float(tb.valid.sum()) and table["n_samples"] == 6.0
    assert table["gt_same@50"] == 1.0 and table["gt_limbs@50"] == 1.0
    assert table["twin@50"] < 1.0                               # the twins are real alternatives
    hyp_all = torch.cat([hyp_gt, root_relative(tb.poses)], dim=1)   # gt and every twin
    table = C.coverage_table(hyp_all, gt, tb)
    assert table["twin@50"] == 1.0 and table["gt_limbs@100"] == 1.0


def test_mean_and_split_hypotheses(poses_cam_mm):
    gt = poses_cam_mm[0]
    twin = T.depth_flip_twins(gt)[0]
    hyp = torch.stack([gt, twin.pose, gt + 1.0, twin.pose - 1.0])
    assert C.split_hypotheses(hyp, gt, twin.pose, twin.moved_joints).tolist() == [0, 1, 0, 1]
    m = C.mean_hypothesis(hyp[None])
    assert m.shape == (1, 1, 17, 3)
    torch.testing.assert_close(m[0, 0], hyp.mean(0))
    with pytest.raises(ValueError, match="joints"):
        C.split_hypotheses(hyp, gt, twin.pose, [])
