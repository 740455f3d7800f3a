"""The paragraphs of the book's results page (:mod:`dphelpers.tools.resultspage`): each reads
its numbers from the results file it follows, so that the prose cannot drift from the tables.
"""
from __future__ import annotations

import re

from ..evaluation import results as R

__all__ = ["cite", "no_tracker_refs", "PEAK_MB_FLOOR", "peak_measured", "accuracy_text",
           "coverage_text", "calibration_text", "speed_text", "authors_reference", "authors_text",
           "study_text", "curve_text", "mechanism_text"]


def cite(*keys: str) -> str:
    """A MyST citation of works of ``book/references.bib``: ``{cite:p}`a,b```."""
    return "{cite:p}`" + ",".join(keys) + "`"


def no_tracker_refs(text: str) -> str:
    """Drop references to the project's issue tracker ("(issue 13, ...)") from file text:
    readers of the book cannot follow them."""
    text = re.sub(r"\s*\(issue \d+[^)]*\)", "", text)
    return re.sub(r"\s*\bissue \d+\b", "", text)



#: a peak-memory reading below this (MB) means nothing was measured: on a CPU the bench
#: records the growth of the resident set, and a warm process may not grow at all
PEAK_MB_FLOOR = 1.0


def peak_measured(res: dict) -> list[bool]:
    """Per row of ``res["speed"]``: whether its ``peak_mb`` is a measurement (at least
    :data:`PEAK_MB_FLOOR`) rather than a missing or zero reading."""
    return [r.get("peak_mb") is not None and r["peak_mb"] >= PEAK_MB_FLOOR
            for r in res.get("speed", [])]


def _acc(res: dict, name: str, subset: str = "full") -> dict | None:
    return res["accuracy"].get(f"{name} ({subset})")


def accuracy_text(res: dict) -> str:
    """The paragraph under the accuracy table: what the models and metrics are, then the full
    model's P1 against the mean pose, the ambiguous subset and the argmax-only ablation."""
    full, amb = _acc(res, "full"), _acc(res, "full", "ambiguous")
    text = ("*DiffPose (bf16)* is the same model sampled in bfloat16; *argmax only* (one 2D "
            "pose per image instead of heatmap samples) and *no transformer* are the paper's "
            "ablations, trained with the settings above; *mean pose* always predicts the average "
            "training pose and ignores the image"
            + ("; *lifter* is the single-hypothesis baseline of Martinez et al. "
               + cite("martinez2017simple") + ". "
               if any(k.startswith("lifter") for k in res["accuracy"]) else ". ")
            + "P1 is the mean joint error in millimetres after putting both poses' pelvis at the "
            "origin, P2 the same after the best rotation and scale (Procrustes); *min* scores the "
            "best of a sample's hypotheses (does the set contain the truth?), *median* a typical "
            "one. PCK@150 counts limb and head joints of the best hypothesis within 150 mm, CPS is "
            "the area under the share of poses entirely correct up to r = 300 mm, ECE the "
            "calibration error (0 is perfect) " + cite("pierzchlewicz2023metrics") + ".")
    if full:
        text += (f" DiffPose's best hypothesis lands {full['P1_min']:.1f} mm from the truth on "
                 f"average, its median one {full['P1_median']:.1f} mm")
        base = _acc(res, "mean pose")
        if base:
            text += (f", against {base['P1_min']:.1f} mm for the mean-pose baseline that "
                     "ignores the image")
        text += "."
    if full and amb:
        harder = "harder" if amb["P1_min"] > full["P1_min"] else "not harder"
        text += (f" The ambiguous samples (wide heatmaps, the H36MA rule "
                 f"{cite('wehrbein2021flows')}) are {harder}: {amb['P1_min']:.1f} mm.")
    arg = _acc(res, "argmax_only")
    if full and arg:
        gap = round(arg["P1_min"], 1) - round(full["P1_min"], 1)   # as the table shows them
        n = res.get("accuracy_setup", {}).get("n_test")
        text += (f" The argmax-only ablation scores {arg['P1_min']:.1f} mm, {abs(gap):.1f} mm "
                 + ("higher" if gap > 0 else "lower") + " than the full model's"
                 + (f" on these {n:,} samples" if n else "")
                 + ". The paper " + cite("holmquist2023diffpose") + " reports sampling the "
                 "heatmaps beating the argmax alone on Human3.6M; whether it pays here, and when, "
                 "is what the model study below "
                 "measures on a larger test set (notebook 05, section 7).")
    text += (" These numbers come from simulated heatmaps of a few embedded motion-capture clips, "
             "not from Human3.6M " + cite("ionescu2014human36m") + ": compare trends with the "
             "paper (DiffPose 43.3 mm P1 on Human3.6M), not digits.")
    return text


