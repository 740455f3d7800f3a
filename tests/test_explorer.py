import ipywidgets as widgets
import numpy as np
import pytest
import torch

from dphelpers.denoiser import DenoiserConfig
from dphelpers.diffusion import DiffPose, DiffPoseConfig
from dphelpers.embedding import EmbeddingConfig
from dphelpers.evaluation.explorer import (PoseExplorer, _chains, explorer_figure, pose_explorer,
                                           trajectory_figure)
from dphelpers.pipeline import make_test_set
from dphelpers.skeleton import H36M_BONES


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)   # weight initialisation of the untrained stand-in only
    cfg = DiffPoseConfig(embedding=EmbeddingConfig(n_channels=16, d_model=32, n_heads=2, n_layers=1, d_ff=64, cond_dim=64),
                         denoiser=DenoiserConfig(cond_dim=64, hidden=64))
    return DiffPose(cfg).eval()


@pytest.fixture(scope="module")
def test_set(splits):
    return make_test_set(splits[1], n=6, seed=3)


@pytest.fixture
def counted(model, monkeypatch):
    """The model, with a counter of its ``sample`` calls."""
    calls = []
    original = model.sample

    def sample(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else kwargs.get("n_hypo"))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "sample", sample)
    monkeypatch.setenv("DPHELPERS_PLOTLY", "html")   # outside IPython: display nothing
    return model, calls


def _trajectory(n_frames=26, h=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 200, (n_frames, h, 17, 3)).astype(np.float32)


def test_chains_cover_every_bone_once():
    bones = set()
    for side in ("left", "right", "centre"):
        for chain in _chains(side):
            bones |= {(a, b) for a, b in zip(chain[:-1], chain[1:])}
    assert bones == set(H36M_BONES)
    assert _chains("centre") == [[0, 7, 8, 9, 10]]


def test_trajectory_figure_frames_slider_and_fixed_ranges():
    traj = _trajectory()
    gt = np.zeros((17, 3), np.float32)
    gt[10] = [0, -900, 0]                                    # a head 900 mm up (camera y down)
    fig = trajectory_figure(traj, gt, max_hypotheses=5, title="t")
    assert len(fig.frames) == 26
    assert len(fig.layout.sliders) == 1 and len(fig.layout.sliders[0].steps) == 26
    assert fig.layout.sliders[0].active == 25
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["play", "pause"]
    assert len(fig.data) == 6 and all(list(f.traces) == [3, 4, 5] for f in fig.frames)
    scene = fig.layout.scene
    # a fixed 2 m cube around the ground truth: noisy steps and outliers never rescale it
    centre = [0.0, 0.0, 450.0]                                # gt drawn as (x, z, -y)
    for axis, c in zip((scene.xaxis, scene.yaxis, scene.zaxis), centre):
        lo, hi = axis.range
        assert axis.autorange is False
        assert hi - lo == pytest.approx(2000, abs=2) and (lo + hi) / 2 == pytest.approx(c, abs=1)
    assert scene.zaxis.range[1] >= 900                       # the gt's head, drawn as -y
    assert all(f.layout.scene.xaxis.range is None for f in fig.frames)   # frames keep it
    # legend: one entry per kind, named for what it is
    assert [t.name for t in fig.data if t.showlegend] == ["ground truth", "hypotheses (5)"]
    # frame k holds step k, rounded to mm, 5 hypotheses x 5 chains, None-separated
    right = fig.frames[3].data[1]
    assert sum(v is None for v in right.x) == 5 * 2
    assert right.x[0] == int(np.rint(traj[3, 0, 0, 0]))       # chain [0, 1, 2, 3] starts at pelvis
    assert right.y[1] == int(np.rint(traj[3, 0, 1, 2]))       # plot y = depth z
    assert len(fig.frames[0].data) == 3


def test_trajectory_figure_without_gt_and_bad_input():
    fig = trajectory_figure(_trajectory(n_frames=4, h=2))
    assert len(fig.frames) == 4 and len(fig.data) == 3
    assert all(list(f.traces) == [0, 1, 2] for f in fig.frames)
    with pytest.raises(ValueError, match=r"trajectory must have shape \(n_steps \+ 1, h, 17, 3\)"):
        trajectory_figure(np.zeros((26, 17, 3)))
    with pytest.raises(ValueError, match="gt_mm must have shape"):
        trajectory_figure(_trajectory(), np.zeros((16, 3)))
    with pytest.raises(ValueError, match="NaN"):
        trajectory_figure(np.full((2, 1, 17, 3), np.nan))


