"""Tests of dphelpers.heatmaps: the detector simulator and the H36MA rule."""
import math

import pytest
import torch

from dphelpers.failures import (GROUPS, KS_SIGMA, MPII_PARTNER, by_group, failure_probabilities,
                                person_scale_px)
from dphelpers.heatmaps import (DEFAULT_PRESET, PRESETS, HeatmapConfig, fit_gaussian_sigma,
                                h36ma_ambiguous, occlusion_mask, render_gaussians,
                                simulate_heatmaps)
from dphelpers.pckh import argmax_px, head_size_px, pckh_failures
from dphelpers.skeleton import MPII_FLIP_PAIRS, MPII_NAMES

V1 = HeatmapConfig.preset("v1")
QUIET = HeatmapConfig.preset("v1", loc_noise_px=0.0, p_swap=0.0, p_truncate=0.0,
                             background_noise=0.0)


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
    out = simulate_heatmaps(pts, depth, V1, generator=g)
    assert out.heatmaps.shape == (64, 16, 64, 64) and out.heatmaps.dtype == torch.float32
    assert (out.heatmaps >= 0).all() and torch.isfinite(out.heatmaps).all()
    assert out.heatmaps.amax() < 1.06   # about the amplitude (<= 1) plus noise
    for flag in (out.occluded, out.swapped, out.truncated, out.ambiguous, out.inverted,
                 out.jittered, out.missed, out.kept_true_mode, out.failed):
        assert flag.shape == (64, 16) and flag.dtype == torch.bool
    assert torch.equal(out.ambiguous, out.occluded | out.swapped | out.truncated)
    assert not (out.inverted | out.jittered | out.missed | out.kept_true_mode).any()   # v1
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
    cfg = HeatmapConfig.preset("v1", loc_noise_px=0.0, p_swap=1.0, p_truncate=0.0,
                               background_noise=0.0)
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
    cfg = HeatmapConfig.preset("v1", p_truncate=1.0, p_swap=0.0)
    g = torch.Generator().manual_seed(4)
    pts = 8 + 48 * torch.rand(32, 16, 2, generator=g)
    out = simulate_heatmaps(pts, None, cfg, generator=g)
    n = out.truncated.sum(dim=1)
    assert (n >= 1).all() and (n < 16).all()
    assert out.ambiguous_sample.all()                    # blobs are wider than 5 px
    sig = fit_gaussian_sigma(out.heatmaps)
    assert (sig[out.truncated].amax(dim=-1) > 4.0).all()
    assert (out.heatmaps.flatten(2).amax(dim=2)[out.truncated] < 0.35).all()


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


# --- presets: v1 is the first simulator, bit for bit ----------------------------------------
def regression_inputs():
    g = torch.Generator().manual_seed(2024)
    pts = 6 + 52 * torch.rand(3, 16, 2, generator=g)
    depth = 4000 + 400 * torch.randn(3, 16, generator=g)
    return pts, depth


# Computed with the first simulator (before v2 existed) on regression_inputs(), generator seed 11.
V1_REFERENCE = {
    "default": dict(
        sum=1256.478594273544, wsum=2695036.9988756906,
        argmax=[3233, 824, 1486, 2449, 2847, 2256, 2768, 1781, 3478, 2348, 3380, 2730, 2129, 3090,
                588, 660, 2809, 1896, 996, 2264, 1865, 2974, 2172, 3677, 2578, 1001, 2388, 2069,
                1978, 3242, 2061, 737, 3406, 2953, 1679, 2507, 1777, 1109, 1592, 1326, 2211, 671,
                2730, 3545, 1311, 1816, 872, 912],
        swapped=[], truncated=[]),
    "swap_trunc": dict(
        sum=1809.8602298349765, wsum=3686917.0360607095,
        argmax=[3233, 824, 1491, 2386, 2847, 2323, 2770, 1781, 3478, 2348, 3380, 2730, 2129, 3091,
                532, 660, 2170, 1896, 996, 2264, 1865, 2143, 2172, 2141, 2257, 1001, 2196, 2069,
                1978, 2154, 2061, 737, 3406, 2953, 1679, 2507, 1700, 1109, 1572, 1315, 2211, 671,
                2727, 3545, 1311, 1816, 869, 912],
        swapped=[[0, 1], [0, 4], [0, 15], [1, 1], [1, 3], [1, 11], [1, 14], [2, 2], [2, 3],
                 [2, 5], [2, 13]],
        truncated=[[0, 2], [0, 3], [0, 5], [0, 6], [0, 13], [0, 14], [1, 0], [1, 5], [1, 7],
                   [1, 8], [1, 10], [1, 13], [2, 4], [2, 6], [2, 7], [2, 10], [2, 14]]),
}
V1_OCCLUDED = [[0, 3], [0, 4], [1, 1], [1, 3], [1, 5], [1, 10], [1, 14], [2, 5]]


