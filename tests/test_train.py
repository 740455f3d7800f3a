import pytest
import torch

from dphelpers.checkpoint import load_model, read_checkpoint, save_checkpoint
from dphelpers.diffusion import DiffPose, DiffPoseConfig
from dphelpers.pipeline import TrainStream
from dphelpers.train import TrainConfig, fit, load_or_train


def _small_stream(splits, seed=0):
    return TrainStream(splits[0][:200], seed=seed)


def test_resume_equals_uninterrupted(splits, tmp_path):
    cfg = TrainConfig(steps=4, batch_size=4, ckpt_every=2, log_every=1, seed=3)
    torch.manual_seed(0)
    a = DiffPose()
    init = {k: v.clone() for k, v in a.state_dict().items()}
    res_a = fit(a, _small_stream(splits), cfg, checkpoint=tmp_path / "a.pt", progress=False)
    # interrupted after 2 steps, then resumed from the checkpoint
    b = DiffPose()
    b.load_state_dict(init)
    fit(b, _small_stream(splits), TrainConfig(**{**cfg.__dict__, "steps": 2}),
        checkpoint=tmp_path / "b.pt", progress=False)
    c = DiffPose()
    res_c = fit(c, _small_stream(splits, seed=99), cfg, checkpoint=tmp_path / "b.pt", progress=False)
    assert res_c.resumed_from == 2
    assert res_c.losses == pytest.approx(res_a.losses, rel=1e-4)
    for k, v in a.state_dict().items():
        assert torch.allclose(v, c.state_dict()[k], atol=1e-5), k
    # EMA differs from the raw weights and is stored
    state = read_checkpoint(tmp_path / "a.pt")
    assert state["step"] == 4 and state["ema"] is not None
    key = "denoiser.out.weight"
    assert not torch.equal(state["ema"][key], state["model"][key])


def test_checkpoint_mismatch_and_corrupt(tmp_path):
    model = DiffPose(DiffPoseConfig.ablation("argmax_only"))
    path = save_checkpoint(tmp_path / "m.pt", model, step=1, half=True)
    with pytest.raises(ValueError, match="sampling.n_samples: 1 != 32"):
        load_model(path, DiffPoseConfig())
    loaded = load_model(path)
    assert loaded.config.sampling.n_samples == 1
    w = loaded.state_dict()["denoiser.out.weight"]
    assert w.dtype == torch.float32
    assert torch.allclose(w, model.state_dict()["denoiser.out.weight"], atol=1e-3)
    with pytest.raises(KeyError, match="no EMA"):
        load_model(path, use_ema=True)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt is corrupt"):
        read_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        read_checkpoint(tmp_path / "missing.pt")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt"):
        read_checkpoint(truncated)


def test_load_or_train_uses_finished_checkpoint(splits, tmp_path):
    cfg = TrainConfig(steps=2, batch_size=4, log_every=1)
    path = tmp_path / "m.pt"
    m1, log1 = load_or_train(path, DiffPoseConfig(), lambda: _small_stream(splits), cfg, progress=False)
    assert log1["trained_steps"] == 2 and len(log1["losses"]) == 2

    def fail():
        raise AssertionError("must not train again")

    m2, log2 = load_or_train(path, DiffPoseConfig(), fail, cfg, progress=False)
    assert log2["losses"] == log1["losses"]
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
