"""Several models on one stream: exact resume of the group, independence of each model's
draws, snapshots, and clear refusals (mismatched configs, partial or uneven checkpoints)."""
import pytest
import torch
from test_train import assert_same_state

from dphelpers.models.checkpoint import CheckpointError, read_checkpoint
from dphelpers.models.modelfiles import build_model
from dphelpers.pipeline import TrainStream
from dphelpers.training.many import fit_many, loss_seed
from dphelpers.training.train import TrainConfig, fit, snapshot_file

NAMES = ("argmax_only", "lifter")


def _stream(splits, seed=0):
    return TrainStream(splits[0][:200], seed=seed)


def _models(seed=0):
    torch.manual_seed(seed)
    return {n: build_model(n) for n in NAMES}


def _configs(steps):
    return {n: TrainConfig(steps=steps, batch_size=4, ckpt_every=1, log_every=1, seed=3,
                           lr=1e-3 if n == "lifter" else 1e-4) for n in NAMES}


def _files(d, tag):
    return {n: d / f"{tag}_{n}.pt" for n in NAMES}


def test_group_resume_is_exact_for_every_tensor(splits, tmp_path):
    straight = fit_many(_models(), _stream(splits), _configs(3), _files(tmp_path, "a"),
                        progress=False)
    fit_many(_models(), _stream(splits), _configs(2), _files(tmp_path, "b"), progress=False)
    # other weights and another stream seed: everything must come from the files
    res = fit_many(_models(seed=9), _stream(splits, seed=99), _configs(3),
                   _files(tmp_path, "b"), progress=False)
    assert all(r.resumed_from == 2 for r in res.values())
    for n in NAMES:
        a, b = read_checkpoint(tmp_path / f"a_{n}.pt"), read_checkpoint(tmp_path / f"b_{n}.pt")
        assert a["step"] == 3 and a["ema_n_averaged"] == 3
        assert_same_state(a, b)
        assert len(straight[n].losses) == 3


def test_each_model_draws_from_its_own_stream(splits, tmp_path):
    """The lifter trained beside the argmax-only model = the lifter trained alone on the same
    batches with its own loss stream (it draws nothing, so the same weights) -- and the
    DiffPose model's result does not depend on the lifter being there."""
    both = fit_many(_models(), _stream(splits), _configs(2), _files(tmp_path, "a"),
                    progress=False)
    torch.manual_seed(0)
    alone_model = {"argmax_only": build_model("argmax_only")}
    alone = fit_many(alone_model, _stream(splits), {"argmax_only": _configs(2)["argmax_only"]},
                     {"argmax_only": tmp_path / "alone.pt"}, progress=False)
    assert both["argmax_only"].losses == alone["argmax_only"].losses
    assert loss_seed(3, "full") != loss_seed(3, "lifter") != loss_seed(4, "lifter")


def test_snapshots_are_kept(splits, tmp_path):
    fit_many(_models(), _stream(splits), {n: c.replace(ckpt_every=5)
                                          for n, c in _configs(3).items()},
             _files(tmp_path, "s"), progress=False, keep_at=(2,))
    for n in NAMES:
        snap = read_checkpoint(snapshot_file(tmp_path / f"s_{n}.pt", 2))
        assert snap["step"] == 2
        assert read_checkpoint(tmp_path / f"s_{n}.pt")["step"] == 3


def test_single_fit_keeps_snapshots(splits, tmp_path):
    cfg = TrainConfig(steps=3, batch_size=4, ckpt_every=10, log_every=1)
    fit(build_model("lifter"), _stream(splits), cfg, checkpoint=tmp_path / "l.pt",
        progress=False, keep_at=(1, 2))
    assert [read_checkpoint(snapshot_file(tmp_path / "l.pt", k))["step"] for k in (1, 2)] == [1, 2]
    assert snapshot_file("runs/x.pt", 5000).name == "x.step5000.pt"
    with pytest.raises(ValueError, match="keep_at needs a checkpoint"):
        fit(build_model("lifter"), _stream(splits), cfg, keep_at=(1,), progress=False)


def test_refusals_name_the_problem(splits, tmp_path):
    cfgs = _configs(2)
    cfgs["lifter"] = cfgs["lifter"].replace(batch_size=8)
    with pytest.raises(ValueError, match="batch_size must be the same"):
        fit_many(_models(), _stream(splits), cfgs, _files(tmp_path, "x"), progress=False)
    with pytest.raises(ValueError, match="same checkpoint"):
        fit_many(_models(), _stream(splits), _configs(2),
                 {n: tmp_path / "one.pt" for n in NAMES}, progress=False)
    files = _files(tmp_path, "p")
    fit_many(_models(), _stream(splits), _configs(1), files, progress=False)
    files["lifter"].unlink()
    with pytest.raises(CheckpointError, match="but not for \\['lifter'\\]"):
        fit_many(_models(), _stream(splits), _configs(2), files, progress=False)
    fit(build_model("lifter"), _stream(splits), _configs(2)["lifter"],
        checkpoint=files["lifter"], progress=False)   # a single-model run, at step 2
    with pytest.raises(CheckpointError, match="different steps"):
        fit_many(_models(), _stream(splits), _configs(3), files, progress=False)
