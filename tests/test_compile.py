"""The training step and the sampler without host synchronisation: torch.compile takes them
whole (fullgraph=True) on the CPU, and compiled equals eager in float32."""
import pytest
import torch

from dphelpers.diffusion import DiffPose, DiffPoseConfig
from dphelpers.pipeline import TrainStream
from dphelpers.training.train import TrainConfig, compiled_loss, new_state, scaled_lr, train_step
from tests.test_cli import TINY


@pytest.fixture(scope="module")
def stream():
    from dphelpers.data import load_mocap, split_clips
    train_m, _ = split_clips(load_mocap())
    return TrainStream(train_m, seed=3)


def _model():
    torch.manual_seed(0)
    return DiffPose(TINY).train()


def test_the_pure_loss_equals_the_loss(stream):
    """loss() = draw_training_noise + loss_from: the same draws in the same order."""
    model = _model()
    batch = stream.next_batch(8)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.manual_seed(11)
    a = model.loss(batch.heatmaps, batch.poses_3d_mm, g1)
    torch.manual_seed(11)
    b = model.loss_from(*model.draw_training_noise(batch.heatmaps, g2), batch.poses_3d_mm)
    assert torch.equal(a, b)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_loss_and_reverse_step_compile_whole_and_match_eager(stream):
    """fullgraph=True fails on any graph break (a .item(), a bool(tensor), a generator); the
    compiled loss and its gradients equal eager ones (same dropout stream)."""
    model = _model()
    batch = stream.next_batch(8)
    draws = model.draw_training_noise(batch.heatmaps, torch.Generator().manual_seed(1))
    compiled = torch.compile(model.loss_from, fullgraph=True, backend="aot_eager", dynamic=False)
    results = []
    for fn in (model.loss_from, compiled):
        model.zero_grad()
        torch.manual_seed(7)                           # dropout draws from the global stream
        loss = fn(*draws, batch.poses_3d_mm)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (la, ga), (lb, gb) = results
    torch.testing.assert_close(la, lb, rtol=1e-6, atol=1e-7)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    model.eval()
    with torch.no_grad():
        cond_h = model.denoiser.project_cond(model.condition(batch.heatmaps[:2], 3))
        x = torch.randn(6, 48, generator=torch.Generator().manual_seed(2))
        noise = torch.randn(6, 48, generator=torch.Generator().manual_seed(3))
        step = torch.compile(model.reverse_step, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(step(x, 12, cond_h, noise),
                                   model.reverse_step(x, 12, cond_h, noise), rtol=1e-6, atol=1e-6)


def test_sampling_is_unchanged_by_the_reverse_step(stream):
    """sample() draws each step's noise ahead and calls reverse_step: the same poses as the
    schedule's own ancestral step drawing its noise inside."""
    model = _model().eval()
    hm = stream.next_batch(2).heatmaps
    poses = model.sample(hm, 5, generator=torch.Generator().manual_seed(4), autocast_dtype=None)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        cond_h = model.denoiser.project_cond(model.condition(hm, 5, gen))
        x = torch.randn(10, 48, generator=gen)
        for t in reversed(range(model.schedule.n_steps)):
            eps = model.denoiser.forward_projected(x, t, cond_h)
            x = model.schedule.step(eps, t, x, gen)
    from dphelpers.diffusion import x0_to_poses
    assert torch.equal(poses, x0_to_poses(x.reshape(2, 5, 48), model.config.pose_scale))


def test_a_compiled_training_step_matches_the_eager_one(stream):
    """train_step with config.compile (inductor, random ops as in eager) against the eager
    step: the same loss and weights after two steps, in float32."""
    import torch._inductor.config as inductor_config
    losses, weights = [], []
    for use_compile in (False, True):
        model = _model()
        config = TrainConfig(batch_size=4, precision="fp32", compile=use_compile)
        state = new_state(model, torch.Generator().manual_seed(9), config)
        s = TrainStream(stream.poses.numpy(), seed=2)
        with inductor_config.patch(fallback_random=True):
            out = [train_step(state, s.next_batch(4), config) for _ in range(2)]
        losses.append(torch.stack(out))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    # Adam moves every weight by about lr = 1e-4 per step whatever its gradient's size, so a
    # weight whose gradient is near zero can take a rounding-sized difference in the gradient
    # into its step (seen: 3 of 70,000 weights 1.7e-6 apart); a wrong step is ~1e-4 off
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-4, atol=2e-5)
    assert compiled_loss(model) is compiled_loss(model)          # compiled once per model


def test_warmup_and_the_large_batch_rule():
    c = TrainConfig(lr=2e-4, warmup_steps=4, precision="fp32")
    assert [c.lr_at(s) for s in range(5)] == pytest.approx([5e-5, 1e-4, 1.5e-4, 2e-4, 2e-4])
    assert TrainConfig(precision="fp32").lr_at(123_456) == 1e-4
    assert scaled_lr(64) == 1e-4 and scaled_lr(512) == pytest.approx(8e-4)
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        TrainConfig(warmup_steps=-1, precision="fp32")


