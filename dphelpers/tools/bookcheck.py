"""What a reader of the book must never meet, checked on executed notebooks and rendered pages.

Used by ``tests/test_book.py`` on the QUICK build, and by :func:`dphelpers.tools.book.build_book`
(``check=True``) so that a broken chapter fails the build instead of being published.  The
checks, by name (:data:`CHECKS`; each finding reads ``"<page>: <check>: <what was seen>"``):

- ``raw-table``: Markdown table syntax shown as text (``| a | b |`` / ``|---|``: myst-nb
  publishes ``text/markdown`` outputs unrendered; use :func:`dphelpers.evaluation.tables.table`);
- ``says``: an output saying "not found", "skipped" or "Traceback"; ``error``: an error output;
- ``long-code``: a code line over :data:`MAX_CODE_LINE` characters (page: a ``pre`` block whose
  content is wider than the block);
- ``math``: a MathJax error (``mjx-merror``, "Misplaced &") or raw TeX (``\\frac``, ``\\alpha``...)
  in text outside math; in a notebook: ``&`` in math outside an environment, or TeX outside ``$``;
- ``too-wide``: a figure, table, image, plotly figure or ``pre`` wider than the content column
  (``article``), or sticking out of it;
- ``plot-overlap``: title, legend, subplot titles (annotations) or axis titles of a plotly figure
  drawn over each other; ``plot-clipped``: such a text cut by the figure's edge, or ink touching
  the edge of a 3D scene (an axis title or the data cut off);
- ``progress``: a progress bar (tqdm widget, ``progress`` element, "10/10 [00:01<00:00,
  9.5it/s]" text); ``stderr``: a stderr output (log lines, warnings);
- ``injected-parameters``: papermill's injected "# Parameters" cell shown;
- ``missing-file``: a file name (``x.md``, ``data/results/x.json``...) that is neither in the
  repository (tracked, or on disk under it) nor a generated path it ignores, e.g. ``REFERENCE.md``;
- ``snake-header``: a table column header written as an identifier (``P1_min``);
- ``plots``: fewer drawn plotly figures than a chapter should have.

:func:`notebook_problems` reads an executed notebook (no browser: every check but
``too-wide``, ``plot-*`` and ``plots``, which need the drawn page);
:func:`dphelpers.tools.pagecheck.page_problems` runs in a playwright page that has finished
loading (MathJax and plotly drawn; see
``tests/test_book.py``), with every hidden-input toggle opened first.  Each check is proved on
a page or notebook with exactly that defect in ``tests/test_bookcheck.py``.
"""
from __future__ import annotations

import functools
import html as _html
import os
import re
import subprocess
from pathlib import Path

__all__ = ["MAX_CODE_LINE", "FORBIDDEN", "CHECKS", "output_text", "raw_table_lines",
           "forbidden_words", "tqdm_lines", "raw_tex", "file_mentions", "missing_files",
           "snake_headers", "notebook_problems"]

REPO = Path(__file__).resolve().parents[2]
MAX_CODE_LINE = 88
#: phrases no executed output may contain (compared in lower case)
FORBIDDEN: tuple[str, ...] = ("not found", "skipped", "traceback")
#: (name, what it catches) of every check; findings name the check
CHECKS: tuple[tuple[str, str], ...] = (
    ("raw-table", "Markdown table syntax shown as text in an output"),
    ("says", "an output saying 'not found', 'skipped' or 'Traceback'"),
    ("error", "an error output in an executed notebook"),
    ("long-code", f"a code line over {MAX_CODE_LINE} characters / a pre block scrolling sideways"),
    ("math", "a MathJax error (mjx-merror, 'Misplaced &') or raw TeX outside math"),
    ("too-wide", "a figure, table, image, plotly figure or pre wider than the content column"),
    ("plot-overlap", "plotly title, legend, subplot titles or axis titles over each other"),
    ("plot-clipped", "plotly text cut by the figure's edge; ink at the edge of a 3D scene"),
    ("progress", "a progress bar (tqdm widget or text) in an output"),
    ("stderr", "a stderr output (log lines, warnings)"),
    ("injected-parameters", "papermill's injected '# Parameters' cell shown"),
    ("missing-file", "a file name that is not in the repository (e.g. REFERENCE.md)"),
    ("snake-header", "a table column header written as an identifier (P1_min)"),
    ("plots", "fewer drawn plotly figures than the chapter should have"),
)
_TABLE_RULE = re.compile(r"\|\s*:?-{3,}:?\s*\|")
_TQDM = re.compile(r"\d+%\|.*\||\d+/\d+ \[[\d:]+<[\d:?]+|[\d.?]+ ?(?:it/s|s/it)\]")
_TEX = re.compile(r"\\[A-Za-z]+")
_SNAKE = re.compile(r"[A-Za-z0-9]+_[A-Za-z0-9_]+")
_FILE_EXT = "md|py|json|ipynb|pt|pth|npz|npy|yml|yaml|csv|toml|onnx|bib"
_FILE = re.compile(rf"(?<![\w/.\-~])((?:/|\.\.?/)?(?:[\w.\-]+/)*[\w\-][\w.\-]*\.(?:{_FILE_EXT}))"
                   rf"(?![\w/\-])")
