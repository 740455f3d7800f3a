"""The book builds from QUICK-executed notebooks and every page works offline in Chromium.

Builds a copy of ``book/`` in a temporary folder (the repository's ``book/_build`` is left
alone), serves the site on 127.0.0.1 and opens every page in headless Chromium (Debian's
``/usr/bin/chromium``, driven by the ``playwright`` Python package; never ``playwright install``).
"""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from dphelpers.book import BOOK_DIR, build_book, find_notebooks

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOT = Path("/tmp/book_shot.png")


def _sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the book test needs the 'playwright' Python package: "
                    ".venv/bin/pip install playwright (it drives /usr/bin/chromium; "
                    "do not run 'playwright install')", pytrace=False)
    return sync_playwright


@pytest.fixture(scope="module")
def site(tmp_path_factory, executed_notebooks) -> Path:
    """The book built from the QUICK-executed notebooks (executed once per session, shared with
    tests/test_notebooks.py), in a temporary copy of ``book/``."""
    failed = {k: v for k, v in executed_notebooks.items() if isinstance(v, Exception)}
    if failed:
        pytest.fail(f"notebooks failed, no book: {failed}", pytrace=False)
    out = next(iter(executed_notebooks.values())).parent
    book = tmp_path_factory.mktemp("book") / "book"
    shutil.copytree(BOOK_DIR, book, ignore=shutil.ignore_patterns("_build", "chapters"))
    return build_book(out_dir=out, execute=False, book_dir=book, progress=False)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def base_url(site):
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _sync_playwright()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _pages(site: Path) -> list[str]:
    """Every content page of the site, relative to its root."""
    fixed = ["index.html", "intro.html", "install.html", "batches.html", "references.html"]
    chapters = sorted(p.relative_to(site).as_posix() for p in (site / "chapters").glob("*.html"))
    return fixed + chapters


def _visit(browser, url: str):
    """Open ``url`` and wait until its math, figures and widgets are drawn.

    Returns (page, context, problems): console errors, page errors, failed or off-host
    requests.  Requests to any host but 127.0.0.1 are aborted and reported.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    problems: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname == "127.0.0.1":
            r.continue_()
        else:
            problems.append(f"request to another host: {url}")
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
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
    chapters = {p.stem for p in (site / "chapters").glob("*.html")}
    notebooks = {p.stem for p in find_notebooks()}
    assert notebooks, "no notebooks/NN_*.ipynb found"
    assert chapters == notebooks
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
