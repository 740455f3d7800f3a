"""Few-step sampling: accuracy against speed of DDIM over k of the 25 timesteps (notebook 05).

One trained model, several samplers behind the same ``DiffPose.sample``: the 25-step ancestral
sampler (the reference) and DDIM over k timesteps with noise ``eta``
(:meth:`dphelpers.schedule.CosineSchedule.ddim_timesteps`).  Per sampler, on the same test set
and seed: P1 min / median, P2 min, ECE, twin coverage at 100 mm and hypotheses per second in
float32, timed in the same run (best of a few calls per sampler, the samplers interleaved so
that a busy machine slows all of them alike).  The timed call includes the condition, which
does not shrink with k, so the speed-up is less than 25 / k.  The ``fewstep`` verb
(:mod:`dphelpers.tools.fewstep`) writes ``data/results/fewstep.json`` with these rows.
"""
from __future__ import annotations

import time

import torch

from ..diffusion import DiffPose
from ..pipeline import SampleBatch
from .coverage import coverage_table
from .evaluate import evaluate
from .tables import Table, table
from .twins import TwinBatch, depth_flip_twins_batch

__all__ = ["DEFAULT_SETTINGS", "setting_name", "setting_kwargs", "hypotheses_per_second",
           "few_step_rows", "default_candidates", "rows_table", "few_step_figure"]


#: (k, eta) per sampler; eta None = the ancestral sampler (k must then be all 25 steps).
DEFAULT_SETTINGS: tuple[tuple[int, float | None], ...] = (
    (25, None), (10, 0.0), (10, 1.0), (5, 0.0), (5, 1.0))




def _check_setting(setting, n_steps: int) -> tuple[int, float | None]:
    if not isinstance(setting, (tuple, list)) or len(setting) != 2:
        raise ValueError(f"a setting is a pair (k, eta), got {setting!r}")
    k, eta = setting
    if eta is None and k != n_steps:
        raise ValueError(f"setting {setting!r}: eta None is the ancestral sampler, which runs all "
                         f"{n_steps} steps; give (k, eta) with 0 <= eta <= 1 for DDIM")
    return int(k), (None if eta is None else float(eta))


def setting_name(k: int, eta: float | None) -> str:
    """``"25 ancestral"`` or ``"10 DDIM eta=0"``."""
    return f"{k} ancestral" if eta is None else f"{k} DDIM eta={eta:g}"


