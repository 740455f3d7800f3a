"""evaluate: a model over a test set -> per-sample metrics, subsets, baselines, tables."""
import pytest
import torch

from dphelpers.diffusion import DiffPose
from dphelpers.evaluation.evaluate import (evaluate, evaluate_fixed, mean_pose, table_rows,
                                           training_mean_pose)
from dphelpers.metrics import root_relative
from dphelpers.pipeline import make_test_set


@pytest.fixture(scope="module")
def small_test(splits):
    return make_test_set(splits[1], 6)


def test_evaluate_shapes_order_and_seeded(small_test):
    torch.manual_seed(0)
    model = DiffPose().eval()
    a = evaluate(model, small_test, n_hypo=5, batch_size=4, seed=3, progress=False, keep=True)
    b = evaluate(model, small_test, n_hypo=5, batch_size=2, seed=3, progress=False)
    assert a.predictions.shape == (6, 5, 17, 3) and a.n_hypo == 5
    assert a.p1_min.shape == (6,) and a.quantiles.shape == (6, 17)
    assert (a.p1_min <= a.p1_median + 1e-6).all() and (a.p2_min <= a.p1_min + 1e-3).all()
    s = a.summary()
    assert s["n"] == 6 and 0 <= s["PCK"] <= 100 and 0 <= s["ECE"] <= 1
    # the same seed gives the same numbers in float32 (the default); another seed does not
    assert torch.equal(a.p1_min, evaluate(model, small_test, 5, 4, seed=3, progress=False).p1_min)
    assert not torch.equal(a.p1_min, evaluate(model, small_test, 5, 4, seed=4,
                                              progress=False).p1_min)
    assert b.p1_min.shape == (6,)


def test_fixed_predictions_and_baselines(small_test, splits):
    gt = small_test.poses_3d_mm
    perfect = evaluate_fixed(gt, small_test)
    assert perfect.summary()["P1_min"] < 1e-3 and perfect.summary()["PCK"] == 100.0
    m = mean_pose(gt)
    assert m.shape == (17, 3) and torch.allclose(m, root_relative(gt).mean(0))
    base = evaluate_fixed(m, small_test)
    assert base.summary()["P1_min"] == pytest.approx(base.summary()["P1_median"])
    assert base.summary()["P1_min"] > 50.0
    b1 = training_mean_pose(splits[0], n=256, seed=1)
    assert torch.equal(b1, training_mean_pose(splits[0], n=256, seed=1))
    assert b1.shape == (17, 3) and b1[0].abs().max() < 1e-6            # pelvis at the origin
    assert b1[10, 2] > 300.0 or b1[10, 1] < -300.0 or b1[10].norm() > 300.0   # head far away


def test_subsets_and_tables(small_test):
    ev = evaluate_fixed(small_test.poses_3d_mm + 10.0, small_test)
    mask = torch.zeros(6, dtype=torch.bool)
    with pytest.raises(ValueError, match="empty"):
        ev.summary(mask)
    mask[:2] = True
    assert ev.summary(mask)["n"] == 2
    rows = table_rows("mean pose", ev)
    assert "mean pose (full)" in rows and "P1_min" in rows["mean pose (full)"]
