"""What the unseen-motion test says (``data/results/heldout.json``): its table and sentences.

The file is written by ``python -m dphelpers heldout`` (:mod:`dphelpers.tools.heldout`): models
trained with ``train --hold-out NAMES`` scored on the test split of the clips they trained on and
on every held-out source, with the same cameras, simulator and seed.  Read here for the results
page and notebook 5; every number of a sentence is computed from the file.

The same verb writes the new-people test (``new_people.json``, ``heldout --new``: models scored
on people that no model trains on; :func:`new_people_text`), the
augmentation-strength validation (``augment_validation.json``:
models that also held out a validation source, scored on it alone; ``validation_*``), and the
``budget_*`` functions read the augmented model at the shipped budget
(``augmented_study.json``, ``augmented_realcheck.json``).
"""
from __future__ import annotations

__all__ = ["heldout_table", "heldout_gaps", "augment_pairs", "heldout_text", "strength_of",
           "validation_rows", "chosen_strength", "validation_table", "validation_text",
           "budget_rows", "budget_pair", "budget_table", "budget_text", "new_people_text",
           "where_rows", "where_table", "where_text", "where_summary",
           "made_with"]


def heldout_table(payload: dict, caption: str = ""):
    """One row per model and set: P1 min / median over all joints and over the limb joints,
    and the limb P1 min relative to the same model's test split (a :class:`Table`)."""
    from .tables import table
    rows = []
    for label, m in payload["models"].items():
        base = m["sets"]["test split"]["limb_P1_min"]
        for name, r in m["sets"].items():
            rows.append([label, name, r["n"], f"{r['P1_min']:.1f}", f"{r['P1_median']:.1f}",
                         f"{r['limb_P1_min']:.1f}", f"{r['limb_P1_median']:.1f}",
                         ("" if name == "test split"
                          else f"{100 * (r['limb_P1_min'] / base - 1):+.0f}%")])
    return table(rows, columns=["model", "test set", "samples", "P1 min (mm)", "P1 median (mm)",
                                "limb P1 min (mm)", "limb P1 median (mm)",
                                "limb P1 min vs test split"], caption=caption)


#: the goal of issue 25: unseen motion within this many percent of the test split's error
GAP_GOAL_PCT = 15.0

#: what marks a set of the new people's motion on the training bones (``heldout --retarget``)
RETARGETED = "training bones"


def _held_mean(m: dict, key: str = "limb_P1_min", retargeted: bool = False) -> float:
    """``key`` over all held-out frames of model entry ``m`` (sample-weighted over the sets);
    ``retargeted``: over the sets on the training bones instead (:data:`RETARGETED`)."""
    held = [r for name, r in m["sets"].items()
            if name != "test split" and (RETARGETED in name) == retargeted]
    return sum(r[key] * r["n"] for r in held) / sum(r["n"] for r in held)


def heldout_gaps(payload: dict) -> dict[str, float]:
    """``{label: %}``: limb P1 min on all held-out frames (sample-weighted over the held-out
    sets) relative to the test split, per model."""
    return {label: 100.0 * (_held_mean(m) / m["sets"]["test split"]["limb_P1_min"] - 1.0)
            for label, m in payload["models"].items()}


def augment_pairs(payload: dict) -> list[dict]:
    """Each model trained with augmentation beside the same variant, steps and held-out sources
    trained without: ``{"variant", "plain", "augmented", "test": (plain, augmented),
    "held": (plain, augmented)}`` with limb P1 min in mm (held: over all held-out frames)."""
    models = payload["models"]
    out = []
    for aug_label, a in models.items():
        if not a.get("augment"):
            continue
        for plain_label, p in models.items():
            same = all(p.get(k) == a.get(k) for k in ("variant", "steps", "hold_out"))
            if same and not p.get("augment"):
                out.append({"variant": a.get("variant", "custom"), "plain": plain_label,
                            "augmented": aug_label,
                            "test": (p["sets"]["test split"]["limb_P1_min"],
                                     a["sets"]["test split"]["limb_P1_min"]),
                            "held": (_held_mean(p), _held_mean(a))})
                break
    return out


