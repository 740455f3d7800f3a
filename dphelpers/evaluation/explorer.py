"""Interactive views of the hypotheses: denoising slider, sample dropdown, live explorer
(notebook 06).

Two figures work in the static book (plain plotly, no kernel needed):
:func:`trajectory_figure` animates the hypothesis cloud over the denoising steps (a slider and
play/pause buttons), :func:`explorer_figure` switches between precomputed test samples with a
dropdown.  :func:`pose_explorer` builds an ``ipywidgets`` explorer for JupyterLab that samples on
demand: pick a test sample, the number of hypotheses and the denoising step; samples are cached
per (sample, n_hypo), so moving the step slider only redraws.

Drawing follows :mod:`dphelpers.viz`: camera-frame mm shown as (x, z, -y), bones coloured by side,
the axes fixed to a 2 m cube around the ground truth (:func:`dphelpers.vizcore.scene_box`), so
that neither the noisy early steps nor a stray hypothesis rescale the view.  Legend entries
name what they are ("ground truth", "hypotheses (20)").  To keep the HTML small, all
hypotheses of one side form one trace (bone chains separated by None) and coordinates are
rounded to whole millimetres.  The live explorer redraws when a slider is released
(``continuous_update=False``), not on every step it passes.
"""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch

from .. import viz, vizcore
from ..metrics import p1, root_relative
from ..skeleton import H36M_BONES, N_H36M, side_of
from ..vizcore import scene_box, scene_layout

__all__ = ["trajectory_figure", "explorer_figure", "PoseExplorer", "pose_explorer"]

_ANIM = {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
         "transition": {"duration": 0}}


def _poses(x, name: str, ndim: int) -> np.ndarray:
    """``x`` as float32 numpy of shape (..., 17, 3) with ``ndim`` dimensions, else ValueError."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float32)
    want = {2: "(17, 3)", 3: "(h, 17, 3)", 4: "(n_steps + 1, h, 17, 3)"}[ndim]
    if a.ndim != ndim or a.shape[-2:] != (N_H36M, 3) or 0 in a.shape:
        raise ValueError(f"{name} must have shape {want} (mm), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _chains(side: str) -> list[list[int]]:
    """The bones of one side joined into polylines of joints, e.g. [[0, 4, 5, 6], [8, 11, 12,
    13]]."""
    bones = [(p, c) for p, c in H36M_BONES if side_of(c) == side]
    children = {}
    for p, c in bones:
        children.setdefault(p, []).append(c)
    starts = [b for b in bones if not any(c == b[0] for _, c in bones) or len(children[b[0]]) > 1]
    chains = []
    for p, c in starts:
        chain = [p, c]
        while len(children.get(chain[-1], [])) == 1:
            chain.append(children[chain[-1]][0])
        chains.append(chain)
    return chains


def _cloud_xyz(poses: np.ndarray, side: str) -> dict:
    """poses: (h, 17, 3) mm -> plot coordinates of all chains of one side, None between chains."""
    xs, ys, zs = [], [], []
    rounded = np.rint(poses).astype(int)
    for pose in rounded:
        for chain in _chains(side):
            pts = pose[chain]
            xs += pts[:, 0].tolist() + [None]
            ys += pts[:, 2].tolist() + [None]
            zs += (-pts[:, 1]).tolist() + [None]
    return {"x": xs, "y": ys, "z": zs}


def _hypo_traces(poses: np.ndarray) -> list[go.Scatter3d]:
    """Three line traces (left, right, centre) holding all hypotheses ``(h, 17, 3)``."""
    opacity = float(np.clip(2.0 / np.sqrt(len(poses)), 0.1, 0.5))
    name = f"hypotheses ({len(poses)})"
    return [go.Scatter3d(**_cloud_xyz(poses, side), mode="lines", name=name, meta=side,
                         legendgroup="hypotheses", showlegend=side == "left", opacity=opacity,
                         line={"color": viz.COLORS[side], "width": 2}, hoverinfo="skip")
            for side in viz.SIDES]


def _ranges(gt: np.ndarray | None, hyps: np.ndarray) -> list[list[float]]:
    """The fixed cube of the scene: around the ground truth ``(17, 3)``, else around the
    per-joint median of ``hyps: (h, 17, 3)`` (camera-frame mm)."""
    return scene_box(gt if gt is not None else np.median(hyps, axis=0))


def _scene_layout(fig: go.Figure, ranges: list[list[float]], title: str) -> go.Figure:
    """viz.pose_figure's look: the fixed cube ``ranges``, few depth ticks, one camera."""
    # the camera a little farther than pose_figure's: in the widget's 600 px the x-axis title
    # was cut at the lower edge (seen in JupyterLab through tools.labcheck)
    fig.update_layout(**scene_layout(ranges, title, camera_distance=1.2))
    return fig