def coverage_text(res: dict) -> str:
    """The paragraph under the twin-coverage table: what a depth-flip twin is, and the share of
    twins and ground truths the full model (and one hypothesis alone) reaches within 100 mm."""
    cov = res.get("coverage", {}).get("full", {}).get("full")
    one = res.get("coverage", {}).get("single hypothesis (one sample)", {}).get("full")
    text = ("A depth-flip twin of a test pose moves a limb to the other point of its camera ray at "
            "the same bone length: the same 2D picture, a different 3D pose. *twin@t* is the share "
            "of twins that some hypothesis comes within t mm of (over the moved joints), "
            "*gt_same@t* the same question asked of the ground truth.")
    if cov:
        text += (f" DiffPose's hypotheses reach {100 * cov['twin@100']:.0f}% of the twins and "
                 f"{100 * cov['gt_same@100']:.0f}% of the ground truths within 100 mm")
        if one:
            text += (f"; one hypothesis alone reaches {100 * one['twin@100']:.0f}% and "
                     f"{100 * one['gt_same@100']:.0f}%")
        text += (": the model proposes real alternatives, not one answer with jitter. Not every "
                 "twin is a plausible body pose, so no model should cover them all.")
    return text


def calibration_text(rows: list[dict]) -> str:
    """The paragraph under the calibration table: how the quantiles are read, and which model
    has the lowest ECE on all samples
    (``rows``: :func:`~dphelpers.evaluation.results.calibration_rows`)."""
    text = ("For each joint, the ground truth's quantile is the share of hypotheses farther from "
            "the median pose than the truth; for an honest spread those quantiles are uniform. "
            "The mean signed gap of the reliability curve says which way a model errs: positive "
            "means overconfident (the cloud is too narrow), negative underconfident.")
    if rows:
        best = min((r for r in rows if r["ECE (all)"] is not None), key=lambda r: r["ECE (all)"],
                   default=None)
        if best:
            text += f" The best calibrated here is {best['model']} (ECE {best['ECE (all)']:.3f})."
    return text


def speed_text(res: dict) -> str:
    """The paragraph under the speed table: what is timed, the machine, what the share of the
    matmul rate means, and (when some row measured it) how peak memory was read."""
    m = res.get("machine", {})
    where = f"{m.get('cores', '?')} cores, {m.get('device', 'cpu')}, torch {m.get('torch', '?')}"
    text = ("Hypotheses per second when sampling (each image with its hypotheses as one tensor), "
            "and training steps per second; *of the matmul rate* divides the arithmetic the "
            "model needs per second by what a plain matrix product of the denoiser's width "
            f"reaches on the same machine ({where}), so it says how close to the hardware's "
            "limit the sampler runs, independently of the machine.")
    measured = peak_measured(res)
    if any(measured):
        text += (" *Peak memory* is how much the process's memory grew while a row was timed "
                 "(on a CPU its resident set, polled every millisecond); a process that "
                 "already held the memory does not grow, so rows below 1 MB say *not "
                 "measured*.")
    return text


def authors_reference(ref: dict, res: dict) -> list[str]:
    """The team's side-by-side measurement of the authors' code (``authors_speed.json``) as a
    table and a paragraph, with our training rate from the results file beside it."""
    from ..evaluation.tables import table
    rows = [[r["what"], int(r["batch"]), f"{r['authors']:g} {r['unit']}",
             "" if r.get("ours") is None else f"{r['ours']:g} {r['unit']}",
             f"{r['ratio_range'][0]:.2f}x to {r['ratio_range'][1]:.2f}x"] for r in ref["rows"]]
    out = [table(rows, columns=["timed", "images per batch", "authors' code", "ours, same run",
                                "ours / authors' (same runs)"]).to_markdown(), "",
           no_tracker_refs(ref["source"])]
    bf16 = next((r for r in res.get("speed", []) if r["what"] == "train step (bf16)"
                 and int(r["batch"]) == 64), None)
    theirs = next((r for r in ref["rows"] if r["what"].startswith("training")), None)
    if bf16 and theirs:
        out[-1] += (f" Our bfloat16 training step in this page's results file runs "
                    f"{bf16['per_second']:.1f} steps/s at batch 64 (clipping and EMA included), "
                    f"{bf16['per_second'] / theirs['authors']:.1f}x the authors' "
                    f"{theirs['authors']:g} steps/s measured then: a ratio across two runs on "
                    "machines of the same kind, so read it as approximate.")
    return out + [""]


