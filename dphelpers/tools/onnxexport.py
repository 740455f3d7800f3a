"""DiffPose in the reader's browser: export a model as two ONNX graphs and its schedule as JSON.

``python -m dphelpers export-onnx MODEL OUT_DIR`` (issue #27) writes into ``OUT_DIR``:

- ``condition.onnx``: candidates ``(n, 16, s, 3)`` -> ``cond_h: (n, hidden)``: the embedding
  transformer, its head and the denoiser's condition projection, once per hypothesis.  The head
  (2048 -> 2048) and the projection (2048 -> 1024) are both linear with nothing in between, so
  they are fused into one 2048 -> 1024 matrix (computed in float64): 4.2 M fewer weights;
- ``step.onnx``: one ancestral step ``(x_t, cond_h, noise, coef) -> x_{t-1}``: the denoiser
  (``Denoiser.forward_projected``) and ``CosineSchedule.step``'s arithmetic, with ``coef`` =
  ``[t, sqrt(1/abar_t), sqrt(1/abar_t - 1), posterior mean coef1, coef2, posterior std]``
  (a row of ``model.json``'s ``coef`` table; the std is 0 at t = 0, so no noise is added);
- ``model.json``: the schedule's constants (float32 values, as the schedule's buffers), the
  sampling settings (candidates per joint, argmax), ``pose_scale``, ``clip_x0`` and the skeleton.

Recipe (verified here, torch 2.13, onnx 1.20, onnxruntime 1.32 and onnxruntime-web 1.30):
export with ``torch.onnx.export(..., dynamo=True)`` (opset 20, dynamic batch), then, for
``weights="int8"``, rewrite every ``Gemm`` as ``MatMul`` + ``Add`` (``quantize_dynamic`` skips
``Gemm``) and quantize the weight matrices dynamically to int8 with ``reduce_range=True``
(activation x activation products, i.e. attention, stay float32).  ``weights="fp32"`` keeps the
graphs exact (within 1e-5 of PyTorch): the browser fidelity test uses it.

Measured on the shipped full model: int8 per-channel 7.7 MB (condition 3.3 + step 4.4; fp32
29 MB); P1 min on 200 test samples x 200 hypotheses with the same draws 52.34 mm against
PyTorch's 52.39 (median 115.4 vs 116.5; ``export-onnx full DIR --check-p1 200``).  Per-tensor
int8 weights cost +2.2 mm P1 min on 64 samples x 50 hypotheses (65.4 vs 63.2), per-channel
none, at the same speed.

:class:`OnnxSampler` runs the exported graphs with onnxruntime in the same loop as the page's
script (``book/static_js/tryit/diffpose.js``) and draws candidates and noise in
``DiffPose.sample``'s order, so the same generator gives the same draws: the difference in
P1 between the two is the export's (quantisation's) alone.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from ..candidates import sample_candidates
from ..diffusion import DiffPose, x0_to_poses
from ..skeleton import H36M_NAMES, H36M_PARENTS, L_HIP, MPII_NAMES, MPII_PARENTS, R_HIP

__all__ = ["WEIGHTS", "COEF_NAMES", "ConditionGraph", "StepGraph", "step_coefficients",
           "export_onnx", "OnnxSampler", "compare_p1"]

WEIGHTS = ("int8", "fp32")
COEF_NAMES = ("t", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
              "posterior_mean_coef1", "posterior_mean_coef2", "posterior_std")
_OPSET = 20


class ConditionGraph(nn.Module):
    """``candidates: (n, 16, s, 3)`` -> ``cond_h: (n, hidden)`` = ``denoiser.project_cond(
    embedding(candidates))``, with the embedding's head and the projection fused."""

    def __init__(self, model: DiffPose) -> None:
        super().__init__()
        emb, den = model.embedding, model.denoiser
        self.embedding = emb
        w_c = den.inp.weight[:, den.config.pose_dim + 1:].double()          # (hidden, cond)
        self.fused = nn.Linear(emb.head.in_features, den.config.hidden)
        with torch.no_grad():
            self.fused.weight.copy_((w_c @ emb.head.weight.double()).float())
            self.fused.bias.copy_((w_c @ emb.head.bias.double() + den.inp.bias.double()).float())

    def forward(self, candidates: torch.Tensor) -> torch.Tensor:
        tok = self.embedding.tokens(candidates)
        if self.embedding.encoder is not None:
            tok = self.embedding.encoder(tok)
        return self.fused(rearrange(tok, "n j d -> n (j d)"))


