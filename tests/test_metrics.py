"""Tests of dphelpers.metrics: known values, invariants, calibration, errors."""
import math

import pytest
import torch

from dphelpers import metrics
from dphelpers.skeleton import CPS_JOINTS, L_HIP, PCK_JOINTS, R_HIP


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _random_poses(b, seed=0, dtype=torch.float64):
    """Random 'poses' of a few hundred mm: (b, 17, 3)."""
    return 300.0 * torch.randn(b, 17, 3, generator=_gen(seed), dtype=dtype)


def _random_rotation(seed=0, dtype=torch.float64):
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=_gen(seed), dtype=dtype))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


# --- root_relative, mpjpe, P1 ---------------------------------------------------------------
def test_root_relative_pelvis_is_hip_midpoint():
    poses = _random_poses(4)
    rr = metrics.root_relative(poses)
    assert torch.equal(rr[:, 0], torch.zeros(4, 3, dtype=poses.dtype))
    mid = 0.5 * (poses[:, L_HIP] + poses[:, R_HIP])
    torch.testing.assert_close(rr[:, 5], poses[:, 5] - mid)
    torch.testing.assert_close(rr[:, L_HIP] + rr[:, R_HIP], torch.zeros(4, 3, dtype=poses.dtype))


def test_known_mpjpe_values():
    gt = _random_poses(2)
    pred = gt.clone().unsqueeze(1)                       # (2, 1, 17, 3)
    pred[..., 13, 0] += 17.0                             # one wrist 17 mm off
    torch.testing.assert_close(metrics.mpjpe(pred, gt), torch.ones(2, 1, dtype=gt.dtype))
    torch.testing.assert_close(metrics.p1(pred, gt)["min"], torch.ones(2, dtype=gt.dtype))
    pj = metrics.per_joint_error(pred, gt)
    assert pj.shape == (2, 1, 17)
    assert pj[0, 0, 13] == pytest.approx(17.0) and pj[0, 0, :13].abs().max() < 1e-9


def test_shift_of_non_pelvis_joints_vanishes_after_root_relative():
    gt = _random_poses(3)
    pred = gt.clone().unsqueeze(1)
    pred[:, :, 1:, :] += torch.tensor([10.0, 0.0, 0.0], dtype=gt.dtype)
    raw = metrics.mpjpe(pred, gt)
    torch.testing.assert_close(raw, torch.full((3, 1), 10.0 * 16 / 17, dtype=gt.dtype))
    assert metrics.p1(pred, gt)["min"].abs().max() < 1e-9


def test_min_and_median_over_hypotheses():
    gt = torch.zeros(1, 17, 3, dtype=torch.float64)
    # hypotheses: every non-hip joint offset by d mm along x -> root-relative MPJPE = d * 14 / 17
    # (hips stay on the gt so the pelvis midpoint does not move)
    offsets = torch.tensor([5.0, 1.0, 3.0, 7.0], dtype=torch.float64)
    pred = torch.zeros(1, 4, 17, 3, dtype=torch.float64)
    moving = [j for j in range(17) if j not in (0, L_HIP, R_HIP)]
    pred[0, :, moving, 0] = offsets[:, None]
    out = metrics.p1(pred, gt)
    assert out["min"].item() == pytest.approx(1.0 * 14 / 17)
    assert out["median"].item() == pytest.approx(4.0 * 14 / 17)   # numpy median of 1,3,5,7
    assert metrics.best_hypothesis(pred, gt).tolist() == [1]
    assert metrics.best_hypothesis(pred, gt).dtype == torch.long


def test_best_of_n_at_most_median_of_n():
    gt = _random_poses(20, seed=1)
    pred = gt.unsqueeze(1) + 50.0 * torch.randn(20, 9, 17, 3, generator=_gen(2), dtype=gt.dtype)
    for out in (metrics.p1(pred, gt), metrics.p2(pred, gt)):
        assert out["min"].shape == (20,)
        assert (out["min"] <= out["median"] + 1e-9).all()
        assert (out["min"] < out["median"]).any()
    assert (metrics.p2(pred, gt)["min"] <= metrics.p1(pred, gt)["min"] + 1e-9).all()


# --- Procrustes / P2 ------------------------------------------------------------------------
def test_p2_zero_for_similarity_copy_of_gt():
    gt = _random_poses(4, seed=3)
    rot = _random_rotation(4)
    pred = (2.5 * gt @ rot + torch.tensor([100.0, -40.0, 3000.0], dtype=gt.dtype)).unsqueeze(1)
    assert metrics.p2(pred, gt)["min"].abs().max() < 1e-6
    assert metrics.p1(pred, gt)["min"].min() > 10.0
    aligned = metrics.procrustes_align(pred, gt)
    torch.testing.assert_close(aligned[:, 0], gt, atol=1e-6, rtol=0)


def test_p2_invariant_to_similarity_of_prediction():
    gt = _random_poses(5, seed=5)
    pred = gt.unsqueeze(1) + 40.0 * torch.randn(5, 3, 17, 3, generator=_gen(6), dtype=gt.dtype)
    rot = _random_rotation(7)
    moved = 0.6 * pred @ rot + torch.tensor([-20.0, 300.0, 5000.0], dtype=gt.dtype)
    a, b = metrics.p2(pred, gt), metrics.p2(moved, gt)
    torch.testing.assert_close(a["min"], b["min"])
    torch.testing.assert_close(a["median"], b["median"])
    assert (a["min"] > 1.0).all()


def test_procrustes_float32_dtype_and_shape():
    gt = _random_poses(2, seed=8).float()
    pred = gt.unsqueeze(1).repeat(1, 3, 1, 1) @ _random_rotation(9).float()
    out = metrics.procrustes_align(pred, gt)
    assert out.shape == (2, 3, 17, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, gt.unsqueeze(1).expand_as(out), atol=1e-2, rtol=0)


