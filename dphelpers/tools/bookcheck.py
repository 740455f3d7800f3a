"""What a reader of the book must never meet, checked on executed notebooks and rendered pages.

Used by ``tests/test_book.py`` on the QUICK build, and by :func:`dphelpers.tools.book.build_book`
(``check=True``) so that a broken chapter fails the build instead of being published:

- a raw Markdown table in an output (``| a | b |`` / ``|---|`` as text: myst-nb publishes
  ``text/markdown`` outputs unrendered; use :func:`dphelpers.tables.table`);
- an executed output saying "not found", "skipped" or "Traceback" (an error, or a section
  that silently did not run);
- a code line wider than the page column (:data:`MAX_CODE_LINE` characters; in the browser: a
  ``pre`` block whose content is wider than the block, ``scrollWidth > clientWidth``);
- fewer drawn plotly figures (``.js-plotly-plot``) than a chapter should have.

:func:`notebook_problems` reads an executed notebook (no browser); :func:`page_problems` runs
in a playwright page that has finished loading (see ``tests/test_book.py``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["MAX_CODE_LINE", "FORBIDDEN", "output_text", "raw_table_lines", "forbidden_words",
           "notebook_problems", "page_problems", "PAGE_SCRIPT"]

MAX_CODE_LINE = 88
#: phrases no executed output may contain (compared in lower case)
FORBIDDEN: tuple[str, ...] = ("not found", "skipped", "traceback")
_TABLE_RULE = re.compile(r"\|\s*:?-{3,}:?\s*\|")


def output_text(output) -> str:
    """All text of one nbformat output: stream text, every text/* mime type, error traceback."""
    kind = output.get("output_type")
    if kind == "stream":
        return str(output.get("text", ""))
    if kind == "error":
        return "\n".join([f"{output.get('ename')}: {output.get('evalue')}",
                          *output.get("traceback", [])])
    data = output.get("data", {})
    parts = [data[m] for m in data if m.startswith("text/")]
    return "\n".join("".join(p) if isinstance(p, list) else str(p) for p in parts)


def raw_table_lines(text: str) -> list[str]:
    """Lines that look like Markdown table syntax: a ``|---|`` rule or a row starting ``| ``."""
    return [ln for ln in text.splitlines()
            if _TABLE_RULE.search(ln) or ln.lstrip().startswith("| ")]


def forbidden_words(text: str) -> list[str]:
    low = text.lower()
    return [w for w in FORBIDDEN if w in low]


def _shorten(s: str, n: int = 70) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n - 3] + "..."


def notebook_problems(nb, max_line: int = MAX_CODE_LINE) -> list[str]:
    """Problems of an executed notebook (nbformat node or path), one readable line each."""
    import nbformat

    if isinstance(nb, (str, os.PathLike)):
        nb = nbformat.read(Path(nb), as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for k, line in enumerate(cell.source.splitlines(), 1):
            if len(line) > max_line:
                problems.append(f"cell {i} line {k}: code line of {len(line)} characters "
                                f"(max {max_line}): {_shorten(line, 50)}")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: error output {out.get('ename')}: "
                                f"{_shorten(str(out.get('evalue')))}")
                continue
            data = out.get("data", {})
            plain = output_text(out) if "text/html" not in data else \
                output_text({"output_type": "x", "data": {k: v for k, v in data.items()
                                                          if k != "text/html"}})
            rows = raw_table_lines(plain)
            if rows:
                problems.append(f"cell {i}: raw Markdown table in an output: {_shorten(rows[0])}")
            for w in forbidden_words(output_text(out)):
                problems.append(f"cell {i}: output says {w!r}: "
                                f"{_shorten(_line_with(output_text(out), w))}")
    return problems


def _line_with(text: str, word: str) -> str:
    return next((ln for ln in text.splitlines() if word in ln.lower()), text)


#: run in the page: open every toggle (hidden inputs), then measure
PAGE_SCRIPT = r"""
() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden, .toggle-details__summary').forEach(
    e => e.classList.remove('toggle-hidden'));
  const main = document.querySelector('main') || document.body;
  const outputs = Array.from(main.querySelectorAll('.cell_output')).map(e => e.innerText);
  const wide = Array.from(main.querySelectorAll('pre'))
    .filter(p => p.clientWidth > 0 && p.scrollWidth > p.clientWidth + 1)
    .map(p => ({scroll: p.scrollWidth, client: p.clientWidth, text: p.innerText.slice(0, 80)}));
  return {outputs, wide, plots: main.querySelectorAll('.js-plotly-plot').length};
}
"""


def page_problems(page, min_plots: int = 0) -> tuple[list[str], int]:
    """Problems a reader sees on a loaded playwright ``page``; also returns the number of drawn
    plotly figures.  Opens every hidden-input toggle first, so hidden code is measured too."""
    got = page.evaluate(PAGE_SCRIPT)
    problems = []
    for k, text in enumerate(got["outputs"]):
        rows = raw_table_lines(text)
        if rows:
            problems.append(f"output {k}: raw Markdown table text: {_shorten(rows[0])}")
        for w in forbidden_words(text):
            problems.append(f"output {k}: says {w!r}: {_shorten(_line_with(text, w))}")
    for w in got["wide"]:
        problems.append(f"code block wider than its column ({w['scroll']} > {w['client']} px): "
                        f"{_shorten(w['text'], 60)}")
    if got["plots"] < min_plots:
        problems.append(f"{got['plots']} plotly figures drawn, expected at least {min_plots}")
    return problems, int(got["plots"])