class StepGraph(nn.Module):
    """One ancestral step: ``x_t, noise: (n, 48)``, ``cond_h: (n, hidden)``, ``coef: (6,)`` ->
    ``x_{t-1}: (n, 48)``; the same operations as ``forward_projected`` + ``schedule.step``."""

    def __init__(self, model: DiffPose) -> None:
        super().__init__()
        d = model.denoiser
        p = d.config.pose_dim
        self.blocks, self.out = d.blocks, d.out     # the trunk; W_c stays in ConditionGraph
        self.w_x = nn.Parameter(d.inp.weight[:, :p].detach().t().contiguous())   # (p, hidden)
        self.w_t = nn.Parameter(d.inp.weight[:, p].detach().clone())             # (hidden,)
        self.clip_x0 = float(model.config.schedule.clip_x0)

    def forward(self, x_t: torch.Tensor, cond_h: torch.Tensor, noise: torch.Tensor,
                coef: torch.Tensor) -> torch.Tensor:
        h = torch.addmm(cond_h + coef[0] * self.w_t, x_t, self.w_x)
        for block in self.blocks:
            h = block(h)
        eps = self.out(h)
        x0 = (coef[1] * x_t - coef[2] * eps).clamp(-self.clip_x0, self.clip_x0)
        return coef[3] * x0 + coef[4] * x_t + coef[5] * noise


def step_coefficients(model: DiffPose) -> torch.Tensor:
    """``(n_steps, 6)`` float32: row t = ``coef`` of :class:`StepGraph` at step t."""
    s = model.schedule
    t = torch.arange(s.n_steps, dtype=torch.float32, device=s.device)
    return torch.stack([t] + [getattr(s, n) for n in COEF_NAMES[1:]], dim=1).cpu()


