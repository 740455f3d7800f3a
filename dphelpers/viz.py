"""Plotly figures of poses, heatmaps, training curves and calibration (notebooks 01-06).

Introduced in notebook 01 (skeletons) and used by every later notebook.  Every function
returns a :class:`plotly.graph_objects.Figure` and never calls ``.show()``; use
:func:`show` to display one.

Colours (``COLORS``): the person's left side is blue, the right side red/orange, the
centre line grey (joint sides from :func:`dphelpers.skeleton.side_of`; a bone takes the
side of its child joint).  ``COLORS["gt"]`` (near black) marks ground-truth joints and the
ideal diagonal, ``COLORS["hypo"]`` (purple) marks sampled candidates.

3D convention: poses are in the camera frame, x right, y down, z forward (depth), in mm.
They are drawn as (x, z, -y) so that the plot's vertical axis points up and the person
stands upright; ``scene.aspectmode="data"`` keeps the proportions.

Display: :func:`figure_html` gives the figure as HTML *without* plotly.js (the offline book
loads one local ``plotly.min.js``, see REFERENCE.md).  :func:`show` chooses how to display:
``mode`` (or env ``DPHELPERS_PLOTLY``) is ``"html"`` (that HTML through IPython),
``"native"`` (``fig.show()``, for JupyterLab) or ``"auto"`` (default: ``"html"`` when env
``DPHELPERS_BOOK=1``, else ``"native"``).
"""
from __future__ import annotations

import base64
import io
import os

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .skeleton import H36M_BONES, MPII_BONES, MPII_NAMES, N_H36M, N_MPII, side_of

__all__ = [
    "COLORS", "SIDES", "skeleton_traces", "pose_figure", "heatmap_figure", "overlay_figure",
    "loss_figure", "reliability_figure", "pose_2d_figure", "figure_html", "show",
]

COLORS: dict[str, str] = {
    "left": "#1f77b4",    # blue
    "right": "#e4572e",   # red-orange
    "centre": "#7f7f7f",  # grey
    "gt": "#222222",      # ground-truth joints, ideal lines
    "hypo": "#9467bd",    # candidates / single-colour hypotheses
}
SIDES: tuple[str, ...] = ("left", "right", "centre")
#: transparent at zero, so the crop stays visible where the heatmaps are empty
_GLOW = [[0.0, "rgba(255,40,0,0)"], [0.3, "rgba(255,60,0,0.55)"], [1.0, "rgba(255,240,0,0.95)"]]
_N_JOINTS = {"h36m": N_H36M, "mpii": N_MPII}
_BONES = {"h36m": H36M_BONES, "mpii": MPII_BONES}


