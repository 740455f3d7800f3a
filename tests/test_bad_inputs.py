"""Bad inputs, table-driven: every verb of the command line and the API over inputs a user
gets wrong.  Each case must end with exit status 2 and ONE line ``error: ...`` on stderr
naming the problem (no traceback), and must leave every file as it was: the user's files are
hashed before and after, and the repository's files are listed with their size and time.

The process-level cases (two writers of one checkpoint, Ctrl-C, exact resume) are at the end.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dphelpers.diffusion import DiffPose, DiffPoseConfig
from dphelpers.models.checkpoint import FORMAT, read_checkpoint, save_model
from dphelpers.models.modelfiles import shipped_file
from dphelpers.tools import sweep as sweep_module
from dphelpers.tools.cli import main
from dphelpers.training.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
_SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", "_build", "chapters"}


def _user_files(tmp: Path) -> dict:
    """The files a user has in the folder the commands run in (written once per module)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    (tmp / "afile").write_text("a file where a folder is expected\n")
    (tmp / "afolder").mkdir()
    (tmp / "notes.txt").write_text("the user's notes: export must not replace them\n")
    rng = np.random.default_rng(0)
    (tmp / "garbage.pt").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    config = DiffPoseConfig().to_dict()
    torch.save({"format": FORMAT, "kind": "diffpose", "config": config, "model": {},
                "step": "abc"}, tmp / "step_abc.pt")
    # a training checkpoint of the full model at step 1,000 (weights left out: the checks that
    # refuse it come before any weight is read)
    torch.save({"format": FORMAT, "kind": "diffpose", "config": config, "model": {}, "ema": {},
                "step": 1000, "optimizer": {"state": {}, "param_groups": []},
                "train_config": asdict(TrainConfig(batch_size=64, seed=0, precision="fp32"))},
               tmp / "train.pt")
    torch.manual_seed(0)
    from tests.test_cli import TINY
    save_model(tmp / "tiny_model.pt", DiffPose(TINY), step=3)
    np.savez(tmp / "missing_keys.npz", poses_m=np.zeros((4, 17, 3), np.float32))
    img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    ok, jpg = cv2.imencode(".jpg", img)
    (tmp / "trunc.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    cv2.imwrite(str(tmp / "big.png"), np.full((8000, 8000, 3), 200, np.uint8))
    nb = new_notebook(cells=[new_code_cell("N_HYPO = 10\nRESULTS_JSON = None",
                                           metadata={"tags": ["parameters"]}),
                             new_code_cell("x = N_HYPO * 2")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp / "tiny.ipynb")


def _hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _repo_files() -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            st = os.stat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), ROOT)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("user")
    _user_files(tmp)
    return tmp


LIFTER = str(shipped_file("lifter"))

