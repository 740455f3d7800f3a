"""DiffPose = embedding transformer + denoiser + noise schedule (notebook 04).

``DiffPose.loss`` is one training step's objective (predict the added noise, L2);
``DiffPose.sample`` draws many 3D hypotheses per image: all hypotheses of a
batch run as one tensor ``(b * n_hypo, 48)`` through the 25 reverse steps (or, with
``steps=k``, k DDIM steps), the condition's share of the denoiser computed once.

Units: poses enter and leave in millimetres (H36M-17, camera frame); inside,
the network works on the 16 non-pelvis joints in metres, centred per axis over
those 16 joints and multiplied by ``pose_scale`` (REFERENCE.md "Targets").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F
from torch.profiler import record_function

from .candidates import SamplingConfig, sample_candidates
from .configs import config_diff, from_dict
from .denoiser import Denoiser, DenoiserConfig
from .embedding import EmbeddingConfig, PoseEmbedding
from .precision import resolve_autocast
from .schedule import CosineSchedule, ScheduleConfig
from .targets import poses_to_x0, x0_to_poses

__all__ = ["DiffPoseConfig", "DiffPose", "poses_to_x0", "x0_to_poses", "config_diff",
           "resolve_autocast", "SAMPLE_BYTES_PER_HYPO", "check_sampling_memory"]

_SUB = {"embedding": EmbeddingConfig, "denoiser": DenoiserConfig,
        "schedule": ScheduleConfig, "sampling": SamplingConfig}


@dataclass(frozen=True)
class DiffPoseConfig:
    """All settings that build a model; a checkpoint stores ``to_dict()`` beside the weights."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    pose_scale: float = 10.0

    def to_dict(self) -> dict:
        """All settings as nested plain dicts (``dataclasses.asdict``): what a checkpoint stores."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DiffPoseConfig":
        """Inverse of ``to_dict``; an unknown key anywhere is an error naming it
        (:func:`~dphelpers.configs.from_dict`)."""
        return from_dict(cls, d, nested=_SUB)

    @classmethod
    def ablation(cls, name: str) -> "DiffPoseConfig":
        """The paper's ablations by name: 'full', 'argmax_only', 'no_transformer',
        'no_argmax', 'no_likelihood'."""
        base = cls()
        smp = base.sampling
        table = {
            "full": base,
            "argmax_only": cls(sampling=SamplingConfig(n_samples=1, use_argmax=True)),
            "no_transformer": cls(embedding=EmbeddingConfig(use_transformer=False)),
            "no_argmax": cls(sampling=SamplingConfig(n_samples=smp.n_samples, use_argmax=False)),
            "no_likelihood": cls(embedding=EmbeddingConfig(use_likelihood=False)),
        }
        if name not in table:
            raise ValueError(f"unknown ablation {name!r}; choose from {sorted(table)}")
        return table[name]


#: Peak memory of :meth:`DiffPose.sample` per hypothesis, rounded up from a measurement on the
#: CPU in float32 (65-106 KB at 2,000-8,000 hypotheses of one image; ``ru_maxrss`` growth).
SAMPLE_BYTES_PER_HYPO = 128 * 1024


def _free_bytes(device: torch.device) -> int | None:
    """Memory free for new tensors on ``device`` (None: unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        import psutil
        return int(psutil.virtual_memory().available)
    return None


def check_sampling_memory(b: int, n_hypo: int, device: torch.device) -> None:
    """Refuse, before allocating anything, a sampling run that cannot fit in ``device``'s free
    memory (at :data:`SAMPLE_BYTES_PER_HYPO`), naming the largest ``n_hypo`` that fits."""
    free = _free_bytes(device)
    need = b * n_hypo * SAMPLE_BYTES_PER_HYPO
    if free is not None and need > free:
        fits = free // (b * SAMPLE_BYTES_PER_HYPO)
        raise ValueError(f"{b} image(s) x {n_hypo:,} hypotheses need about {need / 1e9:,.1f} GB "
                         f"while sampling, but {free / 1e9:,.1f} GB are free on {device.type}: at "
                         f"most n_hypo={fits:,} fits (draw more in several calls)")


class DiffPose(nn.Module):
    """The whole model.  The device is read from the schedule's buffers."""

    def __init__(self, config: DiffPoseConfig | None = None) -> None:
        super().__init__()
        self.config = config = DiffPoseConfig() if config is None else config
        self.embedding = PoseEmbedding(config.embedding)
        self.denoiser = Denoiser(config.denoiser)
        self.schedule = CosineSchedule(config.schedule)

    @property
    def device(self) -> torch.device:
        """The device the model lives on, read from the schedule's buffers."""
        return self.schedule.device

    def condition(self, heatmaps: torch.Tensor, n_hypo: int = 1,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """Heatmaps ``(b, 16, 64, 64)`` -> ``cond: (b * n_hypo, 2048)``, candidates redrawn per
        hypothesis."""
        if isinstance(heatmaps, torch.Tensor):           # checked once, by sample_candidates
            heatmaps = heatmaps.to(self.device)
        with record_function("candidates"):
            cand = sample_candidates(heatmaps, n_hypo, self.config.sampling, generator=generator)
        with record_function("embedding"):
            return self.embedding(rearrange(cand, "b h j s c -> (b h) j s c"))

    def draw_training_noise(self, heatmaps: torch.Tensor, generator: torch.Generator | None = None,
                            validate: bool = True
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Everything random in one training step but dropout, from ``generator`` in this order:
        ``candidates: (b, 16, n_samples, 3)`` (one hypothesis per sample), ``t: (b,)`` long and
        ``eps: (b, 48)``.  Eager on purpose: ``torch.compile`` cannot trace an explicit
        generator, and :meth:`loss_from` (the compiled part) then holds no random draw of its
        own.  ``validate=False`` skips the heatmap checks (they read values back from the
        device): for the training stream's own simulated heatmaps."""
        heatmaps = heatmaps.to(self.device)
        b = heatmaps.shape[0]
        with record_function("candidates"):
            cand = sample_candidates(heatmaps, 1, self.config.sampling, generator=generator,
                                     validate=validate)[:, 0]
        t = torch.randint(0, self.schedule.n_steps, (b,), device=self.device, generator=generator)
        eps = torch.randn((b, self.config.denoiser.pose_dim), device=self.device,
                          generator=generator)
        return cand, t, eps

    def loss_from(self, candidates: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                  poses_3d_mm: torch.Tensor) -> torch.Tensor:
        """p_losses given the step's random draws (:meth:`draw_training_noise`): the embedding
        (joint and transformer dropout from the global stream), q_sample, the noise prediction
        and the mean squared error.  No host synchronisation and no data-dependent shape, so
        ``torch.compile(model.loss_from, fullgraph=True)`` takes it whole."""
        x0 = poses_to_x0(poses_3d_mm.to(self.device), self.config.pose_scale)
        with record_function("embedding"):
            cond = self.embedding(candidates)
        x_t = self.schedule.add_noise(x0, eps, t)
        with record_function("denoiser"):
            return F.mse_loss(self.denoiser(x_t, t, cond), eps)

    def loss(self, heatmaps: torch.Tensor, poses_3d_mm: torch.Tensor,
             generator: torch.Generator | None = None, *, t: torch.Tensor | None = None,
             eps: torch.Tensor | None = None,
             candidates: torch.Tensor | None = None) -> torch.Tensor:
        """p_losses: mean squared error between the added noise and its prediction.

        ``candidates: (b, 16, n_samples, 3)``, ``t: (b,)`` long and ``eps: (b, 48)``, when
        given, are used instead of being drawn (in that order) from ``generator``: a
        multi-process step can then reproduce a single-process one exactly.  The same numbers
        as :meth:`draw_training_noise` followed by :meth:`loss_from`.
        """
        b = poses_3d_mm.shape[0]
        if heatmaps.shape[0] != b:
            raise ValueError(f"heatmaps batch {heatmaps.shape[0]} != poses batch {b}")
        if candidates is None:
            heatmaps = heatmaps.to(self.device)
            with record_function("candidates"):
                candidates = sample_candidates(heatmaps, 1, self.config.sampling,
                                               generator=generator)[:, 0]
        elif candidates.dim() != 4 or candidates.shape[0] != b:
            raise ValueError(f"candidates must have shape (b={b}, 16, n_samples, 3), "
                             f"got {tuple(candidates.shape)}")
        if t is None:
            t = torch.randint(0, self.schedule.n_steps, (b,), device=self.device,
                              generator=generator)
        elif t.shape != (b,) or t.dtype != torch.long:
            raise ValueError(f"t must be a long tensor of shape ({b},), "
                             f"got {t.dtype} {tuple(t.shape)}")
        if eps is None:
            eps = torch.randn((b, self.config.denoiser.pose_dim), device=self.device,
                              generator=generator)
        elif eps.shape != (b, self.config.denoiser.pose_dim):
            raise ValueError(f"eps must have shape {(b, self.config.denoiser.pose_dim)}, "
                             f"got {tuple(eps.shape)}")
        return self.loss_from(candidates.to(self.device), t.to(self.device), eps.to(self.device),
                              poses_3d_mm)

    @torch.no_grad()
    def sample(self, heatmaps: torch.Tensor, n_hypo: int = 200,
               generator: torch.Generator | None = None, return_trajectory: bool = False,
               autocast_dtype: torch.dtype | str | None = "auto", steps: int | None = None,
               eta: float = 1.0):
        """Draw ``n_hypo`` 3D poses per image: ``(b, n_hypo, 17, 3)`` mm, root-relative.

        ``steps=None`` (the default) runs the ancestral DDPM sampler over all 25 steps
        (``schedule.step``); ``steps=k`` runs DDIM (``schedule.ddim_step``) over the k
        timesteps of ``schedule.ddim_timesteps(k)``, k network calls instead of 25, with noise
        ``eta`` (0 = deterministic given the initial noise and candidates; 1 over all 25 steps
        = the ancestral sampler, up to float rounding).  ``eta`` applies only with ``steps``;
        ``eta`` must lie in [0, 1] (above 1 the first step from pure noise would need more
        than the noise there is).  With ``return_trajectory`` also returns the denoised poses
        after every network call (:meth:`sample_trajectory`).  ``autocast_dtype`` (e.g.
        ``torch.bfloat16``) runs the networks under autocast; ``None`` keeps float32;
        ``"auto"`` (the default) picks bfloat16 where the device computes it natively
        (:func:`resolve_autocast`): on 600 test samples x 200 hypotheses it moved P1 min by
        0.05 mm and sampled 3.5x faster on this CPU.
        """
        if return_trajectory:
            return self.sample_trajectory(heatmaps, n_hypo, generator, autocast_dtype, steps, eta)
        for x in self._denoise(heatmaps, n_hypo, generator, autocast_dtype, steps, eta):
            pass                                     # keep only the last state
        return self._to_poses(x, heatmaps.shape[0])

    @torch.no_grad()
    def sample_trajectory(self, heatmaps: torch.Tensor, n_hypo: int = 200,
                          generator: torch.Generator | None = None,
                          autocast_dtype: torch.dtype | str | None = "auto",
                          steps: int | None = None, eta: float = 1.0):
        """:meth:`sample`'s poses and every state on the way: ``(poses, trajectory)`` with
        ``trajectory: (n_calls + 1, b, n_hypo, 17, 3)`` mm (first = pure noise; n_calls = 25
        or ``steps``), the same draws as :meth:`sample`."""
        states = list(self._denoise(heatmaps, n_hypo, generator, autocast_dtype, steps, eta))
        b = heatmaps.shape[0]
        return self._to_poses(states[-1], b), self._to_poses(torch.stack(states), b)

    def _to_poses(self, x: torch.Tensor, b: int) -> torch.Tensor:
        """``x: (..., b * n_hypo, 48)`` -> ``(..., b, n_hypo, 17, 3)`` mm."""
        return x0_to_poses(rearrange(x, "... (b h) d -> ... b h d", b=b), self.config.pose_scale)

    def _denoise(self, heatmaps: torch.Tensor, n_hypo: int, generator: torch.Generator | None,
                 autocast_dtype: torch.dtype | str | None, steps: int | None, eta: float):
        """The reverse process: yields ``x: (b * n_hypo, 48)``, first pure noise, then after
        every :meth:`step` over the ``(t, t_prev)`` pairs.  Random draws from ``generator`` in
        this order: candidates, the initial noise, then each step's noise (drawn ahead)."""
        pairs = self._sampling_pairs(steps, eta)
        ancestral = steps is None
        autocast_dtype = resolve_autocast(autocast_dtype, self.device)
        if isinstance(n_hypo, bool) or not isinstance(n_hypo, int) or n_hypo < 1:
            raise ValueError(f"n_hypo must be an int >= 1, got {n_hypo!r}")
        b = heatmaps.shape[0]
        check_sampling_memory(max(b, 1), n_hypo, self.device)
        with self._autocast(autocast_dtype):
            cond_h = self.denoiser.project_cond(self.condition(heatmaps, n_hypo, generator))
        x = torch.randn((b * n_hypo, self.config.denoiser.pose_dim), device=self.device,
                        generator=generator)
        yield x
        for t, t_prev in pairs:
            noise = (torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                     if self._step_adds_noise(t, t_prev, None if ancestral else eta) else None)
            x = self.step(x, t, t_prev, cond_h, noise, None if ancestral else eta, autocast_dtype)
            yield x

    def _autocast(self, dtype: torch.dtype | None):
        """Autocast to ``dtype`` on the model's device; ``None``: explicitly off (float32)."""
        if dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=dtype)

    @staticmethod
    def _step_adds_noise(t: int, t_prev: int, eta: float | None) -> bool:
        """Whether the step ``t -> t_prev`` adds noise: the ancestral one (``eta=None``) all
        but the last; DDIM only with ``eta > 0`` and not into x0 (``t_prev = -1``)."""
        return t > 0 if eta is None else (t_prev >= 0 and eta != 0)

    def step(self, x_t: torch.Tensor, t: int, t_prev: int, cond_h: torch.Tensor,
             noise: torch.Tensor | None, eta: float | None = None,
             autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
        """p_sample, one reverse step ``x_t -> x_{t_prev}``: the network's noise estimate from
        ``cond_h = denoiser.project_cond(cond)`` (under autocast to ``autocast_dtype`` if
        given), then the schedule's update with the given ``noise`` (None where the step adds
        none): ancestral (:meth:`CosineSchedule.step`, ``t_prev = t - 1``) when ``eta`` is
        None, else DDIM (:meth:`CosineSchedule.ddim_step`) with that ``eta``.  The two agree
        for ``eta = 1`` and ``t_prev = t - 1`` up to float rounding, not bit for bit, so the
        default sampler keeps its own formula.  ``x_t, noise: (n, 48)``."""
        with self._autocast(autocast_dtype):
            eps = self.denoiser.forward_projected(x_t, t, cond_h)
        if eta is None:
            if t_prev != t - 1:
                raise ValueError(f"the ancestral step goes from t to t - 1, got {t} -> {t_prev}")
            return self.schedule.step(eps.float(), t, x_t, noise=noise)
        return self.schedule.ddim_step(eps.float(), t, t_prev, x_t, eta, noise=noise)

    def reverse_step(self, x_t: torch.Tensor, t: int, cond_h: torch.Tensor,
                     noise: torch.Tensor | None) -> torch.Tensor:
        """The ancestral :meth:`step` ``x_t -> x_{t-1}`` in float32.  No random draw and no
        host synchronisation: ``torch.compile(fullgraph=True)`` takes it whole."""
        eps = self.denoiser.forward_projected(x_t, t, cond_h)
        return self.schedule.step(eps.float(), t, x_t, noise=noise)

    def _sampling_pairs(self, steps: int | None, eta: float) -> list[tuple[int, int]]:
        """``(t, t_prev)`` of every network call of :meth:`sample`, checking its arguments."""
        n = self.schedule.n_steps
        if steps is None:
            if eta != 1.0:
                raise ValueError(f"eta={eta!r} needs steps=k (DDIM); the default sampler "
                                 f"(steps=None, ancestral over all {n} steps) has no eta")
            return [(t, t - 1) for t in reversed(range(n))]
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= n:
            raise ValueError(f"steps must be None (ancestral) or an int in 1..{n} (DDIM), "
                             f"got {steps!r}")
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be a number in [0, 1] (0 = deterministic DDIM, 1 = "
                             f"DDPM-like noise), got {eta!r}")
        ts = self.schedule.ddim_timesteps(steps)
        return list(zip(ts, ts[1:] + [-1]))