def heldout_text(payload: dict, with_command: bool = True) -> str:
    """What the table says, computed from it: each model's gap, which model travels best, and
    what augmentation changes; ``with_command``: end with the command that made the file."""
    gaps = heldout_gaps(payload)
    setup = payload["setup"]
    steps = sorted({m["steps"] for m in payload["models"].values()})
    parts = [f"Models trained without {', '.join(setup['hold_out'])} "
             f"({'/'.join(f'{s:,}' for s in steps)} steps at batch 64), scored on the test split "
             "of the clips they trained on and on every held-out source (same cameras, "
             f"simulator and seed; {setup['n_hypo']} hypotheses, float32)."]
    parts.append("On the held-out motion the limb-joint P1 min is " + "; ".join(
        f"{g:+.0f}% for {label}" for label, g in gaps.items()) + " against the test split "
        "(the goal: within +15%).")
    best = min(gaps, key=gaps.get)
    parts.append(f"The smallest gap is {best}'s.")
    parts += [_pair_sentence(pair, "held-out") for pair in augment_pairs(payload)]
    strengths = sorted({strength_of(m) for m in payload["models"].values()} - {0.0})
    if strengths == [1.0]:
        parts.append("Augmentation ran with its default settings (AugmentConfig(enabled=True)),"
                     " fixed before any held-out number existed; nothing was tuned on the "
                     "held-out sources.")
    elif strengths:
        parts.append("Augmentation strengths " + ", ".join(f"{x:g}" for x in strengths) +
                     " (AugmentConfig.at_strength; 1 is the default, fixed before any held-out "
                     "number existed, any other was chosen on a validation source of the "
                     "training clips); nothing was tuned on the held-out sources.")
    if with_command:
        parts.append(made_with(payload))
    return " ".join(p for p in parts if p)


def _pair_sentence(pair: dict, where: str) -> str:
    """What augmentation changes in one :func:`augment_pairs` pair, on ``where`` frames and on
    the test split."""
    (tp, ta), (hp, ha) = pair["test"], pair["held"]
    verdict = ("falls" if ha < hp else "does not fall")
    return (f"With pose augmentation ({pair['augmented']} against {pair['plain']}) the {where} "
            f"limb P1 min {verdict}: {hp:.1f} -> {ha:.1f} mm ({100 * (ha / hp - 1):+.0f}%), "
            f"and on the test split it moves {tp:.1f} -> {ta:.1f} mm "
            f"({100 * (ta / tp - 1):+.0f}%).")


def new_people_text(payload: dict, with_command: bool = True, where: bool = True) -> str:
    """What the new-people test (``heldout --new``, ``new_people.json``) says, computed from
    the file: who was scored, each model's gap to its test split, the lowest error there, the
    full model against argmax-only, what augmentation changes and (``--retarget``) how much of
    each gap the body and joint definition explain; ``where``: also :func:`where_text` (left
    out where a page shows it apart, after :func:`where_table`); ``with_command``: end with the
    command."""
    setup = payload["setup"]
    models = payload["models"]
    first = next(iter(models.values()))["sets"]
    new = [(name.removeprefix("new person: "), r["n"]) for name, r in first.items()
           if name.startswith("new person: ")]
    steps = sorted({m["steps"] for m in models.values()})
    held = list(setup.get("hold_out") or [])
    trained = ("trained without " + ", ".join(held)) if held else "trained on every clip"
    many = len(models) > 1
    parts = [f"The {f'{len(models)} models' if many else 'model'} {trained} "
             f"({'/'.join(f'{s:,}' for s in steps)} steps); {'each' if many else 'it'} is "
             "scored on the test split and on people no model trained on: "
             + ", ".join(f"{name} ({n} samples)" for name, n in new) + ". The people, their "
             "moves, the capture systems and the joint definitions all differ from the "
             "training clips (data/README.md); cameras, simulator and seed are the test "
             "split's "
             f"({setup['n_hypo']} hypotheses, float32)."]
    gaps = heldout_gaps(payload)
    parts.append("On the new people the limb-joint P1 min is " + "; ".join(
        f"{g:+.0f}% for {label}" for label, g in gaps.items()) + " against each model's test "
        "split (the goal: within +15%).")
    lows = {label: _held_mean(m) for label, m in models.items()}
    best = min(lows, key=lows.get)
    parts.append(f"The lowest new-people limb P1 min is {best}'s ({lows[best]:.1f} mm); the "
                 f"smallest gap is {min(gaps, key=gaps.get)}'s.")
    single = [label for label, m in models.items()
              if all(r["P1_min"] == r["P1_median"] for r in m["sets"].values())]
    if single:
        parts.append(f"One answer per image ({', '.join(single)}): there min and median are "
                     "that answer.")
    plain = {m.get("variant"): (label, m) for label, m in models.items() if not m.get("augment")}
    if "full" in plain and "argmax_only" in plain:
        (fl, f), (al, a) = plain["full"], plain["argmax_only"]
        parts.append(f"The paper's idea out of its domain ({fl} against {al}): "
                     f"{_held_mean(f):.1f} against {_held_mean(a):.1f} mm on the new people "
                     f"({100 * (_held_mean(f) / _held_mean(a) - 1):+.1f}%), "
                     f"{f['sets']['test split']['limb_P1_min']:.1f} against "
                     f"{a['sets']['test split']['limb_P1_min']:.1f} mm on the test split.")
    parts += [_pair_sentence(pair, "new-people") for pair in augment_pairs(payload)]
    if setup.get("retarget"):
        parts.append(_retarget_sentence(models))
    if where:
        parts.append(where_text(payload))
    if with_command:
        parts.append(made_with(payload))
    return " ".join(p for p in parts if p)


