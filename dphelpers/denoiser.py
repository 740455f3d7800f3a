"""The denoiser network: (x_t, t, cond) -> predicted noise eps (notebook 04).

A plain MLP as in the paper: concatenate the noisy pose (48), the raw integer
timestep and the condition (2048), project to 1024 without activation, two
residual blocks, and a linear read-out to 48.

Speed: the first layer splits as ``W_x x_t + w_t t + W_c cond + b``.  ``W_c cond``
does not change during the 25 steps of one sampling run, so ``project_cond``
computes it once and ``forward_projected`` reuses it; ``forward`` is the plain
concatenation and gives the same numbers (tested).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DenoiserConfig", "ResidualBlock", "Denoiser"]


@dataclass(frozen=True)
class DenoiserConfig:
    """Sizes of the denoiser MLP: pose and condition widths, hidden width, number of residual
    blocks and the leaky-ReLU slope."""

    pose_dim: int = 48
    cond_dim: int = 2048
    hidden: int = 1024
    n_blocks: int = 2
    negative_slope: float = 0.01


class ResidualBlock(nn.Module):
    """h + lrelu(W2 lrelu(W1 h))."""

    def __init__(self, width: int, negative_slope: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.negative_slope = negative_slope

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.fc1(h), self.negative_slope)
        return h + F.leaky_relu(self.fc2(y), self.negative_slope)


class Denoiser(nn.Module):
    """eps_theta(x_t, t, cond).  ``x_t: (n, 48)``, ``t: (n,)`` or int, ``cond: (n, 2048)`` ->
    ``(n, 48)``."""

    def __init__(self, config: DenoiserConfig = DenoiserConfig()) -> None:
        super().__init__()
        self.config = config
        self.inp = nn.Linear(config.pose_dim + 1 + config.cond_dim, config.hidden)
        self.blocks = nn.ModuleList(
            ResidualBlock(config.hidden, config.negative_slope) for _ in range(config.n_blocks)
        )
        self.out = nn.Linear(config.hidden, config.pose_dim)

    def _check(self, x_t: torch.Tensor, cond: torch.Tensor | None) -> None:
        c = self.config
        if x_t.dim() != 2 or x_t.shape[1] != c.pose_dim:
            raise ValueError(f"x_t must have shape (n, {c.pose_dim}), got {tuple(x_t.shape)}")
        if cond is not None and (cond.dim() != 2 or cond.shape != (x_t.shape[0], c.cond_dim)):
            raise ValueError(f"cond must have shape ({x_t.shape[0]}, {c.cond_dim}), "
                             f"got {tuple(cond.shape)}")

    def _t_column(self, t: torch.Tensor | int, x_t: torch.Tensor) -> torch.Tensor:
        if isinstance(t, int):
            return x_t.new_full((x_t.shape[0], 1), float(t))
        return t.to(x_t.dtype).reshape(-1, 1).expand(x_t.shape[0], 1)

    def _trunk(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        return self.out(h)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | int, cond: torch.Tensor) -> torch.Tensor:
        """The plain computation: one Linear over the concatenated input."""
        self._check(x_t, cond)
        return self._trunk(self.inp(torch.cat([x_t, self._t_column(t, x_t), cond], dim=1)))

    def project_cond(self, cond: torch.Tensor) -> torch.Tensor:
        """The condition's share of the first layer, bias included: ``(n, 2048) -> (n, hidden)``."""
        c = self.config
        if cond.dim() != 2 or cond.shape[1] != c.cond_dim:
            raise ValueError(f"cond must have shape (n, {c.cond_dim}), got {tuple(cond.shape)}")
        w_c = self.inp.weight[:, c.pose_dim + 1:]
        return torch.addmm(self.inp.bias, cond, w_c.t())

    def forward_projected(self, x_t: torch.Tensor, t: int, cond_h: torch.Tensor) -> torch.Tensor:
        """Same as ``forward`` given ``cond_h = project_cond(cond)``; ``t`` is one step for all
        rows."""
        self._check(x_t, None)
        c = self.config
        w_x = self.inp.weight[:, :c.pose_dim]
        w_t = self.inp.weight[:, c.pose_dim]
        h = torch.addmm(cond_h + float(t) * w_t, x_t, w_x.t())
        return self._trunk(h)
