"""The book builds from QUICK-executed notebooks and every page works offline in Chromium.

Builds a copy of ``book/`` in a temporary folder (the repository's ``book/_build`` is left
alone), serves the site on 127.0.0.1 and opens every page in headless Chromium (Debian's
``/usr/bin/chromium``, driven by the ``playwright`` Python package; never ``playwright install``).

Reader-level checks (:mod:`dphelpers.tools.bookcheck`, every check of its ``CHECKS``), on
every executed notebook (``test_notebooks_have_no_reader_problems``) and every rendered chapter
(``test_reader_sees_no_broken_output``): raw Markdown table text, outputs saying "not found",
"skipped" or "Traceback", code wider than its column, MathJax errors and raw TeX, elements
wider than the content column, overlapping or clipped plotly text, progress bars, stderr
outputs, papermill's injected cell, mentions of files not in the repository, snake_case table
headers, and at least :data:`MIN_PLOTS` plotly figures drawn; a full-page screenshot of each
chapter is saved under the pytest tmp dir (its path is printed: run with ``-s`` to see it).  The
same checker must catch a deliberately broken chapter (``test_checker_catches_a_broken_page``;
each check alone: ``tests/test_bookcheck.py``).  ``DPHELPERS_BOOK_SITE=book/_build/html``
runs the same checks on a site built before (the full build), without building one.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import served, watched_page
from PIL import Image

from dphelpers.tools.book import BOOK_DIR, RESULTS_PAGE, build_book, find_notebooks
from dphelpers.tools.bookcheck import notebook_problems
from dphelpers.tools.pagecheck import page_problems

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOT = Path("/tmp/book_shot.png")
#: plotly figures each chapter draws at least (its viz.show calls, from the notebooks)
MIN_PLOTS = {"01_data_and_skeletons": 6, "02_heatmaps_and_sampling": 9,
             "03_embedding_transformer": 4, "04_diffusion_training": 5, "05_evaluation": 7,
             "06_demo": 9}


def _sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the book test needs the 'playwright' Python package: "
                    ".venv/bin/pip install playwright (it drives /usr/bin/chromium; "
                    "do not run 'playwright install')", pytrace=False)
    return sync_playwright


@pytest.fixture(scope="module")
def site(tmp_path_factory, request) -> Path:
    """The book built from the QUICK-executed notebooks (executed once per session, shared with
    tests/test_notebooks.py), in a temporary copy of ``book/``.

    ``DPHELPERS_BOOK_SITE=PATH`` checks a site built before instead (e.g. the full build's
    ``book/_build/html`` of ``python -m dphelpers book``): the same reader-level checks on the
    numbers a reader of the published book sees."""
    built = os.environ.get("DPHELPERS_BOOK_SITE")
    if built:
        site = Path(built).resolve()
        if not (site / "index.html").is_file():
            pytest.fail(f"DPHELPERS_BOOK_SITE={built}: no index.html there", pytrace=False)
        return site
    executed_notebooks = request.getfixturevalue("executed_notebooks")
    failed = {k: v for k, v in executed_notebooks.items() if isinstance(v, Exception)}
    if failed:
        pytest.fail(f"notebooks failed, no book: {failed}", pytrace=False)
    out = next(iter(executed_notebooks.values())).parent
    book = tmp_path_factory.mktemp("book") / "book"
    shutil.copytree(BOOK_DIR, book, ignore=shutil.ignore_patterns("_build", "chapters"))
    # check=False: the notebooks' reader-level problems are reported by
    # test_notebooks_have_no_reader_problems, so that the pages are still built and checked
    return build_book(out_dir=out, execute=False, book_dir=book, progress=False, check=False)


@pytest.fixture(scope="module")
def base_url(site):
    with served(site) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing: Debian's chromium is not installed (`bash "
                    ".ci/install` installs it when it may run apt-get; else `sudo apt-get install "
                    "chromium`), so the book's pages cannot be opened in a browser")
    sync_playwright = _sync_playwright()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _pages(site: Path) -> list[str]:
    """Every content page of the site, relative to its root."""
    fixed = ["index.html", "intro.html", "install.html", "tryit.html", "batches.html",
             "references.html"]
    chapters = sorted(p.relative_to(site).as_posix() for p in (site / "chapters").glob("*.html"))
    return fixed + chapters


def _chapters(site: Path) -> list[str]:
    """The notebook chapters (without the generated results page)."""
    return [p for p in _pages(site) if p.startswith("chapters/") and p != f"{RESULTS_PAGE}.html"]


def _visit(browser, url: str):
    """Open ``url`` and wait until its math, figures and widgets are drawn.

    Returns (page, context, problems): console errors, page errors, failed or off-host
    requests.  Requests to any host but 127.0.0.1 are aborted and reported.
    """
    page, context, problems = watched_page(browser)
    page.goto(url, wait_until="load")
    if page.locator("span.math, div.math").count():
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("() => MathJax.startup.promise")
        page.wait_for_selector("mjx-container", state="attached")
    n_figs = page.locator("div.plotly-graph-div").count()
    if n_figs:  # plotly adds .js-plotly-plot once a figure is drawn
        page.wait_for_function(
            "n => document.querySelectorAll('div.plotly-graph-div.js-plotly-plot').length >= n",
            arg=n_figs)
    if page.locator('script[type="application/vnd.jupyter.widget-state+json"]').count():
        page.wait_for_selector(".jupyter-widgets", state="attached")  # drawn by embed-amd.js
    page.wait_for_timeout(500)  # let late requests (fonts) finish or fail before we look
    return page, context, problems


def test_playwright_is_installed():
    assert _sync_playwright() is not None


def test_every_notebook_is_a_chapter(site):
    chapters = {Path(p).stem for p in _chapters(site)}
    notebooks = {p.stem for p in find_notebooks()}
    assert notebooks, "no notebooks/NN_*.ipynb found"
    assert chapters == notebooks
    assert set(MIN_PLOTS) == notebooks, "MIN_PLOTS must name every chapter"
    assert (site / f"{RESULTS_PAGE}.html").is_file(), "the generated results page is missing"
    for name in _pages(site):
        assert (site / name).is_file(), name


def test_site_loads_nothing_from_the_network(site):
    html = "\n".join((site / p).read_text() for p in _pages(site))
    for cdn in ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "cdn.plot.ly", "unpkg.com/@jupyter"):
        assert f'src="https://{cdn}' not in html, cdn
    assert (site / "_static" / "plotly.min.js").is_file()
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_every_page_works_offline(site, base_url, browser):
    """No console errors, failed requests or off-host requests; every figure and widget drawn."""
    report = {}
    for name in _pages(site):
        page, context, problems = _visit(browser, base_url + name)
        context.close()
        if problems:
            report[name] = problems
    assert not report, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in report.items())


def test_3d_figure_renders_in_webgl(site, base_url, browser, tmp_path):
    pages = [p for p in _pages(site) if '"type":"scatter3d"' in (site / p).read_text()]
    assert pages, "no chapter shows a plotly 3D figure"
    page, context, problems = _visit(browser, base_url + pages[0])
    plot = page.locator(".js-plotly-plot").filter(has=page.locator(".gl-container canvas")).first
    plot.wait_for(state="visible", timeout=30_000)
    plot.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    has_webgl = plot.locator("canvas").first.evaluate(
        "c => !!(c.getContext('webgl') || c.getContext('experimental-webgl') || c.getContext('webgl2'))")
    shot = tmp_path / "figure.png"
    plot.screenshot(path=str(shot))
    shutil.copyfile(shot, SHOT)
    context.close()
    assert has_webgl
    assert not problems, problems

    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # bones are drawn in the side colours of dphelpers.viz.COLORS: blue (left), red-orange (right)
    blue = (abs(rgb - [0x1F, 0x77, 0xB4]).sum(-1) < 60).sum()
    red = (abs(rgb - [0xE4, 0x57, 0x2E]).sum(-1) < 60).sum()
    assert blue > 50 and red > 50, f"3D skeleton not drawn: {blue} blue, {red} red pixels"


def _check_page(browser, url: str, shot: Path, min_plots: int = 0) -> tuple[list[str], int]:
    """Reader-level problems of one page, after a full-page screenshot of it (as a reader
    first sees it, toggles closed)."""
    page, context, problems = _visit(browser, url)
    try:
        page.screenshot(path=str(shot), full_page=True)
        found, n_plots = page_problems(page, min_plots)
    finally:
        context.close()
    return problems + found, n_plots


def test_reader_sees_no_broken_output(site, base_url, browser, tmp_path_factory):
    """Every page a reader opens (the front pages, every chapter, the results page, the
    references): no finding of any check of :data:`dphelpers.tools.bookcheck.CHECKS`, the
    expected plotly figures drawn; screenshots saved."""
    shots = tmp_path_factory.mktemp("screenshots")
    report, drawn = {}, {}
    for name in [p for p in _pages(site) if p != "index.html"]:     # index.html only redirects
        stem = Path(name).stem
        shot = shots / f"{stem}.png"
        problems, drawn[stem] = _check_page(browser, base_url + name, shot, MIN_PLOTS.get(stem, 0))
        print(f"screenshot of {name}: {shot} ({drawn[stem]} plotly figures)")
        if problems:
            report[name] = problems
    assert not report, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in report.items())


def test_chapters_have_no_reader_problems(site):
    """The build's own check (:func:`dphelpers.tools.bookcheck.notebook_problems`) on every
    chapter notebook as the site publishes it (``book/chapters/`` of the built copy)."""
    chapters = sorted((site.parents[1] / "chapters").glob("*.ipynb"))
    assert chapters, f"no chapter notebooks next to {site}"
    report = [p for nb in chapters for p in notebook_problems(nb)]
    assert not report, "\n".join(report)


def test_plumbing_cells_are_folded(site):
    """myst-nb honours the hide-input tag: the setup cell's code sits behind a toggle."""
    for name in _chapters(site):
        html = (site / name).read_text()
        assert "tag_hide-input" in html and "hide above-input" in html, name


