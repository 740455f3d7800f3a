"""Pages that combine several views: a photo's prediction (the ``predict`` verb, notebook 06).

:func:`prediction_figure` puts, side by side, the photo with the detector's box and 2D joints
and the 3D hypotheses with one representative pose drawn bold (the *medoid*: the hypothesis
with the smallest mean distance to all others, a pose the model really proposed, unlike the
per-joint mean), and below them the spread per joint.  :func:`prediction_page` wraps it in a
self-contained HTML page (plotly.js inlined: it opens offline, without the book).

Spread of a joint = the root-mean-square 3D distance of its hypotheses from the medoid's
position of that joint, in mm, measured from the pelvis (root-relative hypotheses).
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..cameras import from_heatmap_px
from ..skeleton import H36M_NAMES, N_H36M, N_MPII
from ..vizcore import (COLORS, SIDES, as_array, as_image, bone_segments, display_xyz, image_trace,
                       none_for_nan, scene_box, scene_layout)

__all__ = ["medoid_index", "joint_spread_mm", "joints_outside", "prediction_figure",
           "prediction_page"]


def medoid_index(poses_mm) -> int:
    """Index of the hypothesis with the smallest mean MPJPE to all others; ``(h, 17, 3)`` mm."""
    p = torch.as_tensor(as_array(poses_mm, "poses_mm", (None, N_H36M, 3)))
    dist = torch.linalg.vector_norm(p[:, None] - p[None], dim=-1).mean(-1)   # (h, h)
    return int(dist.mean(1).argmin())


def joint_spread_mm(poses_mm, centre_mm=None) -> np.ndarray:
    """RMS distance of each joint's hypotheses from ``centre_mm`` (default: the medoid): (17,)."""
    p = as_array(poses_mm, "poses_mm", (None, N_H36M, 3))
    c = p[medoid_index(p)] if centre_mm is None else as_array(centre_mm, "centre_mm", (N_H36M, 3))
    return np.sqrt((np.linalg.norm(p - c, axis=-1) ** 2).mean(0))


def _joints_image_px(detection) -> np.ndarray:
    """The detection's 16 MPII joints in image px: ``(16, 2)``."""
    for attr in ("joints_hm", "box"):
        if not hasattr(detection, attr):
            raise ValueError(f"detection needs a {attr!r} attribute (a detector.Detection), "
                             f"got {type(detection).__name__}")
    hm = torch.as_tensor(as_array(detection.joints_hm, "detection.joints_hm", (N_MPII, 2)))
    box = torch.as_tensor(as_array(detection.box, "detection.box", (3,)))
    return from_heatmap_px(hm[None], box[None])[0].numpy()


def _view_extent(shape, box, joints: np.ndarray, margin: float = 0.03):
    """x and y ranges (image px) holding the photo, the box ``(cx, cy, side)`` and joints."""
    h, w = shape[:2]
    cx, cy, side = box
    xs = np.concatenate([[-0.5, w - 0.5, cx - side / 2, cx + side / 2], joints[:, 0]])
    ys = np.concatenate([[-0.5, h - 0.5, cy - side / 2, cy + side / 2], joints[:, 1]])
    out = []
    for v in (xs, ys):
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        pad = margin * (hi - lo)
        out.append((lo - pad, hi + pad))
    return out


def joints_outside(image, detection) -> list[str]:
    """MPII names of the detected joints that lie beyond the photo's border."""
    from ..skeleton import MPII_NAMES
    h, w = as_image(image, "image").shape[:2]
    joints = _joints_image_px(detection)
    out = (joints[:, 0] < 0) | (joints[:, 0] > w - 1) | (joints[:, 1] < 0) | (joints[:, 1] > h - 1)
    return [MPII_NAMES[j] for j in np.flatnonzero(out)]


