"""Tests of dphelpers.heatmaps: the detector simulator and the H36MA rule."""
import math

import pytest
import torch

from dphelpers.heatmaps import (
    HeatmapConfig, fit_gaussian_sigma, h36ma_ambiguous, occlusion_mask, render_gaussians,
    simulate_heatmaps, validate_heatmaps,
)
from dphelpers.skeleton import MPII_FLIP_PAIRS, MPII_NAMES

QUIET = HeatmapConfig(loc_noise_px=0.0, p_swap=0.0, p_truncate=0.0, background_noise=0.0)


def circle_joints(b: int = 1, radius: float = 25.0) -> torch.Tensor:
    """(b, 16, 2) joints on a circle: every bone is a chord far from the other joints."""
    ang = torch.arange(16) * 2 * math.pi / 16
    pts = torch.stack([32 + radius * torch.cos(ang), 32 + radius * torch.sin(ang)], dim=-1)
    return pts.expand(b, 16, 2).clone()


def single_gaussian(sigma: float, centre=(31.0, 30.0)) -> torch.Tensor:
    c = torch.tensor(centre).expand(1, 16, 1, 2)
    return render_gaussians(c, torch.full((1, 16, 1, 2), sigma), torch.ones(1, 16, 1))


def test_shapes_range_and_flags():
    g = torch.Generator().manual_seed(0)
    pts = 10 + 44 * torch.rand(64, 16, 2, generator=g)
    depth = 4000 + 300 * torch.randn(64, 16, generator=g)
    out = simulate_heatmaps(pts, depth, generator=g)
    assert out.heatmaps.shape == (64, 16, 64, 64) and out.heatmaps.dtype == torch.float32
    assert (out.heatmaps >= 0).all() and torch.isfinite(out.heatmaps).all()
    assert out.heatmaps.amax() < 1.06   # about the amplitude (<= 1) plus noise
    for flag in (out.occluded, out.swapped, out.truncated, out.ambiguous):
        assert flag.shape == (64, 16) and flag.dtype == torch.bool
    assert torch.equal(out.ambiguous, out.occluded | out.swapped | out.truncated)
    assert out.ambiguous_sample.shape == (64,)
    centre = [MPII_NAMES.index(n) for n in ("Pelvis", "Thorax", "UpperNeck", "HeadTop")]
    assert not out.swapped[:, centre].any()


