"""What every figure of the book shares: colours, input checks, the 3D scene and display.

Introduced in notebook 01 through :mod:`dphelpers.viz`, which re-exports the public names
(``COLORS``, ``SIDES``, ``scene_box``, ``scene_layout``, ``figure_html``, ``show``); the
explorer (:mod:`dphelpers.evaluation.explorer`) and the prediction page
(:mod:`dphelpers.evaluation.vizpages`) build on the same pieces.

Colours (``COLORS``): the person's left side is blue, the right side red/orange, the centre
line grey (a bone takes the side of its child joint).  ``COLORS["gt"]`` (near black) marks
ground-truth joints and the ideal diagonal, ``COLORS["hypo"]`` (purple) sampled candidates.

3D scene: poses are in the camera frame, x right, y down, z forward (depth), in mm, drawn as
(x, z, -y) so that the plot's vertical axis points up.  :func:`scene_box` fixes the axes to a
body-sized cube (2 m by default) around a reference pose (the ground truth, or the median of
the hypotheses), so that a stray hypothesis or a noisy denoising step never rescales the view;
:func:`scene_layout` draws that cube from a slightly oblique view with three ticks per axis
and none at the cube's corners, so that the labels of the depth axis (which points almost at
the viewer) and of the axes meeting at a corner do not overlap.

Display: :func:`figure_html` gives the figure as HTML *without* plotly.js (the offline book
loads one local ``plotly.min.js`` through Sphinx's ``html_js_files``: offline, plotly's own
renderers either drop the figure or fetch the library from a CDN).  :func:`show` chooses how
to display: ``mode`` (or env ``DPHELPERS_PLOTLY``) is ``"html"`` (that HTML through IPython),
``"native"`` (``fig.show()``, for JupyterLab) or ``"auto"`` (default: ``"html"`` when env
``DPHELPERS_BOOK=1``, else ``"native"``).
"""
from __future__ import annotations

import base64
import io
import math
import os

import numpy as np
import plotly.graph_objects as go

from .skeleton import H36M_BONES, MPII_BONES, N_H36M, N_MPII, side_of

__all__ = ["COLORS", "SIDES", "MAX_WIDTH_PX", "BOX_MM", "CAMERA_EYE", "scene_box", "scene_layout",
           "figure_html", "show"]

COLORS: dict[str, str] = {
    "left": "#1f77b4",    # blue
    "right": "#e4572e",   # red-orange
    "centre": "#7f7f7f",  # grey
    "gt": "#222222",      # ground-truth joints, ideal lines
    "hypo": "#9467bd",    # candidates / single-colour hypotheses
}
SIDES: tuple[str, ...] = ("left", "right", "centre")
#: the widest figure the book's text column (~688 px) shows whole; wider ones are cut off
MAX_WIDTH_PX = 660
#: side of the cube the 3D axes show, mm (a standing person is 1.6-1.9 m tall)
BOX_MM = 2000.0
#: the default view: from the front, a little from the right and above
CAMERA_EYE = {"x": 0.7, "y": -1.8, "z": 0.35}
#: how far back the 3D scenes' camera sits, in units of CAMERA_EYE (axis titles stay inside)
SCENE_CAMERA_DISTANCE = 1.35
N_JOINTS = {"h36m": N_H36M, "mpii": N_MPII}
BONES = {"h36m": H36M_BONES, "mpii": MPII_BONES}
_AXIS_TITLES = ("x (right) mm", "z (depth) mm", "-y (up) mm")


# --- input checks ---------------------------------------------------------------------------
def as_array(x, name: str, shape: tuple) -> np.ndarray:
    """``x`` as a float numpy array whose shape matches ``shape`` (None = any size)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != len(shape) or any(s is not None and s != g for s, g in zip(shape, a.shape)):
        want = str(tuple("n" if s is None else s for s in shape)).replace("'", "")
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    return a


def as_image(img, name: str) -> np.ndarray:
    """``img`` as a (H, W, 3) uint8 array, else ValueError naming it."""
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"{name} must be a (H, W, 3) uint8 image, got shape {img.shape} "
                         f"dtype {img.dtype}")
    return img


def skeleton_name(skeleton: str) -> str:
    """``skeleton`` unchanged if it is ``"h36m"`` or ``"mpii"`` (a key of :data:`BONES`), else
    ValueError."""
    if skeleton not in BONES:
        raise ValueError(f"skeleton must be 'h36m' or 'mpii', got {skeleton!r}")
    return skeleton


# --- trace pieces ---------------------------------------------------------------------------
def image_trace(img: np.ndarray, **kwargs) -> go.Image:
    """An image trace, embedded as a base64 PNG when Pillow is available (~10x smaller HTML)."""
    try:
        from PIL import Image
    except ImportError:
        return go.Image(z=img, hoverinfo="skip", **kwargs)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return go.Image(source=uri, hoverinfo="skip", **kwargs)


def bone_segments(poses: np.ndarray, skeleton: str, side: str) -> np.ndarray:
    """All bones of one side of all poses as a polyline with NaN breaks: ``(m, d)``.

    poses: (n, j, d) -> rows [parent, child, NaN] per bone and pose.
    """
    bones = [(p, c) for p, c in BONES[skeleton] if side_of(c, skeleton) == side]
    idx = np.array(bones, dtype=int)                       # (k, 2)
    seg = poses[:, idx]                                    # (n, k, 2, d)
    gap = np.full(seg.shape[:2] + (1, seg.shape[-1]), np.nan)
    return np.concatenate([seg, gap], axis=2).reshape(-1, seg.shape[-1])


def none_for_nan(a: np.ndarray) -> list:
    """Coordinates with NaN replaced by None (plotly's line break)."""
    return [None if np.isnan(v) else float(v) for v in a]


def display_xyz(points: np.ndarray) -> dict:
    """Camera frame (x right, y down, z forward) -> plot (x, depth, up) = (x, z, -y)."""
    return {"x": none_for_nan(points[:, 0]), "y": none_for_nan(points[:, 2]),
            "z": none_for_nan(-points[:, 1])}


# --- the 3D scene ---------------------------------------------------------------------------
def scene_box(reference_mm, side_mm: float = BOX_MM) -> list[list[float]]:
    """Plot-axis ranges [x, depth, up] of a cube around ``reference_mm: (..., 3)`` camera mm.

    The cube is centred on the reference's bounding box; its side is ``side_mm``, or the
    reference's largest extent plus 200 mm when that is larger.
    """
    if hasattr(reference_mm, "detach"):
        reference_mm = reference_mm.detach().cpu().numpy()
    pts = np.asarray(reference_mm, dtype=np.float64)
    if pts.ndim < 1 or pts.shape[-1] != 3:
        raise ValueError(f"reference_mm must have shape (..., 3), got {pts.shape}")
    pts = pts.reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(1)]
    if not len(pts):
        raise ValueError("scene_box needs at least one finite point")
    shown = np.stack([pts[:, 0], pts[:, 2], -pts[:, 1]], axis=1)
    lo, hi = shown.min(0), shown.max(0)
    side = max(float(side_mm), float((hi - lo).max()) + 200.0)
    centre = (lo + hi) / 2
    return [[float(np.floor(c - side / 2)), float(np.ceil(c + side / 2))] for c in centre]


def _nice_step(span: float, n_ticks: int) -> float:
    """A round tick step (1, 2 or 5 x 10^k) giving at most ``n_ticks`` ticks over ``span``."""
    raw = span / max(n_ticks - 1, 1)
    base = 10 ** math.floor(math.log10(raw))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= 0.99 * raw)  # 2001 mm ~ 2 m


def scene_layout(ranges: list[list[float]], title: str = "", height: int = 560,
                 camera_distance: float = SCENE_CAMERA_DISTANCE) -> dict:
    """Layout settings of a 3D pose scene with fixed ``ranges`` (from :func:`scene_box`):
    equal scale, three ticks per axis (every quarter of the box), none at the
    box's corners; the camera at :data:`CAMERA_EYE` times ``camera_distance``.  The default
    (:data:`SCENE_CAMERA_DISTANCE`) keeps the whole cube, with its axis titles, inside the
    figure: at 1.0 the nearest corner of the cube reaches the figure's edge and the depth and
    up axes' titles are cut off.  The margins leave room for the titles as well."""
    axes = {}
    for a, r, t, n in zip("xyz", ranges, _AXIS_TITLES, (5, 5, 5)):
        step = _nice_step(r[1] - r[0], n)
        inner = 0.08 * (r[1] - r[0])            # no labels at the box's corners, where two
        first = math.ceil((r[0] + inner) / step) * step      # axes' end labels would collide
        ticks = [float(v) for v in np.arange(first, r[1] - inner + 1e-9, step)]
        axes[f"{a}axis"] = {"showbackground": False, "range": r, "autorange": False, "title": t,
                            "dtick": step, "tickvals": ticks, "tickfont": {"size": 10}}
    span = np.array([r[1] - r[0] for r in ranges], dtype=float)
    ratio = span / span.max()
    return {"title": title, "height": height,
            "margin": {"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
            "scene": {**axes, "aspectmode": "manual",
                      "aspectratio": {"x": ratio[0], "y": ratio[1], "z": ratio[2]},
                      "camera": {"eye": {k: camera_distance * v for k, v in CAMERA_EYE.items()},
                                 "up": {"x": 0, "y": 0, "z": 1}}},
            "legend": {"itemsizing": "constant"}, "uirevision": "keep"}


# --- display --------------------------------------------------------------------------------
def figure_html(fig: go.Figure) -> str:
    """The figure as an HTML fragment without plotly.js or MathJax (the book loads plotly.js)."""
    return fig.to_html(include_plotlyjs=False, full_html=False, include_mathjax=False,
                       auto_play=False)


def resolve_mode(mode: str | None = None) -> str:
    """'html' or 'native' from ``mode``, env ``DPHELPERS_PLOTLY`` and ``DPHELPERS_BOOK``."""
    mode = mode or os.environ.get("DPHELPERS_PLOTLY", "auto")
    if mode == "auto":
        return "html" if os.environ.get("DPHELPERS_BOOK") == "1" else "native"
    if mode not in ("html", "native"):
        raise ValueError(f"plotly display mode must be 'html', 'native' or 'auto', got {mode!r}")
    return mode


def display_bundle(fig: go.Figure, mode: str | None = None) -> dict:
    """What :func:`show` would display, as a mimebundle ``{mimetype: data}``: the library-free
    HTML fragment (mode 'html') or plotly's own bundle (JupyterLab's plotly renderer, with an
    HTML fallback).  For outputs set directly, e.g. an ``ipywidgets.Output``'s ``outputs``."""
    if resolve_mode(mode) == "html":
        return {"text/html": figure_html(fig), "text/plain": "<plotly figure>"}
    return dict(fig._repr_mimebundle_(None, None))


def show(fig: go.Figure, mode: str | None = None) -> None:
    """Display ``fig``: as library-free HTML in IPython (mode 'html'), or ``fig.show()``.

    ``mode`` None reads env ``DPHELPERS_PLOTLY`` (default 'auto': 'html' when
    ``DPHELPERS_BOOK=1``, else 'native').  Outside IPython, 'html' mode displays nothing.
    """
    if resolve_mode(mode) == "native":
        fig.show()
        return
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(HTML(figure_html(fig)))