def where_rows(payload: dict) -> list[dict]:
    """Per model, where its new-people limb error lies (files from ``heldout`` since the
    image-plane/depth split; ``[]`` for older ones): ``{"model", "test": (plane, depth),
    "new": (plane, depth)`` mm, the best hypothesis' limb joints (``limb_xy_min``,
    ``limb_z_min``; new people sample-weighted over the as-captured sets), ``"n_new"``,
    ``"n_within"`` (new-people samples whose true pose is within the joint limits the pose
    augmentation keeps), ``"within"`` (their limb P1 min, None if none) and ``"test_limb"``,
    ``"new_limb"`` (limb P1 min, mm)}``."""
    rows = []
    for label, m in payload["models"].items():
        test = m["sets"]["test split"]
        if "limb_xy_min" not in test:
            return []
        new = [r for name, r in m["sets"].items()
               if name != "test split" and RETARGETED not in name]
        n_within = sum(r["n_within_limits"] for r in new)
        within = (sum(r["limb_P1_min_within_limits"] * r["n_within_limits"] for r in new
                      if r["n_within_limits"]) / n_within) if n_within else None
        rows.append({"model": label, "test": (test["limb_xy_min"], test["limb_z_min"]),
                     "new": (_held_mean(m, "limb_xy_min"), _held_mean(m, "limb_z_min")),
                     "n_new": sum(r["n"] for r in new), "n_within": n_within,
                     "within": within, "test_limb": test["limb_P1_min"],
                     "new_limb": _held_mean(m)})
    return rows


def where_table(payload: dict, caption: str = ""):
    """:func:`where_rows` as a :class:`Table` (None for a file without the split)."""
    from .tables import table
    rows = where_rows(payload)
    if not rows:
        return None

    def pair(test, new):
        return f"{test:.1f} -> {new:.1f} ({100 * (new / test - 1):+.0f}%)"

    body = [[r["model"], pair(r["test"][0], r["new"][0]), pair(r["test"][1], r["new"][1]),
             "" if r["within"] is None else pair(r["test_limb"], r["within"])]
            for r in rows]
    n = rows[0]
    return table(body, columns=["model", "image plane (mm)", "depth (mm)",
                                f"within the joint limits ({n['n_within']} of {n['n_new']})"],
                 caption=caption)


