"""The benchmark's command line on tiny untrained models: entries, row names, clear errors."""
import argparse
import json
from pathlib import Path

import pytest
import torch

from dphelpers.denoiser import DenoiserConfig
from dphelpers.diffusion import DiffPose, DiffPoseConfig
from dphelpers.embedding import EmbeddingConfig
from dphelpers.models.checkpoint import CheckpointError, save_model
from dphelpers.models.modelfiles import SHIPPED_NAMES, shipped_file
from dphelpers.pipeline import make_test_set
from dphelpers.tools import bench
from dphelpers.tools.cli import main
from dphelpers.tools.modelref import model_name_of


def _tiny(**embedding) -> DiffPose:
    torch.manual_seed(0)
    emb = dict(n_channels=16, d_model=32, n_heads=2, n_layers=1, d_ff=64, cond_dim=64)
    return DiffPose(DiffPoseConfig(embedding=EmbeddingConfig(**{**emb, **embedding}),
                                   denoiser=DenoiserConfig(cond_dim=64, hidden=64))).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two tiny untrained model files: a full one and a no-transformer one."""
    d = tmp_path_factory.mktemp("bench_models")
    return {"full": save_model(d / "a.pt", _tiny(), step=3),
            "no_transformer": save_model(d / "b.pt", _tiny(use_transformer=False), step=5)}


def test_model_entries_parse_names_and_files():
    assert bench.model_entry("full") == ("full", None)
    assert bench.model_entry("argmax_only=runs/x.pt") == ("argmax_only", Path("runs/x.pt"))
    assert bench.model_entry(" lifter = m.pt ") == ("lifter", Path("m.pt"))
    with pytest.raises(argparse.ArgumentTypeError, match="unknown model 'ful'.*no_likelihood"):
        bench.model_entry("ful")
    with pytest.raises(argparse.ArgumentTypeError, match="the path is empty"):
        bench.model_entry("full=")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown model ''"):
        bench.model_entry("=x.pt")


def test_entries_default_to_the_shipped_models_and_refuse_duplicates(capsys):
    present = [n for n in SHIPPED_NAMES if shipped_file(n).is_file()]
    assert bench.resolve_entries(None) == [(n, None) for n in present]
    if len(present) < len(SHIPPED_NAMES):
        assert "no shipped file for" in capsys.readouterr().out
    with pytest.raises(ValueError, match="names full=x.pt twice"):
        bench.resolve_entries([("full", Path("x.pt")), ("full", Path("./x.pt"))])
    assert len(bench.resolve_entries([("full", Path("x.pt")), ("full", Path("y.pt"))])) == 2


def test_the_settings_say_which_model_a_file_holds():
    assert model_name_of(_tiny()) == "full"
    assert model_name_of(_tiny(use_transformer=False)) == "no_transformer"
    assert model_name_of(DiffPose(DiffPoseConfig.ablation("argmax_only"))) == "argmax_only"


def test_load_models_names_rows_per_model_and_checks_the_name(files, tmp_path, capsys):
    models = bench.load_models([("full", files["full"]),
                                   ("no_transformer", files["no_transformer"])])
    assert [m.label for m in models] == ["full (a.pt)", "no_transformer (b.pt)"]
    assert [m.info.trained_steps for m in models] == [3, 5]
    out = capsys.readouterr().out
    assert f"model 'full': loaded {files['full']} (3 training steps)" in out
    with pytest.raises(CheckpointError, match="holds a 'full' model, not 'argmax_only'"):
        bench.load_models([("argmax_only", files["full"])])
    with pytest.raises(FileNotFoundError, match="model file '.*missing.pt' does not exist"):
        bench.load_models([("full", tmp_path / "missing.pt")])
    other = tmp_path / "a.pt"
    other.write_bytes(files["full"].read_bytes())
    with pytest.raises(ValueError, match=r"same row \['full \(a.pt\)'\]"):
        bench.load_models([("full", files["full"]), ("full", other)])


def test_accuracy_rows_per_model_with_bf16_and_an_estimate(files, splits, capsys):
    models = bench.load_models([("full", files["full"]),
                                   ("no_transformer", files["no_transformer"])])
    out = bench.accuracy(models, splits[0], splits[1], n_test=4, n_hypo=3, eval_batch=4,
                            bf16=True, progress=False, few_steps=(5,))
    printed = capsys.readouterr().out
    line = next(ln for ln in printed.splitlines() if ln.startswith("accuracy: "))
    assert "2 model(s) x 4 test samples x 3 hypotheses in float32 + bfloat16 rows of full (a.pt)" \
        in line and "about " in line
    names = {k.rsplit(" (", 1)[0] for k in out["accuracy"]}
    assert names == {"full (a.pt)", "full bf16 (a.pt)", "full 5 DDIM eta=1 (a.pt)",
                     "no_transformer (b.pt)", "mean pose"}
    # the few-step rows are a different sampler: other numbers than the 25-step rows
    assert (out["accuracy"]["full 5 DDIM eta=1 (a.pt) (full)"]["P1_min"]
            != out["accuracy"]["full (a.pt) (full)"]["P1_min"])
    assert all(row["n"] <= 4 for row in out["accuracy"].values())
    assert set(out["coverage"]) == {"full (a.pt)", "no_transformer (b.pt)",
                                    "single hypothesis (one sample)", "single hypothesis (mean)"}
    assert set(out["reliability"]) == {"full (a.pt)", "no_transformer (b.pt)"}
    assert [m["file"] for m in out["accuracy_setup"]["models"]] == [str(files["full"]),
                                                                   str(files["no_transformer"])]
    assert "no_transformer (b.pt)" in printed and "twin coverage" in printed


def test_estimate_scales_with_the_work(files, splits):
    models = bench.load_models([("full", files["full"])])
    test = make_test_set(splits[1], 4)
    seconds, line = bench.accuracy_estimate(models, test, 3, 2, bf16=False)
    assert seconds > 0 and line.startswith("accuracy: 1 model(s) x 4 test samples x 3 hypotheses")


def test_speed_times_training_in_both_precisions_side_by_side(files, splits, capsys,
                                                              monkeypatch):
    """fp32 and bf16 rows at batch 64 and 32 from measure.bench_training with the TrainConfig of
    each precision (timed by measure, tested in test_measure; a recorder stands in for it here)."""
    from dphelpers.tools import bench, measure
    calls = []

    def recorder(model, batch, steps, config, repeats=1):
        calls.append((len(batch), config.precision, steps))
        rate = 2.0 if config.precision == "bf16" else 1.0
        return measure.SpeedRow("train step" + (" (bf16)" if config.precision == "bf16" else ""),
                              len(batch), rate * len(batch), 1.0, 2.0, 0.5, 0.0)

    monkeypatch.setattr(measure, "bench_training", recorder)
    monkeypatch.setattr(measure, "matmul_rate", lambda *a, **k: 1e9)
    models = bench.load_models([("full", files["full"])])
    out = bench.speed(models, splits[0], splits[1], batches=(1,), n_hypo=2, train_steps=3,
                         data_batches=1, few_steps=(5,))
    assert calls == [(64, "fp32", 3), (64, "bf16", 3), (32, "fp32", 3), (32, "bf16", 3),
                     (64, "fp32", 3)]          # the last: the step alone beside end to end
    assert [(r["what"], r["batch"]) for r in out["speed"]] == [
        ("sample", 1), ("sample 5 DDIM eta=1", 1), ("train step", 64), ("train step (bf16)", 64), ("train step", 32),
        ("train step (bf16)", 32), ("end to end (stream + step)", 64)]
    assert out["training_bf16_over_fp32"] == {"64": 2.0, "32": 2.0}
    share = out["stream_share"]["batch 64 fp32"]        # the recorder's step: 1 / 64 s
    assert share["step_ms"] == 1e3 / 64
    assert share["share"] == 64 / out["speed"][-1]["per_second"] - 1
    assert out["speed_model"] == "full (a.pt)"
    assert "batch 64 2.00x, batch 32 2.00x" in capsys.readouterr().out


def test_bench_verb_writes_its_json(files, tmp_path, capsys):
    path = tmp_path / "b.json"
    assert main(["bench", "--models", f"full={files['full']}", "--n-test", "3", "--n-hypo", "2",
                 "--skip-speed", "--quiet", "--out", str(path)]) == 0
    saved = json.loads(path.read_text())
    assert "full (a.pt) (full)" in saved["accuracy"] and "speed" not in saved
    assert f"wrote {path}" in capsys.readouterr().out.splitlines()[-1]


def test_the_gpu_script_is_valid_bash_and_its_bench_flags_parse():
    """`.ci/gpu-bench` runs only on a lent GPU machine: check here that it stays runnable."""
    import shlex
    import subprocess

    from dphelpers.tools.cli import build_parser
    script = Path(__file__).resolve().parents[1] / ".ci" / "gpu-bench"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if "-m dphelpers bench" in ln)
    assert "DEVICE=${DEVICE:-cuda}" in text            # cuda there; parsed as cpu here
    cmd = line.split("-m dphelpers", 1)[1].split("2>&1")[0]
    subs = (('"$DEVICE"', "cpu"), ("${BATCHES:-1 8 32 64 128 256 512}", "1 8 32 64 128 256 512"),
            ('"${TRAIN_STEPS:-50}"', "50"), ('"$OUT/bench_gpu.json"', "out/bench_gpu.json"),
            ("${E2E_BATCHES:-64 512 4096}", "64 512 4096"),
            ("${VARIANTS:---compile --graphs --prefetch}", "--compile --graphs --prefetch"))
    for var, value in subs:
        assert var in cmd, var
        cmd = cmd.replace(var, value)
    args = shlex.split(cmd)
    ns = build_parser().parse_args(args)
    assert ns.skip_accuracy and ns.bf16 and ns.out == Path("out/bench_gpu.json")
    assert list(ns.batches) == [1, 8, 32, 64, 128, 256, 512] and ns.train_steps == 50
    assert list(ns.e2e_batches) == [64, 512, 4096] and ns.compile and ns.graphs


def test_end_to_end_rows_draw_their_batches_from_the_stream():
    """bench_end_to_end times stream + step: it advances the stream (3 warm-up + 2 timed
    batches) and names its precision and compilation."""
    from dphelpers.data import load_mocap, split_clips
    from dphelpers.diffusion import DiffPose
    from dphelpers.pipeline import TrainStream
    from dphelpers.tools import measure
    from dphelpers.training.train import TrainConfig
    from tests.test_cli import TINY
    stream = TrainStream(split_clips(load_mocap())[0], seed=0)
    fresh = TrainStream(split_clips(load_mocap())[0], seed=0)
    torch.manual_seed(0)
    model = DiffPose(TINY)
    before = [p.detach().clone() for p in model.parameters()]
    row = measure.bench_end_to_end(model, stream, TrainConfig(batch_size=4, precision="fp32"), 2)
    assert row.what == "end to end (stream + step)" and row.batch == 4 and row.per_second > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # a copy trained
    for _ in range(5):
        fresh.next_batch(4)
    assert torch.equal(stream.generator.get_state(), fresh.generator.get_state())


def test_the_streams_share_of_a_step_with_and_without_prefetch(monkeypatch):
    """_end_to_end times the step alone on a prebuilt batch beside each end-to-end row; with
    prefetch, a second row from a stream of its own, whose prefetching is switched off after."""
    from dphelpers.data import load_mocap, split_clips
    from dphelpers.diffusion import DiffPose
    from dphelpers.pipeline import TrainStream
    from dphelpers.tools import bench, measure
    from tests.test_cli import TINY
    seen = []
    real = measure.bench_end_to_end

    def spy(model, stream, config, steps=20, repeats=1):
        seen.append(stream)
        return real(model, stream, config, steps, repeats)

    monkeypatch.setattr(measure, "bench_end_to_end", spy)
    torch.manual_seed(0)
    stream = TrainStream(split_clips(load_mocap())[0], seed=0)
    rows, _, _, share = bench._end_to_end(DiffPose(TINY), stream, (4,), 2, bf16=False,
                                          compile=False, graphs=False, prefetch=True)
    assert [r.what for r in rows] == ["end to end (stream + step)",
                                      "end to end (stream + step, prefetch)"]
    assert seen[0] is stream and seen[1] is not stream and not seen[1].prefetch
    s = share["batch 4 fp32"]
    assert s["end_to_end_ms"] == 1e3 / rows[0].per_second
    assert s["prefetch_ms"] == 1e3 / rows[1].per_second
    assert s["share"] == pytest.approx(s["end_to_end_ms"] / s["step_ms"] - 1)
    assert s["prefetch_share"] == pytest.approx(s["prefetch_ms"] / s["step_ms"] - 1)
    text = str(bench._share_table(share))
    assert "4 fp32" in text and "share, prefetch" in text and "%" in text


def test_a_graphed_sampling_row_names_itself_and_refuses_ddim():
    from dphelpers.diffusion import DiffPose
    from dphelpers.tools import measure
    from tests.test_cli import TINY
    torch.manual_seed(0)
    model = DiffPose(TINY).eval()
    hm = torch.rand(1, 16, 64, 64)
    with pytest.raises(ValueError, match="ancestral"):
        measure.bench_sampling(model, hm, 1, 4, graphs=True, steps=5)
    row = measure.bench_sampling(model, hm, 1, 4, repeats=1, graphs=True)
    assert row.what == "sample, one compiled graph" and row.per_second > 0


def test_the_gpu_training_script_is_valid_and_its_defaults_reach_the_papers_budget():
    """.ci/gpu-train's defaults: at least the paper's 44.8M samples (700k steps at batch 64),
    and a stream chunk that divides the steps and the checkpoint interval (fit refuses
    otherwise, on the GPU, after the machine has started)."""
    import re
    import shlex
    import subprocess

    from dphelpers.tools.cli import build_parser
    script = Path(__file__).resolve().parents[1] / ".ci" / "gpu-train"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    env = {k: int(v) for k, v in re.findall(r"^(\w+)=\$\{\1:-(\d+)\}$", text, re.M)}
    assert {"BUDGET_S", "BATCH", "STEPS", "CKPT_EVERY", "CHUNK"} <= set(env)
    assert env["STEPS"] * env["BATCH"] >= 700_000 * 64
    assert env["STEPS"] % env["CHUNK"] == 0 and env["CKPT_EVERY"] % env["CHUNK"] == 0
    body = text.split("train() {", 1)[1].split("\n}", 1)[0].replace("\\\n", " ")
    flags = body.split("-m dphelpers", 1)[1].split(">>")[0]
    for var, value in (('"$MODEL"', "full"), ('"$DEVICE"', "cpu"), ('"$STEPS"', "88000"),
                       ('"$BATCH"', "512"), ('"$CHUNK"', "8"), ('"$CKPT_EVERY"', "1000"),
                       ('"$CKPT"', "runs/x.pt"), ('"$@"', "--graphs")):
        flags = flags.replace(var, value)
    ns = build_parser().parse_args(shlex.split(flags))
    assert ns.graphs and ns.lr == "scaled" and ns.precision == "bf16" and ns.stream_chunk == 8


def test_speed_rows_are_printed_as_they_are_measured(capsys):
    """A benchmark cut short by a time limit keeps the rows it measured in its log."""
    from types import SimpleNamespace

    from dphelpers.tools.bench import _LiveRows
    rows = _LiveRows()
    rows.append(SimpleNamespace(what="sample (bfloat16)", batch=512, per_second=616000.0))
    rows.extend([SimpleNamespace(what="already printed", batch=1, per_second=1.0)])
    out = capsys.readouterr().out
    assert "measured: sample (bfloat16), batch 512: 616,000.0 per s" in out
    assert "already printed" not in out and len(rows) == 2