# --- helpers --------------------------------------------------------------------------------
def _array(x, name: str, shape: tuple) -> np.ndarray:
    """``x`` as a float numpy array whose shape matches ``shape`` (None = any size)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != len(shape) or any(s is not None and s != g for s, g in zip(shape, a.shape)):
        want = str(tuple("n" if s is None else s for s in shape)).replace("'", "")
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    return a


def _image(img, name: str) -> np.ndarray:
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"{name} must be a (H, W, 3) uint8 image, got shape {img.shape} "
                         f"dtype {img.dtype}")
    return img


def _image_trace(img: np.ndarray, **kwargs) -> go.Image:
    """An image trace, embedded as a base64 PNG when Pillow is available (~10x smaller HTML)."""
    try:
        from PIL import Image
    except ImportError:
        return go.Image(z=img, hoverinfo="skip", **kwargs)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return go.Image(source=uri, hoverinfo="skip", **kwargs)


def _skeleton_name(skeleton: str) -> str:
    if skeleton not in _BONES:
        raise ValueError(f"skeleton must be 'h36m' or 'mpii', got {skeleton!r}")
    return skeleton


def _bone_segments(poses: np.ndarray, skeleton: str, side: str) -> np.ndarray:
    """All bones of one side of all poses as a polyline with NaN breaks: ``(m, d)``.

    poses: (n, j, d) -> rows [parent, child, NaN] per bone and pose.
    """
    bones = [(p, c) for p, c in _BONES[skeleton] if side_of(c, skeleton) == side]
    idx = np.array(bones, dtype=int)                       # (k, 2)
    seg = poses[:, idx]                                    # (n, k, 2, d)
    gap = np.full(seg.shape[:2] + (1, seg.shape[-1]), np.nan)
    return np.concatenate([seg, gap], axis=2).reshape(-1, seg.shape[-1])


def _none(a: np.ndarray) -> list:
    """Coordinates with NaN replaced by None (plotly's line break)."""
    return [None if np.isnan(v) else float(v) for v in a]


def _display_xyz(points: np.ndarray) -> dict:
    """Camera frame (x right, y down, z forward) -> plot (x, depth, up) = (x, z, -y)."""
    return {"x": _none(points[:, 0]), "y": _none(points[:, 2]), "z": _none(-points[:, 1])}


def _lines_3d(poses: np.ndarray, name: str, color, opacity: float, width: float,
              skeleton: str, markers: bool) -> list[go.Scatter3d]:
    traces = []
    for side in SIDES:
        col = color or COLORS[side]
        pts = _bone_segments(poses, skeleton, side)
        traces.append(go.Scatter3d(
            **_display_xyz(pts), mode="lines+markers" if markers else "lines", name=f"{name} {side}",
            legendgroup=name, showlegend=side == "left", line={"color": col, "width": width},
            opacity=float(opacity),
            marker={"size": max(width * 0.6, 1.0), "color": col},
            hoverinfo="x+y+z+name" if markers else "skip",
        ))
    return traces


# --- 3D poses -------------------------------------------------------------------------------
def skeleton_traces(pose_mm, name: str, color: str | None = None, opacity: float = 1.0,
                    width: float = 6, skeleton: str = "h36m") -> list[go.Scatter3d]:
    """One 3D skeleton as three line traces (left, right, centre), in that order.

    pose_mm: (j, 3) camera frame mm, j = 17 for 'h36m', 16 for 'mpii'.  ``color=None``
    colours bones by side (``COLORS``); a colour string draws every bone in it.  Opacity is the
    trace's (rgba line colours render washed out in plotly's WebGL 3D).
    """
    skeleton = _skeleton_name(skeleton)
    pose = _array(pose_mm, "pose_mm", (_N_JOINTS[skeleton], 3))
    return _lines_3d(pose[None], name, color, opacity, width, skeleton, markers=True)


def pose_figure(gt_mm=None, hypotheses_mm=None, title: str = "",
                max_hypotheses: int = 50) -> go.Figure:
    """Ground truth (bold) and hypotheses (thin, translucent) in one 3D scene.

    gt_mm: (17, 3) or None; hypotheses_mm: (h, 17, 3) or None, camera frame mm.  The first
    ``max_hypotheses`` hypotheses are drawn, all in one trace per side (3 traces), after
    the ground truth's 3 traces.
    """
    if gt_mm is None and hypotheses_mm is None:
        raise ValueError("pose_figure needs gt_mm, hypotheses_mm or both; got neither")
    fig = go.Figure()
    if gt_mm is not None:
        fig.add_traces(skeleton_traces(gt_mm, "ground truth", width=8))
    if hypotheses_mm is not None:
        hyp = _array(hypotheses_mm, "hypotheses_mm", (None, N_H36M, 3))[:max(int(max_hypotheses), 1)]
        opacity = float(np.clip(2.0 / np.sqrt(len(hyp)), 0.1, 0.5))
        fig.add_traces(_lines_3d(hyp, f"hypotheses ({len(hyp)})", None, opacity, 2, "h36m",
                                 markers=False))
    axis = {"showbackground": False}
    fig.update_layout(
        title=title, margin={"l": 0, "r": 0, "t": 40 if title else 10, "b": 0}, height=560,
        scene={"aspectmode": "data",
               "xaxis": {**axis, "title": "x (right) mm"},
               "yaxis": {**axis, "title": "z (depth) mm"},
               "zaxis": {**axis, "title": "-y (up) mm"},
               "camera": {"eye": {"x": 0.5, "y": -2.6, "z": 0.3}, "up": {"x": 0, "y": 0, "z": 1}}},
        legend={"itemsizing": "constant"},
    )
    return fig


# --- heatmaps -------------------------------------------------------------------------------
def heatmap_figure(heatmaps, crop_image=None, joints=None, candidates=None) -> go.Figure:
    """The 16 MPII heatmaps in a 4 x 4 grid titled with the joint names.

    heatmaps: (16, 64, 64); crop_image: (H, W, 3) uint8, shown under each map (block-averaged
    to ~128 px, stretched over the 64 x 64 heatmap pixels); joints: (16, 2) heatmap pixels
    (x = column, y = row), drawn as crosses; candidates: (16, n, 3) with x, y in [-1, 1] (pixel i <-> i / 32 - 1) and the
    likelihood, drawn as dots sized by likelihood.  Traces per panel, in order: image (if
    given), heatmap, joint (if given), candidates (if given).
    """
    hm = _array(heatmaps, "heatmaps", (N_MPII, 64, 64))
    img = _image(crop_image, "crop_image") if crop_image is not None else None
    if img is not None and min(img.shape[:2]) >= 256:       # 16 copies: keep the HTML small
        f = min(img.shape[:2]) // 128
        h, w = img.shape[0] // f, img.shape[1] // f
        img = img[:h * f, :w * f].reshape(h, f, w, f, 3).mean(axis=(1, 3)).astype(np.uint8)
    jts = _array(joints, "joints", (N_MPII, 2)) if joints is not None else None
    cand = _array(candidates, "candidates", (N_MPII, None, 3)) if candidates is not None else None
    fig = make_subplots(rows=4, cols=4, subplot_titles=list(MPII_NAMES),
                        horizontal_spacing=0.02, vertical_spacing=0.05)
    lik_max = max(float(cand[..., 2].max()), 1e-12) if cand is not None else 1.0
    for j in range(N_MPII):
        pos = {"row": j // 4 + 1, "col": j % 4 + 1}
        if img is not None:
            h, w = img.shape[:2]
            fig.add_trace(_image_trace(img, dx=64 / w, dy=64 / h, x0=-0.5 + 32 / w,
                                       y0=-0.5 + 32 / h), **pos)
        fig.add_trace(go.Heatmap(z=np.clip(hm[j], 0, None).astype(np.float32), colorscale="Viridis", showscale=False,
                                 opacity=0.55 if img is not None else 1.0, name=MPII_NAMES[j]), **pos)
        if jts is not None:
            fig.add_trace(go.Scatter(x=[jts[j, 0]], y=[jts[j, 1]], mode="markers", showlegend=False,
                                     marker={"symbol": "x", "size": 9, "color": COLORS["gt"]}), **pos)
        if cand is not None:
            px = (cand[j, :, :2] + 1.0) * 32.0
            fig.add_trace(go.Scatter(x=px[:, 0], y=px[:, 1], mode="markers", showlegend=False,
                                     marker={"size": 3 + 9 * np.clip(cand[j, :, 2], 0, None) / lik_max,
                                             "color": COLORS["hypo"], "opacity": 0.8}), **pos)
    fig.update_xaxes(range=[-0.5, 63.5], showticklabels=False)
    fig.update_yaxes(range=[63.5, -0.5], showticklabels=False)
    for j in range(N_MPII):
        suffix = "" if j == 0 else str(j + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    fig.update_layout(height=820, width=780, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      showlegend=False)
    return fig


def overlay_figure(crop_image, heatmaps, reduce: str = "max") -> go.Figure:
    """All 16 heatmaps combined (``reduce`` = 'max' or 'sum') over the crop image.

    crop_image: (H, W, 3) uint8 or None (e.g. 256 x 256); heatmaps: (16, 64, 64), stretched
    over the crop.  Traces: image (if given), heatmap.
    """
    hm = np.clip(_array(heatmaps, "heatmaps", (N_MPII, 64, 64)), 0, None)
    if reduce not in ("max", "sum"):
        raise ValueError(f"reduce must be 'max' or 'sum', got {reduce!r}")
    combined = (hm.max(axis=0) if reduce == "max" else hm.sum(axis=0)).astype(np.float32)
    fig = go.Figure()
    h, w = (256, 256)
    if crop_image is not None:
        img = _image(crop_image, "crop_image")
        h, w = img.shape[:2]
        fig.add_trace(_image_trace(img))
    sx, sy = w / 64, h / 64
    fig.add_trace(go.Heatmap(z=combined, x0=-0.5 + sx / 2, dx=sx, y0=-0.5 + sy / 2, dy=sy,
                             colorscale=_GLOW, showscale=False, name=f"{reduce} of heatmaps"))
    fig.update_xaxes(range=[-0.5, w - 0.5], showticklabels=False)
    fig.update_yaxes(range=[h - 0.5, -0.5], showticklabels=False, scaleanchor="x")
    fig.update_layout(width=420, height=420, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


# --- curves ---------------------------------------------------------------------------------
def loss_figure(steps, losses, ema=None) -> go.Figure:
    """Training loss against step on a log y axis.

    steps, losses: (n,).  ``ema`` is None, a smoothed curve (n,), or a decay in (0, 1) from
    which the exponential moving average of ``losses`` is computed.  Traces: loss, [ema].
    """
    s = _array(steps, "steps", (None,))
    loss = _array(losses, "losses", (len(s),))
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
            smooth = _array(ema, "ema", (len(s),))
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
        raise ValueError(f"curves must be a dict name -> (levels, freq), got {type(curves).__name__}")
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated",
                               line={"color": COLORS["gt"], "dash": "dash", "width": 1}))
    palette = [COLORS["left"], COLORS["right"], COLORS["hypo"], COLORS["centre"]]
    for i, (name, pair) in enumerate(curves.items()):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"curves[{name!r}] must be a pair (levels, freq)")
        lev = _array(pair[0], f"curves[{name!r}] levels", (None,))
        freq = _array(pair[1], f"curves[{name!r}] freq", (len(lev),))
        fig.add_trace(go.Scatter(x=lev, y=freq, mode="lines+markers", name=str(name),
                                 line={"color": palette[i % len(palette)]}))
    fig.update_layout(xaxis={"title": "quantile level", "range": [0, 1]},
                      yaxis={"title": "frequency of quantile <= level", "range": [0, 1],
                             "scaleanchor": "x"},
                      width=450, height=450, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def pose_2d_figure(poses_2d, skeleton: str = "mpii", image=None) -> go.Figure:
    """A 2D skeleton in image pixels (x right, y down), optionally over ``image``.

    poses_2d: (j, 2) px, j = 16 for 'mpii', 17 for 'h36m'; image: (H, W, 3) uint8.
    Traces: image (if given), then left, right, centre.
    """
    skeleton = _skeleton_name(skeleton)
    pose = _array(poses_2d, "poses_2d", (_N_JOINTS[skeleton], 2))
    fig = go.Figure()
    if image is not None:
        fig.add_trace(_image_trace(_image(image, "image")))
    for side in SIDES:
        pts = _bone_segments(pose[None], skeleton, side)
        fig.add_trace(go.Scatter(x=_none(pts[:, 0]), y=_none(pts[:, 1]), mode="lines+markers",
                                 name=side, line={"color": COLORS[side], "width": 3},
                                 marker={"color": COLORS[side], "size": 6}))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", title="y (px)")
    fig.update_xaxes(title="x (px)")
    fig.update_layout(width=450, height=450, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


# --- display --------------------------------------------------------------------------------
def figure_html(fig: go.Figure) -> str:
    """The figure as an HTML fragment without plotly.js or MathJax (the book loads plotly.js)."""
    return fig.to_html(include_plotlyjs=False, full_html=False, include_mathjax=False, auto_play=False)


def _resolve_mode(mode: str | None = None) -> str:
    """'html' or 'native' from ``mode``, env ``DPHELPERS_PLOTLY`` and ``DPHELPERS_BOOK``."""
    mode = mode or os.environ.get("DPHELPERS_PLOTLY", "auto")
    if mode == "auto":
        return "html" if os.environ.get("DPHELPERS_BOOK") == "1" else "native"
    if mode not in ("html", "native"):
        raise ValueError(f"plotly display mode must be 'html', 'native' or 'auto', got {mode!r}")
    return mode


def show(fig: go.Figure, mode: str | None = None) -> None:
    """Display ``fig``: as library-free HTML in IPython (mode 'html'), or ``fig.show()``.

    ``mode`` None reads env ``DPHELPERS_PLOTLY`` (default 'auto': 'html' when
    ``DPHELPERS_BOOK=1``, else 'native').  Outside IPython, 'html' mode displays nothing.
    """
    if _resolve_mode(mode) == "native":
        fig.show()
        return
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(HTML(figure_html(fig)))