def _cloud_figure(hyps: np.ndarray, gt: np.ndarray | None, ranges, title: str) -> go.Figure:
    fig = go.Figure()
    if gt is not None:
        fig.add_traces(viz.skeleton_traces(gt, "ground truth", width=8))
    fig.add_traces(_hypo_traces(hyps))
    return _scene_layout(fig, ranges, title)


def trajectory_figure(trajectory, gt_mm=None, max_hypotheses: int = 30,
                      title: str = "") -> go.Figure:
    """The hypothesis cloud over the denoising steps: a slider with one frame per step.

    trajectory: (n_steps + 1, h, 17, 3) camera-frame mm, step 0 = pure noise, the last = the
    final hypotheses (``DiffPose.sample(..., return_trajectory=True)`` for one image); gt_mm:
    (17, 3) or None, drawn fixed.  The first ``max_hypotheses`` hypotheses are drawn.  Traces:
    ground truth (3, if given), then hypotheses (3); frame k replaces the hypotheses' traces with
    step k.  The axes are a fixed cube around the ground truth (else the final hypotheses).
    The figure opens on the last step.
    """
    traj = _poses(trajectory, "trajectory", 4)[:, :max(int(max_hypotheses), 1)]
    gt = _poses(gt_mm, "gt_mm", 2) if gt_mm is not None else None
    n_frames = traj.shape[0]
    ranges = _ranges(gt, traj[-1])
    fig = _cloud_figure(traj[-1], gt, ranges, title)
    first = 3 if gt is not None else 0
    fig.frames = [go.Frame(data=_hypo_traces(traj[k]), traces=[first, first + 1, first + 2],
                           name=str(k))
                  for k in range(n_frames)]
    fig.update_layout(
        updatemenus=[{"type": "buttons", "direction": "left", "x": 0.12, "y": 0.0,
                      "xanchor": "right",
                      "yanchor": "top", "pad": {"t": 60, "r": 10}, "showactive": False, "buttons": [
                          {"label": "play", "method": "animate",
                           "args": [None, {**_ANIM, "frame": {"duration": 200, "redraw": True},
                                           "fromcurrent": True}]},
                          {"label": "pause", "method": "animate", "args": [[None], _ANIM]}]}],
        sliders=[{"active": n_frames - 1, "x": 0.12, "len": 0.88, "y": 0.0, "yanchor": "top",
                  "pad": {"t": 30, "b": 10},
                  "currentvalue": {"prefix": "denoising step (0 = noise): "},
                  "steps": [{"label": str(k), "method": "animate", "args": [[str(k)], _ANIM]}
                            for k in range(n_frames)]}],
        height=640, margin={"l": 0, "r": 0, "t": 40 if title else 10, "b": 90})
    return fig


def _sample_title(index: int, ambiguous: bool, hyps: torch.Tensor, gt: torch.Tensor) -> str:
    err = p1(hyps[None], gt[None])
    return (f"test sample {index}{' (ambiguous)' if ambiguous else ''}: P1 best "
            f"{err['min'].item():.0f} mm, median {err['median'].item():.0f} mm")