def test_peak_at_joint_when_noise_is_off():
    g = torch.Generator().manual_seed(1)
    pts = torch.randint(3, 61, (8, 16, 2), generator=g).float()
    out = simulate_heatmaps(pts, None, QUIET, generator=g)
    idx = out.heatmaps.flatten(2).argmax(dim=2)
    assert torch.equal(idx % 64, pts[..., 0].long())   # column = x
    assert torch.equal(idx // 64, pts[..., 1].long())  # row = y
    peak = out.heatmaps.flatten(2).amax(dim=2)
    assert ((peak >= 0.6 - 1e-6) & (peak <= 1.0 + 1e-6)).all()
    assert not out.ambiguous.any() and not out.ambiguous_sample.any()


def test_seeded_determinism():
    pts, depth = circle_joints(4), torch.full((4, 16), 4000.0)
    a = simulate_heatmaps(pts, depth, generator=torch.Generator().manual_seed(7))
    b = simulate_heatmaps(pts, depth, generator=torch.Generator().manual_seed(7))
    c = simulate_heatmaps(pts, depth, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.heatmaps, b.heatmaps) and torch.equal(a.swapped, b.swapped)
    assert not torch.equal(a.heatmaps, c.heatmaps)


def test_swapped_joint_has_second_mode_at_symmetric_joint():
    cfg = HeatmapConfig(loc_noise_px=0.0, p_swap=1.0, p_truncate=0.0, background_noise=0.0)
    pts = circle_joints(1)
    out = simulate_heatmaps(pts, None, cfg, generator=torch.Generator().manual_seed(2))
    for left, right in MPII_FLIP_PAIRS:
        for j, k in ((left, right), (right, left)):
            assert out.swapped[0, j]
            hm = out.heatmaps[0, j]
            xj, yj = pts[0, j].round().long()
            xk, yk = pts[0, k].round().long()
            main, second = hm[yj, xj], hm[yk, xk]
            assert second > 0.25 * main and second < main           # weight in (0.3, 0.9), some overlap
            window = hm[yk - 1:yk + 2, xk - 1:xk + 2]                # a local maximum there
            assert second >= window.max() - 1e-6
    assert out.ambiguous_sample.all()                                # two far modes: wide fit


def test_fit_gaussian_sigma_known_values():
    s2 = fit_gaussian_sigma(single_gaussian(2.0))
    assert s2.shape == (1, 16, 2)
    assert torch.allclose(s2, torch.full_like(s2, 2.0), atol=0.05)
    s6 = fit_gaussian_sigma(single_gaussian(6.0))
    assert (s6 > 5.0).all() and torch.allclose(s6, torch.full_like(s6, 6.0), atol=0.1)
    # plain moments (no floor) agree on a clean Gaussian
    assert torch.allclose(fit_gaussian_sigma(single_gaussian(2.0), rel_floor=0.0), s2, atol=0.05)
    # low background noise does not inflate the fit
    noisy = (single_gaussian(2.0) + 0.01 * torch.randn(1, 16, 64, 64, generator=torch.Generator().manual_seed(0))).clamp_min(0)
    assert (fit_gaussian_sigma(noisy) < 2.6).all()


def test_h36ma_rule_flags_only_the_wide_sample():
    maps = torch.cat([single_gaussian(2.0), single_gaussian(2.0)])
    maps[1, 5] = single_gaussian(6.0)[0, 5]
    assert h36ma_ambiguous(maps).tolist() == [False, True]
    zero = torch.zeros(1, 16, 64, 64)
    assert torch.equal(fit_gaussian_sigma(zero), torch.zeros(1, 16, 2))


def test_occlusion_mask_hand_built():
    head = MPII_NAMES.index("HeadTop")
    pts = circle_joints(1)
    pts[0, head] = (pts[0, 0] + pts[0, 1]) / 2          # on the bone RAnkle-RKnee
    depth = torch.full((1, 16), 4000.0)
    depth[0, head] = 4500.0                             # behind the shin
    assert occlusion_mask(pts, depth)[0].nonzero().flatten().tolist() == [head]
    depth[0, head] = 4050.0                             # only 50 mm behind: within the margin
    assert not occlusion_mask(pts, depth).any()
    depth[0, head] = 3500.0                             # in front of the shin
    assert not occlusion_mask(pts, depth).any()
    depth[0, head] = 4500.0
    shin = pts[0, 1] - pts[0, 0]
    normal = torch.stack([-shin[1], shin[0]]) / shin.norm()
    pts[0, head] += 3.0 * normal                        # 3 px beside the bone: visible
    assert not occlusion_mask(pts, depth).any()
    # a joint is never occluded by its own bones
    pts2, depth2 = circle_joints(1), torch.full((1, 16), 4000.0)
    depth2[0, 0] = 9000.0
    assert not occlusion_mask(pts2, depth2).any()


def test_occluded_joint_is_faint_and_wide():
    head = MPII_NAMES.index("HeadTop")
    pts = circle_joints(1)
    pts[0, head] = (pts[0, 0] + pts[0, 1]) / 2
    depth = torch.full((1, 16), 4000.0)
    depth[0, head] = 4500.0
    out = simulate_heatmaps(pts, depth, QUIET, generator=torch.Generator().manual_seed(3))
    assert out.occluded[0].nonzero().flatten().tolist() == [head]
    sig = fit_gaussian_sigma(out.heatmaps)[0]
    assert (sig[head] > 1.5 * 1.8 - 0.1).all() and (sig[head] < 2.5 * 3.5 + 0.2).all()
    assert out.heatmaps[0, head].max() <= 0.6 + 1e-6


def test_truncation_cuts_extreme_joints():
    cfg = HeatmapConfig(p_truncate=1.0, p_swap=0.0)
    g = torch.Generator().manual_seed(4)
    pts = 8 + 48 * torch.rand(32, 16, 2, generator=g)
    out = simulate_heatmaps(pts, None, cfg, generator=g)
    n = out.truncated.sum(dim=1)
    assert (n >= 1).all() and (n < 16).all()
    assert out.ambiguous_sample.all()                    # blobs are wider than 5 px
    sig = fit_gaussian_sigma(out.heatmaps)
    assert (sig[out.truncated].amax(dim=-1) > 4.0).all()
    assert (out.heatmaps.flatten(2).amax(dim=2)[out.truncated] < 0.35).all()


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 17, 64, 64), r"\(b, 16, H, W\).*\(2, 17, 64, 64\)"),
    (torch.zeros(2, 16, 63, 63), r"64x64.*\(2, 16, 63, 63\)"),
    (torch.zeros(16, 64, 64), r"\(b, 16, H, W\).*\(16, 64, 64\)"),
    (torch.zeros(2, 16, 64, 64, dtype=torch.int64), r"float"),
    ([[0.0]], r"torch.Tensor"),
])
def test_validate_heatmaps_rejects_bad_shapes(bad, match):
    with pytest.raises(ValueError, match=match):
        validate_heatmaps(bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_validate_heatmaps_names_first_bad_joint(value):
    maps = torch.zeros(3, 16, 64, 64, dtype=torch.float64)
    maps[1, 4, 10, 10] = value
    maps[2, 0, 0, 0] = value
    with pytest.raises(ValueError, match=r"sample 1, joint 4"):
        validate_heatmaps(maps)
    assert validate_heatmaps(torch.zeros(1, 16, 64, 64, dtype=torch.float64)).dtype == torch.float32


def test_simulator_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"joints_hm.*\(b, 16, 2\).*\(2, 17, 2\)"):
        simulate_heatmaps(torch.zeros(2, 17, 2))
    with pytest.raises(ValueError, match=r"depth_mm.*\(2, 16\).*\(2, 15\)"):
        simulate_heatmaps(torch.zeros(2, 16, 2), torch.zeros(2, 15))
    pts = torch.zeros(1, 16, 2)
    pts[0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="joints_hm contains NaN"):
        simulate_heatmaps(pts)
    with pytest.raises(ValueError, match="rel_floor"):
        fit_gaussian_sigma(torch.zeros(1, 16, 64, 64), rel_floor=1.0)


def test_validate_accepts_huge_finite_values_and_names_inf():
    """The fast finite check (one sum) must not reject finite maps whose sum overflows."""
    import torch

    from dphelpers.heatmaps import validate_heatmaps
    hm = torch.zeros(2, 16, 64, 64)
    hm[:, :, 0, 0] = 3e38  # the float32 sum overflows to inf, every value is finite
    assert validate_heatmaps(hm) is not None
    hm[1, 5, 3, 3] = float("inf")
    import pytest
    with pytest.raises(ValueError, match="sample 1, joint 5"):
        validate_heatmaps(hm)
