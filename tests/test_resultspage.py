"""The generated results page: cites by key, no tracker references, no unmeasured columns,
and room for more sections."""
import json

from dphelpers.evaluation.tables import table
from dphelpers.tools.resultspage import (results_markdown, section_markdown, speed_table,
                                         write_results_page)

SUMMARY = {"n": 600, "P1_min": 79.4, "P1_median": 150.0, "P2_min": 55.0, "P2_median": 90.0,
           "PCK": 85.0, "CPS": 200.0, "ECE": 0.05}


def _res(peak_mb):
    speed = [{"what": "sample", "batch": b, "per_second": 700.0, "gflops": 180.0,
              "matmul_gflops": 200.0, "fraction": 0.9, "peak_mb": peak_mb} for b in (1, 8)]
    return {"accuracy": {"full (full)": SUMMARY, "lifter (full)": {**SUMMARY, "P1_median": 79.4}},
            "speed": speed, "accuracy_setup": {"n_test": 600, "n_ambiguous": 198, "n_hypo": 200}}


def test_peak_memory_column_only_when_measured():
    assert "peak memory (MB)" not in speed_table(_res(0.02)).columns
    assert "peak memory (MB)" in speed_table(_res(120.0)).columns
    page = results_markdown(_res(0.0))
    assert "## Speed" in page and "peak memory" not in page


def test_cites_by_key_and_no_tracker_references(tmp_path):
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(_res(0.0)))
    (tmp_path / "authors_speed.json").write_text(json.dumps({
        "source": "Measured side by side by the team (issue 13, 'Faster still'): ours.",
        "rows": [{"what": "sampling, float32", "batch": 8, "unit": "hypotheses/s",
                  "authors": 270, "ours": 624, "ratio_range": [1.9, 2.3]}]}))
    page = write_results_page(tmp_path / "results.md", src).read_text()
    assert "issue 13" not in page and "Measured side by side by the team: ours." in page
    assert "{cite:p}`martinez2017simple`" in page
    assert "REFERENCE" not in page


def test_extra_sections_go_before_the_commands():
    extra = section_markdown("Held-out source", table([[1, 2]], columns=["a", "b"]),
                             "A paragraph.")
    res = {**_res(0.0), "commands": ["python -m dphelpers bench"]}
    page = results_markdown(res, extra_sections=[extra])
    assert page.index("## Held-out source") < page.index("## How these numbers were made")
    assert "| a | b |" in page and "A paragraph." in page


def test_unmeasured_peak_rows_say_so():
    res = _res(0.0)
    res["speed"][1]["peak_mb"] = 75.0
    t = speed_table(res)
    col = t.columns.index("peak memory (MB)")
    assert [r[col] for r in t.rows] == ["not measured", "75"]
    assert "rows below 1 MB say *not measured*" in results_markdown(res)


def test_the_shipped_page_shows_the_unseen_motion_test(tmp_path):
    from dphelpers.evaluation.results import RESULTS_FILE
    from dphelpers.evaluation.unseen import heldout_gaps
    held = json.loads(RESULTS_FILE.with_name("heldout.json").read_text())
    page = write_results_page(tmp_path / "results.md").read_text()
    assert "## Motion the model never saw" in page
    section = page.split("## Motion the model never saw")[1].split("\n## ")[0]
    for label, gap in heldout_gaps(held).items():       # every model's gap, as the file says
        assert f"{gap:+.0f}% for {label}" in section
        assert f"| {label} |" in section
    assert page.index("## Motion the model never saw") < page.index("## Speed")
