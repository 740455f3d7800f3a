"""The model study on tiny untrained models: paired test sets, subsets, curve, JSON, errors."""
import json

import pytest
import torch
from test_bench import _tiny

from dphelpers.evaluation import testsets
from dphelpers.lifter import Lifter
from dphelpers.models.checkpoint import save_model
from dphelpers.tools import cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("study_models")
    torch.manual_seed(0)
    return {"full": save_model(d / "a.pt", _tiny(), step=3),
            "full_later": save_model(d / "a_later.pt", _tiny(), step=7),
            "lifter": save_model(d / "l.pt", Lifter().eval(), step=2)}


def test_test_sets_share_poses_cameras_and_failures(splits):
    sets = testsets.build_test_sets(splits[1], 24, keep_modes=(0.0, 1.0))
    a, b = sets["keep=0"], sets["keep=1"]
    assert torch.equal(a.poses_3d_mm, b.poses_3d_mm) and torch.equal(a.failed_joints,
                                                                     b.failed_joints)
    assert not a.kept_true_mode.any()
    failed = a.inverted_joints | a.jittered_joints | a.missed_joints
    assert failed.any() and torch.equal(b.kept_true_mode, failed)   # every failure keeps one
    assert not torch.equal(a.heatmaps, b.heatmaps)
    d = testsets.describe(a)
    assert d["n"] == 24 and 0 <= d["n_failed_limb"] <= 24 and d["failed_joint_pct"] > 0
    with pytest.raises(ValueError, match="at least one"):
        testsets.build_test_sets(splits[1], 4, keep_modes=())


