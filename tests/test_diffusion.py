import pytest
import torch

from dphelpers.diffusion import DiffPose, DiffPoseConfig, config_diff, poses_to_x0, x0_to_poses
from dphelpers.metrics import root_relative
from dphelpers.pipeline import make_test_set
from dphelpers.schedule import ScheduleConfig
from dphelpers.skeleton import L_HIP, R_HIP


def assert_within_clip(poses, cfg, binds=False):
    """The last step returns the clipped x0: every coordinate of the 16 joints lies within
    +-clip_mm = clip_x0 / pose_scale m (1000 mm) before the pelvis, their hips' midpoint, is
    subtracted.  So each coordinate is within 2 clip_mm and each axis spans at most 2 clip_mm
    over the 16 joints; ``binds``: some hypothesis spans exactly that (the clip is active)."""
    clip_mm = cfg.schedule.clip_x0 / cfg.pose_scale * 1000.0
    assert poses.abs().max() <= 2 * clip_mm + 1e-3
    span = poses[:, :, 1:].amax(2) - poses[:, :, 1:].amin(2)      # (b, h, 3)
    assert span.max() <= 2 * clip_mm + 1e-3
    if binds:
        assert span.max() >= 2 * clip_mm - 1e-2
    assert torch.allclose(poses[:, :, R_HIP], -poses[:, :, L_HIP], atol=1e-3)


def test_pose_normalisation_roundtrip():
    g = torch.Generator().manual_seed(0)
    poses = torch.randn(4, 17, 3, generator=g) * 300
    x0 = poses_to_x0(poses)
    assert x0.shape == (4, 48)
    # centred per axis over the 16 non-pelvis joints, metres x 10
    assert torch.allclose(x0.reshape(4, 16, 3).mean(1), torch.zeros(4, 3), atol=1e-5)
    assert torch.allclose(x0_to_poses(x0), root_relative(poses), atol=1e-3)
    with pytest.raises(ValueError, match=r"\(b, 17, 3\)"):
        poses_to_x0(torch.zeros(4, 16, 3))


def test_sample_shapes_seeded_and_root_relative(splits):
    test = make_test_set(splits[1], 3, seed=0)
    torch.manual_seed(0)
    model = DiffPose().eval()
    a = model.sample(test.heatmaps, 5, generator=torch.Generator().manual_seed(1))
    b = model.sample(test.heatmaps, 5, generator=torch.Generator().manual_seed(1))
    c = model.sample(test.heatmaps, 5, generator=torch.Generator().manual_seed(2))
    assert a.shape == (3, 5, 17, 3) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.all(a[:, :, 0] == 0)
    assert_within_clip(a, model.config, binds=True)
    # hypotheses differ from each other
    assert (a[:, 0] - a[:, 1]).abs().max() > 1


def test_trajectory_and_fast_path_equal_plain(splits):
    """The sampling loop with the projected condition equals the plain loop written out."""
    test = make_test_set(splits[1], 2, seed=0)
    torch.manual_seed(0)
    model = DiffPose().eval()
    poses, traj = model.sample(test.heatmaps, 4, generator=torch.Generator().manual_seed(3),
                               return_trajectory=True, autocast_dtype=None)
    assert traj.shape == (26, 2, 4, 17, 3)
    assert torch.allclose(traj[-1], poses)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        cond = model.condition(test.heatmaps, 4, g)
        x = torch.randn((8, 48), generator=g)
        for t in reversed(range(25)):
            eps = model.denoiser(x, torch.full((8,), t), cond)
            x = model.schedule.step(eps, t, x, g)
    plain = x0_to_poses(x.reshape(2, 4, 48))
    assert torch.allclose(plain, poses, atol=0.05)  # mm


