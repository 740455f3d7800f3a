"""The book's chapter copies are cleaned for the reader and offer their downloads
(dphelpers/tools/chapters.py: clean_executed, add_download_links, copy_source_notebooks)."""
from __future__ import annotations

import json

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dphelpers.tools.chapters import (SOURCE_NOTEBOOKS, add_download_links, clean_executed,
                                      copy_source_notebooks, repository_url)


def _executed(tmp_path):
    injected = new_code_cell("# Parameters\nQUICK = False\n")
    injected.metadata["tags"] = ["injected-parameters"]
    params = new_code_cell("QUICK = False")
    params.metadata["tags"] = ["parameters"]
    work = new_code_cell("work()", outputs=[
        new_output("stream", name="stdout", text="result 1.5 mm\n"),
        new_output("stream", name="stderr", text="INFO: Created TensorFlow Lite delegate\n"),
        new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc"},
            "text/plain": "100%|##########| 160/160 [18:24<00:00, 6.72s/it]"}),
        new_output("display_data", data={"text/html": "<table></table>", "text/plain": "t"}),
    ])
    nb = new_notebook(cells=[new_markdown_cell("# 1. A chapter\n\nSome text."), params, injected,
                             work])
    path = tmp_path / "01_chapter.ipynb"
    nbformat.write(nb, path)
    return path


def test_clean_executed_removes_debris_and_keeps_results(tmp_path):
    path = _executed(tmp_path)
    removed = clean_executed(path)
    assert removed == {"injected cells": 1, "outputs": 2}
    nb = nbformat.read(path, as_version=4)
    assert [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"] == [
        ["parameters"], []]
    outputs = nb.cells[-1].outputs
    assert [o.output_type for o in outputs] == ["stream", "display_data"]
    assert outputs[0].text == "result 1.5 mm\n" and "text/html" in outputs[1].data
    assert clean_executed(path) == {"injected cells": 0, "outputs": 0}   # idempotent


def test_download_links_under_the_title(tmp_path):
    path = _executed(tmp_path)
    add_download_links(path, "https://example.org/diffpose")
    first = nbformat.read(path, as_version=4).cells[0].source
    title, rest = first.split("\n", 1)
    assert title == "# 1. A chapter"
    assert f'href="../{SOURCE_NOTEBOOKS}/01_chapter.ipynb"' in rest
    assert 'href="../_sources/chapters/01_chapter.ipynb"' in rest
    assert 'href="https://example.org/diffpose"' in rest and rest.endswith("Some text.")
    path2 = _executed(tmp_path)
    add_download_links(path2)
    assert "repository" not in nbformat.read(path2, as_version=4).cells[0].source


def test_source_notebooks_are_copied_without_outputs(tmp_path):
    src = _executed(tmp_path)
    dest = copy_source_notebooks([src], tmp_path / "html")
    nb = json.loads((dest / src.name).read_text())
    assert all(c.get("outputs", []) == [] for c in nb["cells"] if c["cell_type"] == "code")
    assert dest == tmp_path / "html" / SOURCE_NOTEBOOKS


def test_repository_url_from_env_or_config(tmp_path, monkeypatch):
    monkeypatch.delenv("DPHELPERS_REPO_URL", raising=False)
    (tmp_path / "_config.yml").write_text('repository:\n  url: ""\n')
    assert repository_url(tmp_path) == ""
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://example.org/r\n")
    assert repository_url(tmp_path) == "https://example.org/r"
    monkeypatch.setenv("DPHELPERS_REPO_URL", "https://example.org/env")
    assert repository_url(tmp_path) == "https://example.org/env"
