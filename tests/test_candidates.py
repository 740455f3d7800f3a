"""Tests of dphelpers.candidates: heatmap candidates (argmax + draws, raw likelihoods)."""
import math

import pytest
import torch

from dphelpers.candidates import (HEATMAP_MAX, SamplingConfig, candidates_to_pixels,
                                  pixels_to_coords, sample_candidates, validate_heatmaps)
from dphelpers.heatmaps import simulate_heatmaps


def peaked_maps(b: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pts = 10 + 44 * torch.rand(b, 16, 2, generator=g)
    return simulate_heatmaps(pts, None, generator=g).heatmaps


def lookup(maps: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Heatmap value at every candidate's pixel: (b, n, j, s)."""
    ix, iy = candidates_to_pixels(cand)
    b, n, j, s = ix.shape
    bi = torch.arange(b)[:, None, None, None].expand_as(ix)
    ji = torch.arange(j)[None, None, :, None].expand_as(ix)
    return maps[bi, ji, iy, ix]


def test_shape_dtype_range():
    cand = sample_candidates(peaked_maps(), n_hypo=5, generator=torch.Generator().manual_seed(0))
    assert cand.shape == (2, 5, 16, 32, 3) and cand.dtype == torch.float32
    assert (cand[..., :2] >= -1).all() and (cand[..., :2] <= 1 - 1 / 32).all()
    assert (cand[..., 2] >= 0).all()


def test_argmax_is_sample_zero_with_raw_max():
    maps = peaked_maps()
    cand = sample_candidates(maps, n_hypo=4, generator=torch.Generator().manual_seed(1))
    flat = maps.flatten(2)
    best = flat.argmax(dim=2)                                         # (b, j)
    assert torch.equal(cand[..., 0, 0], pixels_to_coords(best % 64)[:, None].expand(2, 4, 16))
    assert torch.equal(cand[..., 0, 1], pixels_to_coords(best // 64)[:, None].expand(2, 4, 16))
    assert torch.equal(cand[..., 0, 2], flat.amax(dim=2)[:, None].expand(2, 4, 16))


def test_likelihood_is_the_clamped_heatmap_value():
    maps = peaked_maps() - 0.005                                      # some negative pixels
    cand = sample_candidates(maps, n_hypo=3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(cand[..., 2], lookup(maps, cand).clamp_min(0))
    assert (lookup(maps, cand)[..., 1:] > 0).all()                    # never drawn where <= 0


def test_sample_frequencies_follow_the_heatmap():
    maps = torch.zeros(1, 16, 64, 64)
    maps[..., 10, 20] = 1.0
    maps[..., 40, 5] = 3.0
    maps[..., 0, 0] = -2.0                                            # clamped to 0: never drawn
    cfg = SamplingConfig(n_samples=32, use_argmax=False)
    cand = sample_candidates(maps, n_hypo=200, config=cfg, generator=torch.Generator().manual_seed(3))
    ix, iy = candidates_to_pixels(cand)
    at_a, at_b = (ix == 20) & (iy == 10), (ix == 5) & (iy == 40)
    assert (at_a | at_b).all()
    n = at_a.numel()                                                  # 1 * 200 * 16 * 32 draws
    freq = at_a.float().mean().item()
    assert abs(freq - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)
    assert torch.equal(cand[..., 2][at_a], torch.ones(int(at_a.sum())))
    assert torch.equal(cand[..., 2][at_b], torch.full((int(at_b.sum()),), 3.0))


def test_hypotheses_get_different_candidates_and_seed_determines_them():
    maps = peaked_maps()
    a = sample_candidates(maps, n_hypo=6, generator=torch.Generator().manual_seed(4))
    b = sample_candidates(maps, n_hypo=6, generator=torch.Generator().manual_seed(4))
    c = sample_candidates(maps, n_hypo=6, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)
    for h in range(1, 6):
        assert not torch.equal(a[:, 0, :, 1:], a[:, h, :, 1:])


def test_all_zero_joint_is_missing_not_a_crash():
    maps = peaked_maps()
    maps[0, 3] = 0.0
    maps[1, 7] = -1.0                                                 # all negative: zero after clamping
    cand = sample_candidates(maps, n_hypo=4, generator=torch.Generator().manual_seed(6))
    assert torch.isfinite(cand).all()
    for b, j in ((0, 3), (1, 7)):
        assert (cand[b, :, j, :, 2] == 0).all()
        ix, iy = candidates_to_pixels(cand[b, :, j, 1:])
        assert len(set((ix * 64 + iy).flatten().tolist())) > 50       # spread over the grid
    assert (cand[0, :, 4, :, 2] > 0).all()                            # other joints unaffected


def test_ablations():
    maps = peaked_maps()
    only = sample_candidates(maps, n_hypo=3, config=SamplingConfig(n_samples=1),
                             generator=torch.Generator().manual_seed(7))
    full = sample_candidates(maps, n_hypo=3, generator=torch.Generator().manual_seed(7))
    assert only.shape == (2, 3, 16, 1, 3) and torch.equal(only[..., 0, :], full[..., 0, :])
    rand = sample_candidates(maps, n_hypo=3, config=SamplingConfig(n_samples=8, use_argmax=False),
                             generator=torch.Generator().manual_seed(7))
    assert rand.shape == (2, 3, 16, 8, 3)
    assert not torch.equal(rand[..., 0, :], full[..., 0, :])


def test_candidates_to_pixels_inverts_the_mapping():
    i = torch.arange(64)
    x = pixels_to_coords(i)
    assert x[0] == -1 and x[32] == 0 and x[63] == pytest.approx(31 / 32)
    cand = torch.stack([x, x.flip(0), torch.zeros(64)], dim=-1)
    ix, iy = candidates_to_pixels(cand)
    assert ix.dtype == torch.long and torch.equal(ix, i) and torch.equal(iy, i.flip(0))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\).*\(4, 2\)"):
        candidates_to_pixels(torch.zeros(4, 2))


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 16, 63, 63), r"64x64.*\(2, 16, 63, 63\)"),
    (torch.zeros(16, 64, 64), r"\(b, 16, H, W\).*\(16, 64, 64\)"),
    (torch.zeros(1, 15, 64, 64), r"\(b, 16, H, W\).*\(1, 15, 64, 64\)"),
])
def test_bad_shapes_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        sample_candidates(bad, n_hypo=2)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_raise(value):
    maps = torch.zeros(2, 16, 64, 64)
    maps[1, 9, 3, 3] = value
    with pytest.raises(ValueError, match=r"NaN or inf.*sample 1, joint 9"):
        sample_candidates(maps, n_hypo=2)


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="n_hypo"):
        sample_candidates(torch.zeros(1, 16, 64, 64), n_hypo=0)
    with pytest.raises(ValueError, match="n_samples"):
        SamplingConfig(n_samples=0)


# --- validate_heatmaps: the model's input contract (moved here from heatmaps.py) ---
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


def test_validate_refuses_huge_finite_values_and_names_inf():
    """Finite maps whose sum overflows are not called NaN/inf (the fast check is one sum), but
    values far beyond a detector's range are refused (they made NaN poses), and a map at the
    limit passes."""
    hm = torch.zeros(2, 16, 64, 64)
    hm[:, :, 0, 0] = HEATMAP_MAX
    assert validate_heatmaps(hm) is not None
    hm[:, :, 0, 0] = 3e38  # the float32 sum overflows to inf, every value is finite
    with pytest.raises(ValueError, match="reach 3e\\+38, far outside"):
        validate_heatmaps(hm)
    hm[1, 5, 3, 3] = float("inf")
    with pytest.raises(ValueError, match="sample 1, joint 5"):
        validate_heatmaps(hm)
