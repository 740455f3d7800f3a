import math

import pytest
import torch

from dphelpers.schedule import CosineSchedule, ScheduleConfig, cosine_alphas_cumprod


def test_known_values():
    s = CosineSchedule()
    # abar_t = f(t+1)/f(0) for index t; check index 0 and the middle by the formula
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    assert s.alphas_cumprod[0].item() == pytest.approx(f(1 / 25) / f(0), rel=1e-6)
    assert s.alphas_cumprod[12].item() == pytest.approx(f(13 / 25) / f(0), rel=1e-6)
    assert s.betas[0].item() == pytest.approx(1 - f(1 / 25) / f(0), rel=1e-5)
    assert s.betas.max().item() <= 0.999 + 1e-7


def test_alphas_cumprod_decreases_to_zero():
    s = CosineSchedule()
    ac = s.alphas_cumprod
    assert ac.shape == (25,)
    assert torch.all(ac[1:] < ac[:-1])
    assert ac[0] > 0.99 and ac[-1] < 1e-3
    full = cosine_alphas_cumprod(25)
    assert full[0] == 1.0 and full[-1] < 1e-8


def test_add_noise_moments():
    s = CosineSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 4), 2.0)
    eps = torch.randn(x0.shape, generator=g)
    t = 10
    x_t = s.add_noise(x0, eps, t)
    assert x_t.mean().item() == pytest.approx(2.0 * s.sqrt_alphas_cumprod[t].item(), abs=0.02)
    assert x_t.std().item() == pytest.approx(s.sqrt_one_minus_alphas_cumprod[t].item(), rel=0.02)
    # per-sample t broadcasts
    tt = torch.tensor([0, 24])
    y = s.add_noise(torch.ones(2, 3), torch.zeros(2, 3), tt)
    assert torch.allclose(y[:, 0], s.sqrt_alphas_cumprod[tt])


def test_step_recovers_x0_with_true_noise():
    """With the exact noise, predict_x0 inverts add_noise and the final step lands on x0."""
    s = CosineSchedule()
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(8, 48, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    for t in (0, 5, 24):
        x_t = s.add_noise(x0, eps, t)
        assert torch.allclose(s.predict_x0(x_t, eps, t), x0, atol=2e-4)
    assert torch.allclose(s.step(eps, 0, s.add_noise(x0, eps, 0)), x0, atol=1e-4)


def test_clip_and_errors():
    s = CosineSchedule(ScheduleConfig(clip_x0=1.0))
    x0 = s.predict_x0(torch.full((1, 3), 100.0), torch.zeros(1, 3), 3)
    assert x0.max().item() == 1.0
    with pytest.raises(ValueError, match="timestep"):
        s.add_noise(torch.zeros(1, 3), torch.zeros(1, 3), 25)
    with pytest.raises(ValueError, match="same shape"):
        s.add_noise(torch.zeros(1, 3), torch.zeros(1, 4), 1)
    with pytest.raises(ValueError, match="n_steps"):
        ScheduleConfig(n_steps=0)


def test_step_seeded():
    s = CosineSchedule()
    x = torch.randn(4, 48, generator=torch.Generator().manual_seed(0))
    e = torch.zeros_like(x)
    a = s.step(e, 10, x, torch.Generator().manual_seed(5))
    b = s.step(e, 10, x, torch.Generator().manual_seed(5))
    c = s.step(e, 10, x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- DDIM --------------------------------------------------------------------------------
def test_ddim_timesteps():
    s = CosineSchedule()
    for k in range(1, 26):
        ts = s.ddim_timesteps(k)
        assert len(ts) == k and ts[0] == 24 and all(isinstance(t, int) for t in ts)
        assert all(a > b for a, b in zip(ts, ts[1:]))
        assert k == 1 or ts[-1] == 0
    assert s.ddim_timesteps(25) == list(range(24, -1, -1))  # every step: the ancestral sequence
    assert s.ddim_timesteps(5) == [24, 18, 12, 6, 0]
    assert s.ddim_timesteps(10) == [24, 21, 19, 16, 13, 11, 8, 5, 3, 0]
    assert s.ddim_timesteps(17)[:3] == [24, 23, 21]  # 22.5 rounds half up
    for bad in (0, 26, -1, 2.0, True, None):
        with pytest.raises(ValueError, match="sampling steps"):
            s.ddim_timesteps(bad)


def test_ddim_sigma_eta1_is_posterior_std():
    """sigma_t(eta=1) over one step equals the DDPM posterior std; eta scales it; none to x0."""
    s = CosineSchedule()
    for t in range(1, 25):
        assert s.ddim_sigma(t, t - 1, 1.0).item() == pytest.approx(s.posterior_std[t].item(),
                                                                    rel=1e-4)
        assert s.ddim_sigma(t, t - 1, 0.5).item() == pytest.approx(
            0.5 * s.posterior_std[t].item(), rel=1e-4)
        assert s.ddim_sigma(t, t - 1, 0.0).item() == 0.0
        assert s.ddim_sigma(t, -1, 1.0).item() == 0.0
    # eta = 1 never exceeds the marginal std sqrt(1 - abar_prev); from the last step (abar ~ 4e-6,
    # x_t nearly pure noise) it almost equals it: the step keeps almost no noise direction
    ac = s.alphas_cumprod
    for t in range(1, 25):
        for t_prev in range(t):
            assert s.ddim_sigma(t, t_prev, 1.0) ** 2 <= (1 - ac[t_prev]) * (1 + 1e-6)
    for t_prev in (23, 18, 0):
        assert s.ddim_sigma(24, t_prev, 1.0).item() == pytest.approx(
            (1 - ac[t_prev]).sqrt().item(), rel=1e-3)  # abar_24 / abar_prev <= 1e-3


@pytest.mark.parametrize("clip", [1e6, 10.0])
def test_ddim_eta1_one_step_is_the_ancestral_step(clip):
    """eta = 1, t_prev = t - 1: same noise draw -> the same x_{t-1} as ``step`` (so the same mean
    and std), on random inputs; unclipped, and clipped (eps recomputed from the clipped x0)."""
    s = CosineSchedule(ScheduleConfig(clip_x0=clip))
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(64, 48, generator=g) * 3
    eps = torch.randn(64, 48, generator=g) * 3
    clipped = 0
    for t in range(1, 25):
        x0 = s.predict_x0(x_t, eps, t)
        clipped += int((x0.abs() == clip).sum())
        a = s.step(eps, t, x_t, torch.Generator().manual_seed(t))
        b = s.ddim_step(eps, t, t - 1, x_t, 1.0, torch.Generator().manual_seed(t))
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), t
        z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(t))
        mean = b - s.ddim_sigma(t, t - 1, 1.0) * z
        assert torch.allclose(mean, s.posterior_mean(x0, x_t, t), atol=1e-4, rtol=1e-4), t
    assert (clipped > 0) == (clip == 10.0)  # the clipped case really clips


