"""dphelpers.evaluation.tables (HTML tables for notebook outputs) and dphelpers.evaluation.results (the results file)."""
import json
import math

import pytest

from dphelpers.evaluation import results
from dphelpers.evaluation.tables import format_cell, metrics_table, split_row_name, table
from dphelpers.tools.bookcheck import raw_table_lines
from dphelpers.tools.resultspage import results_markdown, write_results_page

SUMMARY = {"n": 600, "P1_min": 79.3879, "P1_median": 168.129, "P2_min": 49.12, "P2_median": 82.5,
           "PCK": 85.6904, "CPS": 201.624, "ECE": 0.047698}


def test_format_cell():
    assert format_cell(None) == "" and format_cell(True) == "True"
    assert format_cell(1234567) == "1,234,567" and format_cell(float("nan")) == "n/a"
    assert format_cell(79.38795) == "79.39" and format_cell(123456.7) == "123,457"


def test_table_from_dicts_and_sequences():
    t = table([{"a": 1, "b": 2.5}, {"a": 3, "c": "x"}])
    assert t.columns == ("a", "b", "c") and t.rows == (("1", "2.5", ""), ("3", "", "x"))
    t = table([["x", 1.0]], columns=["name", "value"], caption="cap <&>")
    html = t._repr_html_()
    assert html.startswith('<table class="dp-table"><caption>cap &lt;&amp;&gt;</caption>')
    assert '<th>name</th><th class="num">value</th>' in html
    assert '<td>x</td><td class="num">1</td>' in html            # numbers align right
    assert not raw_table_lines(html) and not raw_table_lines(str(t))   # never Markdown syntax
    with pytest.raises(ValueError, match="need `columns`"):
        table([[1, 2]])
    with pytest.raises(ValueError, match=r"row 0 has 1 cells, expected 2"):
        table([[1]], columns=["a", "b"])


def test_to_markdown_escapes_pipes():
    md = table([["a|b", 2]], columns=["x", "y"]).to_markdown().splitlines()
    assert md == ["| x | y |", "|---|---|", "| a\\|b | 2 |"]


def test_split_row_name():
    assert split_row_name("full (ambiguous)") == ("full", "ambiguous")
    assert split_row_name("single hypothesis (one sample) (full)") == (
        "single hypothesis (one sample)", "full")
    assert split_row_name("mean pose") == ("mean pose", "")


def test_metrics_table_columns_and_decimals():
    t = metrics_table({"DiffPose (all)": SUMMARY, "mean pose (ambiguous)": {**SUMMARY, "n": 198.0}})
    assert t.columns == ("model", "subset", "n", "P1 min (mm)", "P1 median (mm)", "P2 min (mm)",
                         "PCK@150 (%)", "CPS", "ECE")
    assert t.rows[0] == ("DiffPose", "all", "600", "79.4", "168.1", "49.1", "85.7", "201.6",
                         "0.048")
    assert t.rows[1][:3] == ("mean pose", "ambiguous", "198")
    with pytest.raises(ValueError, match="lacks"):
        metrics_table({"x (all)": {"n": 1}})
    with pytest.raises(ValueError, match="unknown metric"):
        metrics_table({"x (all)": SUMMARY}, keys=("bogus",))


def _results(quick=False, authors=False):
    speed = [{"what": "sample", "batch": b, "per_second": 700.0 + b, "gflops": 180.0,
              "matmul_gflops": 200.0, "fraction": 0.9, "peak_mb": 10.0} for b in (1, 8)]
    if authors:
        speed.append({"what": "sample (authors' implementation)", "batch": 8,
                      "per_second": 101.6, "gflops": 50.0, "matmul_gflops": 200.0,
                      "fraction": 0.25, "peak_mb": 40.0})
    cov = {"n_twins": 100.0, "twin@50": 0.1, "twin@100": 0.4, "gt_same@50": 0.5,
           "gt_same@100": 0.8}
    return {"accuracy": {"full (full)": SUMMARY, "full (ambiguous)": {**SUMMARY, "n": 198},
                         "argmax_only (full)": {**SUMMARY, "P1_min": 70.0, "ECE": 0.04},
                         "mean pose (full)": {**SUMMARY, "P1_min": 255.0}},
            "coverage": {"full": {"full": cov, "ambiguous": cov}},
            "reliability": {"full": {"levels": [0.0, 0.5, 1.0], "freq": [0.1, 0.7, 1.0]},
                            "argmax_only": {"levels": [0.0, 0.5, 1.0], "freq": [0.0, 0.4, 1.0]}},
            "speed": speed, "accuracy_setup": {"n_test": 600, "n_ambiguous": 198, "n_hypo": 200},
            "training": {"steps": 5000, "batch": 64}, "quick": quick}


