"""The reader-level checker (:mod:`dphelpers.tools.bookcheck`) catches every defect it names.

Each check is proved on a small page with exactly that defect, written as raw HTML in the
structure Jupyter Book / myst-nb produce (``main > article.bd-article`` of 688 px, ``div.cell``,
``div.cell_output``, ``div.output.stderr``...), served on 127.0.0.1 with the book's own MathJax
and the installed plotly's ``plotly.min.js`` and opened in headless Chromium (skipped like
``tests/test_book.py`` when ``/usr/bin/chromium`` is missing); a clean page with the same kinds
of content yields no finding.  The notebook checks (no browser) are proved the same way on
hand-made executed notebooks.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dphelpers.tools.book import BOOK_DIR
from dphelpers.tools.bookcheck import CHECKS, notebook_problems
from dphelpers.tools.pagecheck import page_problems

from conftest import served

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
COLUMN_PX = 688

_HEAD = """<!DOCTYPE html><html><head><meta charset="utf-8">
<script>window.MathJax = {tex: {inlineMath: [['\\\\(', '\\\\)']]}};</script>
<script defer src="mathjax/tex-chtml.js"></script><script src="plotly.min.js"></script>
<style>body {margin: 0; font: 16px sans-serif;} main {display: flex;}
article.bd-article {box-sizing: border-box; width: %dpx; padding: 0 16px;}
pre {white-space: pre; overflow: auto;}</style>
</head><body><main><div class="bd-sidebar" style="width: 200px"></div>
<article class="bd-article">""" % (COLUMN_PX + 32)
_TAIL = "</article></main></body></html>"


def _plot(div: str, data: list, layout: dict) -> str:
    """A plotly figure drawn into ``div``; the page marks ``window.plotsDone`` when all are."""
    return (f'<div class="cell_output"><div id="{div}" class="plotly-graph-div"></div></div>'
            f"<script>window.plots = (window.plots || []).concat([Plotly.newPlot('{div}', "
            f"{json.dumps(data)}, {json.dumps(layout)}, {{displayModeBar: false}})]);</script>")


def _output(text: str, kind: str = "text_plain") -> str:
    return f'<div class="cell_output docutils container"><div class="output {kind}">' \
           f"<pre>{text}</pre></div></div>"


_LINE = {"type": "scatter", "x": [0, 1, 2], "y": [1, 3, 2]}
_SKELETON = {"type": "scatter3d", "mode": "lines+markers", "x": [0, 1, 1], "y": [0, 0, 1],
             "z": [0, 1, 1], "name": "bones"}

CLEAN = "".join([
    "<h1>A clean chapter</h1>",
    r"<p>The loss \(\frac{1}{2}\lVert \epsilon - \hat\epsilon \rVert^2\) is written "
    r"<code>p_losses</code> in <code>dphelpers/tools/bookcheck.py</code> (see README.md).</p>",
    r'<div class="math notranslate">\[\begin{aligned} a &= b \\ c &= d \end{aligned}\]</div>',
    '<div class="cell docutils container"><div class="cell_input"><pre>x = 1  # ok</pre></div>',
    _output("setup done"), "</div>",
    '<table class="dp-table"><thead><tr><th>model</th><th>P1 min (mm)</th></tr></thead>'
    "<tbody><tr><td>diffpose_quick</td><td>52.3</td></tr></tbody></table>",
    '<img alt="a small image" width="300" height="40" src="data:image/gif;base64,'
    'R0lGODlhAQABAAAAACw=">',
    _plot("p2d", [_LINE, dict(_LINE, y=[2, 1, 3], name="other")],
          {"title": {"text": "A clean figure"}, "xaxis": {"title": {"text": "time (s)"}},
           "yaxis": {"title": {"text": "error (mm)"}}, "height": 350}),
    _plot("p3d", [_SKELETON], {"title": {"text": "A clean 3D figure"}, "height": 450,
                               "margin": {"l": 0, "r": 0, "b": 0, "t": 40},
                               "scene": {"xaxis": {"title": {"text": "x (m)"}}}}),
])

#: check name -> (page body with exactly that defect, text the finding must contain)
DEFECTS = {
    "math-error": ("math", r"<p>Aligned without an environment: \(a & b\).</p>", "Misplaced"),
    "math-raw-tex": ("math", r"<p>The weight \bar{\alpha}_t is shown raw.</p>", r"'\\bar'"),
    "too-wide-plot": ("too-wide", _plot("wide", [_LINE], {"width": 900, "height": 300}),
                      "900 px wide"),
    "too-wide-table": ("too-wide", "<table><tr>" + "<td>column&nbsp;of&nbsp;text</td>" * 12
                       + "</tr></table>", "table"),
    "too-wide-pre-out": ("too-wide", '<pre style="width: 800px">a pre block</pre>', "pre"),
    "plot-overlap": ("plot-overlap", _plot("ovl", [_LINE, dict(_LINE, name="second")], {
        "title": {"text": "A figure title over its subplot title", "y": 0.97, "yanchor": "top"},
        "margin": {"t": 30}, "height": 300, "annotations": [{
            "text": "Subplot title", "xref": "paper", "yref": "paper", "x": 0.5, "y": 1.0,
            "xanchor": "center", "yanchor": "bottom", "showarrow": False,
            "font": {"size": 16}}]}),
        "overlaps annotation"),
    "plot-clipped-2d": ("plot-clipped", _plot("clip", [_LINE], {
        "height": 300, "annotations": [{"text": "a label past the edge", "xref": "paper",
                                        "yref": "paper", "x": 1.2, "y": 0.5,
                                        "showarrow": False}]}), "cut by the figure's edge"),
    # plotly's default margins leave the scene too short: the axis titles fall off its bottom
    "plot-clipped-3d": ("plot-clipped", _plot("clip3d", [_SKELETON], {
        "height": 380, "scene": {"xaxis": {"title": {"text": "x (m)"}}}}), "3D scene"),
    "progress-text": ("progress", _output("100%|##########| 10/10 [00:01&lt;00:00,  9.51it/s]"),
                      "it/s"),
    "progress-widget": ("progress", '<div class="cell_output"><progress value="5" max="10">'
                        "</progress></div>", "progress"),
    "stderr": ("stderr", _output("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
                                 "stderr"), "TensorFlow Lite"),
    "injected-parameters": ("injected-parameters",
                            '<div class="cell tag_injected-parameters docutils container">'
                            '<div class="cell_input"><pre># Parameters\nQUICK = False</pre>'
                            "</div></div>", "QUICK = False"),
    "missing-file": ("missing-file", "<p>The targets follow REFERENCE.md and "
                     "<code>data/results/nowhere.json</code>.</p>", "'REFERENCE.md'"),
    "snake-header": ("snake-header", "<table><thead><tr><th>model</th><th>P1_min</th></tr>"
                     "</thead><tbody><tr><td>a</td><td>1</td></tr></tbody></table>", "'P1_min'"),
}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The clean page and one page per defect, served on 127.0.0.1: ``{name: url}``."""
    import plotly

    root = tmp_path_factory.mktemp("pages")
    (root / "mathjax").symlink_to(BOOK_DIR / "static_js" / "mathjax")
    (root / "plotly.min.js").symlink_to(Path(plotly.__file__).parent / "package_data"
                                        / "plotly.min.js")
    bodies = {"clean": CLEAN} | {k: v[1] for k, v in DEFECTS.items()}
    for name, body in bodies.items():
        (root / f"{name}.html").write_text(_HEAD + body + _TAIL)
    with served(root) as base:
        yield {name: f"{base}{name}.html" for name in bodies}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing: Debian's chromium is not installed, so pages "
                    "cannot be opened in a browser (see tests/test_book.py)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the checker's tests need the 'playwright' Python package: "
                    ".venv/bin/pip install playwright", pytrace=False)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _problems(browser, url: str) -> list[str]:
    """Load ``url``, wait for MathJax and every plotly figure (their promises), then check."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.goto(url, wait_until="load")
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("() => MathJax.startup.promise")
        page.evaluate("() => Promise.all(window.plots || []).then(() => new Promise("
                      "r => requestAnimationFrame(() => requestAnimationFrame(r))))")
        found, _ = page_problems(page)
    finally:
        context.close()
    _named(found)
    return found


def _named(found: list[str]) -> None:
    """Every finding reads ``"<page>: <check>: <what>"`` with a check of :data:`CHECKS`."""
    names = {n for n, _ in CHECKS}
    assert all(f.split(": ")[1] in names and len(f.split(": ")) > 2 for f in found), found


def test_checks_are_listed():
    names = [n for n, _ in CHECKS]
    assert len(names) == len(set(names)) and all(d for _, d in CHECKS)
    assert {check for check, _, _ in DEFECTS.values()} <= set(names)


def test_clean_page_has_no_finding(browser, pages):
    assert _problems(browser, pages["clean"]) == []


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_page_check_reports_defect(browser, pages, defect):
    check, _, seen = DEFECTS[defect]
    found = _problems(browser, pages[defect])
    hits = [f for f in found if f.startswith(f"{defect}.html: {check}: ")]
    assert hits, found
    assert any(seen in f for f in hits), hits


def _notebook(*cells):
    """A hand-made executed notebook: ``("md", source)`` or ``("code", source, outputs, tags)``."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    made = []
    for kind, source, *rest in cells:
        if kind == "md":
            made.append(new_markdown_cell(source))
            continue
        outputs, tags = (rest + [[], []])[:2]
        cell = new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
        cell.outputs = list(outputs)
        made.append(cell)
    return new_notebook(cells=made)


