"""The one results file -> the headline tables (notebook 05 and the book's results page).

``python -m dphelpers bench`` writes the results file; the shipped one is
``data/results/bench.json``.  Its keys (all optional except ``accuracy``):

- ``accuracy``: ``{"MODEL (SUBSET)": summary}``, summary = :meth:`Evaluation.summary`'s dict
  (n, P1_min, P1_median, P2_min, P2_median, PCK, CPS, ECE); SUBSET is ``full`` or ``ambiguous``;
- ``coverage``: ``{MODEL: {SUBSET: {n_twins, twin@50, twin@100, gt_same@50, gt_same@100, ...}}}``;
- ``reliability``: ``{MODEL: {"levels": (21,), "freq": (21,)}}`` (frequency averaged over joints);
- ``speed``: a list of ``{what, batch, per_second, gflops, matmul_gflops, fraction, peak_mb}``;
  rows whose ``what`` mentions ``authors`` time the authors' implementation;
- ``accuracy_setup`` (n_test, n_ambiguous, n_hypo), ``training`` (steps, batch), ``machine``,
  ``quick`` (true when written under QUICK sizes), ``commands``.

Every table here has a short, named set of columns (never a flattened dump of the file).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .tables import Table, is_single_hypothesis, metrics_table, split_row_name, table

__all__ = ["RESULTS_FILE", "STUDY_FILE", "load_results", "model_label", "is_quick",
           "settings_note", "accuracy_table", "coverage_table", "calibration_rows",
           "calibration_table", "speed_table", "authors_speedup", "load_study", "study_labels",
           "study_table", "keep_mode_rows", "keep_mode_table", "curve_table", "curve_figure"]

RESULTS_FILE = Path(__file__).resolve().parents[2] / "data" / "results" / "bench.json"
#: the model study (``python -m dphelpers study``): models x kept-mode test sets
STUDY_FILE = RESULTS_FILE.with_name("study.json")
_LABELS = {"full": "DiffPose", "full bf16": "DiffPose (bf16)", "argmax_only": "argmax only",
           "no_transformer": "no transformer", "no_argmax": "no argmax",
           "no_likelihood": "no likelihood", "mean pose": "mean pose", "lifter": "lifter"}
_SUBSETS = {"full": "all", "ambiguous": "ambiguous"}


_FILE_TAG = re.compile(r" \([\w.-]+\.pt\)")


def load_results(path: str | Path | None = None) -> dict:
    """The results file as a dict (``path`` None: :data:`RESULTS_FILE`)."""
    path = Path(path) if path is not None else RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist: write it with "
                                "`python -m dphelpers bench` (see notebook 05)")
    res = json.loads(path.read_text())
    if not isinstance(res, dict) or not isinstance(res.get("accuracy"), dict):
        raise ValueError(f"results file {path}: expected a JSON object with an 'accuracy' "
                         f"object, got keys {list(res) if isinstance(res, dict) else type(res)}")
    for key in ("accuracy", "coverage", "reliability"):   # "full (diffpose_full.pt) (full)"
        if isinstance(res.get(key), dict):                 # -> "full (full)"
            res[key] = {_FILE_TAG.sub("", name): value for name, value in res[key].items()}
    return res


def model_label(name: str) -> str:
    """A results-file model name as readers see it (``argmax_only`` -> ``argmax only``)."""
    if name in _LABELS:
        return _LABELS[name]
    model, sep, rest = name.partition(" ")         # a variant row: "full 10 DDIM eta=1"
    if sep and model in _LABELS:
        return f"{_LABELS[model]} ({rest})"
    return name.replace("_", " ")


def is_quick(res: dict) -> bool:
    """Whether the results file was written under QUICK sizes (its ``quick`` key)."""
    return bool(res.get("quick", False))


def settings_note(res: dict) -> str:
    """Which settings produced the file's numbers, in one sentence."""
    setup, train = res.get("accuracy_setup", {}), res.get("training", {})
    kind = "QUICK settings (small CI sizes)" if is_quick(res) else "full settings"
    parts = []
    if setup:
        parts.append(f"{setup.get('n_test', '?'):,} held-out test samples "
                     f"({setup.get('n_ambiguous', '?'):,} ambiguous), "
                     f"{setup.get('n_hypo', '?')} hypotheses each")
    if train:
        parts.append(f"every model trained {train.get('steps', '?'):,} steps of batch "
                     f"{train.get('batch', '?')}")
    return kind + (": " + "; ".join(parts) if parts else "")


def accuracy_table(res: dict, caption: str = "") -> Table:
    """Every model of ``res["accuracy"]``: model, subset, n, P1 min/median, P2 min, PCK, CPS,
    ECE."""
    rows = {}
    for name, summary in res["accuracy"].items():
        model, subset = split_row_name(name)
        rows[f"{model_label(model)} ({_SUBSETS.get(subset, subset)})"] = summary
    return metrics_table(rows, caption=caption)