@pytest.mark.parametrize("name, overrides", [("default", {}),
                                             ("swap_trunc", {"p_swap": 0.5, "p_truncate": 0.5})])
def test_v1_preset_reproduces_the_first_simulator(name, overrides):
    pts, depth = regression_inputs()
    out = simulate_heatmaps(pts, depth, HeatmapConfig.preset("v1", **overrides),
                            torch.Generator().manual_seed(11))
    ref = V1_REFERENCE[name]
    h = out.heatmaps.double()
    assert float(h.sum()) == pytest.approx(ref["sum"], rel=1e-6)
    assert float((h.flatten(2) * torch.arange(4096, dtype=torch.float64)).sum()) \
        == pytest.approx(ref["wsum"], rel=1e-6)
    assert out.heatmaps.flatten(2).argmax(-1).flatten().tolist() == ref["argmax"]
    assert out.occluded.nonzero().tolist() == V1_OCCLUDED
    assert out.swapped.nonzero().tolist() == ref["swapped"]
    assert out.truncated.nonzero().tolist() == ref["truncated"]


def test_default_config_is_the_default_preset_v2():
    assert DEFAULT_PRESET == "v2" and HeatmapConfig() == HeatmapConfig.preset(DEFAULT_PRESET)
    assert not HeatmapConfig.preset("v1").has_failures and HeatmapConfig.preset("v2").has_failures
    pts, depth = regression_inputs()
    a = simulate_heatmaps(pts, depth, HeatmapConfig(), torch.Generator().manual_seed(3))
    b = simulate_heatmaps(pts, depth, HeatmapConfig.preset("v2"), torch.Generator().manual_seed(3))
    c = simulate_heatmaps(pts, depth, HeatmapConfig.preset("v1"), torch.Generator().manual_seed(3))
    assert torch.equal(a.heatmaps, b.heatmaps) and not torch.equal(a.heatmaps, c.heatmaps)
    # v2 differs from v1 only in the failure rates
    v1, v2 = vars(HeatmapConfig.preset("v1")), vars(HeatmapConfig.preset("v2"))
    differ = {k for k in v1 if v1[k] != v2[k]}
    assert differ == set(PRESETS["v2"]) == {"p_invert", "p_jitter", "p_miss"}
    assert HeatmapConfig.preset("v2", p_keep_true_mode=0.0).p_keep_true_mode == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"p_invert": (0.1,) * 3}, r"p_invert must hold 8 probabilities"),
    ({"p_miss": (0.0,) * 7 + (1.5,)}, r"p_miss must hold 8 probabilities"),
    ({"p_keep_true_mode": 1.5}, r"p_keep_true_mode must be in \[0, 1\]"),
    ({"p_swap": -0.1}, r"p_swap must be in \[0, 1\]"),
    ({"kept_mode_weight": (0.9, 0.3)}, r"kept_mode_weight must be \(lo, hi\)"),
    ({"occluded_rate_scale": -1.0}, r"occluded_rate_scale"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HeatmapConfig(**kwargs)


def test_preset_errors_and_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown heatmap preset 'v3'.*\['v1', 'v2'\]"):
        HeatmapConfig.preset("v3")
    with pytest.raises(ValueError, match=r"no field\(s\) \['p_inversion'\]"):
        HeatmapConfig.preset("v2", p_inversion=0.1)
    with pytest.raises(TypeError, match="p_inversion"):
        HeatmapConfig(p_inversion=0.1)
    assert HeatmapConfig(p_jitter=[0.1] * 8).p_jitter == (0.1,) * 8       # lists become tuples


# --- v2 failure modes ------------------------------------------------------------------------
def mirrored_person() -> torch.Tensor:
    """(1, 16, 2): an upright person, left/right partners 20-28 px apart, centre joints at x=32."""
    xy = {0: (22, 52), 5: (42, 52), 1: (22, 44), 4: (42, 44), 2: (22, 36), 3: (42, 36),
          6: (32, 36), 7: (32, 24), 8: (32, 18), 9: (32, 12), 10: (18, 34), 15: (46, 34),
          11: (19, 26), 14: (45, 26), 12: (22, 18), 13: (42, 18)}
    return torch.tensor([xy[j] for j in range(16)], dtype=torch.float32)[None] + 0.3


def failing(**kw) -> HeatmapConfig:
    """v2 without noise, swaps, truncation or cap; rates 0 unless given (one value, all groups)."""
    rates = {k: (kw.pop(k, 0.0),) * 8 for k in ("p_invert", "p_jitter", "p_miss")}
    kw.setdefault("max_failure_rate", 1.0)
    return HeatmapConfig.preset("v2", loc_noise_px=0.0, p_swap=0.0, p_truncate=0.0,
                                background_noise=0.0, **rates, **kw)


def dist_to(maps: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    return (argmax_px(maps) - xy).norm(dim=-1)


def ks_radius_px(ks: float, joints_hm: torch.Tensor) -> torch.Tensor:
    """The radius ``(b, 16)`` px of keypoint similarity ``ks`` (failures.py's docstring):
    ``k_j s sqrt(-2 ln ks)``, ``k_j = 2 KS_SIGMA[j]``, ``s`` the person's OKS scale."""
    kappa = 2.0 * torch.tensor(KS_SIGMA)
    return kappa * person_scale_px(joints_hm)[:, None] * math.sqrt(-2.0 * math.log(ks))


def test_inversion_puts_the_argmax_at_the_partner():
    pts = mirrored_person().expand(4, 16, 2).contiguous()
    out = simulate_heatmaps(pts, None, failing(p_invert=1.0, p_keep_true_mode=0.0),
                            torch.Generator().manual_seed(0))
    limb = torch.tensor(MPII_PARTNER) != torch.arange(16)
    assert torch.equal(out.inverted, limb.expand(4, 16)) and not out.kept_true_mode.any()
    r50 = ks_radius_px(0.5, pts)
    d_partner = dist_to(out.heatmaps, pts[:, list(MPII_PARTNER)])
    assert (d_partner[:, limb] <= r50[:, limb] + 0.75).all()
    assert out.failed[:, limb].all() and not out.failed[:, ~limb].any()
    # no mode left at the truth
    ix, iy = pts.round().long().unbind(-1)
    at_truth = out.heatmaps[torch.arange(4)[:, None], torch.arange(16), iy, ix]      # (4, 16)
    assert (at_truth[:, limb] < 0.05 * out.heatmaps.flatten(2).amax(-1)[:, limb]).all()


def test_kept_true_mode_leaves_a_weaker_local_maximum_at_the_truth():
    pts = mirrored_person()
    out = simulate_heatmaps(pts, None, failing(p_invert=1.0, p_keep_true_mode=1.0),
                            torch.Generator().manual_seed(1))
    limb = torch.tensor(MPII_PARTNER) != torch.arange(16)
    assert torch.equal(out.kept_true_mode[0], limb) and torch.equal(out.inverted[0], limb)
    assert torch.equal(out.ambiguous[0], limb)                       # two modes = ambiguous
    for j in limb.nonzero().flatten().tolist():
        hm = out.heatmaps[0, j]
        x, y = pts[0, j].round().long().tolist()
        value, window = hm[y, x], hm[y - 1:y + 2, x - 1:x + 2]
        assert value >= window.max() - 1e-6                          # a local maximum at the truth
        assert 0.25 * hm.max() < value < 0.85 * hm.max()             # weight in (0.3, 0.8)
    assert out.failed[0, limb].all()                                 # the argmax is still wrong


def test_jitter_and_miss_land_between_their_ks_radii():
    pts = mirrored_person().expand(8, 16, 2).contiguous()
    r85, r50, r10 = (ks_radius_px(ks, pts) for ks in (0.85, 0.5, 0.1))
    jit = simulate_heatmaps(pts, None, failing(p_jitter=1.0), torch.Generator().manual_seed(2))
    assert jit.jittered.all() and not (jit.inverted | jit.missed).any()
    d = dist_to(jit.heatmaps, pts)
    assert (d >= r85 - 0.75).all() and (d <= r50 + 0.75).all()
    miss = simulate_heatmaps(pts, None, failing(p_miss=1.0), torch.Generator().manual_seed(3))
    assert miss.missed.all() and not (miss.inverted | miss.jittered).any()
    d = dist_to(miss.heatmaps, pts)
    assert (d >= r50 - 0.75).all() and (d <= r10 + 0.75).all()
    # every miss is beyond half a head size here, so PCKh fails; the flag is the rule itself
    assert miss.failed.all()
    assert torch.equal(jit.failed, pckh_failures(jit.heatmaps, pts, head_size_px(pts)))


def test_person_scale_known_value_and_group_errors():
    pts = torch.zeros(1, 16, 2)
    pts[0, 0] = torch.tensor([20.0, 40.0])                           # box 20 x 40: s = sqrt(400)
    assert float(person_scale_px(pts)[0]) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="unknown joint groups"):
        by_group(neck=0.1)


def test_failure_rates_rise_with_occlusion_and_few_visible_joints():
    cfg = HeatmapConfig.preset("v2")
    none = torch.zeros(3, 16, dtype=torch.bool)
    occ = none.clone()
    occ[1, 10] = True                                                # one occluded wrist
    occ[2, :11] = True                                               # 5 visible joints
    trunc = none.clone()
    trunc[0, 15] = True                                              # the left wrist is cut off
    p = failure_probabilities(cfg, occ, trunc)                       # (3, 16, 3)
    wrist = GROUPS.index("wrist")
    base = torch.tensor([cfg.p_invert[wrist], cfg.p_jitter[wrist], cfg.p_miss[wrist]])
    assert torch.allclose(p[1, 15], base)
    assert torch.allclose(p[1, 10], cfg.occluded_rate_scale * base)
    assert torch.allclose(p[2, 15], cfg.few_visible_rate_scale[1] * base)
    assert (p[0, 15] == 0).all() and p[0, 10, 0] == 0 and p[0, 10, 1] > 0   # partner gone
    assert (p[:, [6, 7, 8, 9], 0] == 0).all()                        # no partner, no inversion
    capped = failure_probabilities(failing(p_jitter=0.8, p_miss=0.8, max_failure_rate=0.9),
                                   occ, trunc)
    assert torch.allclose(capped.sum(-1).amax(), torch.tensor(0.9))


def test_keep_share_changes_only_the_kept_modes():
    pts, depth = regression_inputs()
    outs = [simulate_heatmaps(pts, depth, HeatmapConfig.preset("v2", p_invert=(0.5,) * 8,
                                                               p_keep_true_mode=k),
                              torch.Generator().manual_seed(5)) for k in (0.0, 0.5, 1.0)]
    for o in outs[1:]:
        for flag in ("inverted", "jittered", "missed", "occluded", "truncated"):
            assert torch.equal(getattr(o, flag), getattr(outs[0], flag))
    fails = outs[0].inverted | outs[0].jittered | outs[0].missed
    assert fails.any() and not outs[0].kept_true_mode.any()
    assert torch.equal(outs[2].kept_true_mode, fails)
    assert not (outs[1].kept_true_mode & ~outs[2].kept_true_mode).any()
    same = ~outs[1].kept_true_mode
    assert torch.equal(outs[1].heatmaps[same], outs[0].heatmaps[same])


def test_v2_seeded_determinism():
    pts, depth = regression_inputs()
    cfg = HeatmapConfig.preset("v2")
    a = simulate_heatmaps(pts, depth, cfg, torch.Generator().manual_seed(9))
    b = simulate_heatmaps(pts, depth, cfg, torch.Generator().manual_seed(9))
    c = simulate_heatmaps(pts, depth, cfg, torch.Generator().manual_seed(10))
    assert torch.equal(a.heatmaps, b.heatmaps) and torch.equal(a.failed, b.failed)
    assert torch.equal(a.inverted | a.jittered | a.missed, b.inverted | b.jittered | b.missed)
    assert not torch.equal(a.heatmaps, c.heatmaps)


def test_the_sparse_second_mode_draws_the_dense_maps_bit_for_bit():
    """On the CPU only joints with a second mode draw it; the maps equal render_gaussians of
    both modes, heights of 0 included."""
    from dphelpers.heatmaps import _render_modes

    g = torch.Generator().manual_seed(0)
    peak, second = 64 * torch.rand(5, 16, 2, generator=g), 64 * torch.rand(5, 16, 2, generator=g)
    sigma = 1.5 + torch.rand(5, 16, 2, generator=g)
    amp = torch.rand(5, 16, generator=g)
    second_amp = torch.where(torch.rand(5, 16, generator=g) < 0.2, 0.5 * amp, 0.0)
    assert 0 < int((second_amp > 0).sum()) < 80
    dense = render_gaussians(torch.stack([peak, second], 2), torch.stack([sigma, sigma], 2),
                             torch.stack([amp, second_amp], 2))
    assert torch.equal(_render_modes(peak, second, sigma, amp, second_amp, 64), dense)
    no_second = torch.zeros_like(second_amp)
    assert torch.equal(_render_modes(peak, second, sigma, amp, no_second, 64),
                       render_gaussians(peak[:, :, None], sigma[:, :, None], amp[..., None]))
