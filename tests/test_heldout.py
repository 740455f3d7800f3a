"""The unseen-motion test: held-out sets, limb-joint scores and refusing models that saw them."""
import json

import pytest
import torch

from dphelpers.tools import cli
from dphelpers.tools.heldout import LIMB_H36M, held_out_sets, set_scores


def test_set_scores_limb_joints_only_see_limb_errors():
    gt = torch.zeros(2, 17, 3)
    pred = torch.zeros(2, 3, 17, 3)
    pred[:, :, 10, 0] = 170.0          # the head (not a limb joint) off by 170 mm everywhere
    pred[0, 1, 13, 0] = 120.0          # hypothesis 1 of sample 0: the left wrist off by 120 mm
    s = set_scores(pred, gt)
    assert s["n"] == 2
    assert s["P1_min"] == pytest.approx(10.0)            # 170 / 17 on every hypothesis
    assert s["limb_P1_min"] == pytest.approx(0.0)
    assert s["limb_P1_median"] == pytest.approx(0.0)     # median of (0, 10, 0) per sample
    pred[0, :, 13, 0] = 120.0                            # now on every hypothesis of sample 0
    s = set_scores(pred, gt)
    assert s["limb_P1_min"] == pytest.approx(0.5 * 120.0 / len(LIMB_H36M))
    assert s["P1_median"] == pytest.approx(10.0 + 0.5 * 120.0 / 17)


def test_held_out_sets_hold_different_poses():
    sets = held_out_sets(("boxing", "deepmimic"), n_test=16)
    assert list(sets) == ["test split", "held out: boxing", "held out: deepmimic"]
    assert all(len(s) == 16 for s in sets.values())
    a, b = sets["test split"].poses_3d_mm, sets["held out: boxing"].poses_3d_mm
    assert not torch.allclose(a, b)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("heldout")
    common = ["--model", "full", "--steps", "1", "--ckpt-every", "1", "--batch-size", "4",
              "--quiet", "--device", "cpu"]
    assert cli.main(["train", *common, "--hold-out", "boxing", "--checkpoint",
                     str(d / "held.pt")]) == 0
    assert cli.main(["train", *common, "--checkpoint", str(d / "seen.pt")]) == 0
    return d


def test_heldout_verb_scores_and_writes(checkpoints, capsys):
    out = checkpoints / "h.json"
    rc = cli.main(["heldout", "--models", f"tiny model={checkpoints / 'held.pt'}",
                   "--hold-out", "boxing", "--n-test", "4", "--n-hypo", "3", "--quiet",
                   "--out", str(out)])
    assert rc == 0
    payload = json.loads(out.read_text())
    rows = payload["models"]["tiny model"]
    assert rows["hold_out"] == ["boxing"] and rows["steps"] == 1 and rows["augment"] is False
    assert set(rows["sets"]) == {"test split", "held out: boxing"}
    for r in rows["sets"].values():
        assert r["n"] == 4 and 0 < r["P1_min"] <= r["P1_median"]
        assert 0 < r["limb_P1_min"] <= r["limb_P1_median"]
    assert "'tiny model=" in payload["command"]


@pytest.mark.parametrize("argv, message", [
    (["--models", "x=SEEN", "--hold-out", "boxing"], "trained on boxing .*saw those clips"),
    (["--models", "x=HELD", "--hold-out", "boxing,deepmimic"], "trained on deepmimic"),
    (["--models", "HELD", "--hold-out", "boxing"], "LABEL=FILE pairs"),
    (["--models", "x=HELD", "y=HELD", "--hold-out", "boxx"], "'boxx' matches no clip"),
    (["--models", "x=HELD", "x=HELD", "--hold-out", "boxing"], "labels must differ"),
    (["--models", "x=NOPE", "--hold-out", "boxing"], "missing.pt. does not exist"),
])
def test_heldout_verb_refuses(checkpoints, capsys, argv, message):
    names = {"SEEN": str(checkpoints / "seen.pt"), "HELD": str(checkpoints / "held.pt"),
             "NOPE": str(checkpoints / "missing.pt")}
    argv = [a.replace("SEEN", names["SEEN"]).replace("HELD", names["HELD"])
            .replace("NOPE", names["NOPE"]) for a in argv]
    out = checkpoints / "refused.json"
    assert cli.main(["heldout", *argv, "--n-test", "4", "--n-hypo", "2", "--quiet",
                     "--out", str(out)]) == 2
    import re
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_heldout_table_and_text_are_computed_from_the_payload():
    from dphelpers.tools.heldout import heldout_gaps, heldout_table, heldout_text

    def row(n, limb):
        return {"n": n, "P1_min": limb - 5, "P1_median": limb + 40, "limb_P1_min": limb,
                "limb_P1_median": limb + 50}
    payload = {"setup": {"hold_out": ["boxing", "deepmimic"], "n_hypo": 200},
               "models": {"a": {"steps": 6000, "sets": {"test split": row(10, 50.0),
                                                        "held out: boxing": row(10, 60.0),
                                                        "held out: deepmimic": row(30, 70.0)}},
                          "b": {"steps": 6000, "sets": {"test split": row(10, 60.0),
                                                        "held out: boxing": row(10, 60.0),
                                                        "held out: deepmimic": row(30, 60.0)}}}}
    gaps = heldout_gaps(payload)
    assert gaps["a"] == pytest.approx(100 * ((60 * 10 + 70 * 30) / 40 / 50 - 1))   # +35%
    assert gaps["b"] == pytest.approx(0.0)
    text = heldout_text(payload)
    assert "+35% for a" in text and "+0% for b" in text and "smallest gap is b's" in text
    md = heldout_table(payload).to_markdown()
    assert "+20%" in md and "+40%" in md and "limb P1 min (mm)" in md
