import math

import pytest
import torch

from dphelpers.embedding import (EmbeddingConfig, PoseEmbedding, candidate_features_fast,
                                 candidate_features_plain, channel_embedding, grid_table)


def _grid_candidates(n=3, j=16, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    ix = torch.randint(0, 64, (n, j, s, 2), generator=g)
    xy = ix.float() / 32 - 1
    lik = torch.rand(n, j, s, 1, generator=g)
    return torch.cat([xy, lik], -1)


def test_channel_embedding_support_and_range():
    x = torch.linspace(-1, 1, 1001)
    e = channel_embedding(x)
    assert e.shape == (1001, 64)
    assert e.min() >= 0 and e.max() <= 1
    centres = torch.linspace(-1, 1, 64)
    # zero outside |x - c| > pi / (2 f) = 1/16, positive strictly inside
    d = (x[:, None] - centres).abs()
    assert torch.all(e[d > 1 / 16 + 1e-6] == 0)
    assert torch.all(e[d < 1 / 16 - 1e-4] > 0)
    # value at a centre is 1; at a quarter period cos^2(pi/4) = 0.5
    assert channel_embedding(torch.tensor([centres[10].item()]))[0, 10] == pytest.approx(1.0)
    v = channel_embedding(torch.tensor([centres[10].item() + math.pi / 4 / (8 * math.pi)]))[0, 10]
    assert v.item() == pytest.approx(0.5, abs=1e-5)
    # every point is seen by >= 2 channels, >= 3 away from the ends
    assert torch.all((e > 0).sum(1) >= 2) and torch.all((e > 0).sum(1)[50:-50] >= 3)


def test_fast_features_equal_plain():
    cand = _grid_candidates()
    table = grid_table()
    plain = candidate_features_plain(cand).sum(2)
    fast = candidate_features_fast(cand, table)
    assert torch.allclose(plain, fast, atol=1e-5)
    plain_u = candidate_features_plain(cand, use_likelihood=False).sum(2)
    assert torch.allclose(plain_u, candidate_features_fast(cand, table, use_likelihood=False), atol=1e-4)


def test_projection_after_sum_equals_per_candidate():
    """sum_k (W l_k e_k + b) == W (sum_k l_k e_k) + s b, and the module's two paths agree."""
    torch.manual_seed(0)
    cand = _grid_candidates(n=2)
    emb_fast = PoseEmbedding(EmbeddingConfig(fast=True)).eval()
    emb_plain = PoseEmbedding(EmbeddingConfig(fast=False)).eval()
    emb_plain.load_state_dict(emb_fast.state_dict())
    per_cand = emb_fast.proj(candidate_features_plain(cand)).sum(2) + emb_fast.joint_embedding
    assert torch.allclose(emb_fast.tokens(cand), per_cand, atol=1e-4)
    assert torch.allclose(emb_fast(cand), emb_plain(cand), atol=1e-4)


def test_shapes_ablations_and_errors():
    cand = _grid_candidates(n=4)
    for cfg in (EmbeddingConfig(), EmbeddingConfig(use_transformer=False),
                EmbeddingConfig(use_likelihood=False)):
        out = PoseEmbedding(cfg).eval()(cand)
        assert out.shape == (4, 2048) and torch.isfinite(out).all()
    assert PoseEmbedding(EmbeddingConfig(use_transformer=False)).encoder is None
    one = _grid_candidates(n=4, s=1)
    assert PoseEmbedding().eval()(one).shape == (4, 2048)
    with pytest.raises(ValueError, match="candidates must have shape"):
        PoseEmbedding()(torch.zeros(2, 15, 32, 3))
    with pytest.raises(ValueError, match="d_model"):
        EmbeddingConfig(d_model=100)


def test_transformer_settings_and_joint_dropout():
    emb = PoseEmbedding()
    layers = emb.encoder.layers
    assert len(layers) == 4 and layers[0].self_attn.num_heads == 4
    assert layers[0].linear1.out_features == 512 and not layers[0].norm_first
    cand = _grid_candidates(n=64)
    emb.train()
    torch.manual_seed(0)
    tok = emb.tokens(cand) - emb.joint_embedding
    # a dropped joint carries only 32 x bias
    dropped = torch.isclose(tok, (32 * emb.proj.bias).expand_as(tok), atol=1e-5).all(-1)
    frac = dropped.float().mean().item()
    assert 0.05 < frac < 0.15
    emb.eval()
    tok = emb.tokens(cand) - emb.joint_embedding
    assert not torch.isclose(tok, (32 * emb.proj.bias).expand_as(tok), atol=1e-5).all(-1).any()