def coverage_table(res: dict, caption: str = "") -> Table:
    """Twin coverage per model and subset (percent of the depth-flip twins / ground truths)."""
    cols = ("twin@50", "twin@100", "gt_same@50", "gt_same@100")
    rows = []
    for model, subsets in res.get("coverage", {}).items():
        for subset, c in subsets.items():
            rows.append([model_label(model), _SUBSETS.get(subset, subset), int(c["n_twins"]),
                         *(f"{100 * c[k]:.1f}" for k in cols)])
    return table(rows, columns=["hypotheses", "subset", "twins", "twin@50 (%)", "twin@100 (%)",
                                "gt_same@50 (%)", "gt_same@100 (%)"], caption=caption)


def calibration_rows(res: dict) -> list[dict]:
    """Per model: ECE on all and ambiguous samples and the mean signed gap of its reliability
    curve (positive: above the diagonal, overconfident)."""
    acc, out = res["accuracy"], []
    for model, curve in res.get("reliability", {}).items():
        if is_single_hypothesis(acc.get(f"{model} (full)", {})):
            continue                      # one hypothesis: no spread to calibrate
        lev, freq = curve["levels"], curve["freq"]
        if len(lev) != len(freq) or not lev:
            raise ValueError(f"reliability[{model!r}]: levels and freq must have one equal length")
        gap = sum(f - q for q, f in zip(lev, freq)) / len(lev)
        out.append({"model": model_label(model),
                    "ECE (all)": acc.get(f"{model} (full)", {}).get("ECE"),
                    "ECE (ambiguous)": acc.get(f"{model} (ambiguous)", {}).get("ECE"),
                    "mean signed gap": gap,
                    "reading": "overconfident" if gap > 0 else "underconfident"})
    return out


def calibration_table(res: dict, caption: str = "") -> Table:
    """:func:`calibration_rows` as a table: ECE to three decimals, the signed gap with its sign."""
    rows = [{**r, **{k: (None if r[k] is None else f"{r[k]:.3f}")
                     for k in ("ECE (all)", "ECE (ambiguous)")},
             "mean signed gap": f"{r['mean signed gap']:+.3f}"} for r in calibration_rows(res)]
    return table(rows, columns=["model", "ECE (all)", "ECE (ambiguous)", "mean signed gap",
                                "reading"], caption=caption)


def _rate(per_second: float) -> str:
    """Rates to three significant figures at least: 7.6 steps/s, 666 hypotheses/s."""
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.3g}"


def speed_table(res: dict, caption: str = "") -> Table:
    """The timing rows: what was timed, batch, per second, GFLOP/s, share of the matmul rate."""
    rows = [[r["what"], int(r["batch"]), _rate(r["per_second"]), f"{r['gflops']:.0f}",
             f"{100 * r['fraction']:.0f}", f"{r.get('peak_mb', float('nan')):.0f}"]
            for r in res.get("speed", [])]
    return table(rows, columns=["timed", "images per batch", "per second", "GFLOP/s",
                                "of the matmul rate (%)", "peak memory (MB)"], caption=caption)


def authors_speedup(res: dict) -> list[dict]:
    """Our sampler against the authors' implementation at equal batch, where the file has both:
    ``[{"batch", "ours", "authors", "speedup"}]`` (hypotheses per second); [] when it has none."""
    speed = res.get("speed", [])
    theirs = {int(r["batch"]): r for r in speed if "author" in str(r["what"]).lower()}
    ours = {int(r["batch"]): r for r in speed if str(r["what"]) == "sample"}
    return [{"batch": b, "ours": ours[b]["per_second"], "authors": theirs[b]["per_second"],
             "speedup": ours[b]["per_second"] / theirs[b]["per_second"]}
            for b in sorted(set(theirs) & set(ours))]


# --- the model study (dphelpers.tools.study) ---------------------------------------------------
_STUDY_SUBSETS = {"full": "all", "ambiguous": "ambiguous", "failed limb": "failed limb"}


def load_study(path: str | Path | None = None) -> dict:
    """A study file (``path`` None: :data:`STUDY_FILE`): ``accuracy`` is
    ``{"keep=P": {"LABEL (SUBSET)": summary}}``, ``setup.models`` names each LABEL's model,
    file and training steps, ``learning_curve`` (optional) holds ``points``."""
    path = Path(path) if path is not None else STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"study file {path} does not exist: write it with "
                                "`python -m dphelpers study`")
    study = json.loads(path.read_text())
    acc = study.get("accuracy") if isinstance(study, dict) else None
    if not isinstance(acc, dict) or not all(str(k).startswith("keep=") and isinstance(v, dict)
                                            for k, v in acc.items()):
        raise ValueError(f"study file {path}: expected an 'accuracy' object of test sets "
                         "('keep=0.5': {rows}), as `python -m dphelpers study` writes")
    return study