def _photo_traces(img: np.ndarray, box: tuple[float, float, float],
                  joints: np.ndarray) -> list:
    """The photo, the person box (the crop; ``box`` = centre x, y and side) and the detected
    2D joints (one trace per side)."""
    cx, cy, side = box
    out = [image_trace(img),
           go.Scatter(x=[cx - side / 2, cx + side / 2, cx + side / 2, cx - side / 2,
                         cx - side / 2],
                      y=[cy - side / 2, cy - side / 2, cy + side / 2, cy + side / 2,
                         cy - side / 2], mode="lines", name="person box (the crop)",
                      line={"color": "#b8860b", "width": 2, "dash": "dash"}, hoverinfo="skip")]
    for i, s in enumerate(SIDES):
        pts = bone_segments(joints[None], "mpii", s)
        out.append(go.Scatter(x=none_for_nan(pts[:, 0]), y=none_for_nan(pts[:, 1]),
                              mode="lines+markers", name="detected 2D joints",
                              legendgroup="2d", showlegend=i == 0,
                              line={"color": COLORS[s], "width": 3},
                              marker={"color": COLORS[s], "size": 6}))
    return out


def _cloud_traces(poses: np.ndarray, m: int, max_hypotheses: int) -> list:
    """The first ``max_hypotheses`` hypotheses (thin, side colours) and the medoid ``m`` (bold,
    dark, drawn on top), one 3D trace per side each."""
    shown = poses[:max(int(max_hypotheses), 1)]
    opacity = float(np.clip(2.0 / np.sqrt(len(shown)), 0.08, 0.5))
    label = f"hypotheses ({len(shown)}" + (f" of {len(poses)})" if len(shown) < len(poses)
                                          else ")")
    out = [go.Scatter3d(**display_xyz(bone_segments(shown, "h36m", s)), mode="lines",
                        name=label, legendgroup="hyp", showlegend=i == 0, opacity=opacity,
                        line={"color": COLORS[s], "width": 2}, hoverinfo="skip")
           for i, s in enumerate(SIDES)]
    out += [go.Scatter3d(**display_xyz(bone_segments(poses[m][None], "h36m", s)),
                         mode="lines+markers", name="medoid hypothesis", legendgroup="medoid",
                         showlegend=i == 0, line={"color": COLORS["gt"], "width": 9},
                         marker={"size": 3, "color": COLORS["gt"]}, hoverinfo="skip")
            for i, s in enumerate(SIDES)]
    return out


def prediction_figure(image, detection, poses_mm, title: str = "",
                      max_hypotheses: int = 200) -> go.Figure:
    """Photo + 2D joints | 3D hypotheses with the medoid bold; spread per joint below.

    image: (H, W, 3) uint8, the photo the detection ran on; detection: a
    :class:`dphelpers.detector.Detection` (``box``, ``joints_hm``; ``score`` if present);
    poses_mm: (h, 17, 3) root-relative hypotheses, camera frame mm.  Traces, in order:
    image, box, 2D joints (3 sides), hypotheses (3 sides, side colours), medoid (3, drawn bold
    in ``COLORS["gt"]``), spread bars.  Nothing overlaps at any width from the book's column
    (~680 px) up: the title, the legend and the subplot titles each have a band of the top
    margin; the grey around the photo is beyond its border.
    """
    img = as_image(image, "image")
    poses = as_array(poses_mm, "poses_mm", (None, N_H36M, 3))
    joints = _joints_image_px(detection)
    m = medoid_index(poses)
    spread = joint_spread_mm(poses, poses[m])
    fig = make_subplots(rows=2, cols=2, column_widths=[0.4, 0.6], row_heights=[0.7, 0.3],
                        specs=[[{"type": "xy"}, {"type": "scene"}], [{"type": "xy", "colspan": 2},
                                                                   None]],
                        subplot_titles=["the photo and its 2D joints",
                                        f"{len(poses)} hypotheses, medoid bold",
                                        "spread per joint around the medoid (mm)"],
                        vertical_spacing=0.1, horizontal_spacing=0.03)
    cx, cy, side = (float(v) for v in np.asarray(detection.box, dtype=float))
    for trace in _photo_traces(img, (cx, cy, side), joints):
        fig.add_trace(trace, row=1, col=1)
    for trace in _cloud_traces(poses, m, max_hypotheses):
        fig.add_trace(trace, row=1, col=2)
    fig.add_trace(go.Bar(x=list(H36M_NAMES[1:]), y=spread[1:], name="spread per joint",
                         marker_color=COLORS["hypo"], showlegend=False,
                         hovertemplate="%{x}: %{y:.0f} mm<extra></extra>"), row=2, col=1)
    # the view holds the photo, the person box and every joint: BlazePose also places joints
    # it cannot see (beyond the photo's border), and the box may reach past it too
    (x0, x1), (y0, y1) = _view_extent(img.shape, (cx, cy, side), joints)
    fig.update_xaxes(range=[x0, x1], showticklabels=False, showgrid=False, zeroline=False,
                     row=1, col=1)
    fig.update_yaxes(range=[y1, y0], showticklabels=False, showgrid=False, zeroline=False,
                     scaleanchor="x", row=1, col=1)
    fig.update_yaxes(title="mm", row=2, col=1)
    # a little farther back than pose_figure's camera: the scene here is shorter than it is
    # wide, and the nearest axis' title would fall below its bottom edge
    layout = scene_layout(scene_box(poses[m]), title, height=_PAGE_HEIGHT, camera_distance=1.6)
    layout["scene"]["domain"] = fig.layout.scene.domain.to_plotly_json()
    fig.update_layout(**layout)
    # Top to bottom, each in its own band of the top margin (pixels, whatever the width):
    # the title, the legend (two rows when the column is narrow), the subplot titles.
    title_px = _TITLE_PX if title else 0
    fig.update_layout(
        title={"text": title, "y": 1 - 8 / _PAGE_HEIGHT, "yref": "container", "yanchor": "top",
               "x": 0.02, "xanchor": "left", "font": {"size": 16}},
        margin={"l": 10, "r": 10, "t": title_px + _LEGEND_PX + _SUBTITLE_PX, "b": 30},
        plot_bgcolor="#e5e5e5",        # around the photo: outside the picture
        legend={"orientation": "h", "yref": "container", "y": 1 - (title_px + 6) / _PAGE_HEIGHT,
                "yanchor": "top", "x": 0.0, "xanchor": "left", "font": {"size": 12}})
    fig.update_annotations(font_size=13, yshift=2)       # the subplot titles
    return fig


