"""The mechanism study: per-joint stats, flag mapping, groups, tables, figure, command line."""
import json

import pytest
import torch
from test_bench import _tiny

from dphelpers import metrics
from dphelpers.evaluation import mechanism as M
from dphelpers.evaluation import vizmechanism as V
from dphelpers.evaluation.evaluate import evaluate
from dphelpers.evaluation.testsets import build_test_sets
from dphelpers.lifter import Lifter
from dphelpers.models.checkpoint import save_model
from dphelpers.skeleton import H36M_TO_MPII
from dphelpers.tools import cli


@pytest.fixture(scope="module")
def test_set(splits):
    return build_test_sets(splits[1], 12, keep_modes=(1.0,))["keep=1"]


def test_flags_move_to_h36m_order():
    flags = torch.zeros(2, 16, dtype=torch.bool)
    flags[0, 10] = True                                      # MPII RWrist
    flags[1, 9] = True                                       # MPII head top
    out = M.flags_to_h36m(flags)
    assert out.shape == (2, 17) and out.sum() == 2
    assert out[0, 16] and out[1, 10] and not out[:, 9].any()   # Neck/Nose: no heatmap
    with pytest.raises(ValueError, match="MPII order"):
        M.flags_to_h36m(torch.zeros(2, 17, dtype=torch.bool))


def test_joint_stats_known_values():
    gt = torch.zeros(1, 17, 3)
    gt[0, 1, 0], gt[0, 4, 0] = -100.0, 100.0                 # hips; pelvis at their middle
    gt[0, 16] = torch.tensor([300.0, 0.0, 0.0])
    pred = gt[:, None].repeat(1, 4, 1, 1)
    pred[0, :, 16, 1] = torch.tensor([10.0, 50.0, 150.0, 400.0])   # wrist errors (mm)
    s = M.joint_stats(pred, gt)
    assert s["best_mm"][0, 16] == pytest.approx(10.0)
    assert s["median_mm"][0, 16] == pytest.approx(100.0)
    assert s["within"][0, 16] == pytest.approx(0.5)
    assert s["best_mm"][0, 13] == 0 and s["within"][0, 13] == 1
    assert torch.all(s["best_mm"] <= s["median_mm"])
    with pytest.raises(ValueError, match=r"\(b, h, 17, 3\)"):
        M.joint_stats(pred[0], gt)


def test_collect_uses_evaluates_draws_and_summarise_counts_joints(test_set):
    model = _tiny()
    cfg = M.MechanismConfig(n_hypo=6, batch_size=5, seed=3)
    stats = M.collect(model, test_set, cfg)
    ev = evaluate(model, test_set, 6, 5, seed=3, progress=False, keep=True)
    again = M.joint_stats(ev.predictions, test_set.poses_3d_mm)
    assert torch.allclose(stats.best_mm, again["best_mm"])
    assert torch.allclose(stats.median_mm, again["median_mm"])
    assert torch.equal(stats.failed, M.flags_to_h36m(test_set.failed_joints))
    assert len(stats) == len(test_set) and stats.n_hypo == 6
    rows = M.summarise(stats)
    by = {(r["group"], r["status"]): r for r in rows}
    n_all = by[("all", "failed")]["n_joints"] + by[("all", "not failed")]["n_joints"]
    assert n_all == len(test_set) * 15                      # every joint but pelvis, nose
    # the pelvis (its error is 0 by construction) is in no group
    assert by[("all", "failed")]["n_joints"] == int(stats.failed[:, 1:].sum())
    assert sum(by[(g, "failed")]["n_joints"] for g in M.JOINT_GROUPS) == \
        by[("all", "failed")]["n_joints"]
    for r in rows:
        if r["n_joints"]:
            assert r["best_mm"] <= r["median_mm"] + 1e-4 and 0 <= r["within_pct"] <= 100
            assert r["n_kept"] <= r["n_joints"]


def test_single_hypothesis_model_best_equals_median(test_set):
    stats = M.collect(Lifter().eval(), test_set, M.MechanismConfig(n_hypo=50))
    assert stats.n_hypo == 1 and torch.equal(stats.best_mm, stats.median_mm)