def test_ddim_step_to_x0_and_last_step():
    """t_prev = -1 returns the clipped predicted x0, which is also the ancestral step at t = 0."""
    s = CosineSchedule()
    g = torch.Generator().manual_seed(2)
    x_t, eps = torch.randn(8, 48, generator=g) * 20, torch.randn(8, 48, generator=g)
    for t in (0, 7, 24):
        assert torch.equal(s.ddim_step(eps, t, -1, x_t, 1.0), s.predict_x0(x_t, eps, t))
    assert s.ddim_step(eps, 24, -1, x_t, 0.0).abs().max().item() == 10.0  # clipped
    assert torch.allclose(s.ddim_step(eps, 0, -1, x_t, 1.0), s.step(eps, 0, x_t), atol=1e-5)


def test_ddim_eta0_deterministic_and_keeps_the_true_noise():
    """eta = 0 draws no noise; with the true eps it moves x_t to add_noise(x0, eps, t_prev)."""
    s = CosineSchedule()
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(8, 48, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    state = g1.get_state()
    for t, t_prev in [(24, 18), (18, 12), (12, 6), (6, 0), (21, 19), (5, 3)]:
        x_t = s.add_noise(x0, eps, t)
        a = s.ddim_step(eps, t, t_prev, x_t, 0.0, g1)
        assert torch.equal(a, s.ddim_step(eps, t, t_prev, x_t, 0.0, g2))
        assert torch.allclose(a, s.add_noise(x0, eps, t_prev), atol=2e-4), (t, t_prev)
    assert torch.equal(g1.get_state(), state)  # nothing drawn
    x_t = s.add_noise(x0, eps, 10)
    c = s.ddim_step(eps, 10, 5, x_t, 0.5, torch.Generator().manual_seed(5))
    d = s.ddim_step(eps, 10, 5, x_t, 0.5, torch.Generator().manual_seed(6))
    assert not torch.equal(c, d)


def test_ddim_step_errors():
    s = CosineSchedule()
    x = torch.zeros(2, 48)
    for t, t_prev in [(25, 3), (-1, -1), (5, 5), (5, 7), (5, -2)]:
        with pytest.raises(ValueError, match="ddim_step: t"):
            s.ddim_step(x, t, t_prev, x, 0.0)
    with pytest.raises(ValueError, match="ddim_step: t must"):
        s.ddim_step(x, 5.0, 3, x, 0.0)
    for eta in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eta must be a finite number"):
            s.ddim_step(x, 5, 3, x, eta)
    with pytest.raises(ValueError, match="too large for the jump 24 -> 18"):
        s.ddim_step(x, 24, 18, x, 2.0)