def _where_numbers(rows: list[dict]) -> tuple[list[float], list[float], list[float] | None]:
    """Per model of :func:`where_rows`: the image-plane and the depth error's growth (%), and
    the share of the gap (%) that the samples beyond the joint limits explain (None where
    every sample is within them)."""
    plane = [100.0 * (r["new"][0] / r["test"][0] - 1.0) for r in rows]
    depth = [100.0 * (r["new"][1] / r["test"][1] - 1.0) for r in rows]
    first = rows[0]
    if first["within"] is None or first["n_within"] == first["n_new"]:
        return plane, depth, None
    shares = []
    for r in rows:
        gap = r["new_limb"] - r["test_limb"]
        shares.append(100.0 * (r["new_limb"] - r["within"]) / gap if gap > 0 else 0.0)
    return plane, depth, shares


def where_summary(payload: dict) -> str:
    """One clause for a summary: the image-plane and depth error's growth over the models and
    the share of the gap the poses beyond the joint limits explain ("" for an older file)."""
    rows = where_rows(payload)
    if not rows:
        return ""
    plane, depth, shares = _where_numbers(rows)
    out = (f"the best hypothesis' image-plane error grows {min(plane):+.0f}% to "
           f"{max(plane):+.0f}% and its depth error {min(depth):+.0f}% to {max(depth):+.0f}%")
    if shares is not None:
        out += (f"; the poses beyond the augmentation's joint limits explain {min(shares):.0f}%"
                f" to {max(shares):.0f}% of the gaps")
    return out


def where_text(payload: dict) -> str:
    """What :func:`where_rows` says: how the image-plane and the depth error grow, and how
    much of the gap the poses beyond the joint limits explain ("" for an older file)."""
    rows = where_rows(payload)
    if not rows:
        return ""
    plane, depth, shares = _where_numbers(rows)
    first = rows[0]
    parts = [f"Where the error lies (the best hypothesis' limb joints, test split -> new "
             f"people): for {first['model']} the image-plane error goes {first['test'][0]:.1f}"
             f" -> {first['new'][0]:.1f} mm ({plane[0]:+.0f}%) and the depth error "
             f"{first['test'][1]:.1f} -> {first['new'][1]:.1f} mm ({depth[0]:+.0f}%)"
             + (f"; over the {len(rows)} models, image plane {min(plane):+.0f}% to "
                f"{max(plane):+.0f}%, depth {min(depth):+.0f}% to {max(depth):+.0f}%"
                if len(rows) > 1 else "")
             + "."]
    if min(plane) > 0:
        parts.append("The models follow the 2D evidence less on people they never saw.")
    if min(depth) > GAP_GOAL_PCT:
        parts.append(f"The depth error by itself grows at least {min(depth):.0f}%, more than "
                     f"the goal's +{GAP_GOAL_PCT:.0f}%, so matching the 2D joints better "
                     "cannot close the gap alone.")
    if shares is not None:
        parts.append(
            f"{first['n_new'] - first['n_within']} of {first['n_new']} new-people samples have "
            "a true pose beyond the joint limits that the pose augmentation keeps "
            "(anatomy.LIMITS_DEG), so the augmentation never proposes such a pose; on the other "
            f"{first['n_within']} the limb P1 min is {first['within']:.1f} mm for "
            f"{first['model']} ({100 * (first['within'] / first['test_limb'] - 1):+.0f}% "
            "against its test split): the poses beyond the limits explain "
            f"{min(shares):.0f}% to {max(shares):.0f}% of the models' gaps.")
    return " ".join(parts)


def _retarget_sentence(models: dict) -> str:
    """How much of each model's new-people gap the body and joint definition explain: the same
    frames and cameras with every bone at the training split's mean length."""
    rows = []
    for label, m in models.items():
        test, new = m["sets"]["test split"]["limb_P1_min"], _held_mean(m)
        moved = _held_mean(m, retargeted=True)
        share = 100.0 * (new - moved) / (new - test) if new > test else 0.0
        rows.append(f"{label} {new:.1f} -> {moved:.1f} mm ({share:.0f}% of its gap)")
    return ("On the training clips' bone lengths (the same frames, motion and cameras, every bone "
            "set to the training split's mean length, the heldout verb's retarget option) the "
            "new-people limb P1 min moves " + "; ".join(rows) + "; the rest of the gap is the "
            "motion and the joint definition's directions.")


def made_with(payload: dict) -> str:
    """"Made with `command`." (each command of the file, in order; "" if none)."""
    cmds = [c for c in (payload.get("commands") or [payload.get("command")]) if c]
    return ("Made with " + ", then ".join(f"`{c}`" for c in cmds) + ".") if cmds else ""


