import pytest
import torch

from dphelpers.denoiser import Denoiser, DenoiserConfig


def test_shapes_and_no_norm_layers():
    net = Denoiser()
    out = net(torch.randn(5, 48), torch.randint(0, 25, (5,)), torch.randn(5, 2048))
    assert out.shape == (5, 48)
    assert not any(isinstance(m, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)) for m in net.modules())
    assert net.inp.in_features == 48 + 1 + 2048 and net.inp.out_features == 1024


def test_projected_path_equals_plain():
    torch.manual_seed(0)
    net = Denoiser()
    x = torch.randn(7, 48)
    cond = torch.randn(7, 2048)
    cond_h = net.project_cond(cond)
    for t in (0, 13, 24):
        plain = net(x, torch.full((7,), t), cond)
        fast = net.forward_projected(x, t, cond_h)
        assert torch.allclose(plain, fast, atol=1e-5, rtol=1e-4)
    # an int t is the same as a tensor of that value
    assert torch.allclose(net(x, 3, cond), net(x, torch.full((7,), 3), cond))


def test_timestep_matters():
    torch.manual_seed(0)
    net = Denoiser()
    x, c = torch.randn(2, 48), torch.randn(2, 2048)
    assert not torch.allclose(net(x, 0, c), net(x, 24, c))


def test_bad_shapes():
    net = Denoiser(DenoiserConfig())
    with pytest.raises(ValueError, match="x_t must have shape"):
        net(torch.randn(2, 47), 0, torch.randn(2, 2048))
    with pytest.raises(ValueError, match="cond must have shape"):
        net(torch.randn(2, 48), 0, torch.randn(3, 2048))
    with pytest.raises(ValueError, match="cond must have shape"):
        net.project_cond(torch.randn(2, 100))