def test_favicon_is_served(site, base_url, browser):
    """Every page links the small SVG icon and the server has it (checked on the first page:
    index.html is only a redirect to it, which the browser may already have left)."""
    first = next(p for p in sorted(site.glob("*.html")) if p.name not in ("index.html",
                                                                          "genindex.html",
                                                                          "search.html"))
    page, context, problems = _visit(browser, base_url + first.name)
    icons = page.eval_on_selector_all('link[rel~="icon"]', "ls => ls.map(l => l.href)")
    statuses = [page.request.get(href).status for href in icons]
    context.close()
    assert icons and all(s == 200 for s in statuses), (icons, statuses)
    assert not problems, problems
    assert (site / "_static" / "favicon.svg").stat().st_size < 1000


def _tiny_notebook(broken: bool):
    """A hand-made *executed* chapter: clean, or with problems a reader must never meet (a raw
    Markdown table output, a 'not found' output, a 120-character code line, a stderr output, a
    tqdm bar, papermill's injected cell shown, raw TeX, a misplaced '&', a mention of
    REFERENCE.md, a snake_case table header), so that myst-nb's real HTML is checked too."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from dphelpers.evaluation.tables import table

    def code(source, *outputs, tags=()):
        c = new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
        c.outputs = list(outputs)
        return c

    def printed(text):
        return new_output("stream", name="stdout", text=text)

    t = table([["a", 1.5], ["b", 2.25]], columns=["name", "value"], caption="a clean table")
    cells = [new_markdown_cell(f"# {'Broken' if broken else 'Clean'} chapter\n\n"
                               "The loss $\\frac{1}{2}\\lVert x \\rVert^2$, see README.md."),
             code("QUICK = True", tags=["parameters"]),
             code("# Parameters\nQUICK = True\n",
                  tags=["injected-parameters"] + ([] if broken else ["remove-cell"])),
             code("import numpy as np", printed("setup done\n"), tags=["hide-input"]),
             code("x = 1  # " + "a" * (111 if broken else 79), printed("ok\n"))]  # 120 / 88
    if broken:
        cells += [code("show_markdown()", new_output("display_data", data={
                      "text/markdown": "| a | b |\n|---|---|\n| 1 | 2 |", "text/plain": "md"})),
                  code("print(msg)", printed("runs/model.pt not found: skipped\n")),
                  new_markdown_cell("As in REFERENCE.md, the weight \\bar{\\alpha} and\n\n"
                                    "$$\na &= b\n$$"),
                  code("train()", new_output("stream", name="stderr", text=(
                      "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")),
                      printed("100%|##########| 10/10 [00:01<00:00,  9.51it/s]\n")),
                  code("t", new_output("execute_result", execution_count=2, data={
                      "text/html": table([["a", 1.0]], columns=["model", "P1_min"])._repr_html_(),
                      "text/plain": "t"}))]
    else:
        cells.append(code("t", new_output("execute_result", execution_count=1, data={
            "text/html": t._repr_html_(), "text/plain": str(t)})))
    return new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory):
    """A two-chapter book (one clean, one broken chapter), built without the build's check."""
    import nbformat

    root = tmp_path_factory.mktemp("tiny")
    executed = root / "executed"
    executed.mkdir()
    paths = []
    for name, broken in (("01_clean", False), ("02_broken", True)):
        paths.append(executed / f"{name}.ipynb")
        nbformat.write(_tiny_notebook(broken), paths[-1])
    book = root / "book"
    shutil.copytree(BOOK_DIR, book, ignore=shutil.ignore_patterns("_build", "chapters"))
    with pytest.raises(RuntimeError) as err:            # the real build refuses to publish it
        build_book(out_dir=executed, execute=False, notebooks=paths, book_dir=book,
                   progress=False)
    assert "02_broken.ipynb" in str(err.value) and "01_clean" not in str(err.value)
    return paths, build_book(out_dir=executed, execute=False, notebooks=paths, book_dir=book,
                             progress=False, check=False)


