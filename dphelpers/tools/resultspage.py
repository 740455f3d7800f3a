"""The book's results page, generated at build time from the one results file (``book`` verb).

:func:`results_markdown` turns ``data/results/bench.json`` (see
:mod:`dphelpers.evaluation.results`) into a MyST page: the headline tables (accuracy of every
model, twin coverage, calibration, speed, and speed against the authors' implementation when the
file has it; the model study and the learning curve from ``study.json`` and ``study_curve.json``
beside it), each followed by one paragraph on what it means
(:mod:`dphelpers.tools.resultstext`), with the numbers of the paragraph read from the same file.
The page is never written by hand; :func:`dphelpers.tools.book.build_book` writes it next to the
chapters.  Works are cited by their key in ``book/references.bib`` (``{cite:p}`key```).

To add a section: write a function that returns its markdown (:func:`section_markdown` of a
title, a table and a paragraph), read its file in :func:`write_results_page` with
:func:`read_beside`, and pass it to :func:`results_markdown` as ``extra_sections``.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..evaluation import results as R
from .resultstext import (accuracy_text, authors_reference, authors_text, calibration_text, cite,
                          coverage_text, curve_text, mechanism_text, peak_measured, speed_text,
                          study_text)

__all__ = ["results_markdown", "write_results_page", "section_markdown", "read_beside",
           "speed_table", "cite", "heldout_section", "budget_section",
           "validation_section", "new_people_section"]


def section_markdown(title: str, table, text: str) -> str:
    """One section of the page: ``## title``, the table (a
    :class:`dphelpers.evaluation.tables.Table` or markdown text) and the paragraph that reads it."""
    body = table if isinstance(table, str) else table.to_markdown()
    return "\n".join([f"## {title}", "", body, "", text, ""])


def _mechanism_table(mech: dict):
    from ..evaluation.mechanism import headline_table
    return headline_table(mech["rows"])


_PEAK_COL = "peak memory (MB)"


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
    measured = peak_measured(res)
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
        return parts + [authors_text(res, sp), ""]
    return parts + authors_reference(authors, res)


def results_markdown(res: dict, source: str = "data/results/bench.json",
                     study: dict | None = None, curve: dict | None = None,
                     authors: dict | None = None, mechanism: dict | None = None,
                     extra_sections: Sequence[str] = (), heldout: dict | None = None,
                     budget: tuple[dict, dict] | None = None,
                     validation: dict | None = None, new_people: dict | None = None) -> str:
    """The results page as MyST Markdown (tables as pipe tables in the page's source);
    ``study`` and ``curve``: study files (:func:`dphelpers.evaluation.results.load_study`) whose
    tables the page shows too; ``authors``: the side-by-side timing of the authors' code
    (``authors_speed.json``), shown when ``res`` itself times no authors' rows;
    ``mechanism``: the per-joint study of the failed joints (``mechanism.json``,
    :mod:`dphelpers.tools.mechanism`); ``heldout``: the unseen-motion test (``heldout.json``,
    :func:`heldout_section`); ``budget``: the augmented model against the shipped one at the
    same budget (``augmented_study.json``, ``augmented_realcheck.json``,
    :func:`budget_section`); ``validation``: the choice of the augmentation strength
    (``augment_validation.json``, :func:`validation_section`); ``new_people``: people no model
    trained on (``new_people.json``, :func:`new_people_section`); ``extra_sections``: more sections
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

    section("Accuracy of every model", R.accuracy_table(res), accuracy_text(res))
    if study is not None and "keep=0.5" in study["accuracy"]:
        section("The model study: when does sampling the heatmaps pay?",
                R.study_table(study, "keep=0.5"), study_text(study))
        parts.extend([R.keep_mode_table(study, "failed limb", caption="").to_markdown(), "",
                      "P1 min (mm) on the failed-limb samples of the three test sets, which "
                      "share their poses, cameras and failures and differ only in how many "
                      "failures keep a weaker mode at the truth.", ""])
    if mechanism is not None and mechanism.get("rows"):
        section("The mechanism, measured where it acts", _mechanism_table(mechanism),
                mechanism_text(mechanism))
    if heldout is not None and heldout.get("models"):
        parts.append(heldout_section(heldout))
    if new_people is not None and new_people.get("models"):
        parts.append(new_people_section(new_people))
    if validation is not None and validation.get("models"):
        parts.append(validation_section(validation, heldout))
    if budget is not None:
        parts.append(budget_section(*budget))
    if curve is not None and curve.get("learning_curve", {}).get("points"):
        section("Training longer", R.curve_table(curve), curve_text(curve))
    if res.get("coverage"):
        section("Twin coverage", R.coverage_table(res), coverage_text(res))
    cal = R.calibration_rows(res)
    if cal:
        section("Calibration", R.calibration_table(res), calibration_text(cal))
    if res.get("speed"):
        section("Speed", speed_table(res), speed_text(res))
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


def new_people_section(payload: dict) -> str:
    """People no model trained on (``new_people.json``, ``heldout --new``); then, for files
    that have it, where the error lies (:func:`~dphelpers.evaluation.unseen.where_table`)."""
    from ..evaluation.unseen import (heldout_table, made_with, new_people_text, where_table,
                                     where_text)
    where = where_table(payload)
    if where is None:
        return section_markdown("People no model trained on", heldout_table(payload),
                                new_people_text(payload))
    return "\n".join([
        section_markdown("People no model trained on", heldout_table(payload),
                         new_people_text(payload, with_command=False, where=False)),
        "Where the limb error lies: the best hypothesis' limb joints, test split -> new "
        "people (mm), in the image plane and in depth, and the limb P1 min of the new-people "
        "samples within the joint limits:", "", where.to_markdown(), "",
        " ".join([where_text(payload), made_with(payload)]), ""])


def validation_section(payload: dict, heldout: dict | None = None) -> str:
    """How the augmentation strength was chosen (``augment_validation.json``,
    :func:`dphelpers.evaluation.unseen.validation_text`; ``heldout``: the unseen-motion file)."""
    from ..evaluation.unseen import validation_table, validation_text
    return section_markdown("Choosing the augmentation strength on a validation source",
                            validation_table(payload), validation_text(payload,
                                                                       heldout=heldout))


def budget_section(study: dict, photo: dict) -> str:
    """The augmented model at the shipped budget
    (:func:`dphelpers.evaluation.unseen.budget_text`)."""
    from ..evaluation.unseen import budget_table, budget_text
    return section_markdown("Pose augmentation at the shipped budget",
                            budget_table(study, photo), budget_text(study, photo))


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
    validation = read_beside(src, "augment_validation.json")
    new_people = read_beside(src, "new_people.json")
    budget_study = read_beside(src, "augmented_study.json")
    budget_photo = read_beside(src, "augmented_realcheck.json")
    budget = ((budget_study, budget_photo) if budget_study is not None
              and budget_photo is not None else None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(results_markdown(res, shown, study, curve, authors, mech,
                                     heldout=held, budget=budget, validation=validation,
                                     new_people=new_people))
    return path
