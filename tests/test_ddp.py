"""DistributedDataParallel: a 2-process step equals a 1-process step on the same global batch,
both through :func:`dphelpers.training.train.train_step`; resuming a 2-process run is exact."""
import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_train import assert_same_state
from torch.nn.parallel import DistributedDataParallel

from dphelpers.candidates import sample_candidates
from dphelpers.denoiser import DenoiserConfig
from dphelpers.diffusion import DiffPose, DiffPoseConfig
from dphelpers.embedding import EmbeddingConfig
from dphelpers.models.checkpoint import read_checkpoint
from dphelpers.tools.ddp import LossModule, ddp_fit, init_distributed, local_batch_size
from dphelpers.training.train import TrainConfig, new_state, train_step

GLOBAL_BATCH = 8
# no dropout anywhere: the model in train mode is then deterministic given candidates, t and eps
# (a small model keeps the test fast; the code path is the full model's)
CONFIG = DiffPoseConfig(embedding=EmbeddingConfig(dropout=0.0, joint_dropout=0.0, n_layers=2, d_ff=256,
                                                  cond_dim=256),
                        denoiser=DenoiserConfig(cond_dim=256, hidden=256))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _global_batch() -> dict:
    """The fixed global batch, its candidates, timesteps and noise: the same in every process."""
    g = torch.Generator().manual_seed(123)
    heatmaps = torch.rand(GLOBAL_BATCH, 16, 64, 64, generator=g)
    poses = torch.randn(GLOBAL_BATCH, 17, 3, generator=g) * 300.0
    cand = sample_candidates(heatmaps, 1, CONFIG.sampling, generator=g)[:, 0]   # (b, 16, s, 3)
    t = torch.randint(0, CONFIG.schedule.n_steps, (GLOBAL_BATCH,), generator=g)
    eps = torch.randn(GLOBAL_BATCH, CONFIG.denoiser.pose_dim, generator=g)
    return {"heatmaps": heatmaps, "poses": poses, "candidates": cand, "t": t, "eps": eps}


def _model() -> DiffPose:
    torch.manual_seed(0)
    return DiffPose(CONFIG).train()


class FixedDraws(LossModule):
    """The loss with this rank's candidates, timesteps and noise fixed (no generator draws)."""

    def __init__(self, model, draws):
        super().__init__(model)
        self.draws = draws

    def forward(self, heatmaps, poses_3d_mm, generator=None):
        return self.model.loss(heatmaps, poses_3d_mm, **self.draws)


# float32: the two halves of a batch under bf16 autocast round differently from the whole
STEP_CONFIG = TrainConfig(batch_size=GLOBAL_BATCH, grad_clip=1.0, precision="fp32")


def _step(model, loss_module, heatmaps, poses):
    state = new_state(model, torch.Generator().manual_seed(0), STEP_CONFIG)
    train_step(state, SimpleNamespace(heatmaps=heatmaps, poses_3d_mm=poses), STEP_CONFIG,
               loss_module=loss_module)
    return state


def _rank_main(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    try:
        assert info.backend == "gloo" and info.world_size == world
        data = _global_batch()
        n = local_batch_size(GLOBAL_BATCH, world)
        part = slice(rank * n, (rank + 1) * n)
        model = _model()
        draws = {k: data[k][part] for k in ("t", "eps", "candidates")}
        ddp = DistributedDataParallel(FixedDraws(model, draws))
        _step(model, ddp, data["heatmaps"][part], data["poses"][part])
        if info.is_main:
            torch.save(model.state_dict(), out)
    finally:
        dist.destroy_process_group()


def test_two_process_step_equals_single_process_step(tmp_path):
    out = tmp_path / "ddp_rank0.pt"
    mp.spawn(_rank_main, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    ddp_state = torch.load(out, weights_only=True)

    data = _global_batch()
    model = _model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    draws = {k: data[k] for k in ("t", "eps", "candidates")}
    _step(model, FixedDraws(model, draws), data["heatmaps"], data["poses"])
    moved = 0
    for name, value in model.state_dict().items():
        assert torch.allclose(ddp_state[name], value, atol=1e-6, rtol=0), name
        moved += int(not torch.equal(value, start[name]))
    assert moved > 10  # the step changed the weights, so the comparison means something


def _fit_main(rank: int, world: int, port: int, steps: int, path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    cfg = TrainConfig(steps=steps, batch_size=4, ckpt_every=1, log_every=1, seed=2, threads=1)
    ddp_fit(cfg, "argmax_only", path, device="cpu", progress=False)


def test_ddp_resume_is_exact(tmp_path):
    """2 processes: 3 straight steps vs 2 steps + resume + 1: every tensor of the saved state
    (weights, EMA and its count, Adam, both ranks' data and dropout streams, log) is equal."""
    a, b = str(tmp_path / "a.pt"), str(tmp_path / "b.pt")
    mp.spawn(_fit_main, args=(2, _free_port(), 3, a), nprocs=2, join=True)
    mp.spawn(_fit_main, args=(2, _free_port(), 2, b), nprocs=2, join=True)
    mp.spawn(_fit_main, args=(2, _free_port(), 3, b), nprocs=2, join=True)
    sa, sb = read_checkpoint(a), read_checkpoint(b)
    assert len(sa["rngs"]) == 2 and sa["ema_n_averaged"] == 3 and sb["step"] == 3
    assert not torch.equal(sa["rngs"][0]["dropout"], sa["rngs"][1]["dropout"])
    assert_same_state(sa, sb)


def test_loss_module_is_diffpose_loss():
    data = _global_batch()
    model = _model()
    kw = {k: data[k] for k in ("t", "eps", "candidates")}
    a = LossModule(model)(data["heatmaps"], data["poses"], **kw)
    b = model.loss(data["heatmaps"], data["poses"], **kw)
    assert torch.equal(a, b)


def test_loss_fixed_inputs_checked():
    data = _global_batch()
    model = _model()
    with pytest.raises(ValueError, match="t must be a long tensor"):
        model.loss(data["heatmaps"], data["poses"], t=data["t"][:3])
    with pytest.raises(ValueError, match="eps must have shape"):
        model.loss(data["heatmaps"], data["poses"], eps=data["eps"][:, :10])
    with pytest.raises(ValueError, match="candidates must have shape"):
        model.loss(data["heatmaps"], data["poses"], candidates=data["candidates"][:2])


def test_loss_default_draws_unchanged():
    """Without fixed inputs, loss draws candidates, then t, then eps from the generator:
    passing those same draws explicitly gives the same loss."""
    data = _global_batch()
    model = _model().eval()
    g = torch.Generator().manual_seed(7)
    drawn = model.loss(data["heatmaps"], data["poses"], generator=g)
    g = torch.Generator().manual_seed(7)
    cand = sample_candidates(data["heatmaps"], 1, CONFIG.sampling, generator=g)[:, 0]
    t = torch.randint(0, CONFIG.schedule.n_steps, (GLOBAL_BATCH,), generator=g)
    eps = torch.randn(GLOBAL_BATCH, CONFIG.denoiser.pose_dim, generator=g)
    fixed = model.loss(data["heatmaps"], data["poses"], t=t, eps=eps, candidates=cand)
    assert torch.allclose(drawn, fixed, atol=1e-6)


def test_local_batch_size():
    assert local_batch_size(64, 4) == 16
    with pytest.raises(ValueError, match="not divisible by the number of processes 3"):
        local_batch_size(64, 3)


def test_init_distributed_outside_torchrun(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(KeyError, match="torchrun"):
        init_distributed("cpu")