def test_checker_catches_a_broken_notebook(tiny_site):
    (clean, broken), _ = tiny_site
    assert notebook_problems(clean) == []
    found = notebook_problems(broken)
    assert any("raw Markdown table" in p for p in found), found
    assert any("'not found'" in p for p in found), found
    assert any("120 characters" in p for p in found), found
    for check, seen in (("stderr", "TensorFlow Lite"), ("progress", "9.51it/s"),
                        ("injected-parameters", "QUICK = True"), ("math", "Misplaced &"),
                        ("math", "'\\\\bar'"), ("missing-file", "'REFERENCE.md'"),
                        ("snake-header", "'P1_min'")):
        assert any(f": {check}: " in p and seen in p for p in found), (check, seen, found)


def test_checker_catches_a_broken_page(tiny_site, browser, tmp_path):
    """The browser checker used on the real book reports the problems of the broken chapter as
    myst-nb renders them, and nothing on the clean one."""
    _, site = tiny_site
    with served(site) as url:
        base = url + "chapters/"
        clean, _ = _check_page(browser, base + "01_clean.html", tmp_path / "clean.png")
        broken, _ = _check_page(browser, base + "02_broken.html", tmp_path / "broken.png")
    assert clean == [], clean
    assert any("raw Markdown table" in p for p in broken), broken
    assert any("'not found'" in p for p in broken), broken
    assert any("wider than its column" in p for p in broken), broken
    # (the build removes the injected cell and stderr: tests/test_bookcheck.py proves those)
    for check, seen in (("progress", "9.51it/s"), ("math", "Misplaced &"),
                        ("math", "'\\\\bar'"), ("missing-file", "'REFERENCE.md'"),
                        ("snake-header", "'P1_min'")):
        assert any(p.startswith(f"chapters/02_broken.html: {check}: ") and seen in p
                   for p in broken), (check, seen, broken)
