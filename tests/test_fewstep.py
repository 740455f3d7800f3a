import json
import math

import pytest
import torch

from dphelpers.diffusion import DiffPose
from dphelpers.evaluation.fewstep import (DEFAULT_SETTINGS, default_candidates, few_step_figure,
                                          few_step_rows, hypotheses_per_second, rows_table,
                                          setting_kwargs, setting_name)
from dphelpers.pipeline import make_test_set
from dphelpers.tools.cli import main as cli_main


def test_settings_names_and_kwargs():
    assert setting_name(25, None) == "25 ancestral" and setting_kwargs(25, None) == {}
    assert setting_name(10, 0.0) == "10 DDIM eta=0"
    assert setting_kwargs(5, 1.0) == {"steps": 5, "eta": 1.0}
    assert DEFAULT_SETTINGS[0] == (25, None) and len(DEFAULT_SETTINGS) == 5


def test_few_step_rows_small(splits):
    test = make_test_set(splits[1], 3, seed=0)
    torch.manual_seed(0)
    model = DiffPose().eval()
    rows = few_step_rows(model, test, n_hypo=3, batch_size=2, progress=False, repeats=1)
    assert [r["sampler"] for r in rows] == [setting_name(*s) for s in DEFAULT_SETTINGS]
    ref = rows[0]
    assert ref["speedup"] == 1.0 and ref["dP1_min"] == 0.0 and ref["dP1_median"] == 0.0
    for r in rows:
        assert r["P1_min"] <= r["P1_median"] and r["P2_min"] <= r["P1_min"] + 1e-3
        assert 0.0 <= r["twin@100"] <= 1.0 and 0.0 <= r["ECE"] <= 1.0
        assert r["hyp_per_s"] > 0 and math.isfinite(r["speedup"])
        assert r["dP1_min"] == pytest.approx(r["P1_min"] - ref["P1_min"])
    assert "25 ancestral" in str(rows_table(rows))
    fig = few_step_figure(rows)
    assert [t.name for t in fig.data] == ["P1 min", "P1 median"]
    speeds = list(fig.data[0].x)
    assert len(speeds) == 5 and speeds == sorted(speeds)
    with pytest.raises(ValueError, match="must include the reference"):
        few_step_rows(model, test, settings=((5, 0.0),), n_hypo=2, progress=False)
    with pytest.raises(ValueError, match="ancestral sampler, which runs all 25"):
        few_step_rows(model, test, settings=((25, None), (10, None)), n_hypo=2, progress=False)
    with pytest.raises(ValueError, match="repeats"):
        hypotheses_per_second(model, test.heatmaps[:1], 2, [(5, 0.0)], repeats=0)


def test_default_candidates():
    base = {"sampler": "25 ancestral", "eta": None, "dP1_min": 0.0, "dP1_median": 0.0}
    rows = [base,
            {"sampler": "10 DDIM eta=1", "eta": 1.0, "dP1_min": 0.6, "dP1_median": -0.9},
            {"sampler": "5 DDIM eta=1", "eta": 1.0, "dP1_min": 0.2, "dP1_median": 1.0},
            {"sampler": "5 DDIM eta=0", "eta": 0.0, "dP1_min": -1.5, "dP1_median": 0.1}]
    assert default_candidates(rows) == ["10 DDIM eta=1"]
    assert default_candidates(rows, tol_mm=2.0) == ["10 DDIM eta=1", "5 DDIM eta=1",
                                                     "5 DDIM eta=0"]


def test_main_writes_json(tmp_path, capsys):
    out = tmp_path / "fewstep.json"
    assert cli_main(["fewstep", "--n-test", "2", "--n-hypo", "2", "--batch-size", "2", "--repeats", "1",
                 "--quiet", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["setup"]["n_test"] == 2 and len(data["rows"]) == 5
    assert data["rows"][0]["sampler"] == "25 ancestral"
    assert "default candidates" in capsys.readouterr().out
