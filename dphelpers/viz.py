"""Plotly figures of poses, heatmaps, training curves and calibration (notebooks 01-06).

Introduced in notebook 01 (skeletons) and used by every later notebook.  Every function
returns a :class:`plotly.graph_objects.Figure` and never calls ``.show()``; use
:func:`show` to display one.  Colours, the 3D scene convention (camera-frame mm drawn as
(x, z, -y) in a fixed 2 m cube) and the display rules live in :mod:`dphelpers.vizcore`; the
names a notebook needs are re-exported here (``COLORS``, ``SIDES``, ``MAX_WIDTH_PX``,
``scene_box``, ``scene_layout``, ``figure_html``, ``show``).  Pages that combine several views (the
``predict`` verb's photo + hypotheses page) are in :mod:`dphelpers.evaluation.vizpages`.

Legends name what a trace is ("ground truth", "hypotheses (20)"; a caller whose poses are not
sampled hypotheses passes its own name, e.g. "depth-flipped variants (15)"): the three
side-coloured traces of one skeleton share one legend entry.  Every figure fits the book's
text column (at most :data:`MAX_WIDTH_PX` wide, or as wide as the page allows).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .skeleton import MPII_NAMES, N_H36M, N_MPII
from .vizcore import (COLORS, MAX_WIDTH_PX, N_JOINTS, SIDES, as_array, as_image, bone_segments,
                      display_xyz, figure_html, image_trace, none_for_nan, scene_box, scene_layout,
                      show, skeleton_name)

__all__ = [
    "COLORS", "SIDES", "MAX_WIDTH_PX", "skeleton_traces", "pose_figure", "heatmap_figure",
    "loss_figure", "reliability_figure", "pose_2d_figure", "pose_strip_figure", "figure_html",
    "show", "scene_box", "scene_layout",
]

# --- 3D poses -------------------------------------------------------------------------------
def _lines_3d(poses: np.ndarray, name: str, color, opacity: float, width: float,
              skeleton: str, markers: bool) -> list[go.Scatter3d]:
    """Three traces (left, right, centre) of all ``poses: (n, j, 3)``, one legend entry ``name``."""
    traces = []
    for side in SIDES:
        col = color or COLORS[side]
        pts = bone_segments(poses, skeleton, side)
        traces.append(go.Scatter3d(
            **display_xyz(pts), mode="lines+markers" if markers else "lines", name=name,
            legendgroup=name, showlegend=side == SIDES[0], line={"color": col, "width": width},
            opacity=float(opacity), meta=side,
            marker={"size": max(width * 0.6, 1.0), "color": col},
            hovertemplate=f"{name} ({side})<extra></extra>" if markers else None,
            hoverinfo=None if markers else "skip",
        ))
    return traces


def skeleton_traces(pose_mm, name: str, color: str | None = None, opacity: float = 1.0,
                    width: float = 6, skeleton: str = "h36m") -> list[go.Scatter3d]:
    """One 3D skeleton as three line traces (left, right, centre), in that order, sharing one
    legend entry ``name`` (the side is in each trace's ``meta``).

    pose_mm: (j, 3) camera frame mm, j = 17 for 'h36m', 16 for 'mpii'.  ``color=None``
    colours bones by side (``COLORS``); a colour string draws every bone in it.  Opacity is the
    trace's (rgba line colours render washed out in plotly's WebGL 3D).
    """
    skeleton = skeleton_name(skeleton)
    pose = as_array(pose_mm, "pose_mm", (N_JOINTS[skeleton], 3))
    return _lines_3d(pose[None], name, color, opacity, width, skeleton, markers=True)


def pose_figure(gt_mm=None, hypotheses_mm=None, title: str = "",
                max_hypotheses: int = 50, hypotheses_name: str | None = None,
                gt_name: str = "ground truth") -> go.Figure:
    """Ground truth (bold) and hypotheses (thin, translucent) in one 3D scene.

    gt_mm: (17, 3) or None; hypotheses_mm: (h, 17, 3) or None, camera frame mm.  The first
    ``max_hypotheses`` hypotheses are drawn, all in one trace per side (3 traces), after
    the ground truth's 3 traces.  Legend names: ``gt_name`` and ``hypotheses_name`` (default
    ``"hypotheses (h)"``; pass an honest name when the poses are not sampled hypotheses, e.g.
    ``"depth-flipped variants (15)"`` or ``"noised pose"``).  The axes are a fixed cube
    (:func:`scene_box`) around the ground truth, or around the hypotheses' per-joint median
    when there is none.
    """
    if gt_mm is None and hypotheses_mm is None:
        raise ValueError("pose_figure needs gt_mm, hypotheses_mm or both; got neither")
    fig = go.Figure()
    if gt_mm is not None:
        fig.add_traces(skeleton_traces(gt_mm, gt_name, width=8))
    hyp = None
    if hypotheses_mm is not None:
        hyp = as_array(hypotheses_mm, "hypotheses_mm", (None, N_H36M, 3))
        hyp = hyp[:max(int(max_hypotheses), 1)]
        opacity = float(np.clip(2.0 / np.sqrt(len(hyp)), 0.1, 0.5))
        name = f"hypotheses ({len(hyp)})" if hypotheses_name is None else str(hypotheses_name)
        fig.add_traces(_lines_3d(hyp, name, None, opacity, 2, "h36m", markers=False))
    reference = as_array(gt_mm, "gt_mm", (N_H36M, 3)) if gt_mm is not None \
        else np.median(hyp, axis=0)
    fig.update_layout(**scene_layout(scene_box(reference), title))
    return fig


# --- heatmaps -------------------------------------------------------------------------------
def heatmap_figure(heatmaps, crop_image=None, joints=None, candidates=None) -> go.Figure:
    """The 16 MPII heatmaps in a 4 x 4 grid titled with the joint names.

    heatmaps: (16, 64, 64); crop_image: (H, W, 3) uint8, shown under each map (block-averaged
    to ~128 px, stretched over the 64 x 64 heatmap pixels); joints: (16, 2) heatmap pixels
    (x = column, y = row), drawn as crosses; candidates: (16, n, 3) with x, y in [-1, 1]
    (pixel i <-> i / 32 - 1) and the likelihood, drawn as dots sized by likelihood.  Traces per
    panel, in order: image (if given), heatmap, joint (if given), candidates (if given).
    """
    hm = as_array(heatmaps, "heatmaps", (N_MPII, 64, 64))
    img = as_image(crop_image, "crop_image") if crop_image is not None else None
    if img is not None and min(img.shape[:2]) >= 256:       # 16 copies: keep the HTML small
        f = min(img.shape[:2]) // 128
        h, w = img.shape[0] // f, img.shape[1] // f
        img = img[:h * f, :w * f].reshape(h, f, w, f, 3).mean(axis=(1, 3)).astype(np.uint8)
    jts = as_array(joints, "joints", (N_MPII, 2)) if joints is not None else None
    cand = as_array(candidates, "candidates", (N_MPII, None, 3)) if candidates is not None else None
    fig = make_subplots(rows=4, cols=4, subplot_titles=list(MPII_NAMES),
                        horizontal_spacing=0.02, vertical_spacing=0.05)
    lik_max = max(float(cand[..., 2].max()), 1e-12) if cand is not None else 1.0
    for j in range(N_MPII):
        pos = {"row": j // 4 + 1, "col": j % 4 + 1}
        if img is not None:
            h, w = img.shape[:2]
            fig.add_trace(image_trace(img, dx=64 / w, dy=64 / h, x0=-0.5 + 32 / w,
                                      y0=-0.5 + 32 / h), **pos)
        fig.add_trace(go.Heatmap(z=np.clip(hm[j], 0, None).astype(np.float32),
                                 colorscale="Viridis", showscale=False, name=MPII_NAMES[j],
                                 opacity=0.55 if img is not None else 1.0), **pos)
        if jts is not None:
            fig.add_trace(go.Scatter(x=[jts[j, 0]], y=[jts[j, 1]], mode="markers",
                                     showlegend=False, marker={"symbol": "x", "size": 9,
                                                               "color": COLORS["gt"]}), **pos)
        if cand is not None:
            px = (cand[j, :, :2] + 1.0) * 32.0
            size = 3 + 9 * np.clip(cand[j, :, 2], 0, None) / lik_max
            fig.add_trace(go.Scatter(x=px[:, 0], y=px[:, 1], mode="markers", showlegend=False,
                                     marker={"size": size, "color": COLORS["hypo"],
                                             "opacity": 0.8}), **pos)
    fig.update_xaxes(range=[-0.5, 63.5], showticklabels=False)
    fig.update_yaxes(range=[63.5, -0.5], showticklabels=False)
    for j in range(N_MPII):
        suffix = "" if j == 0 else str(j + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    fig.update_layout(height=720, width=MAX_WIDTH_PX, showlegend=False,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    fig.update_annotations(font_size=12)          # the joint names above the panels
    return fig


# --- curves ---------------------------------------------------------------------------------
def loss_figure(steps, losses, ema=None) -> go.Figure:
    """Training loss against step on a log y axis.

    steps, losses: (n,).  ``ema`` is None, a smoothed curve (n,), or a decay in (0, 1) from
    which the exponential moving average of ``losses`` is computed.  Traces: loss, [ema].
    """
    s = as_array(steps, "steps", (None,))
    loss = as_array(losses, "losses", (len(s),))
    fig = go.Figure(go.Scatter(x=s, y=loss, mode="lines", name="loss",
                               line={"color": COLORS["left"], "width": 1}, opacity=0.4))
    if ema is not None:
        if np.ndim(ema) == 0:
            decay = float(ema)
            if not 0.0 < decay < 1.0:
                raise ValueError(f"ema as a decay must lie in (0, 1), got {decay}")
            smooth = np.empty_like(loss)
            acc = loss[0] if len(loss) else 0.0
            for i, v in enumerate(loss):
                acc = decay * acc + (1.0 - decay) * v
                smooth[i] = acc
        else:
            smooth = as_array(ema, "ema", (len(s),))
        fig.add_trace(go.Scatter(x=s, y=smooth, mode="lines", name="EMA",
                                 line={"color": COLORS["right"], "width": 2}))
    fig.update_layout(xaxis_title="step", yaxis_title="loss", yaxis_type="log", height=350,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def reliability_figure(curves: dict) -> go.Figure:
    """Reliability diagram: frequency of quantile <= level against the level.

    curves: {name: (levels (n,), freq (n,))}, e.g. from :func:`dphelpers.metrics.reliability`
    with ``freq`` averaged over joints.  Traces: the ideal diagonal, then one per curve.
    """
    if not isinstance(curves, dict):
        raise ValueError("curves must be a dict name -> (levels, freq), "
                         f"got {type(curves).__name__}")
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated",
                               line={"color": COLORS["gt"], "dash": "dash", "width": 1}))
    palette = [COLORS["left"], COLORS["right"], COLORS["hypo"], COLORS["centre"]]
    for i, (name, pair) in enumerate(curves.items()):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"curves[{name!r}] must be a pair (levels, freq)")
        lev = as_array(pair[0], f"curves[{name!r}] levels", (None,))
        freq = as_array(pair[1], f"curves[{name!r}] freq", (len(lev),))
        fig.add_trace(go.Scatter(x=lev, y=freq, mode="lines+markers", name=str(name),
                                 line={"color": palette[i % len(palette)]}))
    # a square plot: both axes exactly [0, 1] (constrain="domain" shrinks the plot area, never
    # the ranges), the legend below it so that it takes no width from the plot
    fig.update_layout(xaxis={"title": "quantile level", "range": [0, 1], "constrain": "domain",
                             "dtick": 0.2},
                      yaxis={"title": "frequency of quantile <= level", "range": [0, 1],
                             "scaleanchor": "x", "scaleratio": 1, "constrain": "domain",
                             "dtick": 0.2},
                      legend={"orientation": "h", "y": -0.18, "yanchor": "top", "x": 0},
                      width=480, height=560, margin={"l": 60, "r": 20, "t": 30, "b": 10})
    return fig


def pose_2d_figure(poses_2d, skeleton: str = "mpii", image=None) -> go.Figure:
    """A 2D skeleton in image pixels (x right, y down), optionally over ``image``.

    poses_2d: (j, 2) px, j = 16 for 'mpii', 17 for 'h36m'; image: (H, W, 3) uint8.
    Traces: image (if given), then left, right, centre.
    """
    skeleton = skeleton_name(skeleton)
    pose = as_array(poses_2d, "poses_2d", (N_JOINTS[skeleton], 2))
    fig = go.Figure()
    if image is not None:
        fig.add_trace(image_trace(as_image(image, "image")))
    for side in SIDES:
        pts = bone_segments(pose[None], skeleton, side)
        fig.add_trace(go.Scatter(x=none_for_nan(pts[:, 0]), y=none_for_nan(pts[:, 1]),
                                 mode="lines+markers",
                                 name=side, line={"color": COLORS[side], "width": 3},
                                 marker={"color": COLORS[side], "size": 6}))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", title="y (px)")
    fig.update_xaxes(title="x (px)")
    fig.update_layout(width=450, height=450, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def pose_strip_figure(rows: dict, per_row: int = 6, spacing_m: float = 0.9) -> go.Figure:
    """Small front views of world poses, one row per name: what a set of clips looks like.

    rows: ``{name: (n, 17, 3)}`` world metres, Z up (``data.load_mocap`` clips); ``per_row``
    poses are picked evenly from each.  Each pose is turned about the vertical so its hips lie
    along x (a front view), centred on its pelvis, and drawn ``spacing_m`` apart; each row's
    name above it.  Traces: left, right, centre bones (one legend entry per side).
    """
    if not rows:
        raise ValueError("pose_strip_figure: rows is empty")
    segs = {side: [] for side in SIDES}
    names = list(rows)
    height = 2.3                                     # metres per row: a pose and its name
    for r, name in enumerate(names):
        poses = as_array(rows[name], f"rows[{name!r}]", (None, N_H36M, 3))
        if not len(poses):
            raise ValueError(f"pose_strip_figure: rows[{name!r}] holds no pose")
        pick = poses[np.linspace(0, len(poses) - 1, min(per_row, len(poses))).round().astype(int)]
        for c, p in enumerate(pick):
            hips = p[4, :2] - p[1, :2]
            yaw = np.arctan2(hips[1], hips[0])
            cos, sin = np.cos(-yaw), np.sin(-yaw)
            q = p - p[0] * [1, 1, 0]
            flat = np.stack([cos * q[:, 0] - sin * q[:, 1], q[:, 2]], axis=-1)
            flat += [c * spacing_m, -r * height]
            for side in SIDES:
                segs[side].append(bone_segments(flat[None], "h36m", side))
    fig = go.Figure()
    for side in SIDES:
        pts = np.concatenate(segs[side])
        fig.add_trace(go.Scatter(x=none_for_nan(pts[:, 0]), y=none_for_nan(pts[:, 1]),
                                 mode="lines", name=side, hoverinfo="skip",
                                 line={"color": COLORS[side], "width": 2.5}))
    for r, name in enumerate(names):
        fig.add_annotation(x=-0.5, y=-r * height + 2.05, text=name, showarrow=False,
                           xanchor="left", font={"size": 12})
    fig.update_xaxes(visible=False, range=[-0.6, (per_row - 0.4) * spacing_m])
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(height=int(60 + 200 * len(names)), width=MAX_WIDTH_PX,
                      margin={"l": 5, "r": 5, "t": 5, "b": 5}, showlegend=False,
                      plot_bgcolor="white")
    return fig
