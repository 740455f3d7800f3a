"""Tests of dphelpers.viz: figures build, trace counts, side colours, offline HTML, errors."""
import re

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from dphelpers import viz, vizcore
from dphelpers.evaluation import vizpages
from dphelpers.skeleton import H36M_BONES, H36M_NAMES, MPII_BONES, MPII_NAMES, side_of


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _pose(rng, j=17, d=3):
    return rng.normal(0.0, 300.0, size=(j, d))


def _n_bones(bones, skeleton, side):
    return sum(side_of(c, skeleton) == side for _, c in bones)


def _points(trace):
    """Non-break points of a line trace."""
    return sum(v is not None for v in trace.x)


def test_colors_scheme():
    assert set(viz.COLORS) == {"left", "right", "centre", "gt", "hypo"}
    assert len(set(viz.COLORS.values())) == 5


@pytest.mark.parametrize("skeleton,j,bones", [("h36m", 17, H36M_BONES), ("mpii", 16, MPII_BONES)])
def test_skeleton_traces_sides_and_colours(rng, skeleton, j, bones):
    traces = viz.skeleton_traces(_pose(rng, j), "p", skeleton=skeleton)
    assert len(traces) == 3 and all(isinstance(t, go.Scatter3d) for t in traces)
    assert [t.showlegend for t in traces] == [True, False, False]   # one legend entry
    for trace, side in zip(traces, viz.SIDES):
        assert trace.name == "p" and trace.meta == side and trace.legendgroup == "p"
        assert trace.line.color == viz.COLORS[side]
        assert _points(trace) == 2 * _n_bones(bones, skeleton, side)
        assert len(trace.x) == 3 * _n_bones(bones, skeleton, side)


def test_skeleton_traces_single_colour_and_opacity(rng):
    traces = viz.skeleton_traces(_pose(rng), "p", color="#00ff00", opacity=0.5)
    assert all(t.line.color == "#00ff00" and t.opacity == 0.5 for t in traces)


def test_display_convention_flips_y(rng):
    pose = _pose(rng)
    left = viz.skeleton_traces(pose, "p")[0]
    # first left bone is pelvis -> LHip (joint 4): plot (x, z, -y)
    assert left.x[1] == pytest.approx(pose[4, 0])
    assert left.y[1] == pytest.approx(pose[4, 2])
    assert left.z[1] == pytest.approx(-pose[4, 1])


def test_pose_figure_traces(rng):
    gt = _pose(rng)
    hyp = gt + rng.normal(0, 30, size=(80, 17, 3))
    fig = viz.pose_figure(gt, hyp, title="t", max_hypotheses=50)
    assert len(fig.data) == 6
    assert [t.name for t in fig.data if t.showlegend] == ["ground truth", "hypotheses (50)"]
    hyp_left = fig.data[3]
    assert hyp_left.line.color == viz.COLORS["left"] and hyp_left.opacity < 1.0
    assert fig.data[0].opacity == 1.0
    assert _points(hyp_left) == 50 * 2 * _n_bones(H36M_BONES, "h36m", "left")
    assert fig.data[0].line.width > hyp_left.line.width
    assert len(viz.pose_figure(gt).data) == 3
    assert len(viz.pose_figure(None, hyp).data) == 3
    # poses that are not sampled hypotheses get an honest legend name from the caller
    fig = viz.pose_figure(gt, hyp[:15], hypotheses_name="depth-flipped variants (15)",
                          gt_name="true pose")
    assert [t.name for t in fig.data if t.showlegend] == ["true pose",
                                                           "depth-flipped variants (15)"]


def test_figures_fit_the_book_column(rng):
    """The book's text column is ~688 px: a wider fixed-size figure is cut off there."""
    hm = rng.random((16, 64, 64))
    levels = np.linspace(0, 1, 21)
    figs = [viz.heatmap_figure(hm), viz.reliability_figure({"a": (levels, levels)}),
            viz.pose_2d_figure(rng.uniform(0, 64, (16, 2))), viz.pose_figure(_pose(rng))]
    for fig in figs:
        assert fig.layout.width is None or fig.layout.width <= viz.MAX_WIDTH_PX <= 680