def _stream(text: str, name: str = "stdout"):
    from nbformat.v4 import new_output
    return new_output("stream", name=name, text=text)


def _data(**data):
    """A display_data output; ``text_html=`` stands for the mime type ``text/html``."""
    from nbformat.v4 import new_output
    return new_output("display_data", data={k.replace("_", "/", 1): v for k, v in data.items()})


_TQDM = "100%|" + "\u2588" * 10 + "| 10/10 [00:02<00:00,  4.92it/s]"
CLEAN_NB = _notebook(
    ("md", "# A clean chapter\n\nThe loss $\\frac{1}{2}\\lVert \\epsilon - \\hat\\epsilon\\rVert^2$"
           " (`p_losses`, in `dphelpers/tools/bookcheck.py`; the checkpoint goes to "
           "`runs/diffpose.pt`, see README.md):\n\n"
           "$$\n\\begin{aligned} a &= b \\\\ c &= d \\end{aligned}\n$$\n\n"
           "```python\nprint('\\n'.join(names))\n```"),
    ("code", "QUICK = False", [], ["parameters"]),
    ("code", "# Parameters\nQUICK = True\n", [], ["injected-parameters", "remove-cell"]),
    ("code", "import numpy as np", [_stream("device: cpu\n")], ["hide-input"]),
    ("code", "t", [_data(text_html='<table class="dp-table"><thead><tr><th>model</th>'
                                   "<th>P1 min (mm)</th></tr></thead><tbody><tr><td>x_y</td>"
                                   "<td>52.3</td></tr></tbody></table>", text_plain="t")]),
)