def _gemm_to_matmul(model):
    """Rewrite ``Gemm(A, B, C)`` (alpha = beta = 1) as ``MatMul(A, B')`` + ``Add(C)``, B' = B^T
    when transB: ``quantize_dynamic`` quantizes MatMul, not Gemm."""
    import numpy as np
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "Gemm":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 \
                or attrs.get("transA", 0):
            raise ValueError(f"Gemm {node.name} has attributes this rewrite does not handle: "
                             f"{attrs}")
        a, b = node.input[0], node.input[1]
        if attrs.get("transB", 0):
            w = numpy_helper.to_array(inits[b]).T
            name = b + "_t"
            model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), name))
            b = name
        mm = node.output[0] + "_mm" if len(node.input) > 2 else node.output[0]
        nodes.append(helper.make_node("MatMul", [a, b], [mm], name=node.name + "_matmul"))
        if len(node.input) > 2:
            nodes.append(helper.make_node("Add", [mm, node.input[2]], [node.output[0]],
                                          name=node.name + "_add"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return model


def _quantize(src: Path, dest: Path, per_channel: bool = True) -> None:
    """int8 dynamic quantisation of the MatMuls whose second input is a weight matrix (not the
    embedding's fixed 64 x 64 grid table, which is exact and tiny)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = _gemm_to_matmul(onnx.load(src))
    inits = {i.name for i in model.graph.initializer}
    nodes = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits
             and not n.input[1].endswith(".table")]
    tmp = dest.with_suffix(".pre.onnx")
    onnx.save(model, tmp)
    quantize_dynamic(tmp, dest, weight_type=QuantType.QInt8, reduce_range=True,
                     per_channel=per_channel, nodes_to_quantize=nodes,
                     op_types_to_quantize=["MatMul"])
    tmp.unlink()


def _export(module: nn.Module, args: tuple, names: list[str], out: str, path: Path) -> None:
    import onnx
    batch = torch.export.Dim("n", min=1, max=100_000)
    shapes = {name: ({0: batch} if name != "coef" else None) for name in names}
    program = torch.onnx.export(module, args, dynamo=True, input_names=names, output_names=[out],
                                dynamic_shapes=shapes, opset_version=_OPSET, verbose=False)
    program.save(str(path))
    onnx.checker.check_model(onnx.load(path))


def export_onnx(model: DiffPose, out_dir: str | Path, weights: str = "int8",
                progress: bool = True, per_channel: bool = True) -> dict:
    """Write ``condition.onnx``, ``step.onnx`` and ``model.json`` into ``out_dir``; returns the
    JSON (with the files' sizes).  ``weights``: ``"int8"`` (browser size) or ``"fp32"``."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().eval()        # the caller's model stays where it is
    cfg = model.config
    n, s, d = 2, cfg.sampling.n_samples, cfg.denoiser.pose_dim
    gen = torch.Generator().manual_seed(0)           # example inputs for tracing only
    cand = torch.rand(n, 16, s, 3, generator=gen)
    cand[..., :2] = torch.randint(0, 64, (n, 16, s, 2), generator=gen) / 32 - 1
    t0 = time.time()
    with torch.no_grad():
        cond_net, step_net = ConditionGraph(model).eval(), StepGraph(model).eval()
        cond_h = cond_net(cand)
        x, noise = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
        coef = step_coefficients(model)[10]
        graphs = {"condition": (cond_net, (cand,), ["candidates"], "cond_h"),
                  "step": (step_net, (x, cond_h, noise, coef), ["x_t", "cond_h", "noise", "coef"],
                           "x_prev")}
        files = {}
        for name, (module, args, names, out) in graphs.items():
            path = out_dir / f"{name}.onnx"
            if weights == "fp32":
                _export(module, args, names, out, path)
            else:
                fp32 = out_dir / f"{name}.fp32.onnx"
                _export(module, args, names, out, fp32)
                _quantize(fp32, path, per_channel)
                fp32.unlink()
            for extra in out_dir.glob(f"{name}.onnx.data"):
                extra.unlink()
            files[name] = {"file": path.name, "bytes": path.stat().st_size}
    meta = {
        "format": 1, "weights": weights, "opset": _OPSET,
        "per_channel": per_channel if weights == "int8" else None,
        "n_steps": model.schedule.n_steps, "coef_names": list(COEF_NAMES),
        "coef": step_coefficients(model).tolist(),
        "pose_dim": cfg.denoiser.pose_dim, "hidden": cfg.denoiser.hidden,
        "pose_scale": cfg.pose_scale, "clip_x0": cfg.schedule.clip_x0,
        "n_samples": cfg.sampling.n_samples, "use_argmax": cfg.sampling.use_argmax,
        "heatmap_size": cfg.embedding.heatmap_size,
        "h36m_names": list(H36M_NAMES), "h36m_parents": list(H36M_PARENTS),
        "mpii_names": list(MPII_NAMES), "mpii_parents": list(MPII_PARENTS),
        "r_hip": R_HIP, "l_hip": L_HIP, "files": files,
        "export_seconds": round(time.time() - t0, 1),
    }
    (out_dir / "model.json").write_text(json.dumps(meta))
    if progress:
        sizes = ", ".join(f"{v['file']} {v['bytes'] / 1e6:.1f} MB" for v in files.values())
        print(f"export-onnx: {weights} weights: {sizes} in {meta['export_seconds']} s")
    return meta


class OnnxSampler:
    """The exported graphs run by onnxruntime, in the page's loop.

    ``sample(heatmaps, n_hypo, generator)`` draws candidates, the initial noise and every step's
    noise in ``DiffPose.sample``'s order (ancestral sampler, float32), so with the same
    generator state both see the same draws.
    """

    def __init__(self, model_dir: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.dir = Path(model_dir)
        self.meta = json.loads((self.dir / "model.json").read_text())
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.sessions = {k: ort.InferenceSession(str(self.dir / v["file"]), opts,
                                                 providers=["CPUExecutionProvider"])
                         for k, v in self.meta["files"].items()}
        self.coef = torch.tensor(self.meta["coef"], dtype=torch.float32)

    def condition(self, candidates: torch.Tensor) -> torch.Tensor:
        """``(n, 16, s, 3)`` -> ``cond_h: (n, hidden)``."""
        out = self.sessions["condition"].run(None, {"candidates": candidates.float().numpy()})
        return torch.from_numpy(out[0])

    def denoise(self, cond_h: torch.Tensor, x: torch.Tensor, noises) -> torch.Tensor:
        """The 25 steps from ``x = x_T: (n, 48)``; ``noises[i]``: the noise of step T-1-i
        (T-1 of them; the last step adds none).  Returns x0 ``(n, 48)``."""
        sess, c = self.sessions["step"], cond_h.numpy()
        x = x.float().numpy()
        zero = torch.zeros_like(torch.from_numpy(x)).numpy()
        for i, t in enumerate(reversed(range(self.meta["n_steps"]))):
            noise = noises[i].float().numpy() if t > 0 else zero
            x = sess.run(None, {"x_t": x, "cond_h": c, "noise": noise,
                                "coef": self.coef[t].numpy()})[0]
        return torch.from_numpy(x)

    def sample(self, heatmaps: torch.Tensor, n_hypo: int = 200,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``heatmaps: (b, 16, 64, 64)`` -> ``(b, n_hypo, 17, 3)`` mm, root-relative."""
        from ..candidates import SamplingConfig

        m = self.meta
        b, d = heatmaps.shape[0], m["pose_dim"]
        cfg = SamplingConfig(n_samples=m["n_samples"], use_argmax=m["use_argmax"])
        cand = sample_candidates(heatmaps.cpu(), n_hypo, cfg, generator=generator)
        cond_h = self.condition(rearrange(cand, "b h j s c -> (b h) j s c"))
        x = torch.randn((b * n_hypo, d), generator=generator)
        noises = [torch.randn((b * n_hypo, d), generator=generator)
                  for _ in range(m["n_steps"] - 1)]
        x0 = self.denoise(cond_h, x, noises)
        return x0_to_poses(rearrange(x0, "(b h) d -> b h d", b=b), m["pose_scale"])


def compare_p1(model: DiffPose, model_dir: str | Path, test, n_hypo: int = 200,
               batch_size: int = 8, seed: int = 0) -> dict:
    """P1 min and median (mm, mean over ``test``'s samples) of PyTorch's ``DiffPose.sample``
    (float32) and of the exported graphs (:class:`OnnxSampler`) with the same generator seed,
    hence the same candidates and noise; with the seconds each took."""
    from ..metrics import p1

    sampler = OnnxSampler(model_dir)
    runs = {"pytorch": lambda hm, g: model.sample(hm, n_hypo, generator=g, autocast_dtype=None),
            "onnx": lambda hm, g: sampler.sample(hm, n_hypo, generator=g)}
    out = {"n_test": len(test), "n_hypo": n_hypo, "seed": seed,
           "weights": sampler.meta["weights"]}
    for name, run in runs.items():
        gen, parts, t0 = torch.Generator().manual_seed(seed), [], time.time()
        for i in range(0, len(test), batch_size):
            pred = run(test.heatmaps[i:i + batch_size], gen)
            parts.append(p1(pred, test.poses_3d_mm[i:i + batch_size]))
        out[name] = {"P1_min": float(torch.cat([q["min"] for q in parts]).mean()),
                     "P1_median": float(torch.cat([q["median"] for q in parts]).mean()),
                     "seconds": round(time.time() - t0, 1)}
    return out
