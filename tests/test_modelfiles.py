"""modelfiles: which file is read, which may be written, and load-or-train."""
import pytest
import torch

from dphelpers.diffusion import DiffPose
from dphelpers.lifter import Lifter
from dphelpers.models import modelfiles as M
from dphelpers.models.checkpoint import read_checkpoint, save_model
from dphelpers.tools.curves import parse_run


def test_names_and_files():
    assert M.stem("full") == "diffpose_full" and M.stem("lifter") == "lifter"
    assert M.shipped_file("argmax_only").parent == M.SHIPPED_DIR
    assert M.run_file("full", "x") .as_posix() == "x/diffpose_full.pt"
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        M.stem("nope")
    for name in M.SHIPPED_NAMES:               # a fresh clone has every shipped model
        assert M.reading_file(name) == M.shipped_file(name)
    assert isinstance(M.build_model("lifter"), Lifter)
    assert M.build_model("argmax_only").config.sampling.n_samples == 1
    assert M.train_config("lifter").lr == 1e-3 and M.train_config("full").lr == 1e-4


def test_reading_and_writing_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a runs/ file in the working directory is never picked up silently
    save_model(tmp_path / "runs" / "diffpose_full.pt", DiffPose(), step=1)
    assert M.reading_file("full") == M.shipped_file("full")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        M.reading_file("full", tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no shipped model for 'no_argmax'"):
        M.reading_file("no_argmax")
    assert M.writing_file("full").as_posix() == "runs/diffpose_full.pt"
    with pytest.raises(ValueError, match="shipped model and training never writes one"):
        M.writing_file("full", M.shipped_file("full"))
    assert M.is_shipped(M.SHIPPED_DIR / ".." / "checkpoints" / "x.pt")


def test_load_or_train(tmp_path, splits, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, info = M.load_or_train("full")                       # the shipped model
    assert info.source == "file" and info.trained_steps == read_checkpoint(
        M.shipped_file("full"))["step"] and not model.training
    stand_in, info = M.load_or_train("no_argmax", None, splits[0][:100], quick=True,
                                     quick_steps=2)
    assert info.untrained and "UNTRAINED" in str(info) and not (tmp_path / "runs").exists()
    with pytest.raises(FileNotFoundError, match="no training poses"):
        M.load_or_train("no_argmax")
    path = tmp_path / "mine.pt"
    save_model(path, DiffPose(), step=3)
    loaded, info = M.load_or_train("full", path)
    assert info.path == path and info.trained_steps == 3
    saved = read_checkpoint(path)["model"]["denoiser.out.weight"].float()
    assert torch.equal(loaded.denoiser.out.weight.detach(), saved)


def test_curve_runs_parse():
    assert parse_run("bf16:1") == {"precision": "bf16", "seed": 1, "grad_clip": 1.0}
    assert parse_run("fp32:0:clip=0")["grad_clip"] == 0.0
    assert parse_run("bf16:0:batch=512:lr=scaled:warmup=20") == {
        "precision": "bf16", "seed": 0, "grad_clip": 1.0, "batch": 512, "lr": "scaled",
        "warmup": 20}
    assert parse_run("fp32:0:lr=3e-4")["lr"] == 3e-4
    for bad in ("fp16:0", "bf16", "bf16:x", "bf16:0:momentum=1", "bf16:0:lr=fast",
                "bf16:0:batch=1.5"):
        with pytest.raises(Exception, match="run"):
            parse_run(bad)


def _fake_run(precision, seed, clip, losses, every=50):
    return {"name": f"full_{precision}_seed{seed}_clip{clip:g}", "precision": precision,
            "seed": seed, "grad_clip": clip, "steps": [every * (i + 1) for i in range(len(losses))],
            "losses": losses}


def test_curve_summaries_compare_precision_with_seed_spread():
    from dphelpers.training import curves
    runs = [_fake_run("fp32", 0, 1.0, [1.0] * 20 + [0.5] * 20),      # to step 2000
            _fake_run("bf16", 0, 1.0, [1.0] * 20 + [0.6] * 20 + [0.1] * 20),   # to 3000
            _fake_run("fp32", 1, 1.0, [1.0] * 20 + [0.7] * 20),
            _fake_run("bf16", 0, 0.0, [9.0] * 40)]                   # no clipping: not compared
    gap = curves.precision_gap(runs)
    assert gap["steps"] == "1,001-2,000"                             # the window all reached
    assert gap["bf16 - fp32 (seed 0)"] == pytest.approx(0.1)        # 0.6 - 0.5, not 0.1 - 0.5
    assert gap["seed 1 - seed 0 (fp32)"] == pytest.approx(0.2)
    rows = curves.summary_rows(runs)
    assert rows[1]["loss, last 1,000"] == pytest.approx(0.1)
    assert rows[1]["loss, steps 1,001-2,000"] == pytest.approx(0.6)
    fig = curves.curves_figure(runs)
    assert len(fig.data) == 4 and fig.data[3].line.dash == "dot"
    with pytest.raises(ValueError, match="no logged loss in steps"):
        curves.summary_rows([_fake_run("fp32", 0, 1.0, [])] + runs[:1])


def test_model_info_says_whether_the_file_trained_with_augmentation():
    """From the training settings the file keeps; None where a file keeps none."""
    def info(train_config):
        state = {"step": 5, **({"train_config": train_config} if train_config is not None else {})}
        return M.ModelInfo.from_file("full", None, state).augment
    assert info({"augment": True, "hold_out": []}) is True
    assert info({"augment": False}) is False
    assert info({"steps": 5}) is False          # written before the field: it trained without
    assert info(None) is None
    shipped = read_checkpoint(M.shipped_file("full"))
    assert M.ModelInfo.from_file("full", M.shipped_file("full"), shipped).augment is None
    aug = M.SHIPPED_DIR / "diffpose_full_augmented.pt"
    assert M.ModelInfo.from_file("full", aug, read_checkpoint(aug)).augment is True