def test_tables_and_sentence_read_the_rows(test_set):
    rows = {name: M.summarise(M.collect(_tiny(), test_set, M.MechanismConfig(
        n_hypo=4, seed=s))) for s, name in enumerate(("full", "argmax_only"))}
    head = M.headline_table(rows, caption="c")
    assert len(head.rows) == 4 and "best-of-N (mm)" in head.columns
    grp = M.group_table(rows, "within_pct")
    assert len(grp.rows) == 2 * (len(M.JOINT_GROUPS) + 1)
    assert grp.columns[-2:] == ("full", "argmax_only")
    text = M.headline_sentence(rows)
    failed = [r for r in rows["full"] if r["group"] == "all" and r["status"] == "failed"][0]
    assert f"{failed['best_mm']:.1f} mm" in text
    with pytest.raises(ValueError, match="metric"):
        M.group_table(rows, "P1")


def test_config_refuses_bad_values_and_unknown_keys():
    with pytest.raises(ValueError, match="n_hypo"):
        M.MechanismConfig(n_hypo=0)
    with pytest.raises(ValueError, match="no field"):
        M.MechanismConfig.from_dict({"n_hypo": 5, "hypotheses": 3})


def test_figure_projects_the_truth_onto_its_heatmap_pixel(test_set):
    pick = V.pick_failed_joint(test_set, mpii_joints=range(16))
    assert pick is not None
    i, j = pick
    assert test_set.failed_joints[i, j]
    h = H36M_TO_MPII[j]
    gt_rr = metrics.root_relative(test_set.poses_3d_mm[i:i + 1])
    px = V.joint_in_heatmap(gt_rr, test_set, i, h)
    assert torch.allclose(px[0], test_set.joints_hm[i, j], atol=1e-3)
    fig = V.failed_joint_figure(test_set.heatmaps[i, j], test_set.joints_hm[i, j],
                                {"a": px.repeat(3, 1), "b": px.repeat(2, 1)},
                                {"a": torch.zeros(3), "b": torch.ones(2)}, "joint")
    names = [t.name for t in fig.data]
    assert {"a", "b", "truth", "argmax (wrong)"} <= set(names)
    with pytest.raises(ValueError, match="heatmap"):
        V.failed_joint_figure(test_set.heatmaps[i], px[0], {}, {})


def test_command_line_writes_rows_and_the_command(tmp_path, capsys):
    d = tmp_path / "m"
    d.mkdir()
    files = {"full": save_model(d / "a.pt", _tiny(), step=3),
             "lifter": save_model(d / "l.pt", Lifter().eval(), step=2)}
    out = tmp_path / "mech.json"
    assert cli.main(["mechanism", "--models", f"full={files['full']}", f"lifter={files['lifter']}",
                      "--n-test", "6", "--n-hypo", "3", "--quiet", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("python -m dphelpers mechanism --models")
    assert set(data["rows"]) == {"full", "lifter"} and data["setup"]["n_test"] == 6
    assert data["models"]["lifter"]["n_hypo"] == 1 and data["models"]["full"]["n_hypo"] == 3
    assert "best-of-N" in capsys.readouterr().out


def test_results_page_shows_the_mechanism(test_set):
    from dphelpers.tools.resultspage import results_markdown
    rows = {name: M.summarise(M.collect(_tiny(), test_set, M.MechanismConfig(n_hypo=3)))
            for name in ("full", "argmax_only")}
    mech = {"command": "python -m dphelpers.tools.mechanism --n-test 12", "rows": rows,
            "setup": {"n_test": 12, "n_hypo": 3}}
    bench = {"accuracy": {"full (full)": {"n": 10, "P1_min": 1.0, "P1_median": 2.0,
                                          "P2_min": 1.0, "PCK": 50.0, "CPS": 9.0,
                                          "ECE": 0.1}}}
    page = results_markdown(bench, mechanism=mech)
    assert "## The mechanism, measured where it acts" in page
    assert M.headline_sentence(rows) in page and "--n-test 12" in page
    assert "## The mechanism" not in results_markdown(bench)