def explorer_figure(model, test, indices, n_hypo: int = 50,
                    generator: torch.Generator | None = None) -> go.Figure:
    """A dropdown over test samples, each with its ground truth and ``n_hypo`` hypotheses.

    model: a DiffPose; test: a :class:`dphelpers.pipeline.SampleBatch`; indices: sample indices.
    All samples are drawn now, in one ``model.sample`` call (``generator`` None = seed 0).
    Traces: 6 per sample (ground truth left/right/centre, hypotheses left/right/centre), only the
    first sample's visible; each dropdown button shows one sample and sets its axis ranges.
    """
    idx = [int(i) for i in np.atleast_1d(np.asarray(indices))]
    if not idx or any(not 0 <= i < len(test) for i in idx):
        raise ValueError("indices must be a non-empty list of test indices in "
                         f"0..{len(test) - 1}, got {idx}")
    if n_hypo < 1:
        raise ValueError(f"n_hypo must be >= 1, got {n_hypo}")
    gen = generator or torch.Generator(device=model.device).manual_seed(0)
    hyps = model.sample(test.heatmaps[idx].to(model.device), n_hypo, generator=gen).cpu()
    gts = root_relative(test.poses_3d_mm[idx].cpu())
    fig, buttons, n = go.Figure(), [], len(idx)
    for k, i in enumerate(idx):
        h, gt = hyps[k].numpy(), gts[k].numpy()
        title = _sample_title(i, bool(test.ambiguous[i]), hyps[k], gts[k])
        ranges = _ranges(gt, h)
        for trace in _cloud_figure(h, gt, ranges, title).data:
            trace.visible = k == 0
            fig.add_trace(trace)
        if k == 0:
            _scene_layout(fig, ranges, title)
        visible = [j // 6 == k for j in range(6 * n)]
        label = f"sample {i}" + (" (ambiguous)" if bool(test.ambiguous[i]) else "")
        buttons.append({"label": label, "method": "update", "args": [
            {"visible": visible},
            {"title.text": title, "scene.xaxis.range": ranges[0], "scene.yaxis.range": ranges[1],
             "scene.zaxis.range": ranges[2]}]})
    fig.update_layout(updatemenus=[{"type": "dropdown", "buttons": buttons, "active": 0,
                                    "x": 0.0, "y": 1.0, "xanchor": "left", "yanchor": "top"}],
                      margin={"l": 0, "r": 0, "t": 70, "b": 0}, height=600)
    return fig


def _redraw(out: widgets.Output, fig: go.Figure) -> None:
    """Replace what ``out`` shows by ``fig``, in one assignment of its ``outputs``.

    Not ``with out: clear_output(wait=True); display(fig)``: output captured that way is routed
    by the message's parent id, and a notebook run without a browser (papermill, nbclient) can
    then wait forever for the cell's end (jupyter/nbclient#312); setting ``outputs`` is one
    widget-state update that JupyterLab renders the same way.
    """
    out.outputs = ({"output_type": "display_data", "data": vizcore.display_bundle(fig),
                    "metadata": {}},)


class PoseExplorer(widgets.VBox):
    """Live explorer for JupyterLab: test sample, number of hypotheses, denoising step, resample.

    Controls (attributes): ``sample`` (Dropdown of test indices, ambiguous ones marked),
    ``n_hypo`` (IntSlider 1..max_hypo), ``step`` (IntSlider 0..n_steps: denoising steps done,
    0 = pure noise), ``resample`` (Button).  Outputs: ``cloud_out`` (the 3D cloud at that step,
    :attr:`figure` holds it) and ``heatmaps_out`` (the sample's 16 heatmaps).  Construction
    samples nothing, nor does setting controls before the first display; the first display (or
    :meth:`refresh`) samples once, later sampling happens only when the sample, the number of
    hypotheses or the resample button asks for it: trajectories are cached per (sample, n_hypo).
    ``generator`` None = seed 0; ``n_hypo`` and ``index`` are the controls' initial values.
    """

    def __init__(self, model, test, generator: torch.Generator | None = None, max_hypo: int = 200,
                 n_hypo: int = 50, index: int = 0) -> None:
        if max_hypo < 1:
            raise ValueError(f"max_hypo must be >= 1, got {max_hypo}")
        if not 0 <= index < len(test):
            raise ValueError(f"index must be in 0..{len(test) - 1}, got {index}")
        self.model, self.test = model, test
        self.generator = generator or torch.Generator(device=model.device).manual_seed(0)
        self.n_steps = model.schedule.n_steps
        self.cache: dict[tuple[int, int], np.ndarray] = {}
        self.figure: go.Figure | None = None
        amb = test.ambiguous.tolist()
        self.sample = widgets.Dropdown(
            options=[(f"{i} (ambiguous)" if a else str(i), i) for i, a in enumerate(amb)],
            value=index, description="test sample")
        self.n_hypo = widgets.IntSlider(value=min(n_hypo, max_hypo), min=1, max=max_hypo,
                                        description="hypotheses", continuous_update=False)
        self.step = widgets.IntSlider(value=self.n_steps, min=0, max=self.n_steps,
                                      description="step", continuous_update=False)
        self.resample = widgets.Button(description="resample")
        self.cloud_out, self.heatmaps_out = widgets.Output(), widgets.Output()
        self._shown_heatmaps: int | None = None
        controls = widgets.HBox([self.sample, self.n_hypo, self.step, self.resample])
        super().__init__([controls, self.cloud_out, self.heatmaps_out])
        for w in (self.sample, self.n_hypo, self.step):
            w.observe(self._changed, names="value")
        self.resample.on_click(lambda _b: self.refresh(resample=True))

    def trajectory(self, resample: bool = False) -> np.ndarray:
        """The current sample's trajectory ``(n_steps + 1, n_hypo, 17, 3)`` mm, from the cache."""
        key = (int(self.sample.value), int(self.n_hypo.value))
        if resample or key not in self.cache:
            hm = self.test.heatmaps[key[0]][None].to(self.model.device)
            _, traj = self.model.sample(hm, key[1], generator=self.generator,
                                        return_trajectory=True)
            self.cache[key] = traj[:, 0].cpu().numpy()
        return self.cache[key]

    def refresh(self, resample: bool = False) -> go.Figure:
        """Redraw the 3D cloud (and the heatmaps when the sample changed); returns the 3D figure."""
        i, k = int(self.sample.value), int(self.step.value)
        traj = self.trajectory(resample)
        gt = root_relative(self.test.poses_3d_mm[i].cpu()).numpy()
        ranges = _ranges(gt, traj[-1])
        title = (f"test sample {i}{' (ambiguous)' if bool(self.test.ambiguous[i]) else ''}: "
                 f"{traj.shape[1]} hypotheses after {k} of {self.n_steps} denoising steps")
        self.figure = _cloud_figure(traj[k], gt, ranges, title)
        _redraw(self.cloud_out, self.figure)
        if self._shown_heatmaps != i:
            self._shown_heatmaps = i
            _redraw(self.heatmaps_out,
                    viz.heatmap_figure(self.test.heatmaps[i], joints=self.test.joints_hm[i]))
        return self.figure

    def _changed(self, _change) -> None:
        if self.figure is not None:             # before the first display: nothing to redraw
            self.refresh()

    def _repr_mimebundle_(self, **kwargs):
        if self.figure is None:
            self.refresh()
        return super()._repr_mimebundle_(**kwargs)


def pose_explorer(model, test, generator: torch.Generator | None = None, max_hypo: int = 200,
                  n_hypo: int = 50, index: int = 0) -> PoseExplorer:
    """A :class:`PoseExplorer` over ``test`` (a SampleBatch) for ``model`` (a DiffPose)."""
    return PoseExplorer(model, test, generator=generator, max_hypo=max_hypo, n_hypo=n_hypo,
                        index=index)
