"""The study's test sets: one per kept-mode share, the same poses, cameras and failures
(notebook 05).

A heatmap failure of the simulator (v2) moves a joint's mode away from the truth; in a share
``p_keep_true_mode`` of the failures a weaker second mode stays at the truth, which is what
sampling the heatmaps can use.  The sets built here differ only in that share, so a model's
gain from one to the next is the mechanism at work (the ``study`` and ``mechanism`` verbs).
"""
from __future__ import annotations

__all__ = ["KEEP_MODES", "build_test_sets", "describe"]


KEEP_MODES: tuple[float, ...] = (0.0, 0.5, 1.0)


def _keep_key(p: float) -> str:
    return f"keep={p:g}"


def build_test_sets(test_m, n_test: int | None, keep_modes=KEEP_MODES, seed: int = 1234,
                    simulator: str | None = None) -> dict:
    """``{"keep=0.5": SampleBatch, ...}``: one test set per kept-mode share, same poses,
    cameras and failures (the default simulator preset unless ``simulator`` names one)."""
    from ..heatmaps import DEFAULT_PRESET, HeatmapConfig
    from ..pipeline import make_test_set
    if not keep_modes:
        raise ValueError("build_test_sets: give at least one kept-mode share")
    preset = simulator or DEFAULT_PRESET
    return {_keep_key(p): make_test_set(test_m, n_test, seed=seed, heatmap_config=HeatmapConfig
                                        .preset(preset, p_keep_true_mode=float(p)))
            for p in keep_modes}


def describe(test) -> dict:
    """Sizes of a test set and of its subsets."""
    return {"n": len(test), "n_ambiguous": int(test.ambiguous.sum()),
            "n_failed_limb": int(test.failed_limb_sample.sum()),
            "failed_joint_pct": 100.0 * float(test.failed_joints.float().mean())}
