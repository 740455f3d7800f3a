"""The command line: help, one-line errors, which model file each verb reads and writes."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dphelpers.denoiser import DenoiserConfig
from dphelpers.diffusion import DiffPose, DiffPoseConfig
from dphelpers.embedding import EmbeddingConfig
from dphelpers.models.checkpoint import CheckpointError, read_checkpoint, save_model
from dphelpers.models.modelfiles import MODEL_NAMES, shipped_file
from dphelpers.tools.cli import build_parser, main
from dphelpers.tools.modelref import result_stem

TINY = DiffPoseConfig(embedding=EmbeddingConfig(n_channels=16, d_model=32, n_heads=2, n_layers=1,
                                                d_ff=64, cond_dim=64),
                      denoiser=DenoiserConfig(cond_dim=64, hidden=64))


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """An untrained small model with the full model's switches, saved as a model file at step 7."""
    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("models") / "tiny.pt", DiffPose(TINY), step=7)


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_shows_a_default_for_every_option():
    parser = build_parser()
    top = parser.format_help()
    assert "``" not in top and ":mod:" not in top          # plain text, no reStructuredText
    for verb in ("run", "train", "evaluate", "bench", "predict", "export", "book", "sweep"):
        assert verb in top
    for verb, sub in _subparsers(parser).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{verb} {action.dest} has no help line"
            if action.option_strings and not isinstance(action, argparse._StoreTrueAction):
                shown = sub._get_formatter()._get_help_string(action)
                assert "default" in shown, f"{verb} {action.option_strings}: no default shown"


def test_help_names_files_precision_and_steps():
    subs = _subparsers(build_parser())
    train = subs["train"].format_help()
    assert "runs/diffpose_<model>.pt" in train and "(default: 50000)" in train
    from dphelpers.training.train import default_precision
    text = " ".join(train.split())
    assert f"natively (here: {default_precision()})" in text
    assert f"(default: {default_precision()})" in text
    for verb in ("evaluate", "bench"):
        text = " ".join(subs[verb].format_help().split())
        assert "float32" in text and "--bf16" in text
    predict = " ".join(subs["predict"].format_help().split())
    assert "bfloat16 autocast where" in predict and "--fp32" in predict
    assert "--ablation" not in " ".join(s.format_help() for s in subs.values())
    for gone in ("--data", "--steps"):
        assert gone not in subs["predict"].format_help()
    assert "--checkpoint" not in subs["bench"].format_help()


def test_script_help_and_bad_verb_from_a_shell():
    out = subprocess.run([sys.executable, "-m", "dphelpers", "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "export" in out.stdout and "--debug" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "dphelpers", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in _one_error_line(bad.stderr)


@pytest.mark.parametrize("argv, match", [
    (["evaluate", "--model", "nope"], "invalid choice: 'nope'"),
    (["evaluate", "--n-hypo", "0"], "--n-hypo: expected an integer >= 1"),
    (["train", "--precision", "fp16"], "invalid choice: 'fp16'"),
    (["bench", "--models", "nope"], "unknown model 'nope'"),
    (["bench", "--models", "full="], "the path is empty"),
    (["bench", "--checkpoint", "x.pt"], "unrecognized arguments"),
])
def test_bad_arguments_are_one_line_exit_2(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and match in _one_error_line(capsys.readouterr().err)


def test_expected_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("notanimage.jpg").write_text("this is text, not a JPEG\n")
    Path("garbage.pt").write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8,
                                                 generator=torch.Generator().manual_seed(0))
                                   .numpy().tobytes())
    cases = [
        (["predict", "missing.jpg"], "image file 'missing.jpg' does not exist"),
        (["predict", "notanimage.jpg"], "could not read image file 'notanimage.jpg'"),
        (["evaluate", "--checkpoint", "garbage.pt"], "garbage.pt is corrupt or not a DiffPose"),
        (["evaluate", "--checkpoint", "missing.pt"], "model file 'missing.pt' does not exist"),
        (["export", "garbage.pt", "out.pt"], "garbage.pt is corrupt"),
        (["train", "--checkpoint", str(shipped_file("full"))], "is a shipped model"),
        (["bench", "--models", "full=missing.pt", "--skip-speed"], "'missing.pt' does not exist"),
    ]
    for argv, match in cases:
        assert main(argv) == 2, argv
        assert match in _one_error_line(capsys.readouterr().err), argv
    with pytest.raises(CheckpointError, match="garbage.pt is corrupt"):    # --debug: raised
        main(["--debug", "evaluate", "--checkpoint", "garbage.pt"])


def test_no_person_found_is_one_line(tmp_path, capsys):
    import cv2
    import numpy as np
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 128, np.uint8))
    assert main(["predict", str(blank), "--out", str(tmp_path)]) == 2
    assert "no person found" in _one_error_line(capsys.readouterr().err)