def test_loss_decreases_on_one_batch(splits):
    test = make_test_set(splits[0], 32, seed=0)
    torch.manual_seed(0)
    model = DiffPose()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)

    def mean_loss():
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            return sum(model.loss(test.heatmaps, test.poses_3d_mm, generator=g).item() for _ in range(8)) / 8

    first = mean_loss()
    g = torch.Generator().manual_seed(1)
    for _ in range(60):
        loss = model.loss(test.heatmaps, test.poses_3d_mm, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = mean_loss()
    assert first > 0.5 and last < 0.9 * first, (first, last)


def test_config_roundtrip_ablations_and_errors():
    cfg = DiffPoseConfig.ablation("argmax_only")
    assert cfg.sampling.n_samples == 1 and cfg.sampling.use_argmax
    assert DiffPoseConfig.from_dict(cfg.to_dict()) == cfg
    assert not DiffPoseConfig.ablation("no_transformer").embedding.use_transformer
    assert config_diff(cfg.to_dict(), DiffPoseConfig().to_dict()) == ["sampling.n_samples: 1 != 32"]
    with pytest.raises(KeyError, match="unknown DiffPoseConfig key"):
        DiffPoseConfig.from_dict({"bogus": 1})
    with pytest.raises(KeyError, match="unknown EmbeddingConfig key"):
        DiffPoseConfig.from_dict({"embedding": {"d_modell": 1}})
    with pytest.raises(ValueError, match="unknown ablation"):
        DiffPoseConfig.ablation("nope")
    model = DiffPose(cfg).eval()
    hm = torch.rand(2, 16, 64, 64)
    assert model.sample(hm, 3).shape == (2, 3, 17, 3)
    with pytest.raises(ValueError, match="n_hypo"):
        model.sample(hm, 0)


def test_bad_heatmaps_rejected():
    model = DiffPose().eval()
    with pytest.raises(ValueError, match="64"):
        model.sample(torch.rand(1, 16, 32, 32), 2)
    bad = torch.rand(1, 16, 64, 64)
    bad[0, 3, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN|finite"):
        model.sample(bad, 2)
    zero = torch.rand(1, 16, 64, 64)
    zero[0, 2] = 0  # an empty joint is treated as missing, not an error
    assert torch.isfinite(model.sample(zero, 2)).all()


def test_x0_clip_is_the_data_range():
    """Predicted x0 is clipped to +-1 m (network units: x pose_scale), the range of real poses."""
    cfg = DiffPoseConfig()
    assert cfg.schedule.clip_x0 == pytest.approx(1.0 * cfg.pose_scale)
    # a standing pose (legs ~0.9 m below the joints' centre) lies inside the clip ...
    x0 = poses_to_x0(torch.tensor([[[0.0, 0.0, 0.0]] * 8 + [[0.0, -900.0, 0.0]] * 9]))
    assert x0.abs().max() > 3.0  # far beyond the earlier wrong bound of 0.3 m
    assert torch.equal(x0.clamp(-cfg.schedule.clip_x0, cfg.schedule.clip_x0), x0)


def test_bf16_autocast_close_to_float32(splits):
    """bfloat16 sampling (the default where native) stays close to float32 on the same draws."""
    from dphelpers.diffusion import resolve_autocast
    test = make_test_set(splits[1], 2, seed=0)
    torch.manual_seed(0)
    model = DiffPose().eval()
    a = model.sample(test.heatmaps, 4, generator=torch.Generator().manual_seed(3), autocast_dtype=None)
    b = model.sample(test.heatmaps, 4, generator=torch.Generator().manual_seed(3),
                     autocast_dtype=torch.bfloat16)
    assert a.dtype == b.dtype == torch.float32
    assert (a - b).abs().mean() < 0.05 * a.abs().mean()
    assert resolve_autocast(None, torch.device("cpu")) is None
    assert resolve_autocast(torch.float16, torch.device("cpu")) is torch.float16
    assert resolve_autocast("auto", torch.device("cpu")) in (torch.bfloat16, None)


# --- few-step (DDIM) sampling ---------------------------------------------------------------
def test_ddim_all_steps_eta1_equals_ancestral(splits):
    """DDIM over all 25 timesteps with eta = 1 draws the same noise as the ancestral sampler and
    has its mean and std at every step, so the two give the same poses and trajectories."""
    test = make_test_set(splits[1], 2, seed=0)
    torch.manual_seed(0)
    model = DiffPose().eval()
    kw = dict(generator=None, return_trajectory=True, autocast_dtype=None)
    a, ta = model.sample(test.heatmaps, 4, **{**kw, "generator": torch.Generator().manual_seed(4)})
    b, tb = model.sample(test.heatmaps, 4, steps=25, eta=1.0,
                         **{**kw, "generator": torch.Generator().manual_seed(4)})
    assert ta.shape == tb.shape == (26, 2, 4, 17, 3)
    assert torch.allclose(a, b, atol=0.01) and torch.allclose(ta, tb, atol=0.01)  # mm
    # and it really is another computation: eta = 0 over the same steps differs
    c = model.sample(test.heatmaps, 4, generator=torch.Generator().manual_seed(4),
                     autocast_dtype=None, steps=25, eta=0.0)
    assert (a - c).abs().max() > 1


def test_ddim_few_steps_equals_plain_loop_and_eta0_is_deterministic(splits):
    """k = 5, eta = 0: the trajectory has k + 1 entries and equals the DDIM loop written out
    with no generator after the initial noise (nothing random is drawn)."""
    test = make_test_set(splits[1], 2, seed=0)
    torch.manual_seed(0)
    model = DiffPose().eval()
    poses, traj = model.sample(test.heatmaps, 4, generator=torch.Generator().manual_seed(3),
                               return_trajectory=True, autocast_dtype=None, steps=5, eta=0.0)
    assert traj.shape == (6, 2, 4, 17, 3)
    assert torch.allclose(traj[-1], poses)
    assert_within_clip(poses, model.config)
    g = torch.Generator().manual_seed(3)
    ts = model.schedule.ddim_timesteps(5)
    assert ts == [24, 18, 12, 6, 0]
    with torch.no_grad():
        cond = model.condition(test.heatmaps, 4, g)
        x = torch.randn((8, 48), generator=g)
        for t, t_prev in zip(ts, ts[1:] + [-1]):
            eps = model.denoiser(x, torch.full((8,), t), cond)
            x = model.schedule.ddim_step(eps, t, t_prev, x, 0.0, None)
    assert torch.allclose(x0_to_poses(x.reshape(2, 4, 48)), poses, atol=0.05)  # mm


def test_ddim_noise_seeded_and_shapes(splits):
    test = make_test_set(splits[1], 2, seed=0)
    torch.manual_seed(0)
    model = DiffPose().eval()

    def run(seed, **kw):
        return model.sample(test.heatmaps, 3, generator=torch.Generator().manual_seed(seed),
                            autocast_dtype=None, **kw)

    a, b = run(1, steps=5, eta=0.5), run(1, steps=5, eta=0.5)
    assert a.shape == (2, 3, 17, 3) and torch.equal(a, b)
    assert not torch.equal(a, run(1, steps=5, eta=0.0))
    assert not torch.equal(a, run(2, steps=5, eta=0.5))
    one, traj = model.sample(test.heatmaps, 3, generator=torch.Generator().manual_seed(1),
                             steps=1, eta=0.0, return_trajectory=True, autocast_dtype=None)
    assert traj.shape == (2, 2, 3, 17, 3) and torch.isfinite(one).all()
    assert_within_clip(one, model.config)


def test_sample_bad_steps_and_eta():
    model = DiffPose().eval()
    hm = torch.rand(1, 16, 64, 64)
    for steps in (0, 26, -3, 2.5, True, "5"):
        with pytest.raises(ValueError, match=r"steps must be None \(ancestral\) or an int in 1"):
            model.sample(hm, 2, steps=steps)
    for eta in (-0.1, 1.5, float("nan"), True, "0"):
        with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]"):
            model.sample(hm, 2, steps=5, eta=eta)
    with pytest.raises(ValueError, match="needs steps=k"):
        model.sample(hm, 2, eta=0.0)


def test_bound_follows_clip(splits):
    """The output bound comes from clip_x0: a model clipping at 5 cm stays within 10 cm."""
    test = make_test_set(splits[1], 2, seed=0)
    torch.manual_seed(0)
    cfg = DiffPoseConfig(schedule=ScheduleConfig(clip_x0=0.5))
    model = DiffPose(cfg).eval()
    for kw in ({}, {"steps": 5, "eta": 1.0}):
        poses = model.sample(test.heatmaps, 4, generator=torch.Generator().manual_seed(0), **kw)
        assert_within_clip(poses, cfg, binds=True)
        assert poses.abs().max() <= 100.0 + 1e-3
