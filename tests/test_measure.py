"""The benchmark's FLOP counts against PyTorch's own counter, and its measurements' side effects."""
import time
from dataclasses import replace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dphelpers.candidates import sample_candidates
from dphelpers.diffusion import DiffPose, DiffPoseConfig
from dphelpers.pipeline import TrainStream, make_test_set
from dphelpers.tools import measure
from dphelpers.training.train import TrainConfig


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_flop_counts_match_torch_flop_counter():
    """The analytic counts equal what torch counts on the real computation (matmuls)."""
    torch.manual_seed(0)
    for name in ("full", "no_transformer"):
        model = DiffPose(DiffPoseConfig.ablation(name)).eval()
        cfg = model.config
        n = 8
        x = torch.randn(n, 48)
        cond = torch.randn(n, 2048)
        with torch.no_grad():
            cond_h = model.denoiser.project_cond(cond)
            step = _counted(lambda: model.denoiser.forward_projected(x, 3, cond_h))
            plain = _counted(lambda: model.denoiser(x, 3, cond))
            proj = _counted(lambda: model.denoiser.project_cond(cond))
            cand = sample_candidates(torch.rand(1, 16, 64, 64), n,
                                     generator=torch.Generator().manual_seed(0))[0]
            # train mode without dropout: the encoder runs its plain path, which the counter
            # sees (in eval mode PyTorch's fused "fast path" hides the encoder's matmuls)
            plain_emb = type(model.embedding)(replace(cfg.embedding, dropout=0.0,
                                                      joint_dropout=0.0)).train()
            emb = _counted(lambda: plain_emb(cand))
        # the projected step adds the timestep column as a multiply-add, not a matmul:
        # the count includes its 2 x 1024 FLOPs, torch's counter does not
        assert step == n * (measure._step_flops(cfg, with_cond=False) - 2 * 1024)
        assert plain == n * measure._step_flops(cfg, with_cond=True)
        assert proj == n * 2 * 2048 * 1024
        # histogram x table, projection, encoder, head: within 2% of torch's count
        assert abs(emb - n * measure._embedding_flops(cfg)) <= 0.02 * emb, (name, emb)
    # REFERENCE.md: ~13 MFLOP per plain denoising step
    assert 12.5e6 < measure._step_flops(DiffPoseConfig(), with_cond=True) < 13.1e6


def test_peak_memory_sees_an_allocation():
    with measure.PeakMemory("cpu") as mem:
        x = torch.ones(64, 2**20)  # 256 MB
        x += 1
        time.sleep(0.05)
    del x
    assert mem.peak > 100 * 2**20


def test_bench_training_leaves_the_callers_model_alone(splits):
    torch.manual_seed(0)
    model = DiffPose().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = TrainStream(splits[0][:100], seed=0).next_batch(4)
    row = measure.bench_training(model, batch, steps=2, config=TrainConfig(precision="bf16"))
    assert row.what == "train step (bf16)" and row.batch == 4 and row.per_second > 0
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_bench_sampling_row(splits):
    test = make_test_set(splits[1], 4)
    model = DiffPose().eval()
    row = measure.bench_sampling(model, test.heatmaps, 2, n_hypo=4, repeats=1)
    assert row.what == "sample" and row.batch == 2 and row.per_second > 0
    assert row.matmul_gflops > 0 and 0 < row.fraction
    assert measure.matmul_rate(16, 64, seconds=0.05) > 0
    few = measure.bench_sampling(model, test.heatmaps, 2, n_hypo=4, repeats=1, steps=5)
    assert few.what == "sample 5 DDIM eta=1" and few.per_second > 0
    # necessary work: the condition once, then one denoiser call per step
    cfg = model.config
    saved = measure.sampling_flops(cfg) - measure.sampling_flops(cfg, steps=5)
    assert saved == 20 * measure._step_flops(cfg, with_cond=False)


def test_profile_training_names_the_phases(splits):
    from dphelpers.pipeline import TrainStream
    from dphelpers.training.train import TrainConfig
    torch.manual_seed(0)
    model = DiffPose()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from dphelpers.training.profile import profile_training
    rows = profile_training(model, TrainStream(splits[0][:100], seed=0),
                                  TrainConfig(precision="bf16"), steps=2, batch_size=4)
    parts = {r["part"]: r for r in rows}
    for p in ("forward", "candidates", "embedding", "denoiser", "backward", "clip",
              "optimizer", "ema"):
        assert parts[f"step: {p}"]["ms_per_step"] > 0, p
    assert "op: dropout masks (bernoulli_)" in parts
    whole = parts["whole step (profiled)"]["ms_per_step"]
    for p in ("candidates", "embedding", "denoiser"):                  # the phases nest (each
        assert parts[f"step: {p}"]["ms_per_step"] <= parts["step: forward"]["ms_per_step"], p
    # alone: their sum can pass the forward's time under load, when threads overlap)
    assert parts["step: forward"]["ms_per_step"] < whole * 1.05
    total = parts["simulated batch (data stream)"]["share"] + parts["whole step (profiled)"][
        "share"]
    assert total == pytest.approx(1.0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # a copy


def test_the_step_phases_are_clocked_and_the_largest_entry_of_a_name_wins(splits):
    """train_step's own phases are timed by a PhaseClock (GPU time on CUDA, wall time here):
    each is positive and together they fit in the whole step; a clock left off is detached."""
    from types import SimpleNamespace

    from dphelpers.pipeline import TrainStream
    from dphelpers.training.phases import PhaseClock
    from dphelpers.training.profile import CLOCKED_PHASES, per_key_ms, profile_training
    from dphelpers.training.train import TrainConfig

    torch.manual_seed(0)
    rows = profile_training(DiffPose(), TrainStream(splits[0][:100], seed=0),
                            TrainConfig(), steps=2, batch_size=4)
    parts = {r["part"]: r["ms_per_step"] for r in rows}
    clocked = [parts[f"step: {p}"] for p in CLOCKED_PHASES]
    assert all(ms > 0 for ms in clocked)
    assert sum(clocked) <= parts["whole step (profiled)"] * 1.001
    clock = PhaseClock("cpu")
    for _ in range(2):
        with clock.time("a"):
            with clock.time("b"):
                pass
    totals = clock.totals_ms()
    assert set(totals) == {"a", "b"} and totals["a"] >= totals["b"] >= 0
    # a labelled range has a host entry and, on CUDA, a GPU entry of the same name
    events = [SimpleNamespace(key="forward", device_time_total=9000.0),
              SimpleNamespace(key="forward", device_time_total=0.0)]
    assert per_key_ms(events, "device_time_total", 3) == {"forward": 3.0}