def test_result_files_are_named_after_the_model_file(tmp_path):
    assert result_stem(shipped_file("full")) == "diffpose_full"
    assert result_stem(tmp_path / "mine.pt") == "mine"
    runs = tmp_path / "runs" / "diffpose_full.pt"          # a run's file beside the shipped one
    assert result_stem(runs) == "runs_diffpose_full" != result_stem(shipped_file("full"))


def test_evaluate_prints_the_file_and_names_rows_after_it(tmp_path, tiny_file, capsys):
    small = ["--n-test", "3", "--n-hypo", "2", "--quiet", "--out", str(tmp_path)]
    assert main(["evaluate", "--checkpoint", str(tiny_file), *small]) == 0
    out = capsys.readouterr().out
    assert f"model 'full': loaded {tiny_file} (7 training steps)" in out
    saved = json.loads((tmp_path / "evaluate_tiny.json").read_text())
    assert saved["model"]["file"] == str(tiny_file) and saved["model"]["trained_steps"] == 7
    assert set(saved["metrics"]) >= {"tiny (full)", "mean pose (ignores the image) (full)"}
    assert saved["metrics"]["tiny (full)"]["n"] == 3 and saved["precision"] == "fp32"
    assert f"wrote {tmp_path / 'evaluate_tiny.json'}" in out.splitlines()[-1]
    # the shipped model by name: its own row name and result file, the other one untouched
    assert main(["evaluate", "--model", "full", *small]) == 0
    out = capsys.readouterr().out
    assert "loaded data/checkpoints/diffpose_full.pt" in out    # relative to the project
    shipped = json.loads((tmp_path / "evaluate_diffpose_full.json").read_text())
    assert "full (diffpose_full.pt) (full)" in shipped["metrics"]
    assert json.loads((tmp_path / "evaluate_tiny.json").read_text()) == saved


