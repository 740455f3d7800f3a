"""Build the book: execute the notebooks once with papermill, then ``jupyter-book build``.

Not taught in a notebook; ``python -m dphelpers book`` calls :func:`build_book`, and the
book's "Running experiments in batches" page explains the papermill part.

Steps of :func:`build_book`:

1. execute each ``notebooks/NN_name.ipynb`` once with papermill (parameters
   ``{"QUICK": quick}``, env ``DPHELPERS_BOOK=1`` so :func:`dphelpers.viz.show` emits figures as
   HTML without plotly.js, cwd = the notebook's folder) into ``book/_build/executed/``;
2. copy the executed notebooks to ``book/chapters/``, write ``book/_toc.yml`` for them, copy
   the installed plotly package's ``plotly.min.js`` to ``book/_build/plotly_js/`` (so the
   library always matches the Python package that made the figures);
   Each chapter copy is cleaned for the reader (:mod:`dphelpers.tools.chapters`): papermill's
   injected ``# Parameters`` cell is removed (the notebook's own parameters cell stays), and so
   are stderr streams (library log lines: TensorFlow Lite, profilers, warnings) and frozen
   progress-bar widgets; the chapter copies get a line of download links under their title
   (:func:`add_download_links`): the source notebook without outputs (copied to the site's
   ``_static/notebooks/``), the executed one (the page's own source, ``_sources/``) and, when
   known, the repository;
3. check every chapter copy for what a reader must never meet
   (:mod:`dphelpers.tools.bookcheck`: raw Markdown tables, outputs saying "not found",
   "skipped" or "Traceback", code lines over 88 characters): any problem fails the build;
4. write the results page ``book/chapters/results.md`` from the results file
   (:mod:`dphelpers.tools.resultspage`, ``data/results/bench.json`` by default);
5. run ``jupyter-book build book/ --builder html`` with ``execute_notebooks: 'off'``
   (``book/_config.yml``), so nothing runs twice; the site is ``book/_build/html``.

The site works offline: every script it loads lives in ``book/static_js/`` or ``_build/plotly_js``.
The "Try it" page's model (``export_onnx``, int8) and samples are written at every build into
``_build/tryit_static/tryit_model/`` (:func:`dphelpers.tools.tryit.write_tryit_assets`), served
as ``_static/tryit_model/``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .chapters import (CHAPTERS, add_download_links, clean_executed, copy_source_notebooks,
                       repository_url)

__all__ = [
    "ROOT", "BOOK_DIR", "NOTEBOOK_DIR", "NOTEBOOK_GLOB", "FRONT_PAGES", "BACK_PAGES",
    "RESULTS_PAGE", "find_notebooks", "execute_notebooks", "check_notebooks", "write_toc",
    "copy_plotly_js", "build_book",
]

ROOT = Path(__file__).resolve().parents[2]
BOOK_DIR = ROOT / "book"
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
#: markdown pages (without ``.md``) of the book's source, before and after the chapters
FRONT_PAGES: tuple[str, ...] = ("install", "tryit", "batches")
BACK_PAGES: tuple[str, ...] = ("references",)
#: the generated results page, relative to the book's folder (without ``.md``)
RESULTS_PAGE = f"{CHAPTERS}/results"
_LOG_TAIL_LINES = 60


def find_notebooks(notebook_dir: str | os.PathLike = NOTEBOOK_DIR) -> list[Path]:
    """The chapter notebooks ``NN_name.ipynb`` in ``notebook_dir``, sorted by name."""
    notebook_dir = Path(notebook_dir)
    if not notebook_dir.is_dir():
        raise FileNotFoundError(f"notebook folder {notebook_dir} does not exist")
    return sorted(notebook_dir.glob(NOTEBOOK_GLOB))


def _resolve_notebooks(notebooks: Sequence[str | os.PathLike] | None) -> list[Path]:
    """``None`` -> every chapter notebook; names like ``"01_data"`` or paths -> those files."""
    if notebooks is None:
        found = find_notebooks()
        if not found:
            raise FileNotFoundError(f"no notebooks matching {NOTEBOOK_GLOB} in {NOTEBOOK_DIR}")
        return found
    paths = []
    for nb in notebooks:
        p = Path(nb)
        if p.suffix != ".ipynb":
            p = p.with_name(p.name + ".ipynb")
        if not p.is_absolute() and not p.exists():
            p = NOTEBOOK_DIR / p.name
        if not p.is_file():
            raise FileNotFoundError(f"notebook {nb!r} not found (looked for {p})")
        paths.append(p.resolve())
    if not paths:
        raise ValueError("notebooks is empty: give None (all chapters) or at least one notebook")
    return paths


@contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block (papermill kernels inherit them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute_notebooks(notebooks: Sequence[Path], out_dir: str | os.PathLike, quick: bool = False,
                      kernel: str = "python3", progress: bool = True) -> list[Path]:
    """Execute each notebook once with papermill into ``out_dir``; returns the executed files.

    Parameters ``{"QUICK": quick}``, env ``DPHELPERS_BOOK=1``, cwd = the notebook's folder.
    A failing notebook raises ``RuntimeError`` naming it (its partly executed copy stays in
    ``out_dir`` for inspection).  Each notebook's wall time is printed and kept in
    ``out_dir/timings.json`` (``{"QUICK": ..., "seconds": {name: s}}``).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done, seconds = [], {}
    bar = tqdm(list(notebooks), desc="executing notebooks", unit="nb", disable=not progress)
    with _env(DPHELPERS_BOOK="1"):
        for nb in bar:
            nb = Path(nb)
            bar.set_postfix_str(nb.name)
            target = out_dir / nb.name
            t0 = time.perf_counter()
            try:
                pm.execute_notebook(nb, target, parameters={"QUICK": bool(quick)},
                                    kernel_name=kernel, cwd=str(nb.parent), progress_bar=False)
            except PapermillExecutionError as e:
                raise RuntimeError(f"notebook {nb.name} failed in cell {e.exec_count}: "
                                   f"{e.ename}: {e.evalue} (executed copy: {target})") from e
            done.append(target)
            seconds[nb.name] = round(time.perf_counter() - t0, 1)
            bar.write(f"book: {nb.name} executed in {seconds[nb.name]:.0f} s")
    (out_dir / "timings.json").write_text(json.dumps({"QUICK": bool(quick), "seconds": seconds},
                                                     indent=1))
    return done


