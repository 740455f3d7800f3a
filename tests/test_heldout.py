"""The unseen-motion test: held-out sets, limb-joint scores and refusing models that saw them."""
import json

import numpy as np
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


def _twisted(pose_mm: torch.Tensor, degrees: float) -> torch.Tensor:
    """``pose_mm (17, 3)`` with everything above the spine turned about the trunk axis."""
    from dphelpers.augment import _rotation
    axis = (pose_mm[8] - pose_mm[0])[None].double()
    rot = _rotation(axis, torch.tensor([np.deg2rad(degrees)], dtype=torch.float64))[0].float()
    out = pose_mm.clone()
    out[7:] = pose_mm[7] + (pose_mm[7:] - pose_mm[7]) @ rot.T
    return out


def test_set_scores_split_the_limb_error_into_image_plane_and_depth_and_by_joint_limits():
    """The best hypothesis' limb error splits into |(dx, dy)| and |dz|; the samples beyond
    the joint limits (a 100 degree torso twist) are left out of the within-limits score."""
    from dphelpers.anatomy import within_limits
    from dphelpers.data import load_mocap, split_clips
    pose = torch.as_tensor(split_clips(load_mocap())[0][0] * 1000.0, dtype=torch.float32)
    gt = torch.stack([pose, _twisted(pose, 100.0)])
    assert within_limits(gt.double() / 1000).tolist() == [True, False]
    pred = gt[:, None].repeat(1, 2, 1, 1)
    pred[0, 0, 13, 2] += 240.0           # sample 0, best hypothesis: the left wrist 240 mm deep
    pred[0, 1, 13, 2] += 480.0
    pred[1, :, 16, 0] += 360.0           # sample 1: the right wrist 360 mm to the side
    s = set_scores(pred, gt)
    n = len(LIMB_H36M)
    assert s["limb_P1_min"] == pytest.approx(0.5 * (240.0 + 360.0) / n, rel=1e-5)
    assert s["limb_z_min"] == pytest.approx(0.5 * 240.0 / n, rel=1e-5)
    assert s["limb_xy_min"] == pytest.approx(0.5 * 360.0 / n, rel=1e-5)
    assert s["n_within_limits"] == 1
    assert s["limb_P1_min_within_limits"] == pytest.approx(240.0 / n, rel=1e-5)
    s = set_scores(pred[1:], gt[1:])
    assert s["n_within_limits"] == 0 and s["limb_P1_min_within_limits"] is None


def test_held_out_sets_hold_different_poses():
    sets = held_out_sets(("boxing", "deepmimic"), n_test=16)
    assert list(sets) == ["test split", "held out: boxing", "held out: deepmimic"]
    assert all(len(s) == 16 for s in sets.values())
    a, b = sets["test split"].poses_3d_mm, sets["held out: boxing"].poses_3d_mm
    assert not torch.allclose(a, b)


def test_unscored_clips_leave_the_test_split_and_are_not_scored():
    """A validation run's test sources: out of the test split, never a scored set."""
    plain = held_out_sets(("boxing",), n_test=None)
    val = held_out_sets(("boxing",), n_test=None, unscored=("deepmimic",))
    assert list(val) == ["test split", "held out: boxing"]
    assert len(val["held out: boxing"]) == len(plain["held out: boxing"])
    assert 0 < len(val["test split"]) < len(plain["test split"])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("heldout")
    common = ["--model", "full", "--steps", "1", "--ckpt-every", "1", "--batch-size", "4",
              "--quiet", "--device", "cpu"]
    assert cli.main(["train", *common, "--hold-out", "boxing", "--checkpoint",
                     str(d / "held.pt")]) == 0
    assert cli.main(["train", *common, "--checkpoint", str(d / "seen.pt")]) == 0
    assert cli.main(["train", *common, "--hold-out", "boxing,deepmimic", "--augment",
                     "--augment-strength", "2", "--checkpoint", str(d / "val.pt")]) == 0
    return d