def test_heatmap_figure_traces(rng):
    hm = rng.random((16, 64, 64)).astype(np.float32)
    fig = viz.heatmap_figure(hm)
    assert len(fig.data) == 16
    assert [a.text for a in fig.layout.annotations] == list(MPII_NAMES)
    img = rng.integers(0, 255, size=(256, 256, 3), dtype=np.uint8)
    cand = np.concatenate([rng.uniform(-1, 1, (16, 32, 2)), rng.random((16, 32, 1))], axis=-1)
    fig = viz.heatmap_figure(hm, crop_image=img, joints=rng.uniform(0, 63, (16, 2)), candidates=cand)
    assert len(fig.data) == 4 * 16
    dots = fig.data[3]
    assert dots.marker.color == viz.COLORS["hypo"]
    np.testing.assert_allclose(dots.x, (cand[0, :, 0] + 1) * 32)
    sizes = np.asarray(dots.marker.size)
    assert sizes[np.argmax(cand[0, :, 2])] == pytest.approx(sizes.max())


def test_loss_figure():
    steps = np.arange(100)
    losses = np.exp(-steps / 30.0) + 0.01
    fig = viz.loss_figure(steps, losses)
    assert len(fig.data) == 1 and fig.layout.yaxis.type == "log"
    fig = viz.loss_figure(steps, losses, ema=0.9)
    assert len(fig.data) == 2
    ema = np.asarray(fig.data[1].y)
    assert ema[0] == pytest.approx(losses[0]) and (ema[1:] > losses[1:]).all()   # lags a decay
    assert len(viz.loss_figure(steps, losses, ema=losses).data) == 2


def test_reliability_figure():
    levels = np.linspace(0, 1, 21)
    fig = viz.reliability_figure({"ours": (levels, levels ** 2), "flat": (levels, np.ones(21))})
    assert len(fig.data) == 3
    assert list(fig.data[0].x) == [0, 1] and list(fig.data[0].y) == [0, 1]
    assert [t.name for t in fig.data[1:]] == ["ours", "flat"]
    # both axes exactly [0, 1]: the plot area shrinks to a square, never the ranges
    lay = fig.layout
    assert tuple(lay.xaxis.range) == (0, 1) and tuple(lay.yaxis.range) == (0, 1)
    assert lay.xaxis.constrain == lay.yaxis.constrain == "domain"
    assert lay.legend.orientation == "h" and lay.width >= 400


@pytest.mark.parametrize("skeleton,j", [("mpii", 16), ("h36m", 17)])
def test_pose_2d_figure(rng, skeleton, j):
    pose = rng.uniform(0, 256, (j, 2))
    fig = viz.pose_2d_figure(pose, skeleton=skeleton)
    assert [t.name for t in fig.data] == list(viz.SIDES)
    assert [t.line.color for t in fig.data] == [viz.COLORS[s] for s in viz.SIDES]
    img = rng.integers(0, 255, size=(256, 256, 3), dtype=np.uint8)
    assert len(viz.pose_2d_figure(pose, skeleton=skeleton, image=img).data) == 4


def test_figure_html_is_offline(rng):
    html = viz.figure_html(viz.pose_figure(_pose(rng)))
    assert "cdn.plot.ly" not in html and "<script src=" not in html
    assert "Plotly.newPlot" in html


def test_show_mode_resolution(monkeypatch, rng):
    monkeypatch.delenv("DPHELPERS_PLOTLY", raising=False)
    monkeypatch.delenv("DPHELPERS_BOOK", raising=False)
    assert vizcore.resolve_mode() == "native"
    monkeypatch.setenv("DPHELPERS_BOOK", "1")
    assert vizcore.resolve_mode() == "html"
    monkeypatch.setenv("DPHELPERS_PLOTLY", "native")
    assert vizcore.resolve_mode() == "native"
    assert vizcore.resolve_mode("html") == "html"
    monkeypatch.setenv("DPHELPERS_PLOTLY", "bogus")
    with pytest.raises(ValueError, match="display mode"):
        viz.show(viz.pose_figure(_pose(rng)))
    viz.show(viz.pose_figure(_pose(rng)), mode="html")   # outside IPython: displays nothing


