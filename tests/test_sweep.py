"""Papermill sweeps over a parameter grid on a local Dask cluster."""
import argparse
import json
from pathlib import Path

import nbformat
import pytest

from dphelpers.tools import sweep as sweep_mod
from dphelpers.tools.grid import expand_grid, parse_grid, parse_value
from dphelpers.tools.sweep import (add_sweep_parser, default_metric, results_table, run_notebook,
                                   run_sweep_cli, sweep, sweep_figure)

REPO = Path(__file__).resolve().parents[1]

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

    table = str(results_table(results)).splitlines()
    assert len(table) == 2 + 3 and table[0].split() == ["X", "QUICK", "score", "status", "seconds"]
    assert table[-1].split()[:2] == ["3", "True"] and "FAILED: notebook tiny.ipynb" in table[-1]
    assert "\n".join(table) in printed                       # the table is printed at the end
    assert printed.rstrip().splitlines()[-1].startswith("sweep: 3 run(s) of tiny.ipynb, 1 failed")
    fig = sweep_figure(results, "X", "score")
    assert list(fig.data[0].x) == [1, 2] and list(fig.data[0].y) == [2, 4]
    with pytest.raises(ValueError, match="metric 'P1'"):
        sweep_figure(results, "X", "P1")


def _fake(n_hypo, p1, ok=True):
    return {"params": {"N_HYPO": n_hypo, "QUICK": True}, "ok": ok, "error": None if ok else "boom",
            "metrics": {"full_n": 16, "full_P1_min": p1, "full_P2_min": p1 / 2, "N_HYPO": n_hypo}
            if ok else None, "output": None, "seconds": 1.5}


def test_default_metric_is_p1_min_and_the_table_shows_what_varies():
    results = [_fake(1, 90.0), _fake(10, 70.0), _fake(50, None, ok=False)]
    assert default_metric(results) == "full_P1_min"
    assert default_metric([{"params": {}, "ok": True, "metrics": {"a": 1, "b": 2}},
                           {"params": {}, "ok": True, "metrics": {"a": 1, "b": 3}}]) == "b"
    assert default_metric([_fake(1, None, ok=False)]) is None
    wrong = _fake(10, 70.0)
    wrong["metrics"]["N_HYPO"] = 20                        # the notebook ignored the parameter
    tab = results_table([_fake(1, 90.0), wrong])
    assert "reported N_HYPO" in tab.columns and tab.rows[1][tab.columns.index("reported N_HYPO")] == "20"
    tab = results_table(results, first="full_P2_min")
    # a metric named like a parameter shows only where a run reports another value than given
    assert tab.columns == ("N_HYPO", "QUICK", "full_P2_min", "full_P1_min", "status", "seconds")
    assert tab.caption == "same in every run: full_n=16"
    assert [r[-2] for r in tab.rows] == ["ok", "ok", "FAILED: boom"]
    assert results_table(results, first="full_P1_min", show=["full_P2_min"]).columns == (
        "N_HYPO", "QUICK", "full_P1_min", "full_P2_min", "status", "seconds")
    with pytest.raises(ValueError, match=r"--show \['P9'\]"):
        results_table(results, show=["P9"])


def test_sweep_cli_plots_p1_min_by_default_and_checks_y(tmp_path, monkeypatch, capsys):
    results = [_fake(1, 90.0), _fake(10, 70.0)]
    monkeypatch.setattr(sweep_mod, "sweep", lambda *a, **k: results)
    parser = argparse.ArgumentParser()
    add_sweep_parser(parser.add_subparsers(dest="verb"))
    argv = ["sweep", "notebooks/05_evaluation.ipynb", "--grid", "N_HYPO=1,10", "--grid",
            "QUICK=true", "--out", str(tmp_path), "--quiet"]
    assert run_sweep_cli(parser.parse_args(argv)) == 0
    printed = capsys.readouterr().out
    assert "plotted full_P1_min against N_HYPO" in printed
    header = next(ln for ln in printed.splitlines() if ln.startswith("N_HYPO"))
    assert header.split()[:3] == ["N_HYPO", "QUICK", "full_P1_min"]
    html = (tmp_path / "sweep.html").read_text()
    assert "full_P1_min vs N_HYPO" in html
    with pytest.raises(ValueError, match="--y 'P3' is not a metric.*full_P1_min"):
        run_sweep_cli(parser.parse_args(argv + ["--y", "P3"]))


def test_sweep_over_n_hypo_gives_different_rows(tmp_path):
    """The README's sweep (``sweep notebooks/05_evaluation.ipynb --grid N_HYPO=1,10 --grid
    QUICK=true``): the injected N_HYPO must win over the notebook's QUICK sizes, so the two
    runs differ in P1 min and each reports the N_HYPO it was given."""
    results = sweep(REPO / "notebooks" / "05_evaluation.ipynb", {"N_HYPO": [1, 10],
                    "QUICK": [True]}, tmp_path, n_workers=2, progress=False)
    assert all(r["ok"] for r in results), [r["error"] for r in results]
    p1 = [r["metrics"]["full_P1_min"] for r in results]
    assert p1[0] != p1[1], p1
    for r in results:
        reported = r["metrics"].get("N_HYPO", r["metrics"].get("n_hypo"))
        assert reported == r["params"]["N_HYPO"], r["metrics"]
