"""dphelpers: the helper package of the DiffPose book.

Each module holds one concept of DiffPose (Holmquist & Wandt, ICCV 2023) and says
which notebook introduces it.  Importing the package does no work: import the
module you need, e.g. ``from dphelpers import diffusion`` or
``from dphelpers.training import train``.
"""
__version__ = "0.1.0"

#: The method and its data, flat at the top; they import nothing from the subpackages.
__all__ = [
    "skeleton", "data", "cameras", "heatmaps", "failures", "pckh", "h36ma", "candidates",
    "embedding", "denoiser", "schedule", "diffusion", "lifter", "metrics", "pipeline", "augment",
    "anatomy", "calibration", "viz", "vizcore", "configs", "precision", "targets", "files",
    "params", "quiet",
    # subpackages: training, model files, evaluation, data loaders, the detector, tooling
    "training", "models", "evaluation", "datasets", "detector", "tools",
]