def test_bad_inputs_raise(rng):
    with pytest.raises(ValueError, match=r"pose_mm must have shape \(17, 3\), got \(16, 3\)"):
        viz.skeleton_traces(_pose(rng, 16), "p")
    with pytest.raises(ValueError, match="skeleton must be"):
        viz.skeleton_traces(_pose(rng), "p", skeleton="coco")
    with pytest.raises(ValueError, match="neither"):
        viz.pose_figure(None, None)
    with pytest.raises(ValueError, match=r"hypotheses_mm must have shape \(n, 17, 3\)"):
        viz.pose_figure(None, _pose(rng))
    with pytest.raises(ValueError, match=r"heatmaps must have shape \(16, 64, 64\)"):
        viz.heatmap_figure(np.zeros((17, 64, 64)))
    with pytest.raises(ValueError, match="crop_image must be a \\(H, W, 3\\) uint8"):
        viz.heatmap_figure(np.zeros((16, 64, 64)), crop_image=np.zeros((256, 256, 3)))
    with pytest.raises(ValueError, match=r"candidates must have shape \(16, n, 3\)"):
        viz.heatmap_figure(np.zeros((16, 64, 64)), candidates=np.zeros((16, 5, 2)))
    with pytest.raises(ValueError, match=r"losses must have shape \(10,\)"):
        viz.loss_figure(np.arange(10), np.ones(9))
    with pytest.raises(ValueError, match="decay"):
        viz.loss_figure(np.arange(10), np.ones(10), ema=1.5)
    with pytest.raises(ValueError, match="freq must have shape"):
        viz.reliability_figure({"a": (np.linspace(0, 1, 21), np.ones((17, 21)))})
    with pytest.raises(ValueError, match=r"poses_2d must have shape \(16, 2\)"):
        viz.pose_2d_figure(np.zeros((17, 2)), skeleton="mpii")


def _scene_ranges(fig):
    sc = fig.layout.scene
    return [list(sc.xaxis.range), list(sc.yaxis.range), list(sc.zaxis.range)]


def test_pose_figure_axes_are_a_fixed_cube_around_the_ground_truth(rng):
    gt = _pose(rng) + np.array([100.0, -900.0, 5000.0])       # camera frame, 5 m away
    hyp = gt + rng.normal(0, 30, size=(40, 17, 3))
    hyp[0] += 8000.0                                           # one wild outlier
    ranges = _scene_ranges(viz.pose_figure(gt, hyp))
    assert ranges == _scene_ranges(viz.pose_figure(gt))        # the outlier changes nothing
    shown = np.stack([gt[:, 0], gt[:, 2], -gt[:, 1]], axis=1)
    for (lo, hi), a in zip(ranges, shown.T):
        assert hi - lo == pytest.approx(max(vizcore.BOX_MM, a.ptp() + 200), abs=2)
        assert lo <= a.min() and a.max() <= hi
        assert (lo + hi) / 2 == pytest.approx((a.min() + a.max()) / 2, abs=1)
    sc = viz.pose_figure(gt).layout.scene
    assert sc.aspectmode == "manual" and sc.xaxis.autorange is False
    # a few ticks per axis, none at the cube's ends (where two axes' labels would collide)
    for (lo, hi), ax in zip(ranges, (sc.xaxis, sc.yaxis, sc.zaxis)):
        ticks = list(ax.tickvals)
        assert 2 <= len(ticks) <= 4 and lo + 0.05 * (hi - lo) < min(ticks)
        assert max(ticks) < hi - 0.05 * (hi - lo)


def test_pose_figure_without_ground_truth_centres_on_the_median_hypothesis(rng):
    hyp = _pose(rng)[None] + rng.normal(0, 20, size=(30, 17, 3))
    (lo, hi), _, _ = _scene_ranges(viz.pose_figure(None, hyp))
    med = np.median(hyp, axis=0)[:, 0]
    assert (lo + hi) / 2 == pytest.approx((med.min() + med.max()) / 2, abs=1)


def test_scene_box_grows_for_a_large_reference_and_rejects_bad_input():
    big = np.zeros((17, 3))
    big[1, 0] = 3000.0
    (lo, hi), _, _ = vizcore.scene_box(big)
    assert hi - lo == pytest.approx(3200, abs=2)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        vizcore.scene_box(np.zeros((17, 2)))


class _Detection:
    """The two fields prediction_figure reads from a detector.Detection."""

    def __init__(self, rng):
        self.joints_hm = rng.uniform(5, 59, (16, 2))
        self.box = np.array([300.0, 250.0, 320.0])
        self.score = 0.93


def test_medoid_and_spread(rng):
    base = _pose(rng)
    poses = base[None] + rng.normal(0, 5, size=(9, 17, 3))
    poses[3] = base                                        # the centre of the cloud
    poses[7] = base + 900.0                                # an outlier is never the medoid
    assert vizpages.medoid_index(poses) == 3
    spread = vizpages.joint_spread_mm(poses, poses[3])
    expect = np.sqrt((np.linalg.norm(poses - poses[3], axis=-1) ** 2).mean(0))
    np.testing.assert_allclose(spread, expect)
    assert vizpages.joint_spread_mm(np.repeat(base[None], 4, 0)).max() == 0