def strength_of(m: dict) -> float:
    """The augmentation strength of a results entry: 0 without augmentation, 1 (the default)
    where an augmented entry does not say."""
    if not m.get("augment"):
        return 0.0
    return float(m.get("augment_strength") or 1.0)


def _test_source_gap(heldout: dict | None) -> str:
    """", against +X% for the test sources (...)" from the unseen-motion file's plain full
    model, or "" when there is none."""
    if heldout is None:
        return ""
    plain = [label for label, m in heldout["models"].items()
             if m.get("variant") == "full" and not m.get("augment")]
    if not plain:
        return ""
    gap = heldout_gaps(heldout)[plain[0]]
    names = ", ".join(heldout["setup"]["hold_out"])
    return (f", against {gap:+.0f}% for the test sources ({names}; the plain full model of "
            "the unseen-motion test)")


def _strength_name(x: float) -> str:
    return "off" if x == 0 else f"{x:g}"


def validation_rows(payload: dict) -> list[dict]:
    """The augmentation-strength validation (a ``heldout`` file of models that also held out a
    validation source of the training clips, scored on it alone): per model, by budget, then
    weakest first, ``{"label", "steps", "strength", "test", "held", "gap"}`` with limb P1 min
    in mm on the test split and on the validation source, and the gap in %."""
    setup = payload["setup"]
    if not setup.get("unscored"):
        raise ValueError("a validation file holds models that also held out the real test "
                         "sources, left unscored (setup.unscored); this one names none: it is "
                         "the unseen-motion test itself, not a validation")
    rows = []
    for label, m in payload["models"].items():
        test, held = m["sets"]["test split"]["limb_P1_min"], _held_mean(m)
        rows.append({"label": label, "steps": int(m["steps"]), "strength": strength_of(m),
                     "test": test, "held": held, "gap": 100.0 * (held / test - 1.0)})
    return sorted(rows, key=lambda r: (r["steps"], r["strength"]))


def _sweep(rows: list[dict]) -> tuple[int, list[dict]]:
    """The budget of the sweep (the one with the most models; a tie: the shorter) and its
    rows; models at other budgets are follow-ups, not part of the rule."""
    counts: dict[int, int] = {}
    for r in rows:
        counts[r["steps"]] = counts.get(r["steps"], 0) + 1
    steps = min(counts, key=lambda s: (-counts[s], s))
    return steps, [r for r in rows if r["steps"] == steps]


def chosen_strength(payload: dict) -> float:
    """The rule fixed before the validation ran: among the sweep's models (:func:`_sweep`), the
    strength with the lowest limb P1 min on the validation source (0: no augmentation); a tie
    goes to the weaker."""
    return _lowest(_sweep(validation_rows(payload))[1])


def _lowest(rows: list[dict]) -> float:
    """The rule on ``rows``: the strength with the lowest validation-source limb P1 min (to
    0.1 mm), a tie to the weaker."""
    return min(rows, key=lambda r: (round(r["held"], 1), r["strength"]))["strength"]


def validation_table(payload: dict, caption: str = ""):
    """:func:`validation_rows` as a :class:`Table` (a steps column when budgets differ)."""
    from .tables import table
    held = ", ".join(payload["setup"]["hold_out"])
    rows = validation_rows(payload)
    budgets = len({r["steps"] for r in rows}) > 1
    body = [([f"{r['steps']:,}"] if budgets else []) +
            [_strength_name(r["strength"]), f"{r['test']:.1f}", f"{r['held']:.1f}",
             f"{r['gap']:+.0f}%"] for r in rows]
    # short headers (the table must fit a book column); the caption names the metric
    return table(body, columns=(["steps"] if budgets else []) +
                 ["strength", "test split (mm)", f"{held} (mm)", "gap"],
                 caption="limb P1 min" + (f"; {caption}" if caption else ""))


