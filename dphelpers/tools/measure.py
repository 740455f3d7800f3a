"""The benchmark's instruments: FLOP counts, the machine's matrix-product rate, peak memory and
the timing of sampling and training (the ``bench`` verb, :mod:`dphelpers.tools.bench`, runs them;
notebook 05 reads its file; the training profile: :mod:`dphelpers.training.profile`).

Speed is reported as work done per second and as a fraction of what a plain matrix
product of the denoiser's shape reaches in the same run, so that the number says how
close to the machine's limit the implementation runs.  FLOPs are counted analytically
(multiply-add = 2 FLOPs) from the model's settings: the *necessary* work of one
hypothesis is the embedding of its candidates (histogram path), the condition's
share of the denoiser's first layer once, and 25 denoising steps without it.
"""
from __future__ import annotations

import copy
import json
import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch
from torch import nn

from ..diffusion import DiffPose, DiffPoseConfig
from ..pipeline import SampleBatch
from ..samplegraphs import sample_with_graphs
from ..training.train import TrainConfig, new_state, train_step

__all__ = ["sampling_flops", "training_flops", "matmul_rate", "PeakMemory", "bench_sampling",
           "bench_training", "bench_end_to_end", "machine_info", "write_json"]


#: the few-step (DDIM, eta = 1) samplers ``bench`` adds rows for: accuracy of full, speed
FEW_STEPS: tuple[int, ...] = (10, 5)


def _embedding_flops(cfg: DiffPoseConfig) -> float:
    e = cfg.embedding
    j, d = e.n_joints, e.d_model
    hist = 2 * j * 2 * e.heatmap_size * e.n_channels          # histogram x table
    proj = 2 * j * d * d
    if e.use_transformer:
        per_token = 2 * (4 * d * d + 2 * d * e.d_ff)           # qkv + out, feed-forward
        attn = 2 * 2 * j * j * d                               # scores and weighted sum
        enc = e.n_layers * (j * per_token + attn)
    else:
        enc = 0
    head = 2 * j * d * e.cond_dim
    return float(hist + proj + enc + head)


def _step_flops(cfg: DiffPoseConfig, with_cond: bool) -> float:
    n = cfg.denoiser
    inp = n.pose_dim + 1 + (n.cond_dim if with_cond else 0)
    return float(2 * (inp * n.hidden + 2 * n.n_blocks * n.hidden * n.hidden
                      + n.hidden * n.pose_dim))


def sampling_flops(cfg: DiffPoseConfig = DiffPoseConfig(), steps: int | None = None) -> float:
    """Necessary FLOPs of one hypothesis (condition once, then ``steps`` denoiser calls
    without it; None = all of the schedule's 25)."""
    n = cfg.denoiser
    k = cfg.schedule.n_steps if steps is None else steps
    return (_embedding_flops(cfg) + 2 * n.cond_dim * n.hidden
            + k * _step_flops(cfg, with_cond=False))


def training_flops(cfg: DiffPoseConfig = DiffPoseConfig()) -> float:
    """FLOPs of one training sample: forward (embedding + one full denoiser step) x 3 for
    backward."""
    return 3 * (_embedding_flops(cfg) + _step_flops(cfg, with_cond=True))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(rows: int, width: int = 1024, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32, seconds: float = 1.0) -> float:
    """FLOP/s of a plain ``(rows, width) @ (width, width)`` product, timed for about ``seconds``."""
    device = torch.device(device)
    a = torch.randn(rows, width, device=device, dtype=dtype)
    w = torch.randn(width, width, device=device, dtype=dtype)
    for _ in range(3):
        a @ w
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(5):
            a @ w
        n += 5
        _sync(device)
    return 2.0 * rows * width * width * n / (time.perf_counter() - t0)