def test_study_writes_every_set_subset_and_the_curve(files, tmp_path, capsys):
    out = tmp_path / "s.json"
    assert cli.main(["study", "--models", f"full={files['full']}", f"lifter={files['lifter']}",
                       "--n-test", "12", "--n-hypo", "3", "--keep-modes", "0,1",
                       "--curve", str(files["full_later"]), str(files["full"]),
                       "--curve-n-test", "5", "--quiet", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["accuracy"]) == {"keep=0", "keep=1"}
    rows = res["accuracy"]["keep=0"]
    models = {k.rsplit(" (", 1)[0] for k in rows}
    assert models == {"full (a.pt)", "lifter (l.pt)", "mean pose"}
    n_failed = res["test_sets"]["keep=0"]["n_failed_limb"]
    if n_failed:
        assert rows["full (a.pt) (failed limb)"]["n"] == n_failed
    assert rows["full (a.pt) (full)"]["n"] == 12
    curve = res["learning_curve"]
    assert curve["n_test"] == 5 and [p["steps"] for p in curve["points"]] == [3, 7]
    assert all(p["P1_min"] <= p["P1_median"] for p in curve["points"])
    assert f"wrote {out}" in capsys.readouterr().out.splitlines()[-1]


def test_bad_arguments_say_what_is_wrong(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["study", "--keep-modes", "0,2", "--out", str(tmp_path / "x.json")])
    assert "shares must lie in [0, 1]" in capsys.readouterr().err
    assert cli.main(["study", "--curve", str(tmp_path / "none.pt"), "--out",
                       str(tmp_path / "x.json")]) == 2
    assert "--curve file(s) not found" in capsys.readouterr().err


def test_merge_keeps_earlier_rows_and_curve_points(files, tmp_path):
    out = tmp_path / "m.json"
    base = ["--n-test", "6", "--n-hypo", "2", "--keep-modes", "0.5", "--quiet", "--out", str(out)]
    assert cli.main(["study", "--models", f"full={files['full']}", "--curve", str(files["full"])]
                      + base) == 0
    assert cli.main(["study", "--models", f"lifter={files['lifter']}", "--curve",
                       str(files["full_later"]), "--merge"] + base) == 0
    res = json.loads(out.read_text())
    rows = res["accuracy"]["keep=0.5"]
    assert "full (a.pt) (full)" in rows and "lifter (l.pt) (full)" in rows
    assert [p["steps"] for p in res["learning_curve"]["points"]] == [3, 7]
    assert len(res["commands"]) == 2
    # a later run on fewer test sets adds its rows and keeps every set the file holds
    assert cli.main(["study", "--models", f"full={files['full_later']}", "--merge", *base[:5], "0,0.5",
                       *base[6:]]) == 0
    assert cli.main(["study", "--models", f"lifter={files['lifter']}", "--merge", *base]) == 0
    res = json.loads(out.read_text())
    assert res["setup"]["keep_modes"] == [0.0, 0.5] and set(res["accuracy"]) == {"keep=0",
                                                                                   "keep=0.5"}
    assert "full (a_later.pt) (full)" in res["accuracy"]["keep=0"]
    assert cli.main(["study", "--models", f"lifter={files['lifter']}", "--merge",
                       *base[:2], "--n-hypo", "3", *base[4:]]) == 2     # one 'error:' line


def test_a_curve_file_among_the_models_is_not_sampled_twice(files, tmp_path, monkeypatch):
    from dphelpers.evaluation import evaluate as ev_mod
    calls = []
    real = ev_mod.evaluate

    def counting(model, test, *a, **k):
        calls.append(len(test))
        return real(model, test, *a, **k)

    monkeypatch.setattr(ev_mod, "evaluate", counting)
    out = tmp_path / "r.json"
    assert cli.main(["study", "--models", f"full={files['full']}", "--curve", str(files["full"]),
                       "--n-test", "5", "--curve-n-test", "5", "--n-hypo", "2",
                       "--keep-modes", "0.5", "--quiet", "--out", str(out)]) == 0
    assert calls == [5]                                   # once, for the table and the curve
    res = json.loads(out.read_text())
    point = res["learning_curve"]["points"][0]
    assert point["P1_min"] == res["accuracy"]["keep=0.5"]["full (a.pt) (full)"]["P1_min"]


@pytest.fixture(scope="module")
def study_file(files, tmp_path_factory):
    """A real study file: two budgets of one model, the lifter, two kept-mode sets, a curve."""
    out = tmp_path_factory.mktemp("study_out") / "s.json"
    assert cli.main(["study", "--models", f"full={files['full']}", f"full={files['full_later']}",
                       f"lifter={files['lifter']}", "--n-test", "10", "--n-hypo", "3",
                       "--keep-modes", "0,0.5", "--curve", str(files["full"]),
                       str(files["full_later"]), "--curve-n-test", "10", "--quiet",
                       "--out", str(out)]) == 0
    return out


def test_study_tables_name_models_by_budget_and_show_every_kept_mode(study_file):
    from dphelpers.evaluation import results as R
    s = R.load_study(study_file)
    labels = R.study_labels(s)
    assert labels["full (a.pt)"] == "DiffPose, 3 steps"
    assert labels["full (a_later.pt)"] == "DiffPose, 7 steps"
    assert labels["lifter (l.pt)"] == "lifter"
    # the shipped file of a model keeps its plain name beside an earlier budget of it
    moved = {**s, "setup": {**s["setup"], "models": [
        {**m, "file": "/x/data/checkpoints/diffpose_full.pt"} if m["label"] == "full (a_later.pt)"
        else m for m in s["setup"]["models"]]}}
    assert R.study_labels(moved)["full (a_later.pt)"] == "DiffPose"
    assert R.study_labels(moved)["full (a.pt)"] == "DiffPose, 3 steps"
    # a model merged in later on one set only: its rows come before the baseline's, and the
    # kept-mode table (one column per set) leaves it out instead of showing empty cells
    late = {**s, "setup": {**s["setup"], "models": s["setup"]["models"] + [
        {"label": "full (b.pt)", "name": "full", "file": "b.pt", "trained_steps": 9}]},
        "accuracy": {**s["accuracy"], "keep=0": {**s["accuracy"]["keep=0"], **{
            f"full (b.pt) ({sub})": s["accuracy"]["keep=0"][f"full (a.pt) ({sub})"]
            for sub in ("full", "ambiguous", "failed limb")}}}}
    assert R.study_table(late, "keep=0").rows[-1][0] == "mean pose"
    assert "DiffPose, 9 steps" not in {r[0] for r in R.keep_mode_table(late, "all").rows}
    t = R.study_table(s, "keep=0")
    assert t.columns[:2] == ("model", "subset") and "P1 min (mm)" in t.columns
    raw = json.loads(study_file.read_text())["accuracy"]["keep=0"]
    row = next(r for r in t.rows if r[0] == "DiffPose, 7 steps" and r[1] == "all")
    assert row[t.columns.index("P1 min (mm)")] == f"{raw['full (a_later.pt) (full)']['P1_min']:.1f}"
    k = R.keep_mode_table(s, subset="all")
    assert k.columns == ("model", "0% kept", "50% kept")
    assert {r[0] for r in k.rows} == {"DiffPose, 3 steps", "DiffPose, 7 steps", "lifter",
                                      "mean pose"}
    lifter = next(r for r in R.keep_mode_rows(s, subset="all") if r["model"] == "lifter")
    assert lifter["keep=0"] == pytest.approx(raw["lifter (l.pt) (full)"]["P1_min"])
    c = R.curve_table(s)
    assert [r[1] for r in c.rows] == ["3", "7"]
    fig = R.curve_figure(s)
    assert len(fig.data) == 2 and list(fig.data[0].x) == [3, 7]


def test_study_readers_refuse_what_is_not_a_study(tmp_path):
    from dphelpers.evaluation import results as R
    with pytest.raises(FileNotFoundError, match="does not exist"):
        R.load_study(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"accuracy": {"full (full)": {"P1_min": 1.0}}}))
    with pytest.raises(ValueError, match="expected an 'accuracy' object of test sets"):
        R.load_study(bad)
    bad.write_text(json.dumps({"accuracy": {"keep=0": {}}}))
    with pytest.raises(KeyError, match="no test set 'keep=0.5'"):
        R.study_table(R.load_study(bad))
    with pytest.raises(ValueError, match="no learning-curve points"):
        R.curve_figure(R.load_study(bad))