#: (argv, what the one error line must say); run in the user's folder
CLI_CASES = [
    # output paths that cannot be written: refused before any work
    (["run", "--out", "afile"], "'afile' is an existing file, expected a folder"),
    (["evaluate", "--out", "afile"], "'afile' is an existing file, expected a folder"),
    (["evaluate", "--out", "afile/sub"], "lies under 'afile', which is a file"),
    (["predict", "astronaut", "--out", "afile"], "'afile' is an existing file"),
    (["predict", "astronaut", "--out", "afile/x"], "lies under 'afile'"),
    (["bench", "--out", "afolder", "--skip-speed"], "'afolder' is an existing folder"),
    (["bench", "--out", "afile/bench.json"], "lies under 'afile'"),
    (["sweep", "tiny.ipynb", "--out", "afile"], "'afile' is an existing file"),
    (["book", "--executed-dir", "afile"], "'afile' is an existing file"),
    (["train", "--checkpoint", "afolder"], "'afolder' is an existing folder"),
    (["train", "--checkpoint", "afile/x.pt"], "lies under 'afile'"),
    (["export", LIFTER, "afolder"], "'afolder' is an existing folder"),
    (["export", LIFTER, "afile/x.pt"], "lies under 'afile'"),
    # files that must not be replaced
    (["export", LIFTER, "train.pt"], "train.pt is a training checkpoint"),
    (["export", LIFTER, "notes.txt"], "notes.txt exists and is not a DiffPose model file"),
    (["export", LIFTER, "tiny_model.pt"], "tiny_model.pt holds another model (kind"),
    # resuming with other settings
    (["train", "--checkpoint", "train.pt", "--batch-size", "32", "--precision", "fp32"],
     "batch_size: 64 in the file, 32 now"),
    (["train", "--checkpoint", "train.pt", "--seed", "1", "--precision", "fp32"],
     "seed: 0 in the file, 1 now"),
    (["train", "--checkpoint", "tiny_model.pt"], "not a training checkpoint"),
    # bad data and model files
    (["run", "--data", "missing_keys.npz"], "missing_keys.npz: missing key 'clip_index'"),
    (["evaluate", "--data", "missing_keys.npz"], "missing key 'clip_index'"),
    (["evaluate", "--data", "afolder"], "'afolder' is a folder, expected a file"),
    (["evaluate", "--checkpoint", "garbage.pt"], "garbage.pt is corrupt or not a DiffPose"),
    (["evaluate", "--checkpoint", "step_abc.pt"], "step_abc.pt: field 'step' is 'abc'"),
    (["evaluate", "--checkpoint", "afolder"], "'afolder' is a folder"),
    (["export", "garbage.pt", "new.pt"], "refused without running it"),
    # devices
    (["evaluate", "--device", "meta"], "not on 'meta'"),
    (["evaluate", "--device", "mps"], "MPS is not available"),
    (["evaluate", "--device", "tpu9"], "not a torch device"),
    # images
    (["predict", "trunc.jpg"], "'trunc.jpg' is truncated or damaged"),
    (["predict", "afolder"], "image file 'afolder' is a folder"),
    (["predict", "https://example.com/person.jpg"], "is a URL: only local files"),
    (["predict", "big.png"], "no person found in image of 8000x8000 px (searched at 1280x1280)"),
    (["predict", "astronaut", "--n-hypo", "100000000"], "at most n_hypo="),
    # options that make no sense together, grids a notebook cannot take
    (["bench", "--skip-speed", "--skip-accuracy"], "leave nothing to measure"),
    (["sweep", "tiny.ipynb", "--grid", "N_HYPPO=10,20"], "'N_HYPPO' (did you mean 'N_HYPO'?)"),
    (["sweep", "tiny.ipynb", "--grid", "N_HYPO=a,b"], "--grid N_HYPO: value(s) 'a', 'b'"),
    (["sweep", "missing.ipynb", "--grid", "N_HYPO=1"], "notebook 'missing.ipynb' does not exist"),
    (["sweep", "tiny.ipynb", "--grid", "N_HYPO=1", "--scheduler", "tcp://127.0.0.1:1"],
     "no Dask scheduler answered"),
    (["book", "no_such_chapter"], "notebook 'no_such_chapter' not found"),
]