def study_labels(study: dict) -> dict[str, str]:
    """Each model label of the study file -> what readers see: the model's name, plus its
    training steps where two entries are the same model trained for different budgets.

    Of such entries, the one read from the shipped file (``data/checkpoints/``) keeps the plain
    name when it is the only shipped one: "DiffPose" and "DiffPose, 5,000 steps"."""
    models = study.get("setup", {}).get("models", [])

    def shipped(m: dict) -> bool:   # the path as written in the file, wherever it was run
        return Path(str(m.get("file") or "")).parent.parts[-2:] == ("data", "checkpoints")

    out = {}
    for m in models:
        label = model_label(m["name"])
        same = [o for o in models if o["name"] == m["name"]]
        plain = shipped(m) and sum(map(shipped, same)) == 1
        if len(same) > 1 and not plain and m.get("trained_steps") is not None:
            label += f", {int(m['trained_steps']):,} steps"
        out[m["label"]] = label
    out["mean pose"] = model_label("mean pose")
    return out


def _study_rows(study: dict, keep: str) -> dict[tuple[str, str], dict]:
    if keep not in study["accuracy"]:
        raise KeyError(f"study has no test set {keep!r}; it has {sorted(study['accuracy'])}")
    labels = study_labels(study)
    rows = {}
    for name, summary in study["accuracy"][keep].items():
        model, subset = split_row_name(name)
        rows[(labels.get(model, model), _STUDY_SUBSETS.get(subset, subset))] = summary
    last = labels["mean pose"]          # the baseline closes every table, however merged
    return dict(sorted(rows.items(), key=lambda kv: kv[0][0] == last))


def study_table(study: dict, keep: str = "keep=0.5", subsets=("all", "ambiguous", "failed limb"),
                caption: str = "") -> Table:
    """Every model of one test set of the study, on the named subsets (metrics_table columns)."""
    rows = {f"{m} ({s})": v for (m, s), v in _study_rows(study, keep).items() if s in subsets}
    return metrics_table(rows, caption=caption)


def keep_mode_rows(study: dict, subset: str = "failed limb", metric: str = "P1_min"
                   ) -> list[dict]:
    """One row per model: ``metric`` on ``subset`` of each kept-mode test set (``keep=0`` ...)."""
    keeps = list(study["accuracy"])
    out: dict[str, dict] = {}
    for keep in keeps:
        for (model, s), summary in _study_rows(study, keep).items():
            if s == subset:
                out.setdefault(model, {"model": model})[keep] = summary.get(metric)
    return list(out.values())


def keep_mode_table(study: dict, subset: str = "failed limb", metric: str = "P1_min",
                    caption: str = "") -> Table:
    """:func:`keep_mode_rows` as a table, one column per test set ("truth keeps a mode in P of
    the failures"), values to 0.1; only models scored on every set (a comparison row)."""
    keeps = list(study["accuracy"])
    cols = {k: f"{100 * float(k.split('=')[1]):.0f}% kept" for k in keeps}
    rows = [[r["model"], *(f"{r[k]:.1f}" for k in keeps)]
            for r in keep_mode_rows(study, subset, metric)
            if all(r.get(k) is not None for k in keeps)]
    return table(rows, columns=["model", *cols.values()], caption=caption)


def curve_table(study: dict, caption: str = "") -> Table:
    """The learning curve: model, training steps, P1 min / median on all and failed-limb
    samples."""
    pts = study.get("learning_curve", {}).get("points", [])
    rows = [[model_label(p["model"]), int(p["steps"]),
             *(f"{p[k]:.1f}" if p.get(k) is not None else "" for k in
               ("P1_min", "P1_median", "failed_limb_P1_min", "failed_limb_P1_median"))]
            for p in pts]
    return table(rows, columns=["model", "training steps", "P1 min (mm)", "P1 median (mm)",
                                "failed limb P1 min (mm)", "failed limb P1 median (mm)"],
                 caption=caption)


def curve_figure(study: dict, title: str = "Test error against training steps"):
    """P1 min and median (all samples) against training steps, one line per model and metric."""
    import plotly.graph_objects as go
    pts = study.get("learning_curve", {}).get("points", [])
    if not pts:
        raise ValueError("study has no learning-curve points (run the study with --curve)")
    fig = go.Figure()
    for model in dict.fromkeys(p["model"] for p in pts):
        mine = sorted((p for p in pts if p["model"] == model), key=lambda p: p["steps"])
        for key, dash in (("P1_min", "solid"), ("P1_median", "dash")):
            fig.add_trace(go.Scatter(x=[p["steps"] for p in mine], y=[p[key] for p in mine],
                                     mode="lines+markers", line={"dash": dash},
                                     name=f"{model_label(model)}: {key.replace('_', ' ')}"))
    fig.update_layout(title=title, xaxis={"title": "training steps (batch 64)", "type": "log"},
                      yaxis={"title": "test P1 (mm)", "rangemode": "tozero"}, height=380,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig
