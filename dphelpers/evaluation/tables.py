"""Rows -> a table that renders as a table in JupyterLab, in the book and in a terminal.

Every notebook shows its results through :func:`table` (introduced in notebook 01).  A
:class:`Table` has an HTML form (``_repr_html_``: what JupyterLab and the book draw, as a real
``<table>``) and a plain-text form (``str``/``repr``: aligned columns, for the command line and
logs).  Markdown output is avoided on purpose: myst-nb publishes ``text/markdown`` outputs as
raw text, so a Markdown table would reach the book's reader as ``| a | b |`` run together.
"""
from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Table", "table", "format_cell", "is_single_hypothesis", "METRIC_COLUMNS",
           "METRIC_DECIMALS", "split_row_name", "metrics_table"]


def format_cell(value, digits: int = 4) -> str:
    """One cell as text: floats with ``digits`` significant digits (integers in full), None as
    ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value != 0 and abs(value) >= 10 ** digits:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass(frozen=True)
class Table:
    """``columns: (c,)`` names; ``rows: (r, c)`` cells, already formatted as text."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""

    def _numeric(self) -> list[bool]:
        """Per column: every non-empty cell is a number (right-aligned in HTML)."""
        def number(v: str) -> bool:
            try:
                float(v.replace(",", "").rstrip("%x"))
                return True
            except ValueError:
                return v in ("", "-", "n/a")
        return [all(number(r[i]) for r in self.rows) and any(r[i] for r in self.rows)
                for i in range(len(self.columns))]

    def _repr_html_(self) -> str:
        esc = html.escape
        num = [' class="num"' if n else "" for n in self._numeric()]
        head = "".join(f"<th{n}>{esc(c)}</th>" for c, n in zip(self.columns, num))
        body = "".join("<tr>" + "".join(f"<td{n}>{esc(v)}</td>" for v, n in zip(row, num))
                       + "</tr>" for row in self.rows)
        cap = f"<caption>{esc(self.caption)}</caption>" if self.caption else ""
        return (f'<table class="dp-table">{cap}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")

    def __str__(self) -> str:
        widths = [max([len(c)] + [len(r[i]) for r in self.rows]) for i,
                  c in enumerate(self.columns)]
        line = lambda cells: "  ".join(  # noqa: E731
            (v.ljust(w) if i == 0 else v.rjust(w)) for i, (v, w) in enumerate(zip(cells, widths)))
        out = ([self.caption] if self.caption else []) + [line(self.columns)]
        out.append("  ".join("-" * w for w in widths))
        out += [line(r) for r in self.rows]
        return "\n".join(out)

    __repr__ = __str__

    def to_markdown(self) -> str:
        """A Markdown pipe table, for Markdown *source* pages (the book's generated results page);
        never display it as a notebook output (see the module docstring)."""
        esc = lambda v: v.replace("|", "\\|")  # noqa: E731
        out = ["| " + " | ".join(esc(c) for c in self.columns) + " |",
               "|" + "|".join("---" for _ in self.columns) + "|"]
        out += ["| " + " | ".join(esc(v) for v in r) + " |" for r in self.rows]
        return "\n".join(out)


def table(rows: Iterable[Mapping] | Iterable[Sequence], columns: Sequence[str] | None = None,
          caption: str = "", digits: int = 4) -> Table:
    """Build a :class:`Table` from dicts (keys = columns, in ``columns`` order if given) or from
    sequences (then ``columns`` is required and every row must have as many cells)."""
    rows = list(rows)
    if rows and isinstance(rows[0], Mapping):
        if columns is None:
            columns = list(dict.fromkeys(k for r in rows for k in r))
        cells = [[r.get(c) for c in columns] for r in rows]
    else:
        if columns is None:
            raise ValueError("table: rows given as sequences need `columns`")
        cells = [list(r) for r in rows]
        for i, r in enumerate(cells):
            if len(r) != len(columns):
                raise ValueError(f"table: row {i} has {len(r)} cells, expected {len(columns)} "
                                 f"(columns {list(columns)})")
    return Table(tuple(str(c) for c in columns),
                 tuple(tuple(format_cell(v, digits) for v in r) for r in cells), caption)


#: metric key of :meth:`dphelpers.evaluation.evaluate.Evaluation.summary` -> column name shown
#: to readers
METRIC_COLUMNS: dict[str, str] = {
    "n": "n", "P1_min": "P1 min (mm)", "P1_median": "P1 median (mm)", "P2_min": "P2 min (mm)",
    "P2_median": "P2 median (mm)", "PCK": "PCK@150 (%)", "CPS": "CPS", "ECE": "ECE"}
#: fixed decimals per metric, so a column's numbers line up (mm and % to 0.1, ECE to 0.001)
METRIC_DECIMALS: dict[str, int] = {"P1_min": 1, "P1_median": 1, "P2_min": 1, "P2_median": 1,
                                   "PCK": 1, "CPS": 1, "ECE": 3}
_DEFAULT_KEYS = ("n", "P1_min", "P1_median", "P2_min", "PCK", "CPS", "ECE")


def split_row_name(name: str) -> tuple[str, str]:
    """``"full (ambiguous)" -> ("full", "ambiguous")``; a name without ``(...)`` -> (name, "")."""
    name = str(name).strip()
    if name.endswith(")") and " (" in name:
        model, subset = name[:-1].rsplit(" (", 1)
        return model, subset
    return name, ""


def _metric_cell(key: str, value):
    if key in METRIC_DECIMALS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return "n/a" if math.isnan(value) else f"{value:.{METRIC_DECIMALS[key]}f}"
    return int(value) if key == "n" and isinstance(value, float) and value.is_integer() else value


def is_single_hypothesis(summary: Mapping) -> bool:
    """A row whose best and median hypotheses agree to the last digit: one hypothesis (the
    lifter, the mean pose) or a collapsed set. Its hypotheses have no spread, so ECE, which
    asks whether the spread matches the error, is not defined for it (shown as "-")."""
    lo, mid = summary.get("P1_min"), summary.get("P1_median")
    return lo is not None and mid is not None and float(lo) == float(mid)


def metrics_table(rows: Mapping[str, Mapping], caption: str = "",
                  keys: Sequence[str] = _DEFAULT_KEYS, digits: int = 4) -> Table:
    """Results rows ``{"MODEL (SUBSET)": summary}`` as a table with the columns model, subset and
    one per metric in ``keys`` (named by :data:`METRIC_COLUMNS`).

    ``summary`` is :meth:`dphelpers.evaluation.evaluate.Evaluation.summary`'s dict (or a results
    file's ``accuracy`` entry); a missing metric is an error naming the row.
    """
    unknown = [k for k in keys if k not in METRIC_COLUMNS]
    if unknown:
        raise ValueError(f"metrics_table: unknown metric keys {unknown}; "
                         f"known: {list(METRIC_COLUMNS)}")
    out = []
    for name, summary in rows.items():
        missing = [k for k in keys if k not in summary]
        if missing:
            raise ValueError(f"metrics_table: row {name!r} lacks {missing}")
        model, subset = split_row_name(name)
        single = is_single_hypothesis(summary)
        out.append([model, subset, *("-" if k == "ECE" and single else _metric_cell(k, summary[k])
                                     for k in keys)])
    return table(out, columns=["model", "subset", *(METRIC_COLUMNS[k] for k in keys)],
                 caption=caption, digits=digits)