def test_single_hypothesis_rows_have_no_ece():
    from dphelpers.evaluation.tables import metrics_table
    one = {**SUMMARY, "P1_median": SUMMARY["P1_min"], "ECE": 0.5}
    t = metrics_table({"lifter (full)": one, "full (full)": SUMMARY})
    ece = t.columns.index("ECE")
    assert t.rows[0][ece] == "-" and t.rows[1][ece] != "-"
    res = _results()
    res["accuracy"]["lifter (full)"] = one
    res["reliability"]["lifter"] = {"levels": [0.0, 1.0], "freq": [1.0, 1.0]}
    assert "lifter" not in {r["model"] for r in results.calibration_rows(res)}
    assert len(results.calibration_rows(res)) == 2


def test_model_labels_name_variant_rows_after_their_model():
    assert results.model_label("full") == "DiffPose"
    assert results.model_label("full bf16") == "DiffPose (bf16)"
    assert results.model_label("full 10 DDIM eta=1") == "DiffPose (10 DDIM eta=1)"
    assert results.model_label("argmax_only 5 DDIM") == "argmax only (5 DDIM)"
    assert results.model_label("my_model") == "my model"


def test_results_tables():
    res = _results()
    acc = results.accuracy_table(res)
    assert [r[:2] for r in acc.rows] == [("DiffPose", "all"), ("DiffPose", "ambiguous"),
                                         ("argmax only", "all"), ("mean pose", "all")]
    cov = results.coverage_table(res)
    assert cov.rows[0] == ("DiffPose", "all", "100", "10.0", "40.0", "50.0", "80.0")
    cal = results.calibration_rows(res)
    assert cal[0]["mean signed gap"] == pytest.approx((0.1 + 0.2 + 0.0) / 3)
    assert cal[0]["reading"] == "overconfident" and cal[1]["reading"] == "underconfident"
    assert cal[1]["ECE (all)"] == 0.04 and cal[1]["ECE (ambiguous)"] is None
    assert results.authors_speedup(res) == []
    sp = results.authors_speedup(_results(authors=True))
    assert len(sp) == 1 and sp[0]["batch"] == 8 and sp[0]["speedup"] == pytest.approx(708 / 101.6)
    assert results.settings_note(res).startswith("full settings: 600 held-out test samples")
    assert results.settings_note(_results(quick=True)).startswith("QUICK settings")


def test_results_page_is_generated_from_the_file(tmp_path):
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(_results(authors=True)))
    page = write_results_page(tmp_path / "out" / "results.md", src).read_text()
    assert page.startswith("# Results") and "**Settings:** full settings" in page
    for title in ("Accuracy of every model", "Twin coverage", "Calibration", "Speed",
                  "Speed against the authors' implementation"):
        assert f"## {title}" in page
    assert "| DiffPose | all | 600 | 79.4 |" in page               # numbers from the file
    # the paragraph reads them, and says the gap as the table rounds it
    assert "70.0 mm, 9.4 mm lower than the full model's on these 600 samples" in page
    assert f"{708 / 101.6:.1f}x" in page
    quick = results_markdown(_results(quick=True))
    assert "These are QUICK numbers" in quick
    assert "no timing of the authors' implementation" in quick


def test_shipped_results_file_has_the_headline_keys():
    res = results.load_results()
    assert {"full (full)", "full (ambiguous)"} <= set(res["accuracy"])
    assert all(math.isfinite(v["P1_min"]) for v in res["accuracy"].values())


def test_load_results_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m dphelpers bench"):
        results.load_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="'accuracy'"):
        results.load_results(bad)


def test_results_page_shows_the_authors_reference_when_bench_has_no_authors_rows(tmp_path):
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(_results(authors=False)))
    ref = {"source": "measured side by side", "rows": [
        {"what": "sampling, float32", "batch": 8, "unit": "hypotheses/s", "authors": 270,
         "ours": 624, "ratio_range": [1.9, 2.3]}]}
    (tmp_path / "authors_speed.json").write_text(json.dumps(ref))
    page = write_results_page(tmp_path / "results.md", src).read_text()
    assert "| sampling, float32 | 8 | 270 hypotheses/s | 624 hypotheses/s | 1.90x to 2.30x |" \
        in page and "measured side by side" in page
    (tmp_path / "authors_speed.json").unlink()
    page = write_results_page(tmp_path / "results.md", src).read_text()
    assert "no timing of the authors' implementation" in page


def test_the_shipped_authors_reference_is_readable():
    ref = json.loads((results.RESULTS_FILE.parent / "authors_speed.json").read_text())
    assert ref["source"] and all(r["ratio_range"][0] <= r["ratio_range"][1] for r in ref["rows"])