def check_notebooks(executed: Sequence[Path]) -> None:
    """Raise ``RuntimeError`` listing every reader-level problem of the executed notebooks
    (:func:`dphelpers.tools.bookcheck.notebook_problems`); nothing is published then."""
    from .bookcheck import notebook_problems

    report = {Path(nb).name: notebook_problems(nb) for nb in executed}
    report = {k: v for k, v in report.items() if v}
    if report:
        raise RuntimeError("the book would show problems to its readers (fix the notebooks):\n"
                           + "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in report.items()))


def write_toc(chapters: Sequence[str], book_dir: str | os.PathLike = BOOK_DIR,
              results: bool = False) -> Path:
    """Write ``book_dir/_toc.yml``: intro, front pages, the chapter notebooks, [the results
    page], back pages.

    chapters: notebook stems (``"01_data"``) found in ``book_dir/chapters/``; results: add
    :data:`RESULTS_PAGE` as a part of its own.
    """
    book_dir = Path(book_dir)
    missing = [p for p in ("intro", *FRONT_PAGES,
                           *BACK_PAGES) if not (book_dir / f"{p}.md").is_file()]
    if missing:
        names = ", ".join(m + ".md" for m in missing)
        raise FileNotFoundError(f"book pages missing in {book_dir}: {names}")

    def entries(files: Sequence[str]) -> list[str]:
        return [f"      - file: {f}" for f in files]

    lines = ["# Generated by dphelpers/book.py (build_book): edit that, not this file.",
             "format: jb-book", "root: intro", "parts:",
             "  - caption: Getting started", "    chapters:", *entries(FRONT_PAGES)]
    if chapters:
        lines += ["  - caption: Chapters", "    chapters:",
                  *entries([f"{CHAPTERS}/{c}" for c in chapters])]
    if results:
        lines += ["  - caption: Results", "    chapters:", *entries([RESULTS_PAGE])]
    lines += ["  - caption: Back matter", "    chapters:", *entries(BACK_PAGES)]
    toc = book_dir / "_toc.yml"
    toc.write_text("\n".join(lines) + "\n")
    return toc


def copy_plotly_js(book_dir: str | os.PathLike = BOOK_DIR) -> Path:
    """Copy the installed plotly package's ``plotly.min.js`` to ``book_dir/_build/plotly_js/``."""
    import plotly

    src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not src.is_file():
        raise FileNotFoundError(f"plotly.min.js not found in the plotly package at {src}")
    dest = Path(book_dir) / "_build" / "plotly_js" / "plotly.min.js"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def _jupyter_book(book_dir: Path, log_path: Path) -> None:
    """``jupyter-book build book_dir --builder html --all``; raises with the log's tail on
    failure."""
    cmd = [sys.executable, "-c",
           "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(book_dir), "--builder", "html", "--all"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-_LOG_TAIL_LINES:])
        raise RuntimeError(f"jupyter-book build of {book_dir} failed (exit {proc.returncode}); "
                           f"full log in {log_path}; last lines:\n{tail}")


def _publish_chapters(executed: Sequence[Path], book_dir: Path, check: bool) -> list[Path]:
    """Copy the executed notebooks to ``book_dir/chapters`` (emptied first: no stale chapter),
    clean each for the reader (:func:`clean_executed`; the executed copies stay as papermill
    wrote them), check them (:func:`check_notebooks`, unless ``check`` is False) and add the
    download links."""
    chapters_dir = book_dir / CHAPTERS
    if chapters_dir.exists():
        shutil.rmtree(chapters_dir)  # generated (gitignored)
    chapters_dir.mkdir(parents=True)
    chapters = [chapters_dir / nb.name for nb in executed]
    for nb, chapter in zip(executed, chapters):
        shutil.copyfile(nb, chapter)
        clean_executed(chapter)     # papermill's parameters cell, stderr, progress bars
    if check:
        check_notebooks(chapters)   # what the reader will see
    repo = repository_url(book_dir)
    for chapter in chapters:
        add_download_links(chapter, repo)
    return chapters


def build_book(out_dir: str | os.PathLike | None = None, quick: bool = False, execute: bool = True,
               kernel: str = "python3", notebooks: Sequence[str | os.PathLike] | None = None,
               book_dir: str | os.PathLike = BOOK_DIR, progress: bool = True,
               check: bool = True, results_file: str | os.PathLike | None = None) -> Path:
    """Execute the notebooks (once), assemble the book and build its HTML; returns the site folder.

    out_dir: where executed notebooks go (default ``book_dir/_build/executed``).
    quick: the notebooks' ``QUICK`` parameter.  execute=False builds from notebooks already
    executed into ``out_dir``.  kernel: the Jupyter kernel name.  notebooks: names
    (``"01_data"``) or paths; None = every ``notebooks/NN_*.ipynb``.  book_dir: the book's
    source (``_config.yml``, pages, ``static_js/``); a copy elsewhere builds there.
    check: fail on reader-level problems (:func:`check_notebooks`; False only to build a
    deliberately broken book in tests).  results_file: the results page's source (None: the
    shipped ``data/results/bench.json``; a missing file leaves the page out).
    Returns ``book_dir/_build/html``.
    """
    book_dir = Path(book_dir).resolve()
    if not (book_dir / "_config.yml").is_file():
        raise FileNotFoundError(f"book_dir {book_dir} has no _config.yml")
    out_dir = Path(out_dir) if out_dir is not None else book_dir / "_build" / "executed"
    sources = _resolve_notebooks(notebooks)
    if execute:
        executed = execute_notebooks(sources, out_dir, quick=quick, kernel=kernel,
                                     progress=progress)
    else:
        executed = [out_dir / nb.name for nb in sources]
        missing = [p.name for p in executed if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"execute=False but executed notebooks missing in {out_dir}: "
                                    f"{', '.join(missing)} (run with execute=True first)")
    _publish_chapters(executed, book_dir, check)
    from ..evaluation import results as _results
    from .resultspage import write_results_page

    src = Path(results_file) if results_file is not None else _results.RESULTS_FILE
    if src.is_file():
        write_results_page(book_dir / f"{RESULTS_PAGE}.md", src)
    elif results_file is not None:
        raise FileNotFoundError(f"results_file {src} does not exist")
    write_toc([nb.stem for nb in executed], book_dir, results=src.is_file())
    copy_plotly_js(book_dir)
    from .tryit import write_tryit_assets  # the Try it page's model and samples (_static/)
    write_tryit_assets(book_dir / "_build" / "tryit_static" / "tryit_model")
    _jupyter_book(book_dir, book_dir / "_build" / "book_build.log")
    html = book_dir / "_build" / "html"
    if not (html / "index.html").is_file():
        raise RuntimeError(f"jupyter-book build finished but {html / 'index.html'} is missing")
    copy_source_notebooks(sources, html)
    return html
