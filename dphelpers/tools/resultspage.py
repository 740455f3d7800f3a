"""The book's results page, generated at build time from the one results file (``book`` verb).

:func:`results_markdown` turns ``data/results/bench.json`` (see :mod:`dphelpers.evaluation.results`) into
a MyST page: the headline tables (accuracy of every model, twin coverage, calibration, speed,
and speed against the authors' implementation when the file has it; the model study and the
learning curve from ``study.json`` and ``study_curve.json`` beside it), each followed by one
paragraph on what it means, with the numbers of the paragraph read from the same file.  The
page is never written by hand; :func:`dphelpers.tools.book.build_book` writes it next to the
chapters.  Works are cited by their key in ``book/references.bib`` (``{cite:p}`key```).

To add a section: write a function that returns its markdown (:func:`section_markdown` of a
title, a table and a paragraph), read its file in :func:`write_results_page` with
:func:`read_beside`, and pass it to :func:`results_markdown` as ``extra_sections``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from ..evaluation import results as R

__all__ = ["results_markdown", "write_results_page", "section_markdown", "read_beside",
           "speed_table", "cite", "heldout_section"]


def cite(*keys: str) -> str:
    """A MyST citation of works of ``book/references.bib``: ``{cite:p}`a,b```."""
    return "{cite:p}`" + ",".join(keys) + "`"


def section_markdown(title: str, table, text: str) -> str:
    """One section of the page: ``## title``, the table (a :class:`dphelpers.evaluation.tables.Table`
    or markdown text) and the paragraph that reads it."""
    body = table if isinstance(table, str) else table.to_markdown()
    return "\n".join([f"## {title}", "", body, "", text, ""])


def _no_tracker_refs(text: str) -> str:
    """Drop references to the project's issue tracker ("(issue 13, ...)") from file text:
    readers of the book cannot follow them."""
    text = re.sub(r"\s*\(issue \d+[^)]*\)", "", text)
    return re.sub(r"\s*\bissue \d+\b", "", text)



def _acc(res: dict, name: str, subset: str = "full") -> dict | None:
    return res["accuracy"].get(f"{name} ({subset})")


def _accuracy_text(res: dict) -> str:
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
                 "heatmaps beating the argmax alone on Human3.6M; whether it pays here, and when, is what the model study below "
                 "measures on a larger test set (notebook 05, section 7).")
    text += (" These numbers come from simulated heatmaps of a few embedded motion-capture clips, "
             "not from Human3.6M " + cite("ionescu2014human36m") + ": compare trends with the "
             "paper (DiffPose 43.3 mm P1 on Human3.6M), not digits.")
    return text


def _coverage_text(res: dict) -> str:
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


def _calibration_text(rows: list[dict]) -> str:
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


def _speed_text(res: dict) -> str:
    m = res.get("machine", {})
    where = f"{m.get('cores', '?')} cores, {m.get('device', 'cpu')}, torch {m.get('torch', '?')}"
    text = ("Hypotheses per second when sampling (each image with its hypotheses as one tensor), "
            "and training steps per second; *of the matmul rate* divides the arithmetic the "
            "model needs per second by what a plain matrix product of the denoiser's width "
            f"reaches on the same machine ({where}), so it says how close to the hardware's "
            "limit the sampler runs, independently of the machine.")
    measured = _peak_measured(res)
    if any(measured):
        text += (" *Peak memory* is how much the process's memory grew while a row was timed "
                 "(on a CPU its resident set, polled every millisecond); a process that "
                 "already held the memory does not grow, so rows below 1 MB say *not "
                 "measured*.")
    return text


def _authors_reference(ref: dict, res: dict) -> list[str]:
    """The team's side-by-side measurement of the authors' code (``authors_speed.json``) as a
    table and a paragraph, with our training rate from the results file beside it."""
    from ..evaluation.tables import table
    rows = [[r["what"], int(r["batch"]), f"{r['authors']:g} {r['unit']}",
             "" if r.get("ours") is None else f"{r['ours']:g} {r['unit']}",
             f"{r['ratio_range'][0]:.2f}x to {r['ratio_range'][1]:.2f}x"] for r in ref["rows"]]
    out = [table(rows, columns=["timed", "images per batch", "authors' code", "ours, same run",
                                "ours / authors' (same runs)"]).to_markdown(), "",
           _no_tracker_refs(ref["source"])]
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


def _authors_text(res: dict, rows: list[dict]) -> str:
    if not rows:
        return ("The results file holds no timing of the authors' implementation yet (rows "
                "whose `what` names the authors); the bench verb adds them when it runs it.")
    lo, hi = min(r["speedup"] for r in rows), max(r["speedup"] for r in rows)
    return (f"Against the authors' implementation on the same machine and settings, our sampler "
            f"draws {lo:.1f}x to {hi:.1f}x as many hypotheses per second: the embedding is a "
            "histogram times a fixed table, and the condition's share of the denoiser's first "
            "layer is computed once per hypothesis instead of at every step (notebooks 03-04).")


def _study_text(study: dict) -> str:
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


def _curve_text(study: dict) -> str:
    pts = sorted(study.get("learning_curve", {}).get("points", []), key=lambda p: p["steps"])
    text = ("The full model's test error at snapshots of one training run, on the same "
            f"{study.get('learning_curve', {}).get('n_test', '?')} test samples.")
    if len(pts) >= 2:
        a, b = pts[-2], pts[-1]
        text += (f" From {a['steps']:,} to {b['steps']:,} steps P1 min moves "
                 f"{b['P1_min'] - a['P1_min']:+.1f} mm and P1 median "
                 f"{b['P1_median'] - a['P1_median']:+.1f} mm; the paper trains 700,000 steps.")
    return text


def _mechanism_table(mech: dict):
    from ..evaluation.mechanism import headline_table
    return headline_table(mech["rows"])


def _mechanism_text(mech: dict) -> str:
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


#: a peak-memory reading below this (MB) means nothing was measured: on a CPU the bench
#: records the growth of the resident set, and a warm process may not grow at all
_PEAK_MB_FLOOR = 1.0
_PEAK_COL = "peak memory (MB)"


def _peak_measured(res: dict) -> list[bool]:
    return [r.get("peak_mb") is not None and r["peak_mb"] >= _PEAK_MB_FLOOR
            for r in res.get("speed", [])]


def speed_table(res: dict):
    """:func:`dphelpers.evaluation.results.speed_table` with honest memory cells: a row whose peak
    memory was not measured (none recorded, or below 1 MB: on a CPU the bench records the
    growth of the resident set) says *not measured* instead of 0, and the column is
    dropped when no row measured it."""
    from ..evaluation.tables import Table
    table = R.speed_table(res)
    if _PEAK_COL not in table.columns:
        return table
    col = table.columns.index(_PEAK_COL)
    measured = _peak_measured(res)
    if not any(measured):
        keep = [i for i in range(len(table.columns)) if i != col]
        return Table(tuple(table.columns[i] for i in keep),
                     tuple(tuple(row[i] for i in keep) for row in table.rows), table.caption)
    rows = tuple(row if ok else row[:col] + ("not measured",) + row[col + 1:]
                 for row, ok in zip(table.rows, measured))
    return Table(table.columns, rows, table.caption)


def _authors_section(res: dict, authors: dict | None) -> list[str]:
    """"Speed against the authors' implementation": the side-by-side rows of ``res`` when it
    times the authors' code, else the stored reference (``authors_speed.json``)."""
    sp = R.authors_speedup(res)
    parts = ["## Speed against the authors' implementation", ""]
    if sp:
        from ..evaluation.tables import table
        parts.extend([table([[r["batch"], f"{r['ours']:,.0f}", f"{r['authors']:,.0f}",
                              f"{r['speedup']:.1f}x"] for r in sp],
                            columns=["images per batch", "ours (hypotheses/s)",
                                     "authors' (hypotheses/s)", "speed-up"]).to_markdown(), ""])
    if sp or authors is None:
        return parts + [_authors_text(res, sp), ""]
    return parts + _authors_reference(authors, res)


def results_markdown(res: dict, source: str = "data/results/bench.json",
                     study: dict | None = None, curve: dict | None = None,
                     authors: dict | None = None, mechanism: dict | None = None,
                     extra_sections: Sequence[str] = (), heldout: dict | None = None) -> str:
    """The results page as MyST Markdown (tables as pipe tables in the page's source);
    ``study`` and ``curve``: study files (:func:`dphelpers.evaluation.results.load_study`) whose tables
    the page shows too; ``authors``: the side-by-side timing of the authors' code
    (``authors_speed.json``), shown when ``res`` itself times no authors' rows;
    ``mechanism``: the per-joint study of the failed joints (``mechanism.json``,
    :mod:`dphelpers.tools.mechanism`); ``heldout``: the unseen-motion test (``heldout.json``,
    :func:`heldout_section`); ``extra_sections``: more sections
    (:func:`section_markdown`), placed before "How these numbers were made"."""
    note = R.settings_note(res)
    parts = ["# Results", "",
             f"Generated when the book was built, from `{source}` "
             "(`python -m dphelpers bench`). "
             f"**Settings:** {note}." + (" These are QUICK numbers: they show that the code "
                                         "runs, not how well the method works."
                                         if R.is_quick(res) else ""), ""]

    def section(title: str, table, text: str) -> None:
        parts.append(section_markdown(title, table, text))

    section("Accuracy of every model", R.accuracy_table(res), _accuracy_text(res))
    if study is not None and "keep=0.5" in study["accuracy"]:
        section("The model study: when does sampling the heatmaps pay?",
                R.study_table(study, "keep=0.5"), _study_text(study))
        parts.extend([R.keep_mode_table(study, "failed limb", caption="").to_markdown(), "",
                      "P1 min (mm) on the failed-limb samples of the three test sets, which "
                      "share their poses, cameras and failures and differ only in how many "
                      "failures keep a weaker mode at the truth.", ""])
    if mechanism is not None and mechanism.get("rows"):
        section("The mechanism, measured where it acts", _mechanism_table(mechanism),
                _mechanism_text(mechanism))
    if heldout is not None and heldout.get("models"):
        parts.append(heldout_section(heldout))
    if curve is not None and curve.get("learning_curve", {}).get("points"):
        section("Training longer", R.curve_table(curve), _curve_text(curve))
    if res.get("coverage"):
        section("Twin coverage", R.coverage_table(res), _coverage_text(res))
    cal = R.calibration_rows(res)
    if cal:
        section("Calibration", R.calibration_table(res), _calibration_text(cal))
    if res.get("speed"):
        section("Speed", speed_table(res), _speed_text(res))
    parts.extend(_authors_section(res, authors))
    parts.extend(extra_sections)
    if res.get("commands"):
        parts.extend(["## How these numbers were made", "", "```bash",
                      *res["commands"], "```", ""])
    return "\n".join(parts)


