"""The sampler as one compiled graph: :func:`sample_with_graphs` (the benchmark's ``--graphs``).

:meth:`DiffPose.sample` runs the 25 reverse steps eagerly: on a GPU that is hundreds of small
kernel launches per image, which is why 200 hypotheses of one image cost 13-22 ms there.
Here the random draws stay eager and come first (the candidates, the initial noise, then each
step's noise, in :meth:`DiffPose.sample`'s order from the same generator), and everything
after them (embedding, the condition's projection, the 25 network calls and updates) is one
``torch.compile(fullgraph=True, mode="reduce-overhead")`` function, which CUDA replays as a
CUDA graph.  The poses are those of :meth:`DiffPose.sample` up to float rounding (the
compiled code may fuse operations); one graph per input shape and precision.  Only the
default ancestral sampler (``steps=None``).
"""
from __future__ import annotations

import torch
from einops import rearrange

from .candidates import sample_candidates
from .compiled import cached_on
from .precision import resolve_autocast
from .targets import x0_to_poses

__all__ = ["sample_with_graphs", "draw_sampling_noise", "denoise_from"]


def draw_sampling_noise(model, heatmaps: torch.Tensor, n_hypo: int,
                        generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every random draw of the ancestral sampler, in :meth:`DiffPose.sample`'s order:
    ``candidates: (b * n_hypo, 16, n_samples, 3)``, the initial noise ``x: (b * n_hypo, 48)`` and
    the noise of each step that adds some, ``noises: (T - 1, b * n_hypo, 48)`` (steps
    ``T-1 .. 1``; the last step adds none).  ``n_hypo`` is checked by
    :func:`~dphelpers.candidates.sample_candidates`, the first draw."""
    device = model.device
    cand = sample_candidates(heatmaps.to(device), n_hypo, model.config.sampling,
                             generator=generator)
    cand = rearrange(cand, "b h j s c -> (b h) j s c")
    shape = (cand.shape[0], model.config.denoiser.pose_dim)
    x = torch.randn(shape, device=device, generator=generator)
    noises = [torch.randn(shape, generator=generator, device=device)
              for t in reversed(range(model.schedule.n_steps))
              if model._step_adds_noise(t, t - 1, None)]
    return cand, x, torch.stack(noises)


def denoise_from(model, candidates: torch.Tensor, x: torch.Tensor, noises: torch.Tensor,
                 autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The ancestral sampler given its draws (:func:`draw_sampling_noise`): ``x0: (n, 48)``.
    No random draw, no host synchronisation and no data-dependent shape, so
    ``torch.compile(fullgraph=True)`` takes it whole (the 25 steps unrolled)."""
    with model._autocast(autocast_dtype):
        cond_h = model.denoiser.project_cond(model.embedding(candidates))
    for i, t in enumerate(reversed(range(model.schedule.n_steps))):
        noise = noises[i] if model._step_adds_noise(t, t - 1, None) else None
        x = model.step(x, t, t - 1, cond_h, noise, None, autocast_dtype)
    return x


def _compiled(model, autocast_dtype: torch.dtype | None, backend: str):
    def make():
        def run(candidates, x, noises):
            return denoise_from(model, candidates, x, noises, autocast_dtype)
        options = {"mode": "reduce-overhead"} if backend == "inductor" else {}
        return torch.compile(run, fullgraph=True, dynamic=False, backend=backend, **options)
    return cached_on(model, ("sampler", str(autocast_dtype), backend), make)


@torch.no_grad()
def sample_with_graphs(model, heatmaps: torch.Tensor, n_hypo: int = 200,
                       generator: torch.Generator | None = None,
                       autocast_dtype: torch.dtype | str | None = "auto",
                       backend: str = "inductor") -> torch.Tensor:
    """:meth:`DiffPose.sample` (the ancestral sampler) with the denoising compiled as one graph:
    ``(b, n_hypo, 17, 3)`` mm, root-relative, the same draws from ``generator``.  The model must
    be in eval mode.  The first call per shape compiles (seconds to a minute); ``backend`` other
    than ``"inductor"`` (e.g. ``"aot_eager"``, for tests) skips code generation and CUDA graphs.
    """
    if model.training:
        raise ValueError("sample_with_graphs needs the model in eval mode (model.eval()): "
                         "dropout would be compiled into the graph")
    dtype = resolve_autocast(autocast_dtype, model.device)
    b = heatmaps.shape[0]
    cand, x, noises = draw_sampling_noise(model, heatmaps, n_hypo, generator)
    if model.device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()
    x0 = _compiled(model, dtype, backend)(cand, x, noises).clone()   # a replay overwrites it
    return x0_to_poses(rearrange(x0, "(b h) d -> b h d", b=b), model.config.pose_scale)