def _whole_and_resumed(tmp_path, poses, config, half: int):
    """``config.steps`` in one go (a.pt) and ``half`` steps + a resume (b.pt): the whole run's
    result, the resumed run's, and both checkpoints."""
    from dphelpers.models.checkpoint import read_checkpoint
    from dphelpers.training.train import fit
    whole = fit(_model(), TrainStream(poses, seed=1), config, tmp_path / "a.pt", progress=False)
    fit(_model(), TrainStream(poses, seed=1), config.replace(steps=half), tmp_path / "b.pt",
        progress=False)
    resumed = fit(_model(), TrainStream(poses, seed=1), config, tmp_path / "b.pt", progress=False)
    return whole, resumed, read_checkpoint(tmp_path / "a.pt"), read_checkpoint(tmp_path / "b.pt")


def test_a_chunked_stream_resumes_exactly_and_refuses_misaligned_checkpoints(tmp_path, stream):
    """stream_chunk=4: 8 steps in one go equal 4 steps + resume; checkpoints must fall between
    chunks."""
    from dphelpers.training.train import fit
    poses = stream.poses.numpy()
    config = TrainConfig(steps=8, batch_size=4, precision="fp32", ckpt_every=4, stream_chunk=4)
    whole, resumed, a, b = _whole_and_resumed(tmp_path, poses, config, half=4)
    assert resumed.resumed_from == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    unchunked = fit(_model(), TrainStream(poses, seed=1), config.replace(stream_chunk=1),
                    progress=False)
    assert not torch.equal(next(whole.model.parameters()), next(unchunked.model.parameters()))
    with pytest.raises(ValueError, match="stream_chunk must be >= 1 and divide ckpt_every"):
        config.replace(stream_chunk=3)
    with pytest.raises(ValueError, match="must be multiples of stream_chunk=4"):
        fit(_model(), TrainStream(poses, seed=1), config.replace(steps=6), progress=False)


def test_a_chunk_hands_out_slices_of_one_simulation(stream):
    poses = stream.poses.numpy()
    chunked, plain = TrainStream(poses, seed=5, chunk=3), TrainStream(poses, seed=5)
    parts = [chunked.next_batch(2) for _ in range(3)]
    assert chunked.at_chunk_boundary
    one = plain.next_batch(6)                      # the same draws: one batch of 3 x 2
    assert torch.equal(torch.cat([p.heatmaps for p in parts]), one.heatmaps)
    assert torch.equal(chunked.generator.get_state(), plain.generator.get_state())


def test_the_ema_update_equals_averaged_models_own(stream):
    """ema_update (the caller says which update is the first) gives AveragedModel's tensors bit
    for bit, n_averaged included, without reading n_averaged back."""
    from dphelpers.training.state import ema_update, make_ema
    model = _model()
    ours, theirs = make_ema(model, 0.9), make_ema(model, 0.9)
    gen = torch.Generator().manual_seed(3)
    for i in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=gen))
        theirs.update_parameters(model)
        ema_update(ours, model, 0.9, first=i == 0)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["n_averaged"]) == 3


def test_the_graphs_step_matches_eager_compiles_once_and_resumes_exactly(tmp_path, stream):
    """TrainConfig.graphs (the whole step compiled in reduce-overhead mode; CUDA graphs on a
    GPU, plain compiled code here) against the eager step over 4 steps with a warm-up that
    changes the learning rate every step: the same losses, weights and EMA within float
    rounding, no recompilation (the rate is a tensor), and 2 steps + resume = 4 steps, bit for
    bit."""
    import torch._dynamo
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config
    from dphelpers.models.checkpoint import read_checkpoint
    from dphelpers.training.train import fit
    poses = stream.poses.numpy()
    base = TrainConfig(steps=4, batch_size=4, precision="fp32", warmup_steps=3, ckpt_every=2,
                       log_every=1)
    runs = {}
    with inductor_config.patch(fallback_random=True):
        runs["eager"] = fit(_model(), TrainStream(poses, seed=1), base, progress=False)
        torch._dynamo.reset()
        with dynamo_config.patch(error_on_recompile=True):
            runs["graphs"] = fit(_model(), TrainStream(poses, seed=1), base.replace(graphs=True),
                                 tmp_path / "whole.pt", progress=False)
        fit(_model(), TrainStream(poses, seed=1), base.replace(graphs=True, steps=2),
            tmp_path / "half.pt", progress=False)
        resumed = fit(_model(), TrainStream(poses, seed=1), base.replace(graphs=True),
                      tmp_path / "half.pt", progress=False)
    assert resumed.resumed_from == 2
    eager, graphs = runs["eager"], runs["graphs"]
    torch.testing.assert_close(torch.tensor(graphs.losses), torch.tensor(eager.losses),
                               rtol=1e-5, atol=1e-6)
    for a, b in ((eager.model, graphs.model), (eager.ema, graphs.ema)):
        torch.testing.assert_close(torch.cat([p.detach().flatten() for p in a.parameters()]),
                                   torch.cat([p.detach().flatten() for p in b.parameters()]),
                                   rtol=1e-4, atol=2e-5)
    whole, half = read_checkpoint(tmp_path / "whole.pt"), read_checkpoint(tmp_path / "half.pt")
    for key in ("model", "ema"):
        assert all(torch.equal(whole[key][k], half[key][k]) for k in whole[key])
    assert whole["ema_n_averaged"] == 4
    lr = whole["optimizer"]["param_groups"][0]["lr"]
    assert float(lr) == pytest.approx(1e-4)


