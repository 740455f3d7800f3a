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