_URL = re.compile(r"[a-z][a-z0-9+.\-]*://\S+", re.I)
#: what of a Markdown cell the reader does not read: HTML tags, link targets ``](...)``
_MD_HIDDEN = re.compile(r"<[^>\n]+>|\]\([^)\s]*\)")


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
    """The :data:`FORBIDDEN` phrases that occur in ``text``, ignoring case."""
    low = text.lower()
    return [w for w in FORBIDDEN if w in low]


def tqdm_lines(text: str) -> list[str]:
    """Lines (split at ``\\r`` too) that look like a tqdm progress bar."""
    return [ln for ln in re.split(r"[\r\n]+", text) if _TQDM.search(ln)]


_CODE = re.compile(r"^(```|~~~).*?^\1[ \t]*$|`[^`\n]*`", re.M | re.S)
#: $$...$$, $...$ (may wrap lines, not paragraphs), \begin{env}...\end{env}
_MATH = re.compile(r"\$\$.+?\$\$|\$(?:[^$\n]|\n(?![ \t]*\n))+\$"
                   r"|\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.S)


def raw_tex(markdown: str) -> list[str]:
    """Math trouble in Markdown source: TeX commands outside ``$...$`` / environments / code,
    and ``&`` in a math span that holds no ``\\begin{...}`` environment ("Misplaced &")."""
    text = _CODE.sub(" ", markdown)
    found = []
    for m in _MATH.finditer(text):
        span = m.group(0)
        if re.search(r"(?<!\\)&", span) and "\\begin{" not in span:
            found.append(f"'&' outside an environment (MathJax: Misplaced &): {_shorten(span, 50)}")
    found += [f"raw TeX {t!r} outside math"
              for t in dict.fromkeys(_TEX.findall(_MATH.sub(" ", text)))]
    return found


def file_mentions(text: str) -> list[str]:
    """Tokens of ``text`` that look like file names (``x.md``, ``data/results/x.json``), URLs
    left out."""
    return list(dict.fromkeys(_FILE.findall(_URL.sub(" ", text))))


@functools.lru_cache(maxsize=1)
def _tracked(root: str) -> tuple[str, ...]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True,
                             check=True).stdout
        return tuple(out.splitlines())
    except (OSError, subprocess.CalledProcessError):    # not a git checkout: files on disk
        skip = {".git", ".venv", "_build", "__pycache__", "node_modules"}
        found = []
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x not in skip]
            found += [Path(d, f).relative_to(root).as_posix() for f in files]
        return tuple(found)


@functools.lru_cache(maxsize=4096)
def _in_repo(name: str, root: str) -> bool:
    """``name`` is a tracked file (whole path or its tail), exists under ``root`` / its
    ``book`` or ``notebooks`` folder, or is a path git ignores (generated: runs/, _build/)."""
    base = Path(root)
    if name.startswith("/"):
        p = Path(name)
        return p.exists() and base in p.resolve().parents
    rel = re.sub(r"^(\.\.?/)+", "", name)
    if any(t == rel or t.endswith("/" + rel) for t in _tracked(root)):
        return True
    if any((d / name).exists() for d in (base, base / "book", base / "notebooks")):
        return True
    for cand in (rel, f"book/{rel}", f"notebooks/{rel}"):
        try:
            r = subprocess.run(["git", "check-ignore", "-q", "--no-index", cand], cwd=root,
                               capture_output=True)
        except OSError:
            return False
        if r.returncode == 0:
            return True
    return False


