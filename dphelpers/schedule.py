"""The cosine noise schedule of DDPM, without weights (notebook 04).

The schedule knows how to *add* noise to a clean pose (``add_noise``, the forward
process q(x_t | x_0)) and how to take one *reverse* step given the network's noise
prediction: ``step`` is ancestral sampling with the posterior variance (all T steps),
``ddim_step`` the DDIM update (Song et al., ICLR 2021) that may jump over steps, so
that sampling runs over a sub-sequence of ``ddim_timesteps(k)``.  It holds only
precomputed coefficients as buffers, so ``.to(device)`` moves them and the device is
read from a buffer.
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
    # Predicted x0 is clipped to +-clip_x0 network units (metres x pose_scale 10): +-1 m, the
    # range of the training data (99.9% of coordinates lie within 1.03 m of the joints' centre).
    # REFERENCE.md gives +-3 m; with 25 cosine steps abar at the last step is ~4e-6, so the x0
    # implied there is noise amplified ~500x, and +-3 m let it through: on 32 test samples x 50
    # hypotheses the shipped model gave P1 min / median 154 / 527 mm at +-3 m and 95 / 171 mm
    # at +-1 m.
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

    def __init__(self, config: ScheduleConfig | None = None) -> None:
        super().__init__()
        self.config = config = ScheduleConfig() if config is None else config
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
        """T, the number of diffusion steps (``config.n_steps``, 25 by default)."""
        return self.config.n_steps

    @property
    def device(self) -> torch.device:
        """The device of the coefficient buffers (and so of the model holding them)."""
        return self.betas.device

    def _coef(self, name: str, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """Coefficient ``name`` at step(s) ``t``, shaped to broadcast against ``like: (b, d)``."""
        values = getattr(self, name)
        if isinstance(t, int):
            if not 0 <= t < self.n_steps:
                raise ValueError(f"timestep t={t} out of range 0..{self.n_steps - 1}")
            return values[t]
        return values[t].reshape(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor,
                  t: torch.Tensor | int) -> torch.Tensor:
        """q_sample: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
        ``x0, eps: (b, d)``, ``t: (b,)`` or int."""
        if x0.shape != eps.shape:
            raise ValueError(f"x0 {tuple(x0.shape)} and eps {tuple(eps.shape)} must have the "
                             f"same shape")
        return (self._coef("sqrt_alphas_cumprod", t, x0) * x0
                + self._coef("sqrt_one_minus_alphas_cumprod", t, x0) * eps)

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor,
                   t: torch.Tensor | int) -> torch.Tensor:
        """The clean pose implied by a noise prediction, clipped to +-clip_x0."""
        x0 = (self._coef("sqrt_recip_alphas_cumprod", t, x_t) * x_t
              - self._coef("sqrt_recipm1_alphas_cumprod", t, x_t) * eps)
        return x0.clamp(-self.config.clip_x0, self.config.clip_x0)

    def predict_eps(self, x_t: torch.Tensor, x0: torch.Tensor,
                    t: torch.Tensor | int) -> torch.Tensor:
        """The noise that takes ``x0`` to ``x_t`` at step ``t``: add_noise solved for eps,
        (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t).  ``x_t, x0: (b, d)``."""
        return ((x_t - self._coef("sqrt_alphas_cumprod", t, x_t) * x0)
                / self._coef("sqrt_one_minus_alphas_cumprod", t, x_t))

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor,
                       t: torch.Tensor | int) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x0)."""
        return (self._coef("posterior_mean_coef1", t, x_t) * x0
                + self._coef("posterior_mean_coef2", t, x_t) * x_t)

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None,
             noise: torch.Tensor | None = None) -> torch.Tensor:
        """One ancestral reverse step x_t -> x_{t-1} (p_sample); no noise is added at t = 0.

        The noise is ``noise`` when given (``(b, d)``, e.g. drawn ahead so that a compiled
        step holds no random draw), else drawn here from ``generator``."""
        if not isinstance(t, int):
            raise TypeError(f"step takes the step index as a Python int, got {type(t).__name__}")
        mean = self.posterior_mean(self.predict_x0(x_t, eps, t), x_t, t)
        if t == 0:
            return mean
        if noise is None:
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return mean + self.posterior_std[t] * noise

    # --- DDIM (Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021) ----------
    def ddim_timesteps(self, k: int) -> list[int]:
        """The k timesteps a k-step sampler visits, from pure noise down: ``[T-1, ..., 0]``.

        Evenly spaced over 0..T-1, rounded half up: t_i = round((T-1) (k-1-i) / (k-1)),
        i = 0..k-1, so the list starts at T-1 (where sampling starts from N(0, I)), ends at
        0 and decreases strictly (the spacing (T-1)/(k-1) is >= 1 for k <= T).  k = T gives
        every step, the ancestral sampler's sequence; k = 1 gives ``[T-1]`` alone (one jump
        from noise to the predicted x0).  Ending at 0 spends the last network call on the
        least noisy level, where its x0 prediction is best, as the ancestral sampler does,
        rather than jumping to x0 from a noisier step.  With T = 25: k = 10 ->
        [24, 21, 19, 16, 13, 11, 8, 5, 3, 0], k = 5 -> [24, 18, 12, 6, 0].
        Each timestep t is followed by ``t_prev``, the next entry, and the last by -1 (x0).
        """
        last = self.n_steps - 1
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.n_steps:
            raise ValueError(f"the number of sampling steps must be an int in 1..{self.n_steps}, "
                             f"got {k!r}")
        if k == 1:
            return [last]
        # integer round-half-up of last * j / (k - 1), j = k-1..0
        return [(2 * last * j + (k - 1)) // (2 * (k - 1)) for j in range(k - 1, -1, -1)]

    def _abar(self, t: int) -> torch.Tensor:
        """abar at step t, with abar_{-1} = 1 (the clean pose)."""
        return self.alphas_cumprod[t] if t >= 0 else torch.ones((), device=self.device)

    def ddim_sigma(self, t: int, t_prev: int, eta: float) -> torch.Tensor:
        """Std of the noise a DDIM step t -> t_prev adds (Song et al. eq. 16):
        sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev).

        eta = 1 with t_prev = t - 1 is the DDPM posterior std; eta = 0 is deterministic;
        t_prev = -1 (abar_prev = 1) adds none.
        """
        ab_t, ab_prev = self._abar(t), self._abar(t_prev)
        return eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).clamp_min(0).sqrt()

    def ddim_step(self, eps: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor,
                  eta: float = 0.0, generator: torch.Generator | None = None,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
        """One DDIM step x_t -> x_{t_prev} (Song et al. eq. 12); ``t_prev = -1`` means "to x0".

        x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps' + sigma z, with x0 the
        *clipped* predicted pose (:meth:`predict_x0`), sigma from :meth:`ddim_sigma` and z ~
        N(0, I): ``noise`` when given (drawn ahead), else drawn from ``generator`` (only when
        eta > 0 and ``t_prev >= 0``, so eta = 0 draws nothing).

        The noise direction eps' is recomputed from the clipped x0 (:meth:`predict_eps`), not
        the network's ``eps``: (x0, eps') then still satisfy x_t = sqrt(abar_t) x0 +
        sqrt(1 - abar_t) eps', so the step interpolates between a consistent pair.  With the
        raw eps, clipping would move x0 but keep the noise that implied the unclipped one.  A
        consequence: with eta = 1 and t_prev = t - 1 the step has exactly the ancestral step's
        mean (:meth:`posterior_mean` of the clipped x0) and std (``posterior_std``), clipped
        or not, so DDIM over all T steps at eta = 1 is the ancestral sampler.

        ``eps, x_t: (b, d)``; ``t`` in 0..T-1 and ``t_prev`` in -1..t-1 as Python ints;
        ``0 <= eta``, small enough that sigma^2 <= 1 - abar_prev (eta <= 1 always is).
        """
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < self.n_steps:
            raise ValueError(f"ddim_step: t must be an int in 0..{self.n_steps - 1}, got {t!r}")
        if isinstance(t_prev, bool) or not isinstance(t_prev, int) or not -1 <= t_prev < t:
            raise ValueError(f"ddim_step: t_prev must be an int in -1..{t - 1} (t={t}), "
                             f"got {t_prev!r}")
        if not eta >= 0 or not math.isfinite(eta):
            raise ValueError(f"ddim_step: eta must be a finite number >= 0, got {eta!r}")
        x0 = self.predict_x0(x_t, eps, t)
        if t_prev < 0:
            return x0
        eps_x0 = self.predict_eps(x_t, x0, t)
        ab_prev = self._abar(t_prev)
        sigma = self.ddim_sigma(t, t_prev, eta)
        dir_var = 1 - ab_prev - sigma ** 2
        if dir_var < -1e-6:
            raise ValueError(f"ddim_step: eta={eta} is too large for the jump {t} -> {t_prev}: "
                             f"sigma^2 = {float(sigma ** 2):.6g} exceeds 1 - abar_prev = "
                             f"{float(1 - ab_prev):.6g}")
        x_prev = ab_prev.sqrt() * x0 + dir_var.clamp_min(0).sqrt() * eps_x0
        if eta == 0:
            return x_prev
        if noise is None:
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return x_prev + sigma * noise