def heldout_section(payload: dict) -> str:
    """The unseen-motion section (``heldout.json``, :mod:`dphelpers.tools.heldout`)."""
    from ..evaluation.unseen import heldout_table, heldout_text
    return section_markdown("Motion the model never saw", heldout_table(payload),
                            heldout_text(payload))


def read_beside(results_file: str | Path, name: str, reader=None):
    """The results file ``name`` next to ``results_file``, read by ``reader`` (a path ->
    dict function; default: JSON), or None when it does not exist."""
    f = Path(results_file).with_name(name)
    if not f.is_file():
        return None
    return reader(f) if reader is not None else json.loads(f.read_text())


def write_results_page(path: str | Path, results_file: str | Path | None = None) -> Path:
    """Write :func:`results_markdown` of ``results_file`` (default: the shipped one) to ``path``."""
    src = Path(results_file) if results_file is not None else R.RESULTS_FILE
    res = R.load_results(src)
    try:
        shown = src.resolve().relative_to(R.RESULTS_FILE.parents[2]).as_posix()
    except ValueError:
        shown = src.name
    study = read_beside(src, "study.json", R.load_study)
    curve = read_beside(src, "study_curve.json", R.load_study)
    authors = read_beside(src, "authors_speed.json")
    mech = read_beside(src, "mechanism.json")
    held = read_beside(src, "heldout.json")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(results_markdown(res, shown, study, curve, authors, mech,
                                     heldout=held))
    return path