def validation_text(payload: dict, with_command: bool = True,
                    heldout: dict | None = None) -> str:
    """What the validation says and which strength it chose, computed from the file;
    ``heldout``: the unseen-motion test's file, to set the validation source's gap beside the
    test sources' (its plain full model)."""
    setup, every = payload["setup"], validation_rows(payload)
    steps, rows = _sweep(every)
    choice = _lowest(rows)                               # chosen_strength, rows at hand
    best = next(r for r in rows if r["strength"] == choice)
    parts = [f"To choose the augmentation strength without looking at the test sources, "
             f"{len(rows)} full models trained {steps:,} steps "
             f"without {', '.join(setup['unscored'])} (the test sources, left out and never "
             f"scored here) and without the validation source {', '.join(setup['hold_out'])}, "
             "one per strength (off, or AugmentConfig.at_strength), and were scored on the "
             "validation source and on the test split of the rest "
             f"({setup['n_test']} samples each, {setup['n_hypo']} hypotheses).",
             "The rule, fixed before they ran: the lowest limb P1 min on the validation source.",
             "Limb P1 min on the validation source: " + "; ".join(
                 f"{_strength_name(r['strength'])} {r['held']:.1f} mm "
                 f"({r['gap']:+.0f}% over the test split)" for r in rows) + ".",
             (f"The rule chooses strength {choice:g} ({best['held']:.1f} mm)." if choice else
              f"The rule chooses no augmentation ({best['held']:.1f} mm).")]
    for more in sorted({r["steps"] for r in every} - {steps}):
        later = [r for r in every if r["steps"] == more]
        before = {r["strength"]: r for r in rows}

        def moves(key: str) -> str:
            return "; ".join(f"{_strength_name(r['strength'])} " + (
                f"{before[r['strength']][key]:.1f} -> " if r["strength"] in before else "")
                + f"{r[key]:.1f} mm" for r in later)
        parts.append(f"Trained on to {more:,} steps (the same runs resumed; not part of the "
                     f"rule), on the validation source: {moves('held')}, and on the test "
                     f"split: {moves('test')}.")
        lowest = _lowest(later)
        parts.append(f"At {more:,} steps the lowest is {_strength_name(lowest)}"
                     + (", as at the sweep's budget." if lowest == choice else
                        f", not {_strength_name(choice)} as at {steps:,}: the choice depends on "
                        "the budget."))
    off = next((r for r in rows if r["strength"] == 0), None)
    strongest = rows[-1]                              # of the sweep
    if off is not None and strongest["strength"] > 0:
        parts.append(f"Two cautions on reading it. At {steps:,} steps augmentation also raises the "
                     f"test-split error ({off['test']:.1f} mm off, {strongest['test']:.1f} mm "
                     f"at strength {strongest['strength']:g}): the harder task is learnt more "
                     "slowly, so a short budget penalises it whatever the motion. And without "
                     f"augmentation the validation source is {off['gap']:+.0f}% over the test "
                     "split" + _test_source_gap(heldout) + ": it stands in for unseen "
                     "motion but is not the test sources. The rule stands "
                     "as it was fixed.")
    if with_command:
        parts.append(made_with(payload))
    return " ".join(p for p in parts if p)


def budget_rows(study: dict, photo: dict, test_set: str = "keep=0.5") -> list[dict]:
    """One entry per model of ``study`` (a ``study`` file) that ``photo`` (a ``realcheck`` file
    on the same files) also checked: whether it trained with augmentation, its steps, P1 min and
    median on ``test_set`` (all samples and the failed-limb ones), and on the photo the RMS
    (heatmap px) between BlazePose's joints and the reprojected medoid hypothesis, against the
    median of the same on the test split."""
    acc = study["accuracy"][test_set]
    out = []
    for m in study["setup"]["models"]:
        label = m["label"]
        if label not in photo["models"] or f"{label} (full)" not in acc:
            continue
        full, failed = acc[f"{label} (full)"], acc.get(f"{label} (failed limb)", {})
        check = photo["models"][label]
        out.append({"label": label, "augment": m.get("augment"), "steps": m["trained_steps"],
                    "P1_min": full["P1_min"], "P1_median": full["P1_median"],
                    "failed_P1_min": failed.get("P1_min"),
                    "failed_P1_median": failed.get("P1_median"),
                    "photo_px": check["photo"]["medoid_rms_px"],
                    "test_px": check["test"]["medoid_rms_px_vs_argmax"]["median"]})
    if len(out) < 2:
        raise ValueError(f"the study ({len(study['setup']['models'])} models) and the photo "
                         f"check ({len(photo['models'])}) share {len(out)} model(s): the "
                         "comparison needs two, named alike (run both on the same files)")
    return out


