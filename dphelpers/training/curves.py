"""Training runs side by side (notebook 04): loss curves of runs that differ in one setting.

A run is ``{"name", "precision", "seed", "grad_clip", "steps": [...], "losses": [...], ...}``
as the ``curves`` verb (:mod:`dphelpers.tools.curves`) writes them to
``data/results/training_curves.json`` and ``large_batch.json``: tables of the mean logged loss
over a window of steps or of training samples, the bf16-vs-fp32 gap next to the seed-to-seed
gap, and the curves as a figure.
"""
from __future__ import annotations

__all__ = ["equal_samples_rows", "summary_rows", "precision_gap", "curves_figure"]


def equal_samples_rows(runs: list[dict], last_samples: int) -> list[dict]:
    """Per run: batch, learning rate, warm-up, samples seen, and the mean logged loss over the
    last ``last_samples`` training samples of the run (the same amount of data for every batch
    size), with its gap to the first run's."""
    rows = []
    for r in runs:
        b = r.get("batch_size", 64)
        end = r["steps"][-1]
        window = max(1, -(-last_samples // b))
        rows.append({"run": r["name"], "batch": b, "lr": r.get("lr", 1e-4),
                     "warm-up steps": r.get("warmup_steps", 0), "samples seen": end * b,
                     "seconds": r["seconds"],
                     f"loss, last {last_samples:,} samples": _window_mean(r, end - window, end)})
    key = f"loss, last {last_samples:,} samples"
    for row in rows:
        row["vs first run"] = row[key] - rows[0][key]
    return rows


def _window_mean(run: dict, after: int, upto: int) -> float:
    """Mean logged loss over the steps in (after, upto]."""
    vals = [v for s, v in zip(run["steps"], run["losses"]) if after < s <= upto]
    if not vals:
        raise ValueError(f"run {run['name']} has no logged loss in steps {after + 1:,}-{upto:,} "
                         f"(it stopped at {run['steps'][-1] if run['steps'] else 0:,})")
    return sum(vals) / len(vals)


def summary_rows(runs: list[dict], last: int = 1000) -> list[dict]:
    """Per run: precision, seed, clipping, steps reached, the mean logged loss over its last
    ``last`` steps and over the steps all runs share (the common window), seconds per step."""
    empty = [r["name"] for r in runs if not r["steps"]]
    if empty:
        raise ValueError(f"run(s) {empty} have no logged loss in steps 1-: nothing to compare")
    common = min(r["steps"][-1] for r in runs)
    rows = []
    for r in runs:
        end = r["steps"][-1]
        rows.append({"run": r["name"], "precision": r["precision"], "seed": r["seed"],
                     "grad_clip": r["grad_clip"], "steps": end,
                     f"loss, last {last:,}": _window_mean(r, end - last, end),
                     f"loss, steps {common - last + 1:,}-{common:,}":
                         _window_mean(r, common - last, common)})
    return rows


def precision_gap(runs: list[dict], last: int = 1000) -> dict:
    """How far bf16 lies from fp32 next to how far two seeds lie apart, on the mean loss of the
    last ``last`` steps of clipped runs that reached the same step: ``{"bf16 - fp32 (seed s)":
    ..., "seed 1 - seed 0 (precision)": ...}``."""
    clipped = [r for r in runs if r["grad_clip"] > 0]
    end = min(r["steps"][-1] for r in clipped)
    mean = {(r["precision"], r["seed"]): _window_mean(r, end - last, end) for r in clipped}
    out = {}
    for seed in sorted({s for _, s in mean}):
        if ("fp32", seed) in mean and ("bf16", seed) in mean:
            out[f"bf16 - fp32 (seed {seed})"] = mean[("bf16", seed)] - mean[("fp32", seed)]
    for prec in ("fp32", "bf16"):
        seeds = sorted(s for p, s in mean if p == prec)
        if len(seeds) >= 2:
            out[f"seed {seeds[1]} - seed {seeds[0]} ({prec})"] = (mean[(prec, seeds[1])]
                                                                 - mean[(prec, seeds[0])])
    return {"steps": f"{end - last + 1:,}-{end:,}", **out}


def curves_figure(runs: list[dict], smooth: int = 5):
    """Loss against step, one line per run (colour: precision, dash: seed, dots: no clip),
    each a running mean over ``smooth`` logged points."""
    import plotly.graph_objects as go
    colour = {"fp32": "#1f77b4", "bf16": "#d62728"}
    fig = go.Figure()
    for r in runs:
        y = [sum(r["losses"][max(0, i - smooth + 1):i + 1]) / len(r["losses"][max(0, i - smooth
                                                                                  + 1):i + 1])
             for i in range(len(r["losses"]))]
        dash = "dot" if r["grad_clip"] == 0 else ("solid" if r["seed"] == 0 else "dash")
        clip = "" if r["grad_clip"] > 0 else ", no clipping"
        fig.add_scatter(x=r["steps"], y=y, mode="lines",
                        name=f"{r['precision']} seed {r['seed']}{clip}",
                        line={"color": colour.get(r["precision"], "gray"), "dash": dash})
    fig.update_layout(xaxis_title="training step", yaxis_title="loss (running mean)",
                      yaxis_type="log", height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig
