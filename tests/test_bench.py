import torch

from dphelpers import bench
from dphelpers.diffusion import DiffPose, DiffPoseConfig
from dphelpers.pipeline import make_test_set


def test_flop_counts_match_reference():
    cfg = DiffPoseConfig()
    # REFERENCE.md: ~13 MFLOP per plain denoising step, ~254 MFLOP necessary per hypothesis
    assert abs(bench._step_flops(cfg, with_cond=True) - 12.78e6) < 0.05e6
    assert 245e6 < bench.sampling_flops(cfg) < 262e6
    # the condition's share is 2 * 2048 * 1024 FLOPs per step saved 24 times
    saved = 25 * bench._step_flops(cfg, True) - (25 * bench._step_flops(cfg, False) + 2 * 2048 * 1024)
    assert abs(saved - 24 * 2 * 2048 * 1024) < 1
    # an argmax-only model does the same work per hypothesis (one candidate instead of 32 is free here)
    assert bench.sampling_flops(DiffPoseConfig.ablation("argmax_only")) == bench.sampling_flops(cfg)
    assert bench.sampling_flops(DiffPoseConfig.ablation("no_transformer")) < bench.sampling_flops(cfg)


def test_peak_memory_sees_an_allocation():
    with bench.PeakMemory("cpu") as mem:
        x = torch.ones(64, 2**20)  # 256 MB
        x += 1
        import time
        time.sleep(0.05)
    del x
    assert mem.peak > 100 * 2**20


def test_bench_rows_are_consistent(splits):
    test = make_test_set(splits[1], 4)
    model = DiffPose().eval()
    row = bench.bench_sampling(model, test.heatmaps, 2, n_hypo=4, repeats=1)
    assert row.batch == 2 and row.per_second > 0 and row.matmul_gflops > 0
    assert abs(row.gflops - row.per_second * bench.sampling_flops(model.config) / 1e9) < 1e-6 * row.gflops + 1e-9
    assert abs(row.fraction - row.gflops / row.matmul_gflops) < 1e-9
    assert bench.matmul_rate(16, 64, seconds=0.05) > 0
