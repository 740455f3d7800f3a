"""dphelpers: the helper package of the DiffPose book.

Each module holds one concept of DiffPose (Holmquist & Wandt, ICCV 2023) and says
which notebook introduces it.  Importing the package does no work: import the
module you need, e.g. ``from dphelpers import diffusion``.
"""
__version__ = "0.1.0"

__all__ = [
    "skeleton", "data", "cameras", "heatmaps", "sampling", "embedding", "denoiser",
    "schedule", "diffusion", "checkpoint", "pipeline", "train", "metrics", "evaluate", "viz",
    "twins", "coverage", "trainstate", "modelfiles", "lifter", "tables", "calibration", "failures",
    "h36ma", "pckh", "params", "results", "vizcore", "vizpages", "datasets", "detector", "tools",
]
