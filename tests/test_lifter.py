import pytest
import torch

from dphelpers.candidates import sample_candidates
from dphelpers.lifter import LIFTER_INPUT_MPII, Lifter, LifterConfig, argmax_joints
from dphelpers.metrics import root_relative
from dphelpers.pipeline import TrainStream
from dphelpers.skeleton import H36M_TO_MPII

SMALL = LifterConfig(hidden=64)


def _peaks(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Heatmaps ``(b, 16, 64, 64)`` of small noise with one peak per joint at (row, col)."""
    g = torch.Generator().manual_seed(0)
    hm = 0.01 * torch.rand(rows.shape[0], 16, 64, 64, generator=g)
    b, j = torch.meshgrid(torch.arange(rows.shape[0]), torch.arange(16), indexing="ij")
    hm[b, j, rows, cols] = 1.0
    return hm


def test_input_order_is_h36m_order_of_the_mpii_joints():
    assert LIFTER_INPUT_MPII == tuple(sorted(range(16), key=lambda j: H36M_TO_MPII[j]))
    assert [H36M_TO_MPII[j] for j in LIFTER_INPUT_MPII] == [k for k in range(17) if k != 9]


def test_argmax_joints_hand_made_heatmaps():
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(0, 64, (3, 16), generator=g)
    cols = torch.randint(0, 64, (3, 16), generator=g)
    xy = argmax_joints(_peaks(rows, cols))
    assert xy.shape == (3, 16, 2)
    assert torch.equal(xy[..., 0], cols / 32 - 1) and torch.equal(xy[..., 1], rows / 32 - 1)
    # a peak at row 10, col 40 -> x = 0.25, y = -0.6875; corners -> -1 and 63/32 - 1
    one = argmax_joints(_peaks(torch.tensor([[10] + [0] * 15]), torch.tensor([[40] + [63] * 15])))
    assert one[0, 0].tolist() == [0.25, -0.6875] and one[0, 1].tolist() == [63 / 32 - 1, -1.0]


def test_argmax_joints_equals_the_argmax_candidate_and_handles_empty_maps():
    g = torch.Generator().manual_seed(2)
    hm = torch.rand(2, 16, 64, 64, generator=g) - 0.5
    hm[0, 3] = -1.0                                              # no evidence: first pixel
    cand = sample_candidates(hm, 1, generator=torch.Generator().manual_seed(0))
    xy = argmax_joints(hm)
    assert torch.equal(xy, cand[:, 0, :, 0, :2])
    assert xy[0, 3].tolist() == [-1.0, -1.0]


def test_lifter_inputs_are_the_reordered_argmaxes():
    rows, cols = torch.arange(16).repeat(2, 1), torch.arange(16).repeat(2, 1) * 2
    x = Lifter(SMALL).inputs(_peaks(rows, cols))
    assert x.shape == (2, 32)
    order = torch.tensor(LIFTER_INPUT_MPII)
    assert torch.equal(x[0, 0::2], order * 2 / 32 - 1) and torch.equal(x[0, 1::2], order / 32 - 1)


def test_shapes_interface_and_root_relative_output(splits):
    batch = TrainStream(splits[0], seed=0).next_batch(4)
    model = Lifter(SMALL)
    assert model.kind == "lifter" and model.device == torch.device("cpu")
    loss = model.loss(batch.heatmaps, batch.poses_3d_mm, generator=torch.Generator(), t=None)
    assert loss.dim() == 0 and loss.item() > 0 and model.training
    out = model.sample(batch.heatmaps, 3, generator=torch.Generator(), autocast_dtype=None)
    pred = model.predict(batch.heatmaps)
    assert out.shape == (4, 3, 17, 3) and pred.shape == (4, 17, 3)
    assert model.training, "sample/predict restore the training mode"
    assert torch.equal(out, pred.unsqueeze(1).expand(-1, 3, -1, -1))
    assert torch.all(pred[:, 0] == 0)
    assert torch.allclose(root_relative(pred), pred, atol=1e-3)
    assert model(torch.zeros(5, 32)).shape == (5, 48)


def test_config_round_trip_and_errors():
    cfg = LifterConfig(hidden=32, n_blocks=3, dropout=0.25, max_norm=None, stem_block=False)
    assert LifterConfig.from_dict(cfg.to_dict()) == cfg
    assert LifterConfig.from_dict({}) == LifterConfig()
    with pytest.raises(KeyError, match="hiden"):
        LifterConfig.from_dict({"hiden": 3})
    for bad in ({"hidden": 0}, {"n_blocks": -1}, {"dropout": 1.0}, {"max_norm": 0.0},
                {"lr": 0.0}, {"lr_decay_per_1k_steps": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LifterConfig(**bad)


def test_the_lifter_trains_with_its_own_lr_and_staircase_decay():
    from dphelpers.models.modelfiles import train_config
    cfg = train_config("lifter", precision="fp32")
    assert (cfg.lr, cfg.lr_decay) == (LifterConfig().lr, LifterConfig().lr_decay_per_1k_steps)
    assert cfg.lr_at(999) == 1e-3 and cfg.lr_at(1000) == pytest.approx(0.96e-3)
    assert cfg.lr_at(50_000) == pytest.approx(1e-3 * 0.96 ** 50)


def _row_norms(model):
    return [m.weight.norm(dim=1) for m in model.modules() if isinstance(m, torch.nn.Linear)]


def test_max_norm_after_step():
    torch.manual_seed(0)
    model = Lifter(LifterConfig(hidden=64, max_norm=0.5))
    assert len(_row_norms(model)) == 1 + 2 * 2 + 1
    assert all(n.max() <= 0.5 * (1 + 1e-5) for n in _row_norms(model)), "holds from the start"
    with torch.no_grad():
        model.head.weight.mul_(10.0)
        model.stem.linear.weight[0] = 0.01                      # a short row stays as it is
        short = model.stem.linear.weight[0].clone()
        bias = model.head.bias.clone().add_(3.0)
        model.head.bias.copy_(bias)
    assert _row_norms(model)[-1].max() > 1.0
    model.after_step()
    norms = _row_norms(model)
    assert all(n.max() <= 0.5 * (1 + 1e-5) for n in norms)
    assert torch.allclose(norms[-1], torch.full_like(norms[-1], 0.5), rtol=1e-5)
    assert torch.equal(model.stem.linear.weight[0], short)
    assert torch.equal(model.head.bias, bias), "biases are not constrained"
    free = Lifter(LifterConfig(hidden=64, max_norm=None))
    with torch.no_grad():
        free.head.weight.mul_(10.0)
    before = free.head.weight.clone()
    free.after_step()
    assert torch.equal(free.head.weight, before)


def test_overfits_eight_samples(splits):
    # 300 small steps: one thread avoids OpenMP spin-waits on a busy machine (~3 s vs ~60 s);
    # the autouse fixture in conftest.py resets the thread count before the next test.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    batch = TrainStream(splits[0], seed=0).next_batch(8)
    cfg = LifterConfig(hidden=256)
    model = Lifter(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        start = model.eval().loss(batch.heatmaps, batch.poses_3d_mm).item()
    model.train()
    for step in range(300):                 # the first 1,000 steps: no decay yet
        loss = model.loss(batch.heatmaps, batch.poses_3d_mm, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_step()
    with torch.no_grad():
        end = model.eval().loss(batch.heatmaps, batch.poses_3d_mm).item()
    assert end < start / 10, (start, end)
    gt = root_relative(batch.poses_3d_mm)
    err_mm = (model.predict(batch.heatmaps) - gt).norm(dim=-1).mean()
    mean_pose_mm = (gt.mean(dim=0, keepdim=True) - gt).norm(dim=-1).mean()
    assert err_mm < 0.5 * mean_pose_mm, (err_mm, mean_pose_mm)


def test_seeded_determinism(splits):
    batch = TrainStream(splits[0], seed=0).next_batch(4)
    torch.manual_seed(3)
    a = Lifter(SMALL)
    torch.manual_seed(3)
    b = Lifter(SMALL)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k

    def loss(model, seed):
        return model.loss(batch.heatmaps, batch.poses_3d_mm, torch.Generator().manual_seed(seed))

    assert torch.equal(loss(a, 1), loss(b, 1))
    assert not torch.equal(loss(a, 1), loss(a, 2)), "dropout masks come from the generator"
    assert torch.equal(a.sample(batch.heatmaps, 2), a.sample(batch.heatmaps, 2))
    c = Lifter(LifterConfig(hidden=64, dropout=0.0))
    assert torch.equal(loss(c, 1), loss(c, 2))


def test_bad_inputs():
    model = Lifter(SMALL)
    poses = torch.zeros(2, 17, 3)
    for bad in (torch.zeros(2, 16, 32, 32), torch.zeros(2, 17, 64, 64), torch.zeros(16, 64, 64)):
        with pytest.raises(ValueError, match="heatmaps"):
            model.loss(bad, poses)
        with pytest.raises(ValueError, match="heatmaps"):
            model.sample(bad)
    hm = torch.zeros(2, 16, 64, 64)
    with pytest.raises(ValueError, match="batch"):
        model.loss(torch.zeros(3, 16, 64, 64), poses)
    with pytest.raises(ValueError, match=r"\(b, 17, 3\)"):
        model.loss(hm, torch.zeros(2, 16, 3))
    with pytest.raises(ValueError, match="batch norm"):
        model.loss(hm[:1], poses[:1])
    with pytest.raises(ValueError, match="n_hypo"):
        model.sample(hm, 0)
    with pytest.raises(ValueError, match="trajectory"):
        model.sample(hm, 2, return_trajectory=True)
    with pytest.raises(ValueError, match=r"\(b, 32\)"):
        model(torch.zeros(2, 16, 2))
    assert model.eval().predict(hm[:1]).shape == (1, 17, 3), "eval mode takes a batch of 1"