class PeakMemory:
    """Peak memory above the starting level during a ``with`` block (bytes).

    CUDA: the allocator's peak.  CPU: the process's resident set, polled every millisecond
    in a thread (an estimate; short spikes may be missed).
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.peak = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._proc = psutil.Process()
            self._base = self._proc.memory_info().rss
            self._max = self._base
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._proc.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = self._max - self._base


@dataclass
class SpeedRow:
    """One timing of the benchmark (a row of the results file's ``speed`` list): ``per_second``
    is hypotheses or training steps per second; ``gflops`` the achieved rate, ``matmul_gflops``
    a same-shape matrix product's, ``fraction`` their ratio; ``peak_mb`` in MiB."""

    what: str
    batch: int
    per_second: float
    gflops: float
    matmul_gflops: float
    fraction: float
    peak_mb: float

    def as_dict(self) -> dict:
        """The row as a plain dict (field name -> value), for the JSON results file."""
        return dict(vars(self))


def bench_sampling(model: DiffPose, heatmaps: torch.Tensor, batch: int, n_hypo: int = 200,
                   repeats: int = 3, autocast_dtype: torch.dtype | None = None, seed: int = 0,
                   steps: int | None = None, eta: float = 1.0, graphs: bool = False) -> SpeedRow:
    """Hypotheses per second for ``batch`` images x ``n_hypo`` hypotheses (best of ``repeats``).

    ``steps=k``: the k-step DDIM sampler with noise ``eta`` (``DiffPose.sample``); None: the
    25-step ancestral one.  ``graphs``: the ancestral sampler compiled as one graph
    (:func:`~dphelpers.samplegraphs.sample_with_graphs`; CUDA graphs on a GPU), compiled in
    the warm-up call.
    """
    if graphs and steps is not None:
        raise ValueError("bench_sampling: graphs=True runs the ancestral sampler (steps=None)")
    device = model.device
    hm = heatmaps[:batch].to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    kw = {} if steps is None else {"steps": steps, "eta": eta}

    def run():
        if graphs:
            return sample_with_graphs(model, hm, n_hypo, gen, autocast_dtype=autocast_dtype)
        return model.sample(hm, n_hypo, generator=gen, autocast_dtype=autocast_dtype, **kw)

    run()                                                                 # warm-up
    _sync(device)
    best = float("inf")
    with PeakMemory(device) as mem:
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            _sync(device)
            best = min(best, time.perf_counter() - t0)
    hyp_s = batch * n_hypo / best
    flops = hyp_s * sampling_flops(model.config, steps)
    ref = matmul_rate(batch * n_hypo, model.config.denoiser.hidden, device,
                      autocast_dtype or torch.float32)
    name = "sample" + (f" ({str(autocast_dtype).split('.')[-1]})" if autocast_dtype else "")
    if steps is not None:
        name += f" {steps} DDIM eta={eta:g}"
    if graphs:
        name += ", one compiled graph"
    return SpeedRow(name, batch, hyp_s, flops / 1e9, ref / 1e9, flops / ref, mem.peak / 2**20)


def _time_training(model: nn.Module, config: TrainConfig, next_batch, b: int, name: str,
                   steps: int, repeats: int) -> SpeedRow:
    """Steps per second of ``train_step(state, next_batch(), config)`` on a COPY of ``model``:
    3 warm-up steps, then the best of ``repeats`` timings of ``steps`` steps, as a row with the
    step's GFLOP/s against a same-shape matrix product at batch ``b``."""
    device = model.device
    work = copy.deepcopy(model).train()
    state = new_state(work, torch.Generator(device=device).manual_seed(0), config)
    for _ in range(3):
        train_step(state, next_batch(), config)
    _sync(device)
    best = float("inf")
    with PeakMemory(device) as mem:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                train_step(state, next_batch(), config)
            _sync(device)
            best = min(best, (time.perf_counter() - t0) / steps)
    flops = b * training_flops(model.config) / best if hasattr(model.config, "embedding") else 0.0
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32
    ref = matmul_rate(b, 1024, device, dtype)
    return SpeedRow(name, b, 1 / best, flops / 1e9, ref / 1e9, flops / ref, mem.peak / 2**20)


def bench_training(model: nn.Module, batch: SampleBatch, steps: int = 20,
                   config: TrainConfig | None = None, repeats: int = 1) -> SpeedRow:
    """Training steps per second of :func:`dphelpers.training.train.train_step` (forward, backward,
    clipping, Adam, EMA; ``config.precision``, default :class:`TrainConfig`'s) on one
    pre-built batch, on a COPY of ``model`` (the caller's weights are untouched).  Best of
    ``repeats`` timings of ``steps`` steps."""
    config = TrainConfig() if config is None else config
    batch = batch.to(model.device)
    name = "train step" + (" (bf16)" if config.precision == "bf16" else "")
    return _time_training(model, config, lambda: batch, len(batch), name, steps, repeats)


def bench_end_to_end(model: nn.Module, stream, config: TrainConfig, steps: int = 20,
                     repeats: int = 1) -> SpeedRow:
    """What training gets end to end: steps per second of drawing a batch from ``stream`` (a
    :class:`~dphelpers.pipeline.TrainStream`, its generator advanced) *and* running
    :func:`~dphelpers.training.train.train_step` on it (``config``: batch size, precision, compile),
    on a COPY of ``model``.  Best of ``repeats`` timings of ``steps`` steps, after 3 warm-up
    steps (with ``config.compile`` those include the compilation)."""
    b = config.batch_size
    name = ("end to end (stream + step" + (", bf16" if config.precision == "bf16" else "")
            + (", compiled" if config.compile else "")
            + (", whole step compiled (graphs)" if config.graphs else "")
            + (", prefetch" if getattr(stream, "prefetch", False) else "") + ")")
    return _time_training(model, config, lambda: stream.next_batch(b), b, name, steps, repeats)



def machine_info(device: str | torch.device = "cpu") -> dict:
    """What the numbers were measured on: torch version, CPU threads and cores, the CPU, the
    device and, on CUDA, the GPU's name (the results file's ``machine`` entry)."""
    device = torch.device(device)
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
            "cpu": platform.processor() or platform.machine(),
            "cores": psutil.cpu_count(logical=True)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON to ``path`` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    return path
