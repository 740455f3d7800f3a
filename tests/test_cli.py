import json
import subprocess
import sys

import pytest

from dphelpers.checkpoint import save_checkpoint
from dphelpers.cli import main
from dphelpers.diffusion import DiffPose


def test_help_and_bad_verb():
    out = subprocess.run([sys.executable, "-m", "dphelpers", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout and "bench" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "dphelpers", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_run_trains_then_evaluates(tmp_path, capsys):
    ckpt = tmp_path / "m.pt"
    args = ["run", "--checkpoint", str(ckpt), "--steps", "2", "--batch-size", "4", "--n-test", "6",
            "--n-hypo", "3", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    result = json.loads((tmp_path / "run_full.json").read_text())
    assert result["trained_steps"] == 2
    rows = result["metrics"]
    assert rows["DiffPose full (full)"]["n"] == 6
    assert "mean pose (full)" in rows
    assert "P1_min" in capsys.readouterr().out
    # a missing checkpoint for evaluate is a clear error
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path)])


def test_predict_astronaut_and_export(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "m.pt", DiffPose(), step=1)
    assert main(["predict", "astronaut", "--checkpoint", str(ckpt), "--n-hypo", "4",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "predict_astronaut.npz").is_file()
    assert (tmp_path / "predict_astronaut.html").stat().st_size > 1000
    assert "hypotheses" in capsys.readouterr().out
    small = tmp_path / "small.pt"
    assert main(["export", str(ckpt), str(small)]) == 0
    assert small.stat().st_size < 0.6 * ckpt.stat().st_size


def test_run_never_retrains_an_existing_model(tmp_path, monkeypatch):
    """The main job loads a present checkpoint as it is, whatever its step count: it must not
    resume training and overwrite the shipped model."""
    ckpt = save_checkpoint(tmp_path / "shipped.pt", DiffPose(), step=3)
    before = ckpt.read_bytes()
    import dphelpers.train as train_mod

    def no_training(*a, **k):
        raise AssertionError("run must not train when the checkpoint exists")

    monkeypatch.setattr(train_mod, "fit", no_training)
    assert main(["run", "--checkpoint", str(ckpt), "--steps", "50", "--n-test", "3", "--n-hypo", "2",
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert ckpt.read_bytes() == before
    assert json.loads((tmp_path / "run_full.json").read_text())["trained_steps"] == 3


def test_train_defaults_to_runs_not_the_shipped_model(monkeypatch, tmp_path):
    from dphelpers.cli import DEFAULT_CHECKPOINT, _checkpoint, build_parser
    monkeypatch.chdir(tmp_path)
    assert _checkpoint(build_parser().parse_args(["train"])) == __import__("pathlib").Path("runs/diffpose_full.pt")
    assert _checkpoint(build_parser().parse_args(["evaluate"])) == DEFAULT_CHECKPOINT
