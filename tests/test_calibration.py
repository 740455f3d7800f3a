"""Tests of dphelpers.pckh and dphelpers.calibration: the PCKh rule, the simulator's calibration."""
import math

import pytest
import torch

from dphelpers.calibration import (PUBLISHED_FAILURE_PCT, PUBLISHED_SOURCE, TOLERANCE,
                                   calibration_samples, calibration_table, group_failure_rates,
                                   head_size_px, pckh_failures)
from dphelpers.heatmaps import HeatmapConfig
from dphelpers.pckh import HEAD_TOP, UPPER_NECK, argmax_px


def peak_maps(peaks_xy: torch.Tensor) -> torch.Tensor:
    """(b, 16, 64, 64) maps with a single 1.0 at each integer (x, y) of ``peaks_xy: (b, 16, 2)``."""
    b = peaks_xy.shape[0]
    maps = torch.zeros(b, 16, 64, 64)
    x, y = peaks_xy.long().unbind(-1)
    maps[torch.arange(b)[:, None], torch.arange(16), y, x] = 1.0
    return maps


def test_head_size_known_value():
    joints = torch.zeros(2, 16, 2)
    joints[0, UPPER_NECK] = torch.tensor([10.0, 20.0])
    joints[0, HEAD_TOP] = torch.tensor([10.0, 10.0])                 # L = 10
    joints[1, HEAD_TOP] = torch.tensor([3.0, 4.0])                   # L = 5
    assert head_size_px(joints).tolist() == pytest.approx([6 * math.sqrt(2), 3 * math.sqrt(2)])


def test_pckh_rule_on_hand_made_maps():
    truth = torch.full((1, 16, 2), 30.0)
    peaks = truth.clone()
    peaks[0, 0] += torch.tensor([3.0, 4.0])                          # 5 px off
    peaks[0, 1] += torch.tensor([0.0, 4.0])                          # 4 px off: exactly the radius
    peaks[0, 2] += torch.tensor([6.0, 0.0])                          # 6 px off
    maps = peak_maps(peaks)
    assert torch.equal(argmax_px(maps), peaks)
    failed = pckh_failures(maps, truth, torch.tensor([8.0]))         # radius 0.5 * 8 = 4 px
    assert failed[0].nonzero().flatten().tolist() == [0, 2]          # on the radius: correct
    assert not pckh_failures(maps, truth, torch.tensor([8.0]), alpha=1.0).any()
    assert pckh_failures(maps, truth, torch.tensor([20.0]))[0].sum() == 0


def test_pckh_rejects_bad_inputs():
    maps, joints = torch.zeros(2, 16, 64, 64), torch.zeros(2, 16, 2)
    with pytest.raises(ValueError, match=r"joints_hm must be .* \(b, 16, 2\), got \(2, 17, 2\)"):
        pckh_failures(maps, torch.zeros(2, 17, 2), torch.ones(2))
    with pytest.raises(ValueError, match=r"heatmaps must have shape \(2, 16, H, W\).*\(3, 16, 64"):
        pckh_failures(torch.zeros(3, 16, 64, 64), joints, torch.ones(2))
    with pytest.raises(ValueError, match=r"head_size_px must have shape \(2,\), got \(3,\)"):
        pckh_failures(maps, joints, torch.ones(3))
    with pytest.raises(ValueError, match="alpha"):
        pckh_failures(maps, joints, torch.ones(2), alpha=0.0)


@pytest.fixture(scope="module")
def v2_table(splits):
    return calibration_table(n=4000, seed=0, poses_m=splits[0])


def test_v2_is_calibrated_to_hrnet_within_tolerance(v2_table):
    rows = {r["group"]: r for r in v2_table}
    assert list(rows)[:7] == list(PUBLISHED_FAILURE_PCT)
    for group, published in PUBLISHED_FAILURE_PCT.items():
        r = rows[group]
        assert r["published_pct"] == published and r["source"] == PUBLISHED_SOURCE
        assert r["relative_error"] == pytest.approx(r["simulated_pct"] / published - 1)
        assert abs(r["relative_error"]) <= TOLERANCE, (group, r["simulated_pct"], published)
        assert r["within_tolerance"] and r["joints"] > 3500 * (1 if group == "head" else 2)
    assert rows["centre"]["published_pct"] is None and rows["centre"]["within_tolerance"] is None
    h36ma = v2_table[-1]
    assert h36ma["group"].startswith("H36MA") and h36ma["published_pct"] == 6.0
    assert 0.0 < h36ma["simulated_pct"] < 100.0 and h36ma["joints"] == 4000


def test_v1_argmax_is_almost_never_wrong(splits):
    """The reason for v2: v1's limb joints fail PCKh far less often than HRNet's."""
    batch = calibration_samples(1000, seed=0, config=HeatmapConfig.preset("v1"), poses_m=splits[0])
    rates = group_failure_rates(batch)
    for group, published in PUBLISHED_FAILURE_PCT.items():
        assert 100 * rates[group][0] < 0.5 * published, group
    assert not (batch.inverted_joints | batch.jittered_joints | batch.missed_joints).any()


def test_calibration_samples_are_seeded_and_checked(splits):
    a = calibration_samples(64, seed=3, poses_m=splits[0])
    b = calibration_samples(64, seed=3, poses_m=splits[0])
    c = calibration_samples(64, seed=4, poses_m=splits[0])
    assert len(a) == 64 and torch.equal(a.heatmaps, b.heatmaps)
    assert torch.equal(a.failed_joints, b.failed_joints)
    assert not torch.equal(a.heatmaps, c.heatmaps)
    head = head_size_px(a.joints_hm)
    assert torch.equal(a.failed_joints, pckh_failures(a.heatmaps, a.joints_hm, head))
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        calibration_samples(0, poses_m=splits[0])
    with pytest.raises(ValueError, match="config must be a HeatmapConfig"):
        calibration_samples(8, config={"p_swap": 0.1}, poses_m=splits[0])
    with pytest.raises(ValueError, match=r"poses_m must have shape \(n>0, 17, 3\)"):
        calibration_samples(8, poses_m=splits[0][:, :16])


def test_own_head_rule_equals_the_explicit_one(splits):
    from dphelpers.pckh import pckh_failures_own_head
    batch = calibration_samples(128, seed=5, poses_m=splits[0])
    own = pckh_failures_own_head(batch.heatmaps, batch.joints_hm)
    assert torch.equal(own, pckh_failures(batch.heatmaps, batch.joints_hm,
                                          head_size_px(batch.joints_hm)))
    assert own.any() and torch.equal(own, batch.failed_joints)
