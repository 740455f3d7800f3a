"""The figure of :mod:`dphelpers.evaluation.mechanism`: one failed joint, its heatmap and the
hypotheses.

For one test sample and one MPII joint whose argmax is wrong (a wrist, say), the left panel
shows that joint's 64 x 64 heatmap with its two modes (the wrong peak, the argmax, and the
weaker one at the truth), the truth, and where each model's hypotheses put the joint,
projected back into the heatmap; the right panel the distribution of the joint's 3D error
over the hypotheses, model by model, with the 100 mm line of the within-share.

The hypotheses are root-relative; to project them they are placed at the true pelvis in the
camera frame, and the camera's focal length and principal point are recovered from the test
sample's 3D and 2D joints (:func:`pinhole_from_joints`, exact for simulated cameras).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..cameras import to_heatmap_px
from ..pckh import argmax_px
from ..vizcore import COLORS

__all__ = ["pinhole_from_joints", "joint_in_heatmap", "pick_failed_joint",
           "failed_joint_figure", "MODEL_COLORS"]

#: one colour per model, in the order the figure receives them
MODEL_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e")


def pinhole_from_joints(poses_3d_mm: torch.Tensor, poses_2d_px: torch.Tensor) -> torch.Tensor:
    """Least-squares ``(f, cx, cy)`` of ``u = f x / z + cx``, ``v = f y / z + cy`` from one
    sample's ``poses_3d_mm: (j, 3)`` camera frame and ``poses_2d_px: (j, 2)``."""
    p, uv = poses_3d_mm.double(), poses_2d_px.double()
    xy = p[:, :2] / p[:, 2:]                                                   # (j, 2)
    j = p.shape[0]
    a = torch.zeros(2 * j, 3, dtype=torch.float64)
    a[:j, 0], a[j:, 0] = xy[:, 0], xy[:, 1]
    a[:j, 1], a[j:, 2] = 1.0, 1.0
    sol = torch.linalg.lstsq(a, torch.cat([uv[:, 0], uv[:, 1]])[:, None]).solution
    return sol[:, 0]


def joint_in_heatmap(pred_mm: torch.Tensor, test, i: int, h36m_joint: int) -> torch.Tensor:
    """Heatmap pixels ``(h, 2)`` of one joint of root-relative hypotheses ``pred_mm: (h, 17, 3)``
    of test sample ``i``, placed at the sample's true pelvis."""
    gt = test.poses_3d_mm[i].double()
    f, cx, cy = pinhole_from_joints(gt, test.poses_2d_px[i])
    pts = pred_mm[:, h36m_joint].double() + gt[0]                              # (h, 3)
    uv = torch.stack([f * pts[:, 0] / pts[:, 2] + cx, f * pts[:, 1] / pts[:, 2] + cy], -1)
    box = test.boxes[i:i + 1].double().expand(uv.shape[0], 3)
    return to_heatmap_px(uv[:, None], box, test.heatmaps.shape[-1])[:, 0].float()


def pick_failed_joint(test, mpii_joints=(10, 15)) -> tuple[int, int] | None:
    """``(sample, mpii_joint)``: among ``mpii_joints`` (default the wrists) that fail PCKh@0.5
    and keep a mode at the truth, the one whose argmax lies farthest from the truth; failing
    that, any failed joint of the list; None if none fails."""
    joints = list(mpii_joints)
    failed = test.failed_joints[:, joints]
    if not failed.any():
        return None
    pool = failed & test.kept_true_mode[:, joints]
    pool = pool if pool.any() else failed
    dist = torch.linalg.vector_norm(argmax_px(test.heatmaps[:, joints]).float()
                                    - test.joints_hm[:, joints].float(), dim=-1)
    k = int(torch.where(pool, dist, torch.full_like(dist, -1.0)).argmax())
    return k // len(joints), joints[k % len(joints)]


def failed_joint_figure(heatmap, truth_hm, hypotheses_hm: dict, errors_mm: dict,
                        joint_name: str = "", title: str = "") -> go.Figure:
    """``heatmap: (64, 64)``; ``truth_hm: (2,)`` heatmap px; ``hypotheses_hm``: model ->
    ``(h, 2)`` heatmap px; ``errors_mm``: model -> ``(h,)`` the joint's 3D error per
    hypothesis.  Returns the two-panel figure (heatmap, error histogram)."""
    hm = np.clip(np.asarray(heatmap, dtype=np.float32), 0, None)
    if hm.ndim != 2:
        raise ValueError(f"failed_joint_figure: heatmap must be (H, W), got {hm.shape}")
    peak = np.unravel_index(int(hm.argmax()), hm.shape)                        # (row, col)
    truth = np.asarray(truth_hm, dtype=np.float32)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.1,
                        subplot_titles=[f"heatmap of the {joint_name}",
                                        f"{joint_name} error per hypothesis (mm)"])
    fig.add_trace(go.Heatmap(z=hm, colorscale="YlOrBr", showscale=False,
                             name="heatmap", hoverinfo="skip"), row=1, col=1)
    for k, (model, pts) in enumerate(hypotheses_hm.items()):
        pts = np.asarray(pts, dtype=np.float32)
        color = MODEL_COLORS[k % len(MODEL_COLORS)]
        fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=model,
                                 legendgroup=model, marker={"size": 4, "color": color,
                                                            "opacity": 0.45}), row=1, col=1)
        err = np.asarray(errors_mm[model], dtype=np.float32)
        fig.add_trace(go.Histogram(x=err, name=model, legendgroup=model, showlegend=False,
                                   marker={"color": color}, opacity=0.55,
                                   xbins={"size": 20}), row=1, col=2)
    fig.add_trace(go.Scatter(x=[peak[1]], y=[peak[0]], mode="markers", name="argmax (wrong)",
                             marker={"symbol": "x", "size": 13, "color": "#ff00ff",
                                     "line": {"width": 2}}), row=1, col=1)
    fig.add_trace(go.Scatter(x=[truth[0]], y=[truth[1]], mode="markers", name="truth",
                             marker={"symbol": "star", "size": 15, "color": COLORS["gt"],
                                     "line": {"color": "white", "width": 1}}), row=1, col=1)
    fig.add_vline(x=100.0, line_dash="dash", line_color=COLORS["gt"], row=1, col=2)
    fig.update_xaxes(range=[-0.5, hm.shape[1] - 0.5], row=1, col=1, title_text="x (px)")
    fig.update_yaxes(range=[hm.shape[0] - 0.5, -0.5], row=1, col=1, scaleanchor="x",
                     title_text="y (px)")
    fig.update_xaxes(title_text="3D error of the joint (mm)", row=1, col=2)
    fig.update_yaxes(title_text="hypotheses", row=1, col=2)
    fig.update_layout(barmode="overlay", height=430, width=660, title=title,
                      margin={"l": 10, "r": 10, "t": 70, "b": 10})
    return fig