#: the prediction figure's height and the bands of its top margin, px
_PAGE_HEIGHT = 900
_TITLE_PX, _LEGEND_PX, _SUBTITLE_PX = 34, 50, 26


def prediction_page(image, detection, poses_mm, title: str = "DiffPose prediction",
                    path: str | Path | None = None, note: str = "") -> str:
    """A self-contained HTML page of :func:`prediction_figure` (plotly.js inlined, no network);
    written to ``path`` when given.  ``note``: an extra line under the title (e.g. timings)."""
    fig = prediction_figure(image, detection, poses_mm)
    poses = as_array(poses_mm, "poses_mm", (None, N_H36M, 3))
    spread = joint_spread_mm(poses)
    worst = sorted(range(1, N_H36M), key=lambda j: -spread[j])[:3]
    score = getattr(detection, "score", None)
    facts = [f"{len(poses)} hypotheses"] + ([f"person score {score:.2f}"] if score is not None
                                            else [])
    facts.append("least certain: " + ", ".join(f"{H36M_NAMES[j]} ({spread[j]:.0f} mm)"
                                                for j in worst))
    joints_hm = getattr(detection, "joints_hm", None)
    if joints_hm is not None:
        from .reprojection import weak_perspective_fit
        fit = weak_perspective_fit(torch.as_tensor(poses[medoid_index(poses)], dtype=torch.float32),
                                   torch.as_tensor(np.asarray(joints_hm), dtype=torch.float32))
        facts.append(f"the medoid reprojects onto the detected 2D joints with RMS "
                     f"{float(fit.rms):.2f} heatmap px (weak perspective; 64 px maps)")
    outside = joints_outside(image, detection)
    if outside:
        facts.append("beyond the photo's border, placed by the detector without seeing them: "
                     + ", ".join(outside))
    body = fig.to_html(include_plotlyjs=True, full_html=False, include_mathjax=False)
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:1em 2em}p{color:#444}</style></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape('; '.join(facts))}</p>"
            + (f"<p>{html.escape(note)}</p>" if note else "") + body + "</body></html>\n")
    if path is not None:
        Path(path).write_text(page)
    return page
