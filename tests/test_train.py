"""Training: one step, exact resume (every tensor of the state, EMA count included), files."""
from dataclasses import asdict

import pytest
import torch

from dphelpers.diffusion import DiffPose, DiffPoseConfig
from dphelpers.models.checkpoint import CheckpointError, load_model, read_checkpoint, save_model
from dphelpers.pipeline import TrainStream
from dphelpers.training.state import DropoutRNG
from dphelpers.training.train import TrainConfig, fit, new_state, train_step


def _stream(splits, seed=0):
    return TrainStream(splits[0][:200], seed=seed)


def flat_tensors(obj, prefix=""):
    """Every tensor (and number) of a nested state, by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flat_tensors(v, f"{prefix}.{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flat_tensors(v, f"{prefix}[{i}]"))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix] = torch.tensor(obj)
    return out


def assert_same_state(a: dict, b: dict) -> None:
    fa, fb = flat_tensors(a), flat_tensors(b)
    assert fa.keys() == fb.keys(), sorted(set(fa) ^ set(fb))
    bad = {k: float((fa[k].double() - fb[k].double()).abs().max())
           for k in fa if not torch.equal(fa[k], fb[k])}
    assert not bad, f"{len(bad)} tensors differ, e.g. " + ", ".join(
        f"{k}: {v:.2e}" for k, v in list(bad.items())[:5])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_is_exact_for_every_tensor(splits, tmp_path, precision):
    """N straight steps vs k steps + resume + N - k: model, EMA (and its count), Adam,
    the data and dropout random streams, the step and the log are identical."""
    cfg = TrainConfig(steps=3, batch_size=4, ckpt_every=1, log_every=1, seed=3,
                      precision=precision)
    torch.manual_seed(0)
    a = DiffPose()
    init = {k: v.clone() for k, v in a.state_dict().items()}
    fit(a, _stream(splits), cfg, checkpoint=tmp_path / "a.pt", progress=False)
    b = DiffPose()
    b.load_state_dict(init)
    fit(b, _stream(splits), cfg.replace(steps=2), checkpoint=tmp_path / "b.pt", progress=False)
    c = DiffPose()                                            # other weights, other stream seed:
    res = fit(c, _stream(splits, seed=99), cfg, checkpoint=tmp_path / "b.pt", progress=False)
    assert res.resumed_from == 2                              # all of it comes from the file
    sa, sb = read_checkpoint(tmp_path / "a.pt"), read_checkpoint(tmp_path / "b.pt")
    assert sa["ema_n_averaged"] == 3
    assert_same_state(sa, sb)
    key = "denoiser.out.weight"
    assert not torch.equal(sa["ema"][key], sa["model"][key])  # the EMA is a real average


def test_dropout_stream_is_explicit_and_leaves_the_global_rng_alone(splits):
    """Dropout draws from the state's own stream: the global RNG is untouched, and two states
    with the same seed draw the same masks (so the same loss) whatever the global RNG did."""
    batch = _stream(splits).next_batch(4)
    losses = []
    for global_seed in (1, 2):
        torch.manual_seed(0)
        model = DiffPose().train()
        state = new_state(model, torch.Generator().manual_seed(5), TrainConfig(seed=7))
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        losses.append(train_step(state, batch, TrainConfig(seed=7)).item())
        assert torch.equal(torch.get_rng_state(), before)
    assert losses[0] == losses[1]
    rng = DropoutRNG(3)
    with rng.active():
        first = torch.rand(4)
    with rng.active():
        second = torch.rand(4)
    assert not torch.equal(first, second)                     # the stream advances
    with DropoutRNG(3).active():
        assert torch.equal(torch.rand(4), first)              # and is reproducible


def test_step_changes_weights_and_counts(splits):
    torch.manual_seed(0)
    model = DiffPose()
    before = model.denoiser.out.weight.detach().clone()
    cfg = TrainConfig(seed=1)
    state = new_state(model.train(), torch.Generator().manual_seed(0), cfg)
    loss = train_step(state, _stream(splits).next_batch(4), cfg)
    assert torch.isfinite(loss) and loss.item() > 0
    assert state.step == 1 and int(state.ema.n_averaged) == 1
    assert not torch.equal(model.denoiser.out.weight, before)
    # the first EMA update copies the weights
    assert torch.equal(state.ema.module.denoiser.out.weight, model.denoiser.out.weight)


def test_model_file_round_trip_and_errors(tmp_path):
    model = DiffPose(DiffPoseConfig.ablation("argmax_only"))
    path = save_model(tmp_path / "m.pt", model, step=7, log={"log_steps": [5],
                                                            "log_losses": [0.5]})
    with pytest.raises(CheckpointError, match="sampling.n_samples: 1 != 32"):
        load_model(path, DiffPoseConfig())
    loaded = load_model(path)
    assert loaded.config.sampling.n_samples == 1
    w = loaded.state_dict()["denoiser.out.weight"]
    assert w.dtype == torch.float32
    assert torch.allclose(w, model.state_dict()["denoiser.out.weight"], atol=1e-3)
    state = read_checkpoint(path)
    assert state["step"] == 7 and state["kind"] == "diffpose" and state["log_losses"] == [0.5]
    with pytest.raises(CheckpointError, match="no EMA"):
        load_model(path, use_ema=True)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt is corrupt"):
        read_checkpoint(tmp_path / "bad.pt")
    (tmp_path / "rand.pt").write_bytes(torch.randint(0, 256, (4096,),
                                       generator=torch.Generator().manual_seed(0),
                                       dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match="rand.pt"):
        read_checkpoint(tmp_path / "rand.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        read_checkpoint(tmp_path / "missing.pt")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        read_checkpoint(truncated)
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="lacks"):
        read_checkpoint(tmp_path / "foreign.pt")


def test_resuming_a_model_file_is_refused(splits, tmp_path):
    path = save_model(tmp_path / "m.pt", DiffPose(), step=1)
    with pytest.raises(KeyError, match="model file, not a training checkpoint"):
        fit(DiffPose(), _stream(splits), TrainConfig(steps=2, batch_size=2), checkpoint=path,
            progress=False)


def test_train_config_checks():
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(KeyError, match="nope"):
        TrainConfig().replace(nope=1)
    assert asdict(TrainConfig().replace(lr=1e-3))["lr"] == 1e-3


def test_the_default_precision_is_bf16_exactly_where_it_is_native(monkeypatch):
    from dphelpers.training import train as T
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported() or (
        torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert T.default_precision() == ("bf16" if native else "fp32")
    assert TrainConfig().precision == T.default_precision()
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert T.default_precision() == "fp32" and TrainConfig().precision == "fp32"
    assert TrainConfig(precision="bf16").precision == "bf16"      # a choice always wins


def test_augment_and_hold_out_are_checked_and_kept_on_resume(tmp_path):
    from dataclasses import asdict

    from dphelpers.training.train import TrainConfig, check_resume_config
    cfg = TrainConfig(augment=True, hold_out=["boxing"])
    assert cfg.hold_out == ("boxing",)
    with pytest.raises(ValueError, match="hold_out must be a tuple of clip names"):
        TrainConfig(hold_out="boxing")
    with pytest.raises(ValueError, match="augment must be True or False"):
        TrainConfig(augment=1)
    saved = {"train_config": {**asdict(cfg), "hold_out": ["boxing"]}}   # as a file may hold it
    check_resume_config(saved, cfg, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="augment: True in the file, False now"):
        check_resume_config(saved, cfg.replace(augment=False), tmp_path / "c.pt")
    with pytest.raises(ValueError, match="hold_out"):
        check_resume_config(saved, cfg.replace(hold_out=()), tmp_path / "c.pt")
    with pytest.raises(ValueError, match="augment_strength: 1.0 in the file, 2.0 now"):
        check_resume_config(saved, cfg.replace(augment_strength=2.0), tmp_path / "c.pt")
    with pytest.raises(ValueError, match="strength only acts with augment on"):
        TrainConfig(augment_strength=2.0)
    with pytest.raises(ValueError, match="augment_strength must be a number > 0"):
        TrainConfig(augment=True, augment_strength=0)
    old = {"train_config": {k: v for k, v in saved["train_config"].items()
                            if k != "augment_strength"}}     # a file from before the field
    check_resume_config(old, cfg, tmp_path / "c.pt")


def test_one_logging_rule_a_resumed_run_logs_at_the_same_steps(splits, tmp_path):
    """The loss is logged at the multiples of log_every, whether the run was resumed between
    them or not (the one loop, fit_group, for one model as for several)."""
    from dphelpers.models.modelfiles import build_model
    from dphelpers.training.train import Replicas, fit_group
    cfg = TrainConfig(steps=4, batch_size=4, ckpt_every=1, log_every=2, precision="fp32")
    def lifter():
        torch.manual_seed(0)
        return build_model("lifter")
    straight = fit(lifter(), _stream(splits), cfg, checkpoint=tmp_path / "a.pt", progress=False)
    fit(lifter(), _stream(splits), cfg.replace(steps=3), checkpoint=tmp_path / "b.pt",
        progress=False)
    resumed = fit(lifter(), _stream(splits), cfg, checkpoint=tmp_path / "b.pt", progress=False)
    assert straight.steps == resumed.steps == [2, 4] and resumed.resumed_from == 3
    assert resumed.losses[0] == straight.losses[0]      # step 4's window: step 4 alone after it

    class Counting(Replicas):                     # the hook multi-process training plugs in
        means = 0

        def mean(self, window):
            Counting.means += 1
            return super().mean(window)
    out = fit_group({"a": build_model("lifter")}, _stream(splits), {"a": cfg}, {"a": None},
                    own_streams=False, progress=False, replicas=Counting())
    assert Counting.means == 2 and out["a"].steps == [2, 4]
    with pytest.raises(ValueError, match="one at a time"):
        fit_group({"a": build_model("lifter"), "b": build_model("lifter")}, _stream(splits),
                  {"a": cfg, "b": cfg}, {"a": None, "b": None}, own_streams=False)


def test_ctrl_c_while_a_checkpoint_is_written_waits_for_the_file(splits, tmp_path, monkeypatch):
    """A SIGINT that lands inside the checkpoint write is held until the file is whole; the
    message then names the step the file keeps (it named the step before, while the file
    already held the new one)."""
    import os
    import signal

    from dphelpers.training import train as T

    real = T.save_group
    calls = []

    def save_and_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:                        # the second checkpoint, step 4
            os.kill(os.getpid(), signal.SIGINT)
        real(*args, **kwargs)

    monkeypatch.setattr(T, "save_group", save_and_interrupt)
    torch.manual_seed(0)
    path = tmp_path / "c.pt"
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # nohup ignores SIGINT
    try:
        with pytest.raises(T.TrainingInterrupted, match="keeps step 4;"):
            fit(DiffPose(DiffPoseConfig.ablation("argmax_only")), _stream(splits),
                TrainConfig(steps=10, batch_size=2, ckpt_every=2), checkpoint=path,
                progress=False)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # put back
    finally:
        signal.signal(signal.SIGINT, before)
    assert int(read_checkpoint(path)["step"]) == 4