def test_run_trains_only_when_there_is_no_file(tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "fresh.pt"
    args = ["run", "--checkpoint", str(ckpt), "--steps", "1", "--n-test", "3", "--n-hypo", "2",
            "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"trained into {ckpt} (1 training steps)" in out and "P1_min" in out
    result = json.loads((tmp_path / "run_fresh.json").read_text())
    assert result["model"]["trained_steps"] == 1 and "fresh (full)" in result["metrics"]
    before = ckpt.read_bytes()

    import dphelpers.models.modelfiles as modelfiles

    def no_training(*a, **k):
        raise AssertionError("run must not train when the model file exists")

    monkeypatch.setattr(modelfiles, "fit", no_training)
    assert main(args[:4] + ["50"] + args[5:]) == 0        # more --steps: still only read
    assert f"loaded {ckpt} (1 training steps)" in capsys.readouterr().out
    assert ckpt.read_bytes() == before


def test_train_resumes_and_refuses_what_it_cannot_resume(tmp_path, capsys):
    ckpt = tmp_path / "t.pt"
    base = ["train", "--checkpoint", str(ckpt), "--batch-size", "4", "--quiet"]
    assert main(base + ["--steps", "2"]) == 0
    assert read_checkpoint(ckpt)["step"] == 2
    assert main(base + ["--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert f"-> {ckpt}" in out and "resuming at step 2" in out
    assert f"wrote {ckpt}" in out.splitlines()[-1]
    assert read_checkpoint(ckpt)["step"] == 3
    assert main(["train", "--model", "argmax_only", "--checkpoint", str(ckpt), "--steps", "4"]) == 2
    assert "different settings" in _one_error_line(capsys.readouterr().err)
    # export: a small model file, printed; training cannot resume from it; no self-overwrite
    small = tmp_path / "small.pt"
    assert main(["export", str(ckpt), str(small)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {small}" in out and "float16" in out and "3 training steps" in out
    assert small.stat().st_size < 0.5 * ckpt.stat().st_size
    # the model file still says how it was trained
    assert read_checkpoint(small)["train_config"] == read_checkpoint(ckpt)["train_config"]
    assert read_checkpoint(small)["train_config"]["batch_size"] == 4
    assert main(["train", "--checkpoint", str(small), "--steps", "5"]) == 2
    assert "not a training checkpoint" in _one_error_line(capsys.readouterr().err)
    assert main(["export", str(ckpt), str(ckpt)]) == 2
    assert "would overwrite the training checkpoint" in capsys.readouterr().err


def test_predict_astronaut_names_outputs_after_the_model(tmp_path, tiny_file, capsys):
    assert main(["predict", "astronaut", "--checkpoint", str(tiny_file), "--n-hypo", "4",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"loaded {tiny_file}" in out and "hypotheses" in out
    assert (tmp_path / "predict_astronaut_tiny.npz").is_file()
    assert (tmp_path / "predict_astronaut_tiny.html").stat().st_size > 1000
    # the printed spread is the page's: RMS distance from the medoid, joint by joint
    import numpy as np

    from dphelpers.evaluation.vizpages import joint_spread_mm
    from dphelpers.skeleton import H36M_NAMES
    line = next(x for x in out.splitlines() if x.startswith("spread of the hypotheses"))
    printed = dict(p.rsplit(" ", 1) for p in line.split("(mm): ", 1)[1].split(", "))
    poses = np.load(tmp_path / "predict_astronaut_tiny.npz")["poses_mm"]
    want = joint_spread_mm(poses)
    assert [int(printed[n]) for n in H36M_NAMES] == [int(f"{v:.0f}") for v in want]


def test_every_model_name_is_a_choice():
    subs = _subparsers(build_parser())
    for verb in ("run", "evaluate", "predict"):
        model = next(a for a in subs[verb]._actions if a.dest == "model")
        assert tuple(model.choices) == MODEL_NAMES and model.default == "full"
    model = next(a for a in subs["train"]._actions if a.dest == "model")   # a list of names
    assert model.type("full") == ("full",)
    assert model.type("argmax_only, lifter") == ("argmax_only", "lifter")
    assert all(model.type(n) == (n,) for n in MODEL_NAMES) and all(n in model.help for n in
                                                                   MODEL_NAMES)


def test_train_several_models_on_one_stream(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["train", "--model", "argmax_only,lifter", "--batch-size", "4", "--quiet"]
    assert main(base + ["--steps", "2", "--keep-at", "1"]) == 0
    files = [tmp_path / "runs" / "diffpose_argmax_only.pt", tmp_path / "runs" / "lifter.pt"]
    assert [read_checkpoint(f)["step"] for f in files] == [2, 2]
    assert (tmp_path / "runs" / "lifter.step1.pt").is_file()
    capsys.readouterr()
    assert main(base + ["--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "resuming at step 2" in out and all(f"wrote runs/{f.name}" in out for f in files)
    assert [read_checkpoint(f)["step"] for f in files] == [3, 3]
    assert main(base + ["--checkpoint", "x.pt"]) == 2
    assert "--checkpoint names one file but 2 models" in _one_error_line(capsys.readouterr().err)
    with pytest.raises(SystemExit):
        main(["train", "--model", "full,nope"])
    assert "unknown model 'nope'" in capsys.readouterr().err
