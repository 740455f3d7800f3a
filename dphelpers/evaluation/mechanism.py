"""The mechanism, measured where it acts: per-joint errors of failed vs other joints (notebook 05).

P1 averages 17 joints, but sampling the heatmaps (the paper's idea) can only help a joint
whose heatmap argmax is wrong while a weaker mode still sits at the truth.  This module
scores hypotheses *joint by joint*, split by the test set's per-joint failure flags:

- ``best_mm``: the joint's best-of-N error, the minimum over hypotheses of that joint's
  distance to the truth (each joint picks its own best hypothesis, unlike P1's best pose);
- ``median_mm``: the median over hypotheses of the same distance;
- ``within``: the share of hypotheses that put the joint within ``radius_mm`` (100 mm).

Poses are root-relative first (pelvis = hip midpoint, :func:`dphelpers.metrics.root_relative`).
Failure flags come in MPII order ``(b, 16)`` (the heatmaps'); :func:`flags_to_h36m` moves them
to Human3.6M-17, where the Neck/Nose has no heatmap (never flagged) and the pelvis has zero
error by construction (left out of every group).  :func:`collect` runs a model over a test
set with the draws of :func:`dphelpers.evaluation.evaluate.evaluate` (same seed, same batches)
but keeps only these per-joint numbers; :func:`summarise` gives one row per joint group and status.
The figure of one failed wrist is in :mod:`dphelpers.evaluation.vizmechanism`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from tqdm.auto import tqdm

from .. import metrics
from ..skeleton import H36M_TO_MPII, N_H36M, N_MPII
from .tables import Table, table

__all__ = ["JOINT_GROUPS", "ALL", "STATUSES", "RADIUS_MM", "MechanismConfig", "JointStats",
           "flags_to_h36m", "joint_stats", "collect", "summarise", "headline_rows",
           "group_table", "headline_table", "headline_sentence"]

#: Human3.6M-17 joints of each group (both sides together); the Neck/Nose (9) has no
#: heatmap and the pelvis (0) no error, so neither is in a group.
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "head": (10,), "shoulders": (11, 14), "elbows": (12, 15), "wrists": (13, 16),
    "hips": (1, 4), "knees": (2, 5), "ankles": (3, 6), "torso": (7, 8),
}
#: ``"all"`` pools every grouped joint.
ALL = "all"
STATUSES: tuple[str, ...] = ("failed", "not failed")
RADIUS_MM = 100.0


@dataclass(frozen=True)
class MechanismConfig:
    """How :func:`collect` samples: ``n_hypo`` hypotheses per image (a single-hypothesis
    model gets one), ``batch_size`` images at a time, ``seed`` of the generator, and the
    ``radius_mm`` of the within-share (the tables' column names assume the default 100)."""

    n_hypo: int = 200
    batch_size: int = 8
    seed: int = 0
    radius_mm: float = RADIUS_MM

    def __post_init__(self) -> None:
        for name in ("n_hypo", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MechanismConfig.{name} must be an int >= 1, got {value!r}")
        if not self.radius_mm > 0:
            raise ValueError(f"MechanismConfig.radius_mm must be > 0, got {self.radius_mm}")

    @classmethod
    def from_dict(cls, d: dict) -> "MechanismConfig":
        """The config from a dict of field values; an unknown key is a ``ValueError`` naming it."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"MechanismConfig has no field(s) {unknown}")
        return cls(**d)


@dataclass
class JointStats:
    """Per-sample, per-joint numbers, all ``(b, 17)``: ``best_mm``, ``median_mm``, ``within``
    (share in [0, 1]); ``failed`` and ``kept`` (bool, Human3.6M order): the joint's argmax
    fails PCKh@0.5 / a weaker mode stays at the truth.  ``n_hypo``: hypotheses per sample."""

    best_mm: torch.Tensor
    median_mm: torch.Tensor
    within: torch.Tensor
    failed: torch.Tensor
    kept: torch.Tensor
    n_hypo: int

    def __len__(self) -> int:
        return self.best_mm.shape[0]


def flags_to_h36m(flags_mpii: torch.Tensor) -> torch.Tensor:
    """Per-joint flags ``(b, 16)`` MPII order -> ``(b, 17)`` Human3.6M order (Neck/Nose False)."""
    if flags_mpii.ndim != 2 or flags_mpii.shape[1] != N_MPII:
        raise ValueError(f"flags_to_h36m: flags have shape {tuple(flags_mpii.shape)}, "
                         f"expected (b, {N_MPII}) in MPII order")
    out = torch.zeros(flags_mpii.shape[0], N_H36M, dtype=torch.bool, device=flags_mpii.device)
    out[:, list(H36M_TO_MPII)] = flags_mpii.bool()
    return out


def joint_stats(pred_mm: torch.Tensor, gt_mm: torch.Tensor, radius_mm: float = RADIUS_MM
                ) -> dict[str, torch.Tensor]:
    """``pred_mm: (b, h, 17, 3)``, ``gt_mm: (b, 17, 3)`` -> ``best_mm``, ``median_mm``,
    ``within``, each ``(b, 17)``, on root-relative poses."""
    if pred_mm.ndim != 4 or gt_mm.ndim != 3:
        raise ValueError(f"joint_stats: pred_mm {tuple(pred_mm.shape)} must be (b, h, 17, 3) "
                         f"and gt_mm {tuple(gt_mm.shape)} (b, 17, 3)")
    rr = metrics.root_relative
    err = metrics.per_joint_error(rr(pred_mm), rr(gt_mm))                   # (b, h, 17)
    return {"best_mm": err.amin(dim=1), "median_mm": torch.quantile(err, 0.5, dim=1),
            "within": (err < radius_mm).float().mean(dim=1)}


def collect(model, test, config: MechanismConfig = MechanismConfig(),
            progress: bool = False) -> JointStats:
    """Sample ``model`` on every image of ``test`` (a :class:`~dphelpers.pipeline.SampleBatch`)
    and keep :func:`joint_stats` with the test set's flags.  Float32; with the same seed and
    batch size the hypotheses are those of :func:`dphelpers.evaluation.evaluate.evaluate`.  A
    single-hypothesis model (``kind == "lifter"``) is sampled once per image."""
    if len(test) == 0:
        raise ValueError("collect: the test set holds no sample")
    n_hypo = 1 if getattr(model, "kind", "diffpose") == "lifter" else config.n_hypo
    model.eval()
    gen = torch.Generator(device=model.device).manual_seed(config.seed)
    parts = []
    for i in tqdm(range(0, len(test), config.batch_size), disable=not progress,
                  desc=f"mechanism x{n_hypo}"):
        sl = slice(i, i + config.batch_size)
        pred = model.sample(test.heatmaps[sl].to(model.device), n_hypo, generator=gen,
                            autocast_dtype=None).cpu()
        parts.append(joint_stats(pred, test.poses_3d_mm[sl].cpu(), config.radius_mm))
    cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return JointStats(**cat, failed=flags_to_h36m(test.failed_joints.cpu()),
                      kept=flags_to_h36m(test.kept_true_mode.cpu()), n_hypo=n_hypo)


def summarise(stats: JointStats) -> list[dict]:
    """One row per joint group (and ``"all"``) and status: ``group``, ``status``,
    ``n_joints`` (joint instances), ``n_kept`` (of them, with a mode kept at the truth),
    ``best_mm``, ``median_mm`` (means over the instances) and ``within_pct``.  A group and
    status without any joint gets ``n_joints = 0`` and NaN metrics."""
    rows = []
    groups = {**JOINT_GROUPS, ALL: tuple(j for g in JOINT_GROUPS.values() for j in g)}
    for name, joints in groups.items():
        sel = torch.zeros_like(stats.failed)
        sel[:, list(joints)] = True
        for status in STATUSES:
            mask = sel & (stats.failed if status == "failed" else ~stats.failed)
            n = int(mask.sum())
            mean = (lambda x: float(x[mask].mean())) if n else (lambda x: float("nan"))
            rows.append({"group": name, "status": status, "n_joints": n,
                         "n_kept": int((mask & stats.kept).sum()),
                         "best_mm": mean(stats.best_mm), "median_mm": mean(stats.median_mm),
                         "within_pct": 100.0 * mean(stats.within)})
    return rows


def _row(rows: list[dict], group: str, status: str) -> dict:
    for r in rows:
        if r["group"] == group and r["status"] == status:
            return r
    raise KeyError(f"no row for group {group!r}, status {status!r}")


def headline_rows(results: dict[str, list[dict]], group: str = ALL) -> list[dict]:
    """``results``: model -> :func:`summarise` rows.  One row per status and model of
    ``group``: status, model, joints, best, median, within (the headline table's rows)."""
    return [{"joints": f"{group}, {status}", "model": model,
             "n": _row(rows, group, status)["n_joints"],
             "best-of-N (mm)": round(_row(rows, group, status)["best_mm"], 1),
             "median (mm)": round(_row(rows, group, status)["median_mm"], 1),
             "within 100 mm (%)": round(_row(rows, group, status)["within_pct"], 1)}
            for status in STATUSES for model, rows in results.items()]


def headline_table(results: dict[str, list[dict]], group: str = ALL, caption: str = ""
                   ) -> Table:
    """Failed vs not-failed joints of ``group``, model by model, as a :class:`Table`."""
    return table(headline_rows(results, group), caption=caption)


def group_table(results: dict[str, list[dict]], metric: str = "best_mm", caption: str = ""
                ) -> Table:
    """One row per joint group and status, one column per model: ``metric`` (``best_mm``,
    ``median_mm`` or ``within_pct``), with the number of joint instances."""
    if metric not in ("best_mm", "median_mm", "within_pct"):
        raise ValueError(f"group_table: metric must be best_mm, median_mm or within_pct, "
                         f"got {metric!r}")
    first = next(iter(results.values()))
    out = []
    for r in first:
        row = {"group": r["group"], "status": r["status"], "n": r["n_joints"]}
        for model, rows in results.items():
            value = _row(rows, r["group"], r["status"])[metric]
            row[model] = None if value != value else round(value, 1)
        out.append(row)
    return table(out, caption=caption)


def headline_sentence(results: dict[str, list[dict]], model: str = "full",
                      other: str = "argmax_only", group: str = ALL) -> str:
    """The finding in words, every number read from ``results``."""
    f, o = _row(results[model], group, "failed"), _row(results[other], group, "failed")
    nf, no = (_row(results[model], group, "not failed"),
              _row(results[other], group, "not failed"))
    change = 100.0 * (f["best_mm"] - o["best_mm"]) / o["best_mm"]
    return (f"On the {f['n_joints']:,} failed joints ({group}), the best-of-N error is "
            f"{f['best_mm']:.1f} mm for {model} against {o['best_mm']:.1f} mm for {other} "
            f"({change:+.0f}%); the median is {f['median_mm']:.1f} against "
            f"{o['median_mm']:.1f} mm, and {f['within_pct']:.0f}% against "
            f"{o['within_pct']:.0f}% of the hypotheses put the joint within 100 mm. On the "
            f"{nf['n_joints']:,} joints that did not fail the best-of-N errors are "
            f"{nf['best_mm']:.1f} and {no['best_mm']:.1f} mm.")