@pytest.mark.parametrize("argv, says", CLI_CASES, ids=[" ".join(c[0])[:60] for c in CLI_CASES])
def test_a_bad_command_line_is_one_line_and_touches_nothing(argv, says, user_dir, capfd,
                                                            monkeypatch):
    monkeypatch.chdir(user_dir)
    monkeypatch.setattr(sweep_module, "SCHEDULER_TIMEOUT_S", 1)
    before_user, before_repo = _hashes(user_dir), _repo_files()
    try:
        status = main(argv)
    except SystemExit as exc:                     # the parser's own refusals
        status = exc.code
    out, err = capfd.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert status == 2, (argv, status, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    assert "Traceback" not in err + out and "weights_only=False" not in err, (argv, err)
    assert says in lines[0], (argv, lines[0])
    assert _hashes(user_dir) == before_user, argv
    assert _repo_files() == before_repo, argv


@pytest.fixture(scope="module")
def tiny_model():
    from tests.test_cli import TINY
    torch.manual_seed(0)
    return DiffPose(TINY).eval()


def _test_batch(n: int):
    from dphelpers.data import load_mocap, split_clips
    from dphelpers.pipeline import make_test_set
    _, test_m = split_clips(load_mocap())
    return make_test_set(test_m, n)


def _api_cases(model, user_dir):
    from dphelpers.datasets import load_videopose3d
    from dphelpers.evaluation.evaluate import evaluate
    from dphelpers.samplegraphs import draw_sampling_noise
    hm = torch.rand(1, 16, 64, 64)
    empty = _test_batch(2).subset(slice(0, 0))
    return [
        (lambda: model.sample(hm * 1e20, 4), "far outside a detector's range"),
        (lambda: model.sample(hm[:0], 4), "holds no sample"),
        (lambda: model.sample(hm, 4, autocast_dtype="foo"), "autocast_dtype must be None"),
        (lambda: model.sample(hm, 0), "n_hypo must be an int >= 1"),
        (lambda: draw_sampling_noise(model, hm, 0), "n_hypo must be an int >= 1"),
        (lambda: draw_sampling_noise(model, hm, True), "n_hypo must be an int >= 1"),
        (lambda: model.sample(hm, 10 ** 9), "at most n_hypo="),
        (lambda: evaluate(model, empty, 4, progress=False), "holds no sample"),
        (lambda: evaluate(model, _test_batch(2), 4, batch_size=0, progress=False),
         "batch_size must be an int >= 1"),
        (lambda: load_videopose3d(user_dir / "afolder"), "is a folder"),
    ]


def test_bad_api_calls_raise_value_errors_that_name_the_problem(tiny_model, user_dir):
    for i, (call, says) in enumerate(_api_cases(tiny_model, user_dir)):
        with pytest.raises((ValueError, IsADirectoryError)) as exc:
            call()
        assert says in str(exc.value), (i, str(exc.value))


# ---- processes: two writers, Ctrl-C, exact resume ----------------------------------------

def _train_cmd(ckpt: Path, steps: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dphelpers", "train", "--model", "lifter", "--checkpoint",
            str(ckpt), "--steps", str(steps), "--batch-size", "8", "--precision", "fp32",
            "--threads", "1", "--quiet", *extra]


def _interruptible():
    """In the child, before exec: Ctrl-C's default action.  A shell that starts a job in the
    background (as CI may) ignores SIGINT for it, and Python keeps an inherited SIG_IGN."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _trainer(ckpt: Path, steps: int, cwd: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_train_cmd(ckpt, steps, *extra), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_interruptible)


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C, then the outputs; a process that does not end is killed (no orphan)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.1)


def test_a_second_writer_of_a_checkpoint_exits_at_once(tmp_path):
    ckpt = tmp_path / "c.pt"
    first = _trainer(ckpt, 1_000_000, tmp_path, "--ckpt-every", "50")
    try:
        _wait_for(ckpt, first)                      # it holds the lock and has written once
        second = subprocess.run(_train_cmd(ckpt, 10), cwd=tmp_path, capture_output=True,
                                text=True, timeout=600)
        assert second.returncode == 2, second
        line = second.stderr.strip()
        assert len(line.splitlines()) == 1 and line.startswith("error: "), line
        assert f"is being written by process {first.pid}" in line, line
        assert first.poll() is None                   # the first run goes on
    finally:
        out, err = _stop(first)
    assert first.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: interrupted: training stopped at "
                                                   "step"), err
    assert "Traceback" not in err and f"{ckpt} keeps step" in lines[0]
    kept = int(read_checkpoint(ckpt)["step"])
    assert kept > 0 and kept % 50 == 0 and f"keeps step {kept:,}" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]   # no temporary, no lock


def test_an_interrupted_run_resumes_exactly(tmp_path):
    """Train 40 steps in one go, and 40 steps as 20 + Ctrl-C + resume in other processes:
    the same weights, bit for bit."""
    whole, split = tmp_path / "whole.pt", tmp_path / "split.pt"
    subprocess.run(_train_cmd(whole, 40, "--ckpt-every", "20"), check=True, cwd=tmp_path,
                   capture_output=True)
    proc = _trainer(split, 1_000_000, tmp_path, "--ckpt-every", "20")
    try:
        _wait_for(split, proc)
    finally:
        _, err = _stop(proc)
    assert proc.returncode == 130, err
    step = int(read_checkpoint(split)["step"])
    assert step % 20 == 0 and step >= 20
    if step > 20:          # it ran on past 20 before the signal: redo from a fresh 20-step file
        split.unlink()
        subprocess.run(_train_cmd(split, 20, "--ckpt-every", "20"), check=True, cwd=tmp_path,
                       capture_output=True)
    done = subprocess.run(_train_cmd(split, 40, "--ckpt-every", "20"), cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "resuming at step 20" in done.stdout, done
    a, b = read_checkpoint(whole), read_checkpoint(split)
    assert a["step"] == b["step"] == 40
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["log_losses"] == b["log_losses"]
