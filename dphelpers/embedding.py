"""The embedding transformer: heatmap candidates -> condition vector (notebook 03).

Each candidate (x, y, likelihood) of a joint gets a "channel" positional
embedding (64 cos^2 bumps per coordinate, 128 features), scaled by its
likelihood and linearly projected; a joint's candidates are summed into one token,
a learned joint-identity embedding is added, and a transformer encoder lets the
16 joint tokens attend to each other.  The flattened tokens are mapped to the
2048-d condition of the denoiser.

Two exact shortcuts make it fast (both tested against the plain computation):
the projection is linear, so it is applied once to the likelihood-weighted sum
(plus n_samples times the bias) instead of to every candidate; and candidates
lie on the 64-pixel grid, so the weighted sum of their features is a weighted
histogram of their pixel indices times a fixed 64 x 64 table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

__all__ = ["EmbeddingConfig", "channel_embedding", "grid_table", "candidate_features_plain",
           "candidate_features_fast", "PoseEmbedding"]


@dataclass(frozen=True)
class EmbeddingConfig:
    """Settings of the main experiment (REFERENCE.md, "Embedding transformer") and its ablations."""

    n_joints: int = 16
    n_channels: int = 64        # per coordinate
    freq: float = 8 * math.pi
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    joint_dropout: float = 0.1  # training only: a joint's candidates are zeroed
    cond_dim: int = 2048
    heatmap_size: int = 64
    use_transformer: bool = True
    use_likelihood: bool = True
    fast: bool = True           # histogram x table path; False = per-candidate features

    def __post_init__(self) -> None:
        if self.d_model != 2 * self.n_channels:
            raise ValueError(f"d_model ({self.d_model}) must equal "
                             f"2 * n_channels ({2 * self.n_channels})")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


def channel_embedding(x: torch.Tensor, n_channels: int = 64,
                      freq: float = 8 * math.pi) -> torch.Tensor:
    """e_k(x) = cos^2(f (x - c_k)) where |f (x - c_k)| <= pi/2, else 0; c_k evenly on [-1, 1].

    ``x: (...)`` -> ``(..., n_channels)``; values in [0, 1].
    """
    centres = torch.linspace(-1.0, 1.0, n_channels, device=x.device, dtype=x.dtype)
    d = freq * (x.unsqueeze(-1) - centres)
    return torch.where(d.abs() <= math.pi / 2, torch.cos(d) ** 2, torch.zeros_like(d))


def grid_table(size: int = 64, n_channels: int = 64, freq: float = 8 * math.pi,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Embedding of every grid coordinate i/(size/2) - 1: ``(size, n_channels)``."""
    coords = torch.arange(size, dtype=torch.float64, device=device) / (size / 2) - 1
    return channel_embedding(coords, n_channels, freq).float()


def candidate_features_plain(candidates: torch.Tensor, n_channels: int = 64,
                             freq: float = 8 * math.pi,
                             use_likelihood: bool = True) -> torch.Tensor:
    """Per-candidate features, likelihood-scaled: ``(n, j, s, 3) -> (n, j, s, 2 * n_channels)``."""
    feats = torch.cat([channel_embedding(candidates[..., 0], n_channels, freq),
                       channel_embedding(candidates[..., 1], n_channels, freq)], dim=-1)
    return feats * candidates[..., 2:3] if use_likelihood else feats


def candidate_features_fast(candidates: torch.Tensor, table: torch.Tensor,
                            use_likelihood: bool = True) -> torch.Tensor:
    """Sum over candidates of the likelihood-scaled features, via histograms on the grid.

    ``candidates: (n, j, s, 3)`` on the grid i/(size/2) - 1, ``table: (size, c)`` ->
    ``(n, j, 2c)`` = ``candidate_features_plain(...).sum(2)``.  Off-grid coordinates would be
    snapped to the nearest pixel; the sampler only produces grid points.
    """
    size = table.shape[0]
    n, j, s, _ = candidates.shape
    weights = candidates[..., 2] if use_likelihood else torch.ones_like(candidates[..., 0])
    idx = torch.round((candidates[..., :2] + 1)
                      * (size / 2)).long().clamp_(0, size - 1)  # (n j s 2)
    idx = rearrange(idx, "n j s c -> (n j) c s")
    hist = weights.new_zeros(n * j, 2, size)
    hist.scatter_add_(2, idx, rearrange(weights, "n j s -> (n j) 1 s").expand(-1, 2, -1))
    feats = hist @ table  # (nj, 2, c)
    return rearrange(feats, "(n j) xy c -> n j (xy c)", n=n)


class PoseEmbedding(nn.Module):
    """Candidates ``(n, 16, s, 3)`` -> condition ``(n, cond_dim)``."""

    def __init__(self, config: EmbeddingConfig = EmbeddingConfig()) -> None:
        super().__init__()
        c = config
        self.config = c
        self.proj = nn.Linear(c.d_model, c.d_model)
        self.joint_embedding = nn.Parameter(torch.randn(c.n_joints, c.d_model) * 0.02)
        if c.use_transformer:
            layer = nn.TransformerEncoderLayer(c.d_model, c.n_heads, c.d_ff, c.dropout,
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, c.n_layers, enable_nested_tensor=False)
        else:
            self.encoder = None
        self.head = nn.Linear(c.n_joints * c.d_model, c.cond_dim)
        self.register_buffer("table", grid_table(c.heatmap_size, c.n_channels, c.freq),
                             persistent=False)

    def summed_features(self, candidates: torch.Tensor) -> torch.Tensor:
        """Likelihood-weighted feature sum per joint: ``(n, 16, s, 3) -> (n, 16, 128)``."""
        c = self.config
        if candidates.dim() != 4 or candidates.shape[1] != c.n_joints or candidates.shape[3] != 3:
            raise ValueError(f"candidates must have shape (n, {c.n_joints}, n_samples, 3), "
                             f"got {tuple(candidates.shape)}")
        if c.fast:
            return candidate_features_fast(candidates, self.table.to(candidates.dtype),
                                           c.use_likelihood)
        return candidate_features_plain(candidates, c.n_channels, c.freq, c.use_likelihood).sum(2)

    def tokens(self, candidates: torch.Tensor) -> torch.Tensor:
        """Joint tokens before the transformer: ``(n, 16, d_model)``.

        W(sum_k l_k e_k) + s b equals sum_k (W l_k e_k + b): the projection is applied once.
        """
        s = candidates.shape[2]
        feats = self.summed_features(candidates)
        if self.training and self.config.joint_dropout > 0:
            keep = torch.rand(feats.shape[:2], device=feats.device) >= self.config.joint_dropout
            feats = feats * keep.unsqueeze(-1).to(feats.dtype)
        tok = feats @ self.proj.weight.t() + s * self.proj.bias
        return tok + self.joint_embedding

    def forward(self, candidates: torch.Tensor) -> torch.Tensor:
        tok = self.tokens(candidates)
        if self.encoder is not None:
            tok = self.encoder(tok)
        return self.head(rearrange(tok, "n j d -> n (j d)"))