def test_results_page_shows_the_study_and_reads_its_numbers(study_file):
    from dphelpers.evaluation import results as R
    from dphelpers.tools.resultspage import results_markdown
    s = R.load_study(study_file)
    s["setup"]["models"][1]["name"] = "argmax_only"      # pretend: two different models
    bench = {"accuracy": {"full (full)": {"n": 10, "P1_min": 1.0, "P1_median": 2.0,
                                          "P2_min": 1.0, "PCK": 50.0, "CPS": 9.0,
                                          "ECE": 0.1}}}
    page = results_markdown(bench, study=s, curve=s)
    assert "## The model study: when does sampling the heatmaps pay?" in page
    assert "## Training longer" in page and "| DiffPose | 7 |" in page
    rows = {r["model"]: r for r in R.keep_mode_rows(s, "failed limb")}
    if "DiffPose" in rows and "argmax only" in rows:       # a set with failed-limb samples
        gap = rows["argmax only"]["keep=0"] - rows["DiffPose"]["keep=0"]
        assert f"{gap:+.1f} mm where 0% of the failures keep a mode" in page
    assert "DiffPose" in page and "50% kept" in page
    assert "## The model study" not in results_markdown(bench)


def test_a_result_names_its_model_files_from_the_project_not_the_machine(files, tmp_path,
                                                                          monkeypatch):
    from dphelpers.models import modelfiles
    root = files["full"].parent.parent        # stands in for the project's folder
    monkeypatch.setattr(modelfiles, "PROJECT_ROOT", root)
    out = tmp_path / "r.json"
    assert cli.main(["study", "--models", f"full={files['full']}", "--n-test", "4",
                     "--n-hypo", "2", "--keep-modes", "0.5", "--quiet", "--out", str(out)]) == 0
    recorded = [m["file"] for m in json.loads(out.read_text())["setup"]["models"]]
    assert recorded == [f"{files['full'].parent.name}/a.pt"]


def test_no_committed_result_records_a_machine_path():
    from pathlib import Path

    def strings(x):
        if isinstance(x, dict):
            for v in x.values():
                yield from strings(v)
        elif isinstance(x, list):
            for v in x:
                yield from strings(v)
        elif isinstance(x, str):
            yield x

    results = Path(__file__).resolve().parents[1] / "data" / "results"
    files = sorted(results.glob("*.json"))
    assert files
    absolute = {f.name: s for f in files for s in strings(json.loads(f.read_text()))
                if s.endswith(".pt") and Path(s).is_absolute()}
    assert not absolute, f"results that record a machine path: {absolute}"
