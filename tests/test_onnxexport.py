"""The exported ONNX graphs (dphelpers.tools.onnxexport) against PyTorch, run by onnxruntime."""
from __future__ import annotations

import json

import onnx
import pytest
import torch

from dphelpers.candidates import sample_candidates
from dphelpers.diffusion import DiffPose
from dphelpers.models.checkpoint import load_model, save_model
from dphelpers.models.modelfiles import shipped_file
from dphelpers.pipeline import make_test_set
from dphelpers.tools.cli import main
from dphelpers.tools.onnxexport import (COEF_NAMES, ConditionGraph, OnnxSampler, StepGraph,
                                        export_onnx, step_coefficients)

MAX_BYTES = 12_000_000


def exported(tmp_path_factory, weights: str):
    """The shipped full model exported once per session (shared with test_tryit_browser)."""
    out = tmp_path_factory.getbasetemp() / f"onnx_full_{weights}"
    if not (out / "model.json").is_file():
        export_onnx(load_model(shipped_file("full")), out, weights=weights, progress=False)
    return out


@pytest.fixture(scope="module")
def model():
    return load_model(shipped_file("full"))


@pytest.fixture(scope="module")
def heatmaps(splits):
    return make_test_set(splits[1], 8).heatmaps


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    return OnnxSampler(exported(tmp_path_factory, "fp32"))


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    return OnnxSampler(exported(tmp_path_factory, "int8"))


def _candidates(heatmaps, n_hypo=4, seed=0):
    cand = sample_candidates(heatmaps, n_hypo, generator=torch.Generator().manual_seed(seed))
    return cand.flatten(0, 1)                                  # (b * n_hypo, 16, 32, 3)


def test_condition_graph_matches_pytorch(model, heatmaps, fp32):
    """cond_h within 1e-4 of PyTorch's project_cond(embedding(candidates)); the fused head is
    exact in PyTorch too."""
    cand = _candidates(heatmaps)
    with torch.no_grad():
        ref = model.denoiser.project_cond(model.embedding(cand))
        assert torch.allclose(ConditionGraph(model)(cand), ref, atol=1e-5)
    got = fp32.condition(cand)
    assert got.shape == ref.shape == (32, 1024)
    assert (got - ref).abs().max() < 1e-4


def test_step_graph_matches_pytorch(model, heatmaps, fp32):
    """Every step t: x_{t-1} within 1e-4 of forward_projected + schedule.step, same noise."""
    with torch.no_grad():
        cond_h = model.denoiser.project_cond(model.embedding(_candidates(heatmaps)))
    gen = torch.Generator().manual_seed(1)
    coef = step_coefficients(model)
    sess = fp32.sessions["step"]
    for t in (24, 12, 1, 0):
        x = torch.randn(cond_h.shape[0], 48, generator=gen)
        # schedule.step draws its noise (t > 0) from the generator it is given: the same draw
        noise = (torch.randn(x.shape, generator=torch.Generator().manual_seed(t)) if t
                 else torch.zeros_like(x))
        with torch.no_grad():
            eps = model.denoiser.forward_projected(x, t, cond_h)
            ref = model.schedule.step(eps, t, x, torch.Generator().manual_seed(t))
            assert torch.allclose(StepGraph(model)(x, cond_h, noise, coef[t]), ref, atol=1e-5)
        feeds = {"x_t": x.numpy(), "cond_h": cond_h.numpy(), "noise": noise.numpy(),
                 "coef": coef[t].numpy()}
        got = torch.from_numpy(sess.run(None, feeds)[0])
        assert (got - ref).abs().max() < 1e-4, t


def test_sampler_reproduces_diffpose_sample(model, heatmaps, fp32):
    """Same generator -> same candidates and noise -> the same poses within 1e-2 mm."""
    ref = model.sample(heatmaps[:2], 20, generator=torch.Generator().manual_seed(3),
                       autocast_dtype=None)
    got = fp32.sample(heatmaps[:2], 20, generator=torch.Generator().manual_seed(3))
    assert got.shape == ref.shape == (2, 20, 17, 3)
    assert (got - ref).norm(dim=-1).max() < 1e-2
    other = fp32.sample(heatmaps[:2], 20, generator=torch.Generator().manual_seed(4))
    assert (other - ref).norm(dim=-1).mean() > 10          # a different seed differs


def test_model_json_holds_the_schedule(model, fp32):
    meta = fp32.meta
    coef = torch.tensor(meta["coef"])
    assert meta["coef_names"] == list(COEF_NAMES) and coef.shape == (25, 6)
    assert torch.equal(coef[:, 0], torch.arange(25.0))
    for k, name in enumerate(COEF_NAMES[1:], 1):
        assert torch.equal(coef[:, k], getattr(model.schedule, name).float()), name
    assert coef[0, 5] == 0 and (coef[1:, 5] > 0).all()        # no noise on the last step
    assert meta["n_samples"] == 32 and meta["use_argmax"] and meta["pose_scale"] == 10.0
    assert meta["clip_x0"] == model.config.schedule.clip_x0


def test_int8_files_are_small_and_quantised(tmp_path_factory, int8):
    out = exported(tmp_path_factory, "int8")
    total = sum((out / f["file"]).stat().st_size for f in int8.meta["files"].values())
    assert total <= MAX_BYTES, total
    for name in ("condition", "step"):
        ops = {n.op_type for n in onnx.load(out / f"{name}.onnx").graph.node}
        assert "MatMulInteger" in ops and "Gemm" not in ops, (name, ops)
    assert int8.meta["weights"] == "int8" and int8.meta["per_channel"]
    table = [n for n in onnx.load(out / "condition.onnx").graph.node
             if n.op_type == "MatMul" and "embedding.table" in n.input]
    assert len(table) == 1                                   # the exact grid table stays float


def test_int8_stays_close(model, heatmaps, fp32, int8):
    """The int8 graphs: the condition within ~10% of float32 on average; most poses close."""
    cand = _candidates(heatmaps)
    a, b = fp32.condition(cand), int8.condition(cand)
    assert ((a - b).abs().mean() / a.abs().mean()) < 0.12     # measured 0.07
    ref = fp32.sample(heatmaps, 20, generator=torch.Generator().manual_seed(0))
    got = int8.sample(heatmaps, 20, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(got).all() and (got[..., 0, :] == 0).all()
    # same draws, slightly different numbers: most hypotheses stay close
    assert (got - ref).norm(dim=-1).median() < 20


def test_cli_export_onnx(tmp_path, capsys):
    """export-onnx from a model file; a lifter or an unknown name is one 'error:' line."""
    torch.manual_seed(0)
    path = save_model(tmp_path / "tiny.pt", DiffPose(), step=1)
    assert main(["export-onnx", str(path), str(tmp_path / "out"), "--weights", "fp32"]) == 0
    meta = json.loads((tmp_path / "out" / "model.json").read_text())
    assert meta["weights"] == "fp32"
    assert {f.name for f in (tmp_path / "out").iterdir()} == {"model.json", "condition.onnx",
                                                              "step.onnx"}
    assert main(["export-onnx", "lifter", str(tmp_path / "x")]) == 2
    assert main(["export-onnx", "nonsense", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "nonsense" in err
    with pytest.raises(ValueError):
        export_onnx(DiffPose(), tmp_path / "y", weights="fp16")