def authors_text(res: dict, rows: list[dict]) -> str:
    """The paragraph on our sampler's speed-up over the authors' implementation, or a note that
    the results file has no such timing (``rows``:
    :func:`~dphelpers.evaluation.results.authors_speedup`)."""
    if not rows:
        return ("The results file holds no timing of the authors' implementation yet (rows "
                "whose `what` names the authors); the bench verb adds them when it runs it.")
    lo, hi = min(r["speedup"] for r in rows), max(r["speedup"] for r in rows)
    return (f"Against the authors' implementation on the same machine and settings, our sampler "
            f"draws {lo:.1f}x to {hi:.1f}x as many hypotheses per second: the embedding is a "
            "histogram times a fixed table, and the condition's share of the denoiser's first "
            "layer is computed once per hypothesis instead of at every step (notebooks 03-04).")


def study_text(study: dict) -> str:
    """The paragraph under the model-study table: the test set, and argmax-only minus DiffPose
    P1 min on the failed-limb samples for each share of failures that keep a true mode."""
    setup, sets = study.get("setup", {}), study.get("test_sets", {})
    first = sets.get("keep=0.5") or next(iter(sets.values()), {})   # the table's test set
    text = (f"One fixed test set of simulator v2 ({first.get('n', '?'):,} samples, "
            f"{setup.get('n_hypo', '?')} hypotheses each, float32): on all samples, the "
            f"ambiguous ones ({first.get('n_ambiguous', '?'):,}, the H36MA rule) and those where "
            f"some limb joint's argmax fails PCKh@0.5 ({first.get('n_failed_limb', '?'):,}), "
            "the case heatmap sampling is for. The table is the test set where half of the "
            "failures keep a weaker mode at the truth.")
    rows = {r["model"]: r for r in R.keep_mode_rows(study, "failed limb")}
    full, arg = rows.get(R.model_label("full")), rows.get(R.model_label("argmax_only"))
    if full and arg:
        gaps = [(k, arg[k] - full[k]) for k in study["accuracy"]
                if full.get(k) is not None and arg.get(k) is not None]
        said = ", ".join(f"{d:+.1f} mm where {100 * float(k.split('=')[1]):.0f}% of the "
                         "failures keep a mode at the truth" for k, d in gaps)
        text += (" Argmax-only minus DiffPose, P1 min on the failed-limb samples (positive: "
                 f"sampling the heatmaps pays): {said}.")
    shorter = sorted({v for v in R.study_labels(study).values() if " steps" in v})
    if shorter:
        text += (f" {' and '.join(shorter)}: the same model from a shorter training run, on the "
                 "same samples.")
    return text


def curve_text(study: dict) -> str:
    """The paragraph under the learning-curve table: how P1 min and median moved between the
    last two training snapshots."""
    pts = sorted(study.get("learning_curve", {}).get("points", []), key=lambda p: p["steps"])
    text = ("The full model's test error at snapshots of one training run, on the same "
            f"{study.get('learning_curve', {}).get('n_test', '?')} test samples.")
    if len(pts) >= 2:
        a, b = pts[-2], pts[-1]
        text += (f" From {a['steps']:,} to {b['steps']:,} steps P1 min moves "
                 f"{b['P1_min'] - a['P1_min']:+.1f} mm and P1 median "
                 f"{b['P1_median'] - a['P1_median']:+.1f} mm; the paper trains 700,000 steps.")
    return text


def mechanism_text(mech: dict) -> str:
    """The paragraph under the per-joint mechanism table: how joints are scored, the headline
    sentence of full vs argmax-only when both were run, and the command that made it."""
    from ..evaluation.mechanism import headline_sentence
    setup = mech.get("setup", {})
    text = ("P1 averages 17 joints; sampling the heatmaps can only act on the joints whose "
            "argmax is wrong. On the study's test set where every argmax failure keeps a "
            f"weaker mode at the truth ({setup.get('n_test', '?'):,} samples x "
            f"{setup.get('n_hypo', '?')} hypotheses), each joint is scored on its own: its "
            "best-of-N error (each joint takes its own best hypothesis), its median error and "
            "the share of hypotheses within 100 mm, for joints whose argmax fails PCKh@0.5 "
            "(*failed*) and the others (notebook 05, section 7).")
    if {"full", "argmax_only"} <= set(mech["rows"]):
        text += " " + headline_sentence(mech["rows"])
    if mech.get("command"):
        text += f" Made with `{mech['command']}`."
    return text
