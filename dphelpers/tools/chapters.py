"""Each executed chapter made ready for the reader (:func:`dphelpers.tools.book.build_book`
calls these on the copies in ``book/chapters/``): papermill's injected-parameters cell, stderr
streams and frozen progress bars removed (:func:`clean_executed`); a line of download links
under the title (:func:`add_download_links`): the source notebook without outputs (copied into
the site by :func:`copy_source_notebooks`), the page as executed and, when known, the
repository (:func:`repository_url`).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CHAPTERS", "SOURCE_NOTEBOOKS", "clean_executed", "add_download_links",
           "repository_url", "copy_source_notebooks"]

#: the chapters' folder in the book's source (and in the site's URLs)
CHAPTERS = "chapters"
#: where the unexecuted chapter notebooks are offered for download, relative to the site root
SOURCE_NOTEBOOKS = "_static/notebooks"
#: a frozen progress bar as text: "100%|####| 160/160 [18:24<00:00, 6.72s/it]"
_PROGRESS = re.compile(r"\d+/\d+ \[[\d:]+<[\d:?]+|\d+%\|")
_WIDGET = "application/vnd.jupyter.widget-view+json"


def _write_notebook(path: Path, nb: dict) -> None:
    """Write a notebook's JSON the one way every copy of the book is written (indent 1, UTF-8
    text kept as is, a final newline)."""
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _is_debris(output: dict) -> bool:
    """stderr text, or a progress-bar widget (its view has no state in the static book)."""
    if output.get("output_type") == "stream":
        return output.get("name") == "stderr"
    data = output.get("data", {})
    if _WIDGET in data:
        text = data.get("text/plain", "")
        return bool(_PROGRESS.search("".join(text) if isinstance(text, list) else str(text)))
    return False


def clean_executed(path: str | os.PathLike) -> dict[str, int]:
    """Remove what a reader should not meet from an executed notebook, in place.

    Removes papermill's injected-parameters cell (tag ``injected-parameters``), stderr stream
    outputs and progress-bar widget outputs; returns how many of each were removed."""
    path = Path(path)
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"]
             if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    removed = {"injected cells": len(nb["cells"]) - len(cells), "outputs": 0}
    for c in cells:
        if c.get("cell_type") == "code":
            kept = [o for o in c.get("outputs", []) if not _is_debris(o)]
            removed["outputs"] += len(c.get("outputs", [])) - len(kept)
            c["outputs"] = kept
    nb["cells"] = cells
    _write_notebook(path, nb)
    return removed


def repository_url(book_dir: str | os.PathLike) -> str:
    """The repository's public address: env ``DPHELPERS_REPO_URL``, else ``repository: url``
    of ``book_dir/_config.yml``; ``""`` when neither is set."""
    url = os.environ.get("DPHELPERS_REPO_URL", "").strip()
    if url:
        return url
    config = Path(book_dir) / "_config.yml"
    if config.is_file():
        import yaml
        repo = (yaml.safe_load(config.read_text()) or {}).get("repository") or {}
        return str(repo.get("url") or "").strip()
    return ""


def add_download_links(path: str | os.PathLike, repo_url: str = "") -> None:
    """Put a line of download links under the chapter's title (its first Markdown cell), in
    place: the source notebook (``../_static/notebooks/NAME.ipynb``, no outputs), this page as
    executed (``../_sources/chapters/NAME.ipynb``) and ``repo_url`` when given."""
    path = Path(path)
    nb = json.loads(path.read_text())
    name = path.name
    links = [f'<a href="../{SOURCE_NOTEBOOKS}/{name}" download>the notebook</a> '
             "(no outputs: run it yourself)",
             f'<a href="../_sources/{CHAPTERS}/{name}" download>this page as executed</a>']
    if repo_url:
        links.append(f'<a href="{repo_url}">the repository</a>')
    line = '<p class="dp-downloads">Download: ' + " · ".join(links) + "</p>"
    first = next((c for c in nb["cells"] if c.get("cell_type") == "markdown"), None)
    if first is None:
        raise ValueError(f"{name} has no Markdown cell to put the download links in")
    src = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    head, sep, rest = src.partition("\n")
    first["source"] = head + "\n\n" + line + "\n" + (sep + rest if rest else "")
    _write_notebook(path, nb)


def copy_source_notebooks(sources: Sequence[Path], html_dir: str | os.PathLike) -> Path:
    """Copy the unexecuted chapter notebooks into the built site (:data:`SOURCE_NOTEBOOKS`),
    their outputs cleared (they are committed without outputs; this makes sure)."""
    dest = Path(html_dir) / SOURCE_NOTEBOOKS
    dest.mkdir(parents=True, exist_ok=True)
    for src in sources:
        nb = json.loads(Path(src).read_text())
        for c in nb["cells"]:
            if c.get("cell_type") == "code":
                c["outputs"], c["execution_count"] = [], None
        _write_notebook(dest / Path(src).name, nb)
    return dest