def test_reflection_is_not_aligned_away():
    gt = _random_poses(3, seed=10)
    mirrored = gt.clone()
    mirrored[..., 0] = -mirrored[..., 0]
    err = metrics.p2(mirrored.unsqueeze(1), gt)["min"]
    assert (err > 20.0).all()


# --- PCK --------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, 1, 3, 5])
def test_pck_counts_joints_beyond_threshold(k):
    gt = torch.randint(-400, 400, (1, 17, 3), generator=_gen(11)).double()
    pred = gt.clone().unsqueeze(1)
    far = [3, 6, 10, 13, 16][:k]                        # not hips: the pelvis stays put
    pred[0, 0, far, 0] += 200.0
    pred[0, 0, [7, 9], 1] += 500.0                       # spine, neck: not PCK joints
    pred[0, 0, 12, 2] += 150.0                           # exactly at the threshold: not correct
    expected = (len(PCK_JOINTS) - k - 1) / len(PCK_JOINTS)
    assert metrics.pck(pred, gt).item() == pytest.approx(expected)


def test_pck_uses_best_hypothesis():
    gt = _random_poses(1, seed=12)
    good = gt.clone()
    bad = gt.clone()
    bad[:, [3, 6, 13], 2] += 1000.0
    pred = torch.stack([bad, good], dim=1)
    assert metrics.pck(pred, gt).item() == 1.0


# --- CPS --------------------------------------------------------------------------------------
def test_cps_perfect_prediction():
    gt = _random_poses(3, seed=13)
    pred = torch.stack([gt + 500.0, gt], dim=1)          # any correct hypothesis counts
    torch.testing.assert_close(metrics.cps(pred, gt), torch.full((3,), 299.0, dtype=gt.dtype))


def test_cps_one_joint_off_by_100mm():
    gt = _random_poses(1, seed=14)
    pred = gt.clone().unsqueeze(1)
    pred[0, 0, 13] += torch.tensor([60.0, 80.0, 0.0], dtype=gt.dtype)  # 100 mm
    score = metrics.cps(pred, gt).item()
    gt_rr = metrics.root_relative(gt)
    aligned = metrics.procrustes_align(metrics.root_relative(pred), gt_rr)
    worst = metrics.per_joint_error(aligned, gt_rr)[0, 0, list(CPS_JOINTS)].max().item()
    assert 70.0 < worst <= 100.0
    assert score == pytest.approx(300 - math.ceil(worst) + 0.5)
    assert 200.0 <= score <= 231.0


# --- calibration ------------------------------------------------------------------------------
def _toy(spread, b=400, h=64, seed=20):
    mean = _random_poses(1, seed=seed)
    gt = mean + 30.0 * torch.randn(b, 17, 3, generator=_gen(seed + 1), dtype=mean.dtype)
    pred = mean.unsqueeze(1) + spread * torch.randn(b, h, 17, 3, generator=_gen(seed + 2),
                                                    dtype=mean.dtype)
    return pred, gt


def test_quantiles_and_reliability_shapes():
    pred, gt = _toy(30.0, b=10, h=8)
    q = metrics.quantiles(pred, gt)
    assert q.shape == (10, 17) and (q >= 0).all() and (q <= 1).all()
    assert (q[:, 0] == 0).all()
    levels, freq = metrics.reliability(pred, gt)
    assert levels.shape == (21,) and freq.shape == (17, 21)
    assert (freq[:, -1] == 1).all()
    assert (freq.diff(dim=-1) >= 0).all()


def test_ece_calibrated_vs_overconfident():
    calibrated = metrics.ece_from_quantiles(metrics.quantiles(*_toy(30.0)))
    overconfident = metrics.ece_from_quantiles(metrics.quantiles(*_toy(3.0)))
    assert isinstance(calibrated, float)
    assert calibrated < 0.05
    assert overconfident > 0.2


def test_quantile_far_ground_truth_is_zero():
    pred, gt = _toy(3.0, b=4, h=8)
    gt = gt + 1000.0 * (torch.arange(17, dtype=gt.dtype) % 2)[:, None]  # odd joints far away
    q = metrics.quantiles(pred, gt)
    odd = [j for j in range(17) if j % 2 == 1 and j not in (L_HIP, R_HIP)]
    assert (q[:, odd] == 0).all()


# --- errors ----------------------------------------------------------------------------------
def test_bad_inputs_raise():
    gt = torch.zeros(2, 17, 3)
    with pytest.raises(ValueError, match=r"pred must have shape \(b, h, 17, 3\).*\(2, 17, 3\)"):
        metrics.p1(torch.zeros(2, 17, 3), gt)
    with pytest.raises(ValueError, match=r"gt must have shape"):
        metrics.p1(torch.zeros(2, 4, 17, 3), torch.zeros(2, 16, 3))
    with pytest.raises(ValueError, match=r"batch size"):
        metrics.p2(torch.zeros(3, 4, 17, 3), gt)
    bad = torch.zeros(2, 4, 17, 3)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"pred contains NaN"):
        metrics.cps(bad, gt)
    with pytest.raises(ValueError, match=r"gt contains NaN"):
        metrics.pck(torch.zeros(2, 4, 17, 3), torch.full((2, 17, 3), float("inf")))
    with pytest.raises(ValueError, match=r"poses must have shape"):
        metrics.root_relative(torch.zeros(16, 3))
    with pytest.raises(ValueError, match=r"n_levels"):
        metrics.reliability(torch.zeros(2, 4, 17, 3), gt, n_levels=1)