#: defect -> (check, the notebook's cells, text the finding must contain)
NB_DEFECTS = {
    "misplaced-amp": ("math", [("md", "$$\na &= b \\\\\nc &= d\n$$")], "Misplaced &"),
    "raw-tex": ("math", [("md", "The weight \\bar{\\alpha}_t, shown raw.")], "'\\\\bar'"),
    "stderr": ("stderr", [("code", "run()", [_stream(
        "STAGE:2024-01-01 12:00:00 ActivityProfilerController.cpp:314] Completed Stage\n",
        "stderr")])], "ActivityProfiler"),
    "progress-widget": ("progress", [("code", "train()", [_data(text_plain=_TQDM, **{
        "application_vnd.jupyter.widget-view+json": {"model_id": "0", "version_major": 2,
                                                     "version_minor": 0}})])], "4.92it/s"),
    "progress-stream": ("progress", [("code", "train()", [_stream(
        "\r 50%|#####     | 5/10 [00:01<00:01,  4.9it/s]", "stdout")])], "4.9it/s"),
    "injected-parameters": ("injected-parameters", [("code", "# Parameters\nQUICK = False\n",
                                                     [], ["injected-parameters"])],
                            "QUICK = False"),
    "missing-file": ("missing-file", [("md", "Targets as in REFERENCE.md (\"Targets\").")],
                     "'REFERENCE.md'"),
    "snake-header": ("snake-header", [("code", "t", [_data(
        text_html="<table><thead><tr><th>P1_min</th></tr></thead><tbody><tr><td>1</td></tr>"
                  "</tbody></table>", text_plain="t")])], "'P1_min'"),
    "raw-table": ("raw-table", [("code", "t", [_data(text_markdown="| a | b |\n|---|---|",
                                                     text_plain="md")])], "| a | b |"),
    "says": ("says", [("code", "go()", [_stream("runs/x.pt not found\n")])], "'not found'"),
    "long-code": ("long-code", [("code", "x = 1  # " + "a" * 100)], "109 characters"),
}


def test_clean_notebook_has_no_finding():
    assert notebook_problems(CLEAN_NB, name="clean.ipynb") == []


@pytest.mark.parametrize("defect", sorted(NB_DEFECTS))
def test_notebook_check_reports_defect(defect):
    check, cells, seen = NB_DEFECTS[defect]
    found = notebook_problems(_notebook(*cells), name=f"{defect}.ipynb")
    _named(found)
    hits = [f for f in found if f.startswith(f"{defect}.ipynb: {check}: cell 0")]
    assert hits, found
    assert any(seen in f for f in hits), hits