def budget_pair(study: dict, photo: dict, test_set: str = "keep=0.5") -> tuple[dict, dict]:
    """The :func:`budget_rows` of the model trained without augmentation and of the one trained
    with it, in that order; an error naming the files' models when either is missing."""
    rows = budget_rows(study, photo, test_set)
    plain = next((r for r in rows if not r["augment"]), None)
    aug = next((r for r in rows if r["augment"]), None)
    if plain is None or aug is None:
        raise ValueError("the comparison needs one model trained with augmentation and one "
                         f"without; the files hold {[r['label'] for r in rows]}")
    return plain, aug


def budget_table(study: dict, photo: dict, caption: str = "", test_set: str = "keep=0.5"):
    """:func:`budget_rows` as a :class:`Table`."""
    from .tables import table

    def mm(x):
        return "-" if x is None else f"{x:.1f}"
    rows = [[r["label"].split(" (")[0] + (", augmented" if r["augment"] else ""),
             "yes" if r["augment"] else "no", mm(r["P1_min"]), mm(r["P1_median"]),
             mm(r["failed_P1_min"]), mm(r["failed_P1_median"]), f"{r['photo_px']:.2f}",
             f"{r['test_px']:.2f}"]
            for r in sorted(budget_rows(study, photo, test_set),
                            key=lambda r: bool(r["augment"]))]   # the plain model first
    # short headers: the table must fit a book column (mm; px are heatmap pixels)
    return table(rows, columns=["model", "augmented", "P1 min", "P1 median",
                                "failed-limb P1 min", "failed-limb P1 median",
                                f"{photo['setup']['image']} RMS (px)", "test RMS (px)"],
                 caption=caption)


def budget_text(study: dict, photo: dict, test_set: str = "keep=0.5",
                with_command: bool = True) -> str:
    """What the comparison says, computed from the two files: the in-domain cost of
    augmentation at the same budget and what it changes on the photo."""
    plain, aug = budget_pair(study, photo, test_set)

    def pct(a, b):
        return f"{100 * (b / a - 1):+.0f}%"
    image = photo["setup"]["image"]
    n = study["test_sets"][test_set]["n"]
    parts = [f"Trained on every clip for {aug['steps']:,} steps with pose augmentation, the full "
             f"model's P1 min on the test split ({n:,} samples, {test_set}) moves "
             f"{plain['P1_min']:.1f} -> {aug['P1_min']:.1f} mm "
             f"({pct(plain['P1_min'], aug['P1_min'])}) and its P1 median "
             f"{plain['P1_median']:.1f} -> {aug['P1_median']:.1f} mm "
             f"({pct(plain['P1_median'], aug['P1_median'])}): that is the in-domain cost "
             "(negative: a gain)."]
    if plain["failed_P1_min"] is not None and aug["failed_P1_min"] is not None:
        parts.append(f"On the samples whose limb joints fail it moves "
                     f"{plain['failed_P1_min']:.1f} -> {aug['failed_P1_min']:.1f} mm.")
    better = "closer to" if aug["photo_px"] < plain["photo_px"] else "no closer to"
    parts.append(f"On the {image} photo the medoid hypothesis reprojects {plain['photo_px']:.2f}"
                 f" -> {aug['photo_px']:.2f} px RMS from BlazePose's joints ({better} them; the "
                 "goal: within 2.5 px), against a test-split median of "
                 f"{plain['test_px']:.2f} -> {aug['test_px']:.2f} px.")
    parts.append("This model saw every clip, so it has no held-out source; the unseen-motion "
                 "test above is the comparison at equal footing.")
    if with_command:
        cmds = study.get("commands") or [study.get("command")]
        parts.append("Made with " + ", ".join(f"`{c}`" for c in [*cmds, photo.get("command")]
                                             if c) + ".")
    return " ".join(parts)