def missing_files(text: str, root: str | os.PathLike = REPO) -> list[str]:
    """File names mentioned in ``text`` that the repository at ``root`` does not have."""
    return [f for f in file_mentions(text) if not _in_repo(f, str(root))]


def _strip_tags(s: str) -> str:
    return _html.unescape(re.sub(r"<[^>]+>", "", s)).strip()


def snake_headers(html_text: str) -> list[str]:
    """Column headers (``th`` of ``thead``, else of a table's first row) written as identifiers."""
    heads = []
    for table in re.findall(r"<table.*?</table>", html_text, re.S | re.I):
        head = re.search(r"<thead.*?</thead>", table, re.S | re.I) or \
            re.search(r"<tr.*?</tr>", table, re.S | re.I)
        if head:
            heads += [_strip_tags(c) for c in re.findall(r"<th\b[^>]*>(.*?)</th>", head.group(0),
                                                         re.S | re.I)]
    return [h for h in heads if _SNAKE.fullmatch(h)]


def _shorten(s: str, n: int = 70) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n - 3] + "..."


def _line_with(text: str, word: str) -> str:
    return next((ln for ln in text.splitlines() if word in ln.lower()), text)


def _injected_shown(cell) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    if "injected-parameters" not in tags or "remove-cell" in tags:
        return False
    return not ("remove-input" in tags and ("remove-output" in tags or not cell.get("outputs")))


def _output_problems(out) -> list[str]:
    """Findings (``check: detail``) of one output of a code cell."""
    if out.get("output_type") == "error":
        return [f"error: error output {out.get('ename')}: {_shorten(str(out.get('evalue')))}"]
    found, text, data = [], output_text(out), out.get("data", {})
    plain = text if "text/html" not in data else output_text(
        {"output_type": "x", "data": {k: v for k, v in data.items() if k != "text/html"}})
    rows = raw_table_lines(plain)
    if rows:
        found.append(f"raw-table: raw Markdown table in an output: {_shorten(rows[0])}")
    found += [f"says: output says {w!r}: {_shorten(_line_with(text, w))}"
              for w in forbidden_words(text)]
    if out.get("output_type") == "stream" and out.get("name") == "stderr":
        first = next((ln for ln in text.splitlines() if ln.strip()), "")
        found.append(f"stderr: stderr output: {_shorten(first)}")
    bars = tqdm_lines(text)
    if bars:
        found.append(f"progress: progress bar in an output: {_shorten(bars[-1])}")
    html_out = data.get("text/html", "")
    html_out = "".join(html_out) if isinstance(html_out, list) else str(html_out)
    found += [f"snake-header: table header {h!r}" for h in snake_headers(html_out)]
    return found


def notebook_problems(nb, max_line: int = MAX_CODE_LINE, name: str | None = None) -> list[str]:
    """Problems of an executed notebook (nbformat node or path), one readable line each:
    ``"<name>: <check>: cell <i> ...: <what>"`` (name: the file's name, else ``notebook``)."""
    import nbformat

    if isinstance(nb, (str, os.PathLike)):
        name = name or Path(nb).name
        nb = nbformat.read(Path(nb), as_version=4)
    name = name or "notebook"
    problems = []

    def add(i: int, finding: str) -> None:
        check, detail = finding.split(": ", 1)
        problems.append(f"{name}: {check}: cell {i}: {detail}")

    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for f in raw_tex(cell.source):
                add(i, f"math: {f}")
            for f in missing_files(_MD_HIDDEN.sub(" ", cell.source)):
                add(i, f"missing-file: mentions {f!r}, which is not in the repository")
            continue
        if cell.cell_type != "code":
            continue
        if _injected_shown(cell):
            add(i, f"injected-parameters: papermill's injected cell is shown: "
                   f"{_shorten(cell.source, 50)} (tag it remove-cell)")
        for k, line in enumerate(cell.source.splitlines(), 1):
            if len(line) > max_line:
                add(i, f"long-code: line {k}: code line of {len(line)} characters "
                       f"(max {max_line}): {_shorten(line, 50)}")
        for out in cell.get("outputs", []):
            for f in _output_problems(out):
                add(i, f)
    return problems




