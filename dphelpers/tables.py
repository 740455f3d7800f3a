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

__all__ = ["Table", "table", "format_cell"]


def format_cell(value, digits: int = 4) -> str:
    """One cell as text: floats with ``digits`` significant digits (integers in full), None as ''."""
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

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                       for row in self.rows)
        cap = f"<caption>{esc(self.caption)}</caption>" if self.caption else ""
        return (f'<table class="dp-table">{cap}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")

    def __str__(self) -> str:
        widths = [max([len(c)] + [len(r[i]) for r in self.rows]) for i, c in enumerate(self.columns)]
        line = lambda cells: "  ".join(  # noqa: E731
            (v.ljust(w) if i == 0 else v.rjust(w)) for i, (v, w) in enumerate(zip(cells, widths)))
        out = ([self.caption] if self.caption else []) + [line(self.columns)]
        out.append("  ".join("-" * w for w in widths))
        out += [line(r) for r in self.rows]
        return "\n".join(out)

    __repr__ = __str__


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