def test_graphs_refuses_a_model_without_split_draws():
    from dphelpers.lifter import Lifter
    model = Lifter()
    config = TrainConfig(batch_size=2, precision="fp32", graphs=True)
    state = new_state(model, torch.Generator().manual_seed(0), config)
    with pytest.raises(ValueError, match="graphs needs a DiffPose model"):
        train_step(state, None, config)


def test_a_prefetching_stream_hands_out_the_same_batches(stream):
    """set_prefetch: the next chunk is simulated in a thread, the batches are those of the
    plain stream (chunk 1 and 2, a batch-size change included), and rng_state() is the state
    as of the batches handed out."""
    poses = stream.poses.numpy()
    for chunk in (1, 2):
        plain, ahead = TrainStream(poses, seed=4, chunk=chunk), TrainStream(poses, seed=4,
                                                                            chunk=chunk)
        ahead.set_prefetch(True)
        for b in (3, 3, 3, 3, 5, 5):
            x, y = plain.next_batch(b), ahead.next_batch(b)
            assert torch.equal(x.heatmaps, y.heatmaps) and torch.equal(x.poses_3d_mm,
                                                                       y.poses_3d_mm)
        assert torch.equal(ahead.rng_state(), plain.generator.get_state())
        # the next chunk is simulated ahead; on a busy CPU its thread may not have begun yet
        assert ahead.pending
        ahead.wait_pending()
        assert not torch.equal(ahead.generator.get_state(), plain.generator.get_state())
        assert torch.equal(ahead.rng_state(), plain.generator.get_state())
        ahead.set_prefetch(False)
        assert not ahead.pending
        assert torch.equal(ahead.generator.get_state(), plain.generator.get_state())


def test_prefetch_training_resumes_exactly(tmp_path, stream):
    config = TrainConfig(steps=4, batch_size=4, precision="fp32", ckpt_every=2, prefetch=True)
    _, resumed, a, b = _whole_and_resumed(tmp_path, stream.poses.numpy(), config, half=2)
    assert resumed.resumed_from == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["stream_rng"], b["stream_rng"])


def test_the_graphed_sampler_draws_like_sample_and_matches_its_poses(stream):
    """sample_with_graphs draws the same numbers as sample() (eager, same generator) and its
    compiled denoising gives the same poses within float rounding, compiled once."""
    from dphelpers.samplegraphs import denoise_from, draw_sampling_noise, sample_with_graphs

    model = _model().eval()
    hm = stream.next_batch(2).heatmaps
    want = model.sample(hm, 3, generator=torch.Generator().manual_seed(4), autocast_dtype=None)
    with torch.no_grad():
        draws = draw_sampling_noise(model, hm, 3, torch.Generator().manual_seed(4))
        eager = denoise_from(model, *draws)
    from dphelpers.diffusion import x0_to_poses
    assert torch.equal(x0_to_poses(eager.reshape(2, 3, 48), model.config.pose_scale), want)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        for seed in (4, 5):
            got = sample_with_graphs(model, hm, 3, torch.Generator().manual_seed(seed),
                                     autocast_dtype=None, backend="aot_eager")
            again = model.sample(hm, 3, generator=torch.Generator().manual_seed(seed),
                                 autocast_dtype=None)
            torch.testing.assert_close(got, again, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="eval mode"):
        sample_with_graphs(model.train(), hm, 3, backend="aot_eager")


def test_a_copied_model_compiles_its_own_loss_not_the_originals():
    """compiled_loss is kept on the model; a deepcopy must not run the original's weights."""
    import copy

    from dphelpers.training.graphs import compiled_loss

    model = _model()
    first = compiled_loss(model)
    assert compiled_loss(model) is first
    twin = copy.deepcopy(model)
    assert compiled_loss(twin) is not first
    assert compiled_loss(twin).__wrapped__.__self__ is twin