def test_explorer_figure_one_button_per_index(counted, test_set):
    model, calls = counted
    fig = explorer_figure(model, test_set, [0, 2, 5], n_hypo=4,
                          generator=torch.Generator().manual_seed(1))
    assert calls == [4]                                       # all samples in one call
    buttons = fig.layout.updatemenus[0].buttons
    assert len(buttons) == 3 and len(fig.data) == 18
    assert [t.visible for t in fig.data[:6]] == [True] * 6 and not any(t.visible for t in fig.data[6:])
    vis = buttons[1].args[0]["visible"]
    assert vis == [j // 6 == 1 for j in range(18)]
    assert buttons[1].label.startswith("sample 2")
    with pytest.raises(ValueError, match="indices must be"):
        explorer_figure(model, test_set, [0, 6])


def test_pose_explorer_controls_cache_and_timestep(counted, test_set):
    model, calls = counted
    ex = pose_explorer(model, test_set, generator=torch.Generator().manual_seed(0), max_hypo=12)
    assert isinstance(ex, widgets.Widget) and isinstance(ex, PoseExplorer)
    assert calls == [] and ex.figure is None                  # construction samples nothing
    assert (ex.n_hypo.min, ex.n_hypo.max) == (1, 12)
    assert (ex.step.min, ex.step.max, ex.step.value) == (0, 25, 25)
    assert ex.step.continuous_update is False                 # redraws on release only
    assert [v for _, v in ex.sample.options] == list(range(len(test_set)))
    marked = [label.endswith("(ambiguous)") for label, _ in ex.sample.options]
    assert marked == test_set.ambiguous.tolist()
    assert isinstance(ex.resample, widgets.Button)

    ex.n_hypo.value = 3                                        # before the first display: no sampling
    assert calls == [] and ex.figure is None
    ex.refresh()                                               # as on first display: sample (0, 3)
    assert calls == [3]
    # the figure is set as the Output's one display (no capture context: see _redraw)
    (shown,) = ex.cloud_out.outputs
    assert shown["output_type"] == "display_data"
    assert "application/vnd.plotly.v1+json" in shown["data"] or "text/html" in shown["data"]
    (maps,) = ex.heatmaps_out.outputs
    final = ex.figure
    ex.step.value = 0                                          # pure noise: redraw only
    assert calls == [3] and ex.figure is not final
    assert "after 0 of 25" in ex.figure.layout.title.text
    assert ex.figure.layout.scene.xaxis.range == final.layout.scene.xaxis.range  # fixed box
    assert ex.figure.data[3].x != final.data[3].x
    traj = ex.trajectory()
    assert traj.shape == (26, 3, 17, 3)
    assert ex.figure.data[4].x[1] == int(np.rint(traj[0, 0, 1, 0]))   # right chain: pelvis, RHip, ...
    ex.step.value = 10
    ex.n_hypo.value = 3                                        # unchanged value: no event
    assert calls == [3]
    ex.resample.click()
    assert calls == [3, 3]
    ex.sample.value = 1
    assert calls == [3, 3, 3]
    ex.sample.value = 0                                        # cached
    assert calls == [3, 3, 3]
    assert len(ex.figure.data) == 6


def test_pose_explorer_samples_once_on_first_display(counted, test_set):
    model, calls = counted
    ex = pose_explorer(model, test_set, max_hypo=5, n_hypo=2, index=4)
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert calls == [2] and ex.figure is not None and "test sample 4" in ex.figure.layout.title.text
    ex._repr_mimebundle_()
    assert calls == [2]


def test_pose_explorer_bad_input(model, test_set):
    with pytest.raises(ValueError, match="max_hypo must be >= 1"):
        pose_explorer(model, test_set, max_hypo=0)
    with pytest.raises(ValueError, match="index must be in 0..5"):
        PoseExplorer(model, test_set, index=6)