def test_prediction_figure_and_page(rng, tmp_path):
    det = _Detection(rng)
    img = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
    poses = _pose(rng)[None] + rng.normal(0, 40, size=(30, 17, 3))
    poses[:, 0] = 0
    fig = vizpages.prediction_figure(img, det, poses, title="t")
    names = [t.name for t in fig.data if getattr(t, "showlegend", None) and t.name]
    assert "medoid hypothesis" in names and "hypotheses (30)" in names
    medoid = [t for t in fig.data if t.name == "medoid hypothesis"]
    hyps = [t for t in fig.data if t.name == "hypotheses (30)"]
    assert len(medoid) == 3 and medoid[0].line.width > hyps[0].line.width
    joints = [t for t in fig.data if t.name == "detected 2D joints"]
    corner = det.box[:2] - det.box[2] / 2                  # heatmap px -> image px
    px = (det.joints_hm + 0.5) / 64 * det.box[2] + corner
    first_left = next(c for _, c in MPII_BONES if side_of(c, "mpii") == "left")
    assert joints[0].x[1] == pytest.approx(px[first_left, 0])   # heatmap px -> image px
    bars = [t for t in fig.data if isinstance(t, go.Bar)][0]
    assert list(bars.x) == list(H36M_NAMES[1:])
    # title, legend and subplot titles in separate bands above the plots (nothing overlaps)
    lay = fig.layout
    assert lay.title.yref == lay.legend.yref == "container"
    title_top = (1 - lay.title.y) * lay.height              # px from the figure's top
    legend_top = (1 - lay.legend.y) * lay.height
    assert title_top < legend_top < lay.margin.t - 40        # >= 40 px left for subplot titles
    assert all(len(a.text) <= 40 for a in lay.annotations)   # short enough for the column
    page = vizpages.prediction_page(img, det, poses, path=tmp_path / "p.html")
    assert (tmp_path / "p.html").read_text() == page
    assert "plotly.js v" in page and not re.search(r'<script src="https?:', page)  # inlined
    assert "least certain" in page and "person score 0.93" in page
    from dphelpers.evaluation.reprojection import weak_perspective_fit
    rms = weak_perspective_fit(torch.as_tensor(poses[vizpages.medoid_index(poses)]).float(),
                               torch.as_tensor(det.joints_hm).float()).rms
    assert f"detected 2D joints with RMS {float(rms):.2f} heatmap px" in page
    with pytest.raises(ValueError, match="joints_hm"):
        vizpages.prediction_figure(img, object(), poses)
    # the photo's view holds the whole person box and every joint, also beyond the photo
    box = next(t for t in fig.data if str(t.name).startswith("person box"))
    xr, yr = fig.layout.xaxis.range, fig.layout.yaxis.range
    assert xr[0] <= min(box.x) and xr[1] >= max(box.x)
    assert yr[1] <= min(box.y) and yr[0] >= max(box.y)            # image rows grow downwards
    small = img[:int(px[:, 1].max()) - 5]                          # crop away the lowest joint
    outside = vizpages.joints_outside(small, det)
    assert outside and outside == vizpages.joints_outside(small, det)
    assert "beyond the photo" in vizpages.prediction_page(small, det, poses)
    assert vizpages.joints_outside(np.zeros((4000, 4000, 3), np.uint8), det) == []


def test_pose_strip_figure_turns_each_pose_to_face_the_viewer():
    from dphelpers.viz import pose_strip_figure
    pose = np.zeros((17, 3))
    pose[:, 2] = np.linspace(0.0, 1.7, 17)
    pose[1], pose[4] = [0.0, -0.1, 0.9], [0.0, 0.1, 0.9]       # hips along y: side-on
    pose[0] = [0.0, 0.0, 0.9]
    fig = pose_strip_figure({"a": np.stack([pose, pose + [5.0, 5.0, 0.0]]), "b": pose[None]},
                            per_row=2, spacing_m=1.0)
    assert len(fig.data) == 3 and [a.text for a in fig.layout.annotations] == ["a", "b"]
    xs = np.array([x for t in fig.data for x in t.x if x is not None])
    ys = np.array([y for t in fig.data for y in t.y if y is not None])
    # turned: hips 0.2 m apart along x; centred on the pelvis; poses 1 m apart; rows stacked
    assert np.isclose(xs, -0.1).any() and np.isclose(xs, 0.1).any()
    assert np.isclose(xs, 0.9).any() and np.isclose(xs, 1.1).any()
    assert xs.max() <= 1.1 + 1e-9 and ys.min() < -1.0
    with pytest.raises(ValueError, match=r"rows\['a'\] must have shape \(n, 17, 3\)"):
        pose_strip_figure({"a": np.zeros((2, 16, 3))})
    with pytest.raises(ValueError, match="holds no pose"):
        pose_strip_figure({"a": np.zeros((0, 17, 3))})