def setting_kwargs(k: int, eta: float | None) -> dict:
    """The ``DiffPose.sample`` arguments of a setting (none for the ancestral sampler)."""
    return {} if eta is None else {"steps": k, "eta": eta}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hypotheses_per_second(model: DiffPose, heatmaps: torch.Tensor, n_hypo: int,
                          settings, repeats: int = 3, seed: int = 0) -> list[float]:
    """Float32 hypotheses per second of each setting on ``heatmaps: (b, 16, 64, 64)``.

    Each setting is warmed up once, then timed ``repeats`` times, the settings taking turns;
    the best call counts.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = model.device
    hm = heatmaps.to(device)
    kwargs = [setting_kwargs(*_check_setting(s, model.schedule.n_steps)) for s in settings]

    def call(kw: dict) -> float:
        gen = torch.Generator(device=device).manual_seed(seed)
        t0 = time.perf_counter()
        model.sample(hm, n_hypo, generator=gen, autocast_dtype=None, **kw)
        _sync(device)
        return time.perf_counter() - t0

    for kw in kwargs:
        call(kw)
    best = [float("inf")] * len(kwargs)
    for _ in range(repeats):
        for i, kw in enumerate(kwargs):
            best[i] = min(best[i], call(kw))
    return [hm.shape[0] * n_hypo / b for b in best]


def few_step_rows(model: DiffPose, test: SampleBatch, settings=DEFAULT_SETTINGS,
                  n_hypo: int = 200, batch_size: int = 8, seed: int = 0, progress: bool = True,
                  repeats: int = 3, twins: TwinBatch | None = None) -> list[dict]:
    """One row per setting: accuracy on ``test`` and float32 speed, in the same run.

    Keys: ``sampler`` (:func:`setting_name`), ``steps``, ``eta`` (None = ancestral),
    ``P1_min``, ``P1_median``, ``P2_min`` (mm), ``ECE``, ``twin@100`` and ``gt_same@100``
    (:func:`dphelpers.evaluation.twins.coverage_table`), ``hyp_per_s``, ``speedup`` (vs the 25-step
    ancestral sampler), ``dP1_min``, ``dP1_median`` (mm, minus the 25-step values) and
    ``eval_s`` (seconds of the evaluation, metrics included).  ``settings`` must include the
    reference ``(25, None)``.  Every setting samples with the same ``seed``.  ``twins``: the
    :class:`TwinBatch` of ``test.poses_3d_mm`` if already built.
    """
    n_steps = model.schedule.n_steps
    settings = [_check_setting(s, n_steps) for s in settings]
    ref = (n_steps, None)
    if ref not in settings:
        raise ValueError(f"settings must include the reference {ref} (the {n_steps}-step "
                         f"ancestral sampler), got {settings}")
    if twins is None:
        twins = depth_flip_twins_batch(test.poses_3d_mm)
    rows = []
    for k, eta in settings:
        t0 = time.perf_counter()
        ev = evaluate(model, test, n_hypo, batch_size, seed=seed, progress=progress, keep=True,
                      autocast_dtype=None, sample_kwargs=setting_kwargs(k, eta))
        eval_s = time.perf_counter() - t0
        summ, cov = ev.summary(), coverage_table(ev.predictions, test.poses_3d_mm, twins)
        rows.append({"sampler": setting_name(k, eta), "steps": k, "eta": eta,
                     "P1_min": summ["P1_min"], "P1_median": summ["P1_median"],
                     "P2_min": summ["P2_min"], "ECE": summ["ECE"],
                     "twin@100": cov["twin@100"], "gt_same@100": cov["gt_same@100"],
                     "eval_s": eval_s})
        del ev
    speed = hypotheses_per_second(model, test.heatmaps[:batch_size], n_hypo, settings,
                                  repeats, seed)
    base = rows[settings.index(ref)]
    base_speed = speed[settings.index(ref)]
    for row, hs in zip(rows, speed):
        row.update(hyp_per_s=hs, speedup=hs / base_speed,
                   dP1_min=row["P1_min"] - base["P1_min"],
                   dP1_median=row["P1_median"] - base["P1_median"])
    return rows


def default_candidates(rows: list[dict], tol_mm: float = 1.0) -> list[str]:
    """Samplers other than the reference whose P1 min AND P1 median move by < ``tol_mm``."""
    return [r["sampler"] for r in rows if r["eta"] is not None
            and abs(r["dP1_min"]) < tol_mm and abs(r["dP1_median"]) < tol_mm]


#: row key -> column name shown to readers, and decimals (mm and % to 0.1)
_WORDS = {"sampler": "sampler", "P1_min": "P1 min (mm)", "P1_median": "P1 median (mm)",
          "P2_min": "P2 min (mm)", "ECE": "ECE", "twin@100": "twin@100 (%)",
          "hyp_per_s": "hypotheses/s", "speedup": "speed-up", "dP1_min": "change of P1 min (mm)",
          "dP1_median": "change of P1 median (mm)"}
_DECIMALS = {"ECE": 3, "hyp_per_s": 0, "speedup": 2}


def rows_table(rows: list[dict], caption: str = "") -> Table:
    """The rows as a :class:`dphelpers.evaluation.tables.Table` with column names in words:
    errors in mm and twin coverage in % to 0.1, ECE to 0.001, hypotheses/s whole, speed-up to
    0.01; keys a row lacks are left out."""
    def cell(r: dict, k: str):
        v = r.get(k)
        if v is None or k == "sampler":
            return v
        return round(float(100 * v if k == "twin@100" else v), _DECIMALS.get(k, 1))
    keys = [k for k in _WORDS if any(k in r for r in rows)]
    return table([{_WORDS[k]: cell(r, k) for k in keys} for r in rows], digits=8,
                 caption=caption)


def few_step_figure(rows: list[dict]):
    """Accuracy against speed: P1 min and P1 median (mm) vs hypotheses/s, one labelled point per
    sampler, each curve in order of speed."""
    import plotly.graph_objects as go

    order = sorted(rows, key=lambda r: r["hyp_per_s"])
    fig = go.Figure()
    for key, label in (("P1_min", "P1 min"), ("P1_median", "P1 median")):
        fig.add_trace(go.Scatter(
            x=[r["hyp_per_s"] for r in order], y=[r[key] for r in order],
            mode="lines+markers+text", name=label, text=[r["sampler"] for r in order],
            textposition="top center",
            hovertemplate="%{text}<br>%{x:.0f} hyp/s<br>%{y:.1f} mm<extra>" + label + "</extra>"))
    fig.update_layout(title="Few-step sampling: accuracy vs speed (float32, same model)",
                      xaxis_title="hypotheses per second", yaxis_title="error (mm)",
                      template="plotly_white")
    return fig
