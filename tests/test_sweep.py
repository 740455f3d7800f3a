"""Papermill sweeps over a parameter grid on a local Dask cluster."""
import argparse
import json

import nbformat
import pytest

from dphelpers.sweep import (add_sweep_parser, expand_grid, parse_grid, parse_value, results_table,
                             run_notebook, run_sweep_cli, sweep_figure)

PARAMS = "QUICK = False\nX = 1\nRESULTS_JSON = None\n"
BODY = ("import json\n"
        "if X == 3:\n"
        "    raise ValueError('X must not be 3')\n"
        "if RESULTS_JSON:\n"
        "    open(RESULTS_JSON, 'w').write(json.dumps({'score': X * 2}))\n")


@pytest.fixture(scope="module")
def tiny_notebook(tmp_path_factory):
    """A notebook with a parameters cell (QUICK, X, RESULTS_JSON) writing {"score": 2 X}; raises for X == 3."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(PARAMS)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path_factory.mktemp("nb") / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_expand_grid_order():
    assert expand_grid({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert expand_grid({}) == [{}]
    assert len(expand_grid({"a": [1, 2, 3], "b": [0], "c": [True, False]})) == 6


def test_expand_grid_errors():
    with pytest.raises(ValueError, match=r"grid\['a'\] must be a non-empty list"):
        expand_grid({"a": []})
    with pytest.raises(ValueError, match="not a valid notebook parameter name"):
        expand_grid({"not valid": [1]})


def test_parse_grid_values():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("True") is True
    assert parse_value("false") is False and parse_value("none") is None and parse_value("cpu") == "cpu"
    assert parse_grid(["N=1,10", "QUICK=true", "DEVICE=cpu"]) == {
        "N": [1, 10], "QUICK": [True], "DEVICE": ["cpu"]}
    with pytest.raises(ValueError, match="expected KEY=V1,V2"):
        parse_grid(["N"])


def test_run_notebook_ok_and_failure(tmp_path, tiny_notebook):
    ok = run_notebook(tiny_notebook, {"QUICK": True, "X": 5}, tmp_path)
    assert ok["ok"] and ok["metrics"] == {"score": 10} and ok["error"] is None
    assert ok["params"] == {"QUICK": True, "X": 5}
    bad = run_notebook(tiny_notebook, {"X": 3}, tmp_path)
    assert not bad["ok"] and bad["metrics"] is None
    assert "tiny.ipynb" in bad["error"] and "X must not be 3" in bad["error"] and "cell" in bad["error"]
    with pytest.raises(FileNotFoundError, match="notebook not found"):
        run_notebook(tmp_path / "missing.ipynb", {}, tmp_path)


def test_sweep_cli_on_local_dask_cluster(tmp_path, tiny_notebook, capsys):
    """X in [1, 2, 3] on 2 Dask worker processes: runs 1, 2 ok, run 3 fails; grid order kept."""
    parser = argparse.ArgumentParser()
    add_sweep_parser(parser.add_subparsers(dest="verb"))
    out = tmp_path / "sweep"
    args = parser.parse_args(["sweep", str(tiny_notebook), "--grid", "X=1,2,3", "--grid", "QUICK=true",
                              "--out", str(out), "--workers", "2", "--quiet"])
    assert run_sweep_cli(args) == 1
    saved = json.loads((out / "sweep.json").read_text())
    results = saved["results"]
    assert [r["params"] for r in results] == [{"X": 1, "QUICK": True}, {"X": 2, "QUICK": True},
                                              {"X": 3, "QUICK": True}]
    assert [r["ok"] for r in results] == [True, True, False]
    assert [r["metrics"] for r in results[:2]] == [{"score": 2}, {"score": 4}]
    assert "tiny.ipynb" in results[2]["error"] and "X must not be 3" in results[2]["error"]
    html = (out / "sweep.html").read_text()
    assert "plotly" in html and len(html) > 1_000_000      # standalone: plotly.js inside
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "score" in printed

    table = results_table(results).splitlines()
    assert len(table) == 2 + 3 and table[0].split() == ["X", "QUICK", "score", "status", "seconds"]
    fig = sweep_figure(results, "X", "score")
    assert list(fig.data[0].x) == [1, 2] and list(fig.data[0].y) == [2, 4]
    with pytest.raises(KeyError, match="metric 'P1'"):
        sweep_figure(results, "X", "P1")
