"""Options shared by every verb of ``python -m dphelpers`` (one parser, one meaning).

Argument types (an argparse error names the value and what was expected) and the option
groups verbs have in common: where to compute (``--device --seed --threads --quiet``), which
model to read, which data, how many test samples and hypotheses, which models to compare.
The verbs are declared in :mod:`dphelpers.tools.cli`; a tool module adds its own options in
``add_arguments(parser)`` with these helpers.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..models.modelfiles import MODEL_NAMES, SHIPPED_NAMES

__all__ = ["positive", "positive_float", "device", "learning_rate", "model_list", "name_list",
           "step_list", "compute", "reading", "data", "evaluation", "out_dir", "models"]

def positive(text: str) -> int:
    """Argument type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """Argument type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def device(text: str) -> str:
    """Argument type: a torch device this machine has (cpu, cuda[:i] or mps), returned as given."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (e.g. cpu, cuda, "
                                         "cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: Apple's MPS is not available on this machine")
    if device.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{text!r}: the models run on cpu or cuda (or mps), "
                                         f"not on {device.type!r}")
    if device.type == "cuda" and device.index is not None \
            and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has "
                                         f"{torch.cuda.device_count()} CUDA device(s)")
    return text


def compute(p: argparse.ArgumentParser, seed_help: str) -> None:
    """Add where to compute: ``--device``, ``--seed`` (described by ``seed_help``),
    ``--threads`` and ``--quiet``."""
    p.add_argument("--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (cuda when present, else cpu)")
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--threads", type=positive, default=None,
                   help="CPU threads for PyTorch (default: PyTorch's choice, one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def reading(p: argparse.ArgumentParser) -> None:
    """Add which model file a reading verb loads: ``--model`` and ``--checkpoint``."""
    p.add_argument("--model", default="full", choices=MODEL_NAMES,
                   help="model to read: its shipped file data/checkpoints/<stem>.pt (stem "
                        "diffpose_<model>, or lifter); ignored with --checkpoint")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="model file to read instead (default: the shipped model of --model); "
                        "the file says which model it holds")


def data(p: argparse.ArgumentParser) -> None:
    """Add ``--data``, the mocap npz (default: the embedded one)."""
    p.add_argument("--data", type=Path, default=None,
                   help="mocap npz to split into training and test clips (default: the "
                        "embedded data/mocap_h36m17.npz)")


def evaluation(p: argparse.ArgumentParser, n_test: int | None) -> None:
    """Add ``--n-hypo``, ``--n-test`` (default ``n_test``; None: the whole test split) and
    ``--eval-batch``."""
    p.add_argument("--n-hypo", type=positive, default=200,
                   help="hypotheses per test sample (the paper's 200)")
    p.add_argument("--n-test", type=positive, default=n_test,
                   help="test samples, evenly spaced over the held-out clips (default: all of "
                        "them)" if n_test is None else "test samples for the accuracy table")
    p.add_argument("--eval-batch", type=positive, default=8,
                   help="test images sampled together (all their hypotheses as one tensor)")


def out_dir(p: argparse.ArgumentParser, what: str) -> None:
    """Add ``--out``, the folder for ``what`` (default ``runs``)."""
    p.add_argument("--out", type=Path, default=Path("runs"), help=f"folder for {what}")


def learning_rate(text: str) -> float | str:
    """Argument type of ``train --lr``: a finite number > 0, or ``"scaled"`` (the large-batch
    rule, :func:`~dphelpers.training.config.scaled_lr`)."""
    if text.strip().lower() == "scaled":
        return "scaled"
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'scaled', "
                                         f"got {text!r}") from None


def model_list(text: str) -> tuple[str, ...]:
    """Argument type: comma-separated model names from :data:`MODEL_NAMES`, none twice."""
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [n for n in names if n not in MODEL_NAMES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"unknown model {', '.join(map(repr, bad or [text]))}; "
                                         f"choose from {', '.join(MODEL_NAMES)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a model is named twice in {text!r}")
    return names


def name_list(text: str) -> tuple[str, ...]:
    """Argument type: comma-separated clip names or prefixes (``--hold-out``), at least one."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated clip names, got {text!r}")
    return names


def step_list(text: str) -> tuple[int, ...]:
    """Argument type: comma-separated step counts >= 1 (``--keep-at``, ``--few-step``); an
    empty string gives ``()``."""
    try:
        steps = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated step counts such as "
                                         f"5000,10000, got {text!r}") from None
    if any(s < 1 for s in steps):
        raise argparse.ArgumentTypeError(f"steps must be >= 1, got {text!r}")
    return steps


def models(p: argparse.ArgumentParser, what: str = "models to compare") -> None:
    """``--models NAME[=PATH] ...``: a name reads its shipped file, NAME=PATH that file."""
    from .modelref import model_entry
    p.add_argument("--models", nargs="+", type=model_entry, default=None, metavar="NAME[=PATH]",
                   help=f"{what}: a name (its shipped file) or NAME=PATH (that file, which must "
                        f"hold model NAME); names: {', '.join(MODEL_NAMES)} (default: the "
                        f"shipped ones present of {', '.join(SHIPPED_NAMES)})")