def _scored(out, model: str, *flags: str) -> dict:
    """``heldout --models model *flags`` at test sizes (4 samples, 3 hypotheses) into ``out``:
    it must succeed; the file it wrote."""
    assert cli.main(["heldout", "--models", model, *flags, "--n-test", "4", "--n-hypo", "3",
                     "--quiet", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_heldout_verb_scores_and_writes(checkpoints, capsys):
    out = checkpoints / "h.json"
    payload = _scored(out, f"tiny model={checkpoints / 'held.pt'}", "--hold-out", "boxing")
    rows = payload["models"]["tiny model"]
    assert rows["hold_out"] == ["boxing"] and rows["steps"] == 1 and rows["augment"] is False
    assert set(rows["sets"]) == {"test split", "held out: boxing"}
    for r in rows["sets"].values():
        assert r["n"] == 4 and 0 < r["P1_min"] <= r["P1_median"]
        assert 0 < r["limb_P1_min"] <= r["limb_P1_median"]
    assert "'tiny model=" in payload["command"]
    assert payload["setup"]["unscored"] == [] and rows["augment_strength"] is None


def test_heldout_verb_validation_run_leaves_the_other_held_out_clips_unscored(checkpoints):
    out = checkpoints / "v.json"
    payload = _scored(out, f"a2={checkpoints / 'val.pt'}", "--hold-out", "boxing")
    assert payload["setup"]["unscored"] == ["deepmimic"]
    rows = payload["models"]["a2"]
    assert set(rows["sets"]) == {"test split", "held out: boxing"}
    assert rows["augment"] is True and rows["augment_strength"] == 2.0


def test_heldout_verb_scores_new_people_with_any_model(checkpoints):
    """No model trains on the new-people file, so a model that saw every clip is scored there."""
    out = checkpoints / "n.json"
    payload = _scored(out, f"seen={checkpoints / 'seen.pt'}", "--new", "sehoon_squat,nick")
    assert payload["setup"]["new"] == ["sehoon_squat", "nick"]
    assert payload["setup"]["new_data"].endswith("mocap_new_people_h36m17.npz")
    rows = payload["models"]["seen"]["sets"]
    assert list(rows) == ["test split", "new person: sehoon_squat", "new person: nick"]
    assert rows["new person: nick"]["P1_min"] != rows["new person: sehoon_squat"]["P1_min"]


@pytest.mark.parametrize("argv, message", [
    (["--models", "x=SEEN"], "name what to score besides the test split"),
    (["--models", "x=SEEN", "--new", "bob"], "'bob' matches no clip.*sehoon_squat_1"),
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
    from dphelpers.evaluation.unseen import heldout_gaps, heldout_table, heldout_text

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
    assert "| a | test split | 10 | 45.0 | 90.0 | 50.0 | 100.0 |" in md     # one decimal each


def test_augmented_models_are_paired_with_their_plain_twin_and_reach_the_results_page():
    from dphelpers.evaluation.unseen import augment_pairs, heldout_text
    from dphelpers.tools.resultspage import heldout_section

    def entry(variant, augment, test, held):
        return {"variant": variant, "steps": 6000, "augment": augment,
                "hold_out": ["boxing"],
                "sets": {"test split": {"n": 10, "P1_min": test, "P1_median": test + 50,
                                        "limb_P1_min": test, "limb_P1_median": test + 60},
                         "held out: boxing": {"n": 10, "P1_min": held, "P1_median": held + 50,
                                              "limb_P1_min": held, "limb_P1_median": held + 60}}}
    payload = {"setup": {"hold_out": ["boxing"], "n_hypo": 200},
               "command": "python -m dphelpers heldout --models ...",
               "models": {"full": entry("full", False, 60.0, 120.0),
                          "argmax": entry("argmax_only", False, 62.0, 118.0),
                          "full, aug": entry("full", True, 66.0, 100.0)}}
    pairs = augment_pairs(payload)
    assert len(pairs) == 1 and pairs[0]["plain"] == "full"     # not the argmax-only model
    assert pairs[0]["held"] == (120.0, 100.0) and pairs[0]["test"] == (60.0, 66.0)
    text = heldout_text(payload)
    assert "falls: 120.0 -> 100.0 mm (-17%)" in text and "60.0 -> 66.0 mm (+10%)" in text
    payload["models"]["full, aug"]["sets"]["held out: boxing"]["limb_P1_min"] = 130.0
    assert "does not fall: 120.0 -> 130.0 mm" in heldout_text(payload)
    md = heldout_section(payload)
    assert md.startswith("## Motion the model never saw") and "| full, aug |" in md


def test_model_variant_names_the_ablation_of_a_config():
    from dphelpers.diffusion import DiffPoseConfig
    from dphelpers.tools.heldout import model_variant
    assert model_variant(DiffPoseConfig.ablation("argmax_only").to_dict()) == "argmax_only"
    assert model_variant(DiffPoseConfig().to_dict()) == "full"
    odd = DiffPoseConfig().to_dict()
    odd["denoiser"]["hidden"] = 7
    assert model_variant(odd) == "custom"


def _budget_files(plain_photo=1.9, aug_photo=1.6):
    def acc(label, p1, failed):
        return {f"{label} (full)": {"n": 100, "P1_min": p1, "P1_median": p1 + 60},
                f"{label} (failed limb)": {"n": 70, "P1_min": failed, "P1_median": failed + 60}}
    a, b = "full (diffpose_full.pt)", "full (diffpose_full_augmented.pt)"
    study = {"setup": {"models": [{"label": a, "trained_steps": 50000, "augment": None},
                                  {"label": b, "trained_steps": 50000, "augment": True}]},
             "test_sets": {"keep=0.5": {"n": 100}},
             "accuracy": {"keep=0.5": {**acc(a, 50.0, 52.0), **acc(b, 55.0, 56.0)}},
             "commands": ["python -m dphelpers study A", "python -m dphelpers study B --merge"]}

    def check(px, test):
        return {"photo": {"medoid_rms_px": px},
                "test": {"medoid_rms_px_vs_argmax": {"median": test}}}
    photo = {"setup": {"image": "astronaut"}, "command": "python -m dphelpers realcheck C",
             "models": {a: check(plain_photo, 2.4), b: check(aug_photo, 2.5)}}
    return study, photo


def test_the_budget_comparison_states_the_in_domain_cost_and_the_photo():
    from dphelpers.evaluation.unseen import budget_pair, budget_rows, budget_table, budget_text
    study, photo = _budget_files()
    rows = budget_rows(study, photo)
    assert [r["augment"] for r in rows] == [None, True] and rows[1]["failed_P1_min"] == 56.0
    study["setup"]["models"].reverse()              # the pair does not depend on the order
    plain, aug = budget_pair(study, photo)
    assert plain["P1_min"] == 50.0 and aug["P1_min"] == 55.0 and aug["augment"] is True
    study["setup"]["models"].reverse()
    text = budget_text(study, photo)
    assert "50.0 -> 55.0 mm (+10%)" in text and "52.0 -> 56.0 mm" in text
    assert "1.90 -> 1.60 px RMS" in text and "(closer to them" in text
    assert "`python -m dphelpers study B --merge`" in text and "realcheck C`" in text
    assert "no closer to" in budget_text(*_budget_files(aug_photo=2.7))
    md = budget_table(study, photo).to_markdown()
    assert "| full | no |" in md and "| full, augmented | yes |" in md and "astronaut" in md
    from dphelpers.tools.resultspage import budget_section
    assert budget_section(study, photo).startswith("## Pose augmentation at the shipped budget")


def test_the_budget_comparison_refuses_files_that_do_not_pair():
    from dphelpers.evaluation.unseen import budget_pair, budget_rows, budget_text
    study, photo = _budget_files()
    del photo["models"]["full (diffpose_full_augmented.pt)"]
    with pytest.raises(ValueError, match="share 1 model"):
        budget_rows(study, photo)
    study, photo = _budget_files()
    study["setup"]["models"][1]["augment"] = False
    for fn in (budget_pair, budget_text):
        with pytest.raises(ValueError, match="one model trained with augmentation"):
            fn(study, photo)


def test_the_shipped_augmented_model_trained_with_augmentation_at_the_shipped_budget():
    from dphelpers.models.checkpoint import read_checkpoint
    from dphelpers.models.modelfiles import SHIPPED_DIR
    aug = read_checkpoint(SHIPPED_DIR / "diffpose_full_augmented.pt")
    plain = read_checkpoint(SHIPPED_DIR / "diffpose_full.pt")
    assert aug["train_config"]["augment"] is True
    assert aug["step"] == plain["step"] == 50_000
    assert aug["config"] == plain["config"]          # the same model, only the data differ


def test_the_shipped_page_shows_augmentation_at_the_shipped_budget(tmp_path):
    from dphelpers.evaluation.results import RESULTS_FILE
    from dphelpers.evaluation.unseen import budget_rows
    from dphelpers.tools.resultspage import write_results_page
    study = json.loads(RESULTS_FILE.with_name("augmented_study.json").read_text())
    photo = json.loads(RESULTS_FILE.with_name("augmented_realcheck.json").read_text())
    rows = budget_rows(study, photo)
    assert sorted(bool(r["augment"]) for r in rows) == [False, True]
    page = write_results_page(tmp_path / "results.md").read_text()
    section = page.split("## Pose augmentation at the shipped budget")[1].split("\n## ")[0]
    for r in rows:
        assert f"{r['P1_min']:.1f}" in section and f"{r['photo_px']:.2f}" in section
    assert "python -m dphelpers realcheck" in section


def _validation_file(held=(150.0, 130.0, 125.0, 140.0), test=(70.0, 75.0, 78.0, 85.0)):
    def entry(strength, t, h):
        return {"variant": "full", "steps": 6000, "augment": strength > 0,
                "augment_strength": strength or None,
                "hold_out": ["boxing", "deepmimic", "cmu_01_01_jumps"],
                "sets": {"test split": {"n": 100, "limb_P1_min": t},
                         "held out: cmu_01_01_jumps": {"n": 100, "limb_P1_min": h}}}
    strengths = (0.0, 0.5, 1.0, 2.0)
    return {"command": "python -m dphelpers heldout V",
            "setup": {"hold_out": ["cmu_01_01_jumps"], "unscored": ["boxing", "deepmimic"],
                      "n_test": 100, "n_hypo": 200},
            "models": {f"s{s:g}": entry(s, t, h) for s, t, h in zip(strengths, test, held)}}


def test_the_validation_chooses_the_strength_by_its_rule_and_says_so():
    from dphelpers.evaluation.unseen import (chosen_strength, validation_rows,
                                             validation_table, validation_text)
    payload = _validation_file()
    rows = validation_rows(payload)
    assert [r["strength"] for r in rows] == [0.0, 0.5, 1.0, 2.0]
    assert rows[0]["gap"] == pytest.approx(100 * (150 / 70 - 1))
    assert chosen_strength(payload) == 1.0
    text = validation_text(payload)
    assert "chooses strength 1 (125.0 mm)" in text and "off 150.0 mm (+114%" in text
    assert "without boxing, deepmimic" in text and "`python -m dphelpers heldout V`" in text
    md = validation_table(payload).to_markdown()
    assert "| off |" in md and "| 2 |" in md and "cmu_01_01_jumps (mm)" in md
    assert "| steps |" not in md
    assert chosen_strength(_validation_file(held=(120.0, 130.0, 125.0, 140.0))) == 0.0
    assert "chooses no augmentation" in validation_text(
        _validation_file(held=(120.0, 130.0, 125.0, 140.0)))
    assert chosen_strength(_validation_file(held=(150.0, 125.0, 125.0, 140.0))) == 0.5  # tie
    assert "test-split error (70.0 mm off, 85.0 mm at strength 2)" in text
    held = {"setup": {"hold_out": ["boxing"]}, "models": {"f": {
        "variant": "full", "augment": False,
        "sets": {"test split": {"n": 10, "limb_P1_min": 50.0},
                 "held out: boxing": {"n": 10, "limb_P1_min": 100.0}}}}}
    assert "+114% over the test split, against +100% for the test sources (boxing;" in \
        validation_text(payload, heldout=held)
    longer = dict(payload["models"]["s1"], steps=12000,
                  sets={"test split": {"n": 100, "limb_P1_min": 70.0},
                        "held out: cmu_01_01_jumps": {"n": 100, "limb_P1_min": 110.0}})
    payload["models"]["s1, 12k"] = longer          # a follow-up: not part of the rule
    assert chosen_strength(payload) == 1.0
    text = validation_text(payload)
    assert "Trained on to 12,000 steps" in text and "1 125.0 -> 110.0 mm" in text
    assert "At 12,000 steps the lowest is 1, as at the sweep's budget." in text
    assert "| 12,000 | 1 |" in validation_table(payload).to_markdown()
    from dphelpers.tools.resultspage import validation_section
    section = validation_section(payload)
    assert section.startswith("## Choosing the augmentation strength") and "| off |" in section
    payload["setup"]["unscored"] = []
    with pytest.raises(ValueError, match="not a validation"):
        validation_rows(payload)


def test_merged_results_keep_both_files_models_and_refuse_other_sets():
    from dphelpers.tools.heldout import merged
    old = {"command": "A", "setup": {"hold_out": ["boxing"], "n_test": 100, "n_hypo": 200,
                                     "seed": 0, "note": "how"},
           "models": {"x": {"steps": 1}}, "seconds": 5}
    new = {"command": "B", "setup": {**old["setup"], "unscored": []},
           "models": {"y": {"steps": 2}}, "seconds": 7}
    both = merged(old, new)
    assert list(both["models"]) == ["x", "y"] and both["commands"] == ["A", "B"]
    assert both["seconds"] == 12 and both["setup"]["note"] == "how"
    assert merged(both, {**new, "command": "C"})["commands"] == ["A", "B", "C"]
    with pytest.raises(ValueError, match="n_test: 100 in old.json, 50 now"):
        merged(old, {**new, "setup": {**new["setup"], "n_test": 50}}, "old.json")


def test_heldout_text_names_the_strengths_and_every_command():
    from dphelpers.evaluation.unseen import heldout_text
    payload = _validation_file()
    payload["setup"] = {"hold_out": ["cmu_01_01_jumps"], "n_hypo": 200}
    payload["commands"] = ["python -m dphelpers heldout V", "python -m dphelpers heldout W"]
    text = heldout_text(payload)
    assert "Augmentation strengths 0.5, 1, 2 (AugmentConfig.at_strength" in text
    assert "`python -m dphelpers heldout V`, then `python -m dphelpers heldout W`" in text


def test_heldout_verb_merge_adds_models_to_the_same_table(checkpoints, capsys):
    out = checkpoints / "m.json"
    common = ["--hold-out", "boxing", "--n-test", "4", "--n-hypo", "3", "--quiet",
              "--out", str(out)]
    assert cli.main(["heldout", "--models", f"a={checkpoints / 'held.pt'}", *common]) == 0
    assert cli.main(["heldout", "--models", f"b={checkpoints / 'held.pt'}", *common,
                     "--merge"]) == 0
    payload = json.loads(out.read_text())
    assert list(payload["models"]) == ["a", "b"] and len(payload["commands"]) == 2
    assert payload["models"]["a"]["sets"] == payload["models"]["b"]["sets"]   # same sets, seed
    before = out.read_text()
    rc = cli.main(["heldout", "--models", f"c={checkpoints / 'held.pt'}", *common, "--merge",
                   "--n-test", "5"])
    assert rc != 0 and "n_test: 4 in" in capsys.readouterr().err
    assert out.read_text() == before                   # refused: the file is untouched


def _new_people_file(plain=(60.0, 90.0), aug=(62.0, 80.0)):
    def m(test, new, augment):
        sets = {"test split": {"n": 300, "P1_min": test, "P1_median": test + 20,
                               "limb_P1_min": test, "limb_P1_median": test + 25}}
        for name, n, extra in (("nick", 100, 0.0), ("sehoon", 50, 30.0)):
            v = new + extra
            sets[f"new person: {name}"] = {"n": n, "P1_min": v, "P1_median": v + 20,
                                           "limb_P1_min": v, "limb_P1_median": v + 25}
        return {"variant": "full", "steps": 50000, "augment": augment, "hold_out": [],
                "sets": sets}
    return {"command": "python -m dphelpers heldout --new nick,sehoon",
            "setup": {"hold_out": [], "new": ["nick", "sehoon"], "n_test": 300, "n_hypo": 200},
            "models": {"full": m(*plain, False), "full, augmented": m(*aug, True)}}


def test_new_people_text_is_computed_from_the_file():
    from dphelpers.evaluation.unseen import new_people_text
    text = new_people_text(_new_people_file())
    # full: new frames weighted 100:50 -> (90 * 100 + 120 * 50) / 150 = 100 mm, +67% of 60
    assert "+67% for full" in text and "nick (100 samples), sehoon (50 samples)" in text
    assert "trained on every clip (50,000 steps); each is scored" in text
    assert "idea out of its domain" not in text           # no argmax-only model in the file
    # augmented: (80 * 100 + 110 * 50) / 150 = 90 mm, lowest; gap 90 / 62 = +45%
    assert "lowest new-people limb P1 min is full, augmented's (90.0 mm)" in text
    assert "new-people limb P1 min falls: 100.0 -> 90.0 mm (-10%)" in text
    assert "60.0 -> 62.0 mm (+3%)" in text and text.endswith("--new nick,sehoon`.")
    two = _new_people_file()
    two["models"]["argmax"] = {**two["models"]["full, augmented"], "variant": "argmax_only",
                               "augment": False}
    assert ("idea out of its domain (full against argmax): 100.0 against 90.0 mm on the new "
            "people (+11.1%), 60.0 against 62.0 mm") in new_people_text(two)
    worse = new_people_text(_new_people_file(aug=(62.0, 95.0)), with_command=False)
    assert "does not fall: 100.0 -> 105.0 mm" in worse and "Made with" not in worse


def test_the_shipped_page_shows_the_new_people(tmp_path):
    from dphelpers.evaluation.results import RESULTS_FILE
    from dphelpers.evaluation.unseen import heldout_gaps
    from dphelpers.tools.resultspage import write_results_page
    newp = json.loads(RESULTS_FILE.with_name("new_people.json").read_text())
    assert newp["setup"]["new"] and not newp["setup"]["hold_out"]
    page = write_results_page(tmp_path / "results.md").read_text()
    section = page.split("## People no model trained on")[1].split("\n## ")[0]
    for label, gap in heldout_gaps(newp).items():
        assert f"{gap:+.0f}% for {label}" in section and f"| {label} |" in section
    assert "new person: sehoon_squat" in section
    from dphelpers.evaluation.unseen import where_rows
    full = where_rows(newp)[0]                     # the shipped file has the error's split
    assert full["model"] == "full" and full["n_within"] <= full["n_new"]
    assert "Where the limb error lies" in section
    assert f"| full | {full['test'][0]:.1f} -> {full['new'][0]:.1f}" in section


def test_the_shipped_lifter_is_scored_on_new_people_as_a_lifter(tmp_path):
    from dphelpers.evaluation.unseen import new_people_text
    from dphelpers.models.modelfiles import shipped_file
    out = tmp_path / "l.json"
    payload = _scored(out, f"lifter={shipped_file('lifter')}", "--new", "nick_freeform")
    m = payload["models"]["lifter"]
    assert m["variant"] == "lifter" and m["steps"] > 0
    assert all(r["P1_min"] == r["P1_median"] for r in m["sets"].values())
    assert "One answer per image (lifter)" in new_people_text(payload)


def test_with_bone_lengths_keeps_the_motion_and_sets_the_body():
    from dphelpers.anatomy import bone_lengths
    from dphelpers.data import load_mocap, new_people_path
    from dphelpers.tools.heldout import training_bone_lengths, with_bone_lengths
    lengths = training_bone_lengths(load_mocap())
    assert lengths.shape == (16,) and 0.35 < lengths[1] < 0.45          # thigh
    poses = load_mocap(new_people_path())[0].poses_m
    moved = with_bone_lengths(poses, lengths)
    np.testing.assert_allclose(bone_lengths(torch.as_tensor(moved)).numpy(),
                               np.broadcast_to(lengths, (len(poses), 16)), atol=1e-5)
    np.testing.assert_allclose(moved[:, 0], poses[:, 0], atol=1e-6)      # the pelvis stays
    def direction(p, a, b):
        v = p[:, b] - p[:, a]
        return v / np.linalg.norm(v, axis=-1, keepdims=True)
    np.testing.assert_allclose(direction(moved, 5, 6), direction(poses, 5, 6), atol=1e-5)
    assert not np.allclose(moved, poses, atol=1e-3)


def test_heldout_retarget_scores_the_same_frames_on_the_training_bones(checkpoints, capsys):
    out = checkpoints / "rt.json"
    payload = _scored(out, f"seen={checkpoints / 'seen.pt'}", "--new", "nick", "--retarget")
    assert payload["setup"]["retarget"] is True
    assert list(payload["models"]["seen"]["sets"]) == [
        "test split", "new person: nick", "new person, training bones: nick"]
    assert cli.main(["heldout", "--models", f"seen={checkpoints / 'seen.pt'}", "--hold-out",
                     "boxing", "--retarget", "--quiet", "--out", str(out)]) == 2
    assert "--retarget rescales the --new sets" in capsys.readouterr().err


def test_the_retarget_sentence_splits_each_gap():
    from dphelpers.evaluation.unseen import heldout_gaps, new_people_text
    payload = _new_people_file()
    payload["setup"]["retarget"] = True
    for m in payload["models"].values():
        for name in ("nick", "sehoon"):
            r = dict(m["sets"][f"new person: {name}"])
            r["limb_P1_min"] -= 15.0
            m["sets"][f"new person, training bones: {name}"] = r
    assert round(heldout_gaps(payload)["full"]) == 67                   # retargeted rows left out
    text = new_people_text(payload)
    # full: new 100, training bones 85, test 60 -> 15 of 40 mm = 38% of its gap
    assert "full 100.0 -> 85.0 mm (38% of its gap)" in text


def test_where_the_new_people_error_lies_is_computed_from_the_file():
    from dphelpers.evaluation.unseen import (new_people_text, where_rows, where_summary,
                                             where_table)
    payload = _new_people_file()
    assert where_rows(payload) == [] and where_table(payload) is None     # an older file
    assert where_summary(payload) == ""
    assert "Where the error lies" not in new_people_text(payload)
    for m in payload["models"].values():
        for name, r in m["sets"].items():
            new = name != "test split"
            r.update(limb_xy_min=60.0 if new else 40.0, limb_z_min=54.0 if new else 36.0,
                     n_within_limits=r["n"] - (20 if new else 0),
                     limb_P1_min_within_limits=r["limb_P1_min"] - (10.0 if new else 0.0))
    rows = where_rows(payload)
    full = rows[0]
    assert full["test"] == (40.0, 36.0) and full["new"] == (60.0, 54.0)
    assert full["n_new"] == 150 and full["n_within"] == 110
    # within: (80 * 80 + 110 * 30) / 110 = 88.18 mm against test 60 and all new 100
    assert full["within"] == pytest.approx((80 * 80 + 110 * 30) / 110)
    text = new_people_text(payload, with_command=False)
    assert "image-plane error goes 40.0 -> 60.0 mm (+50%)" in text
    assert "depth error 36.0 -> 54.0 mm (+50%)" in text
    assert "40 of 150 new-people samples" in text and "the other 110" in text
    # full: (100 - 88.18) / (100 - 60) = 30%; augmented: (90 - 78.18) / (90 - 62) = 42%
    assert "explain 30% to 42% of the models' gaps" in text
    assert "follow the 2D evidence less" in text and "at least 50%, more than the goal's" in text
    assert where_summary(payload) == (
        "the best hypothesis' image-plane error grows +50% to +50% and its depth error +50% to "
        "+50%; the poses beyond the augmentation's joint limits explain 30% to 42% of the gaps")
    md = where_table(payload).to_markdown()
    assert "| full | 40.0 -> 60.0 (+50%) | 36.0 -> 54.0 (+50%) | 60.0 -> 88.2 (+47%) |" in md
    assert "within the joint limits (110 of 150)" in md
    for m in payload["models"].values():         # image plane as on the test split, depth +10%
        for name, r in m["sets"].items():
            if name != "test split":
                r.update(limb_xy_min=40.0, limb_z_min=39.6)
    text = new_people_text(payload, with_command=False)
    assert "image-plane error goes 40.0 -> 40.0 mm (+0%)" in text
    assert "follow the 2D evidence less" not in text and "cannot close the gap" not in text
