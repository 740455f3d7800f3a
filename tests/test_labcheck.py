"""The live explorer in a real JupyterLab, driven by headless Chromium: it displays, and every
control redraws the figure (this is also the regression test of the papermill/nbclient hang:
the explorer's outputs are set directly, not captured)."""
import json
from pathlib import Path

import nbformat
import pytest

from dphelpers.tools import cli, labcheck


def test_explorer_notebook_has_the_two_cells(tmp_path):
    nb = nbformat.read(labcheck.explorer_notebook(tmp_path / "e.ipynb", None, 8, 5), 4)
    assert [c.cell_type for c in nb.cells] == ["code", "code"]
    assert "make_test_set(test_m, 8)" in nb.cells[0].source
    assert "n_hypo=5" in nb.cells[1].source and "display(explorer)" in nb.cells[1].source


def test_explorer_works_in_jupyterlab(tmp_path):
    if not Path(labcheck.CHROMIUM).is_file():
        pytest.skip(f"{labcheck.CHROMIUM} is missing: Debian's chromium is not installed "
                    "(`bash .ci/install` as root installs it)")
    pytest.importorskip("playwright", reason="playwright drives the browser")
    assert cli.main(["labcheck", "--n-test", "6", "--n-hypo", "6", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    acts = report["actions"]
    assert [a["action"] for a in acts][:3] == ["first display (run all)", "step set to 5",
                                               "resample"]
    assert all(a["plots_in_widget"] == 2 for a in acts)          # 3D cloud + heatmaps
    assert "after 25 of 25" in acts[0]["title"] and "after 5 of 25" in acts[1]["title"]
    assert acts[3]["title"].startswith(acts[3]["action"])         # the sample switched
    assert report["page_errors"] == []
    assert all((tmp_path / a["screenshot"]).stat().st_size > 10_000 for a in acts)
