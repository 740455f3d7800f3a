"""The one argument parser of ``python -m dphelpers`` (:mod:`dphelpers.tools.cli` runs it):
every verb's options, the shared ones from :mod:`~dphelpers.tools.options`; the study verbs
(:data:`TOOL_VERBS`) declare theirs in their own module's ``add_arguments``.
"""
from __future__ import annotations

import argparse
import importlib
import textwrap
from pathlib import Path

from ..models.modelfiles import MODEL_NAMES
from ..training.train import DEFAULT_STEPS, PRECISIONS, TrainConfig
from . import options as o

__all__ = ["build_parser", "TOOL_VERBS", "DESCRIPTION", "EPILOG"]

DESCRIPTION = """\
DiffPose on the command line: evaluate the shipped models, train new ones, benchmark
them, lift the person in a photo to many 3D poses, build the book, sweep a notebook over
parameters.

Model files: run, evaluate, predict and bench read the shipped model of --model from
data/checkpoints/ (or the file given with --checkpoint); train writes runs/<stem>.pt and
resumes it, never a shipped model; export is the only verb that writes one."""

EPILOG = """\
Each verb has its own options: dphelpers VERB --help.  An expected error (missing or
corrupt file, bad image, bad argument) prints one line 'error: ...' and exits with
status 2; --debug shows its traceback instead."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown; an option whose default is None or False says its default in words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == []:
            return action.help or ""
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (status 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _verb(sub, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=textwrap.fill(description, 88),
                          formatter_class=_Formatter)


def _add_evaluating(sub) -> None:
    p = _verb(sub, "run", "the main job: the shipped model (trained only if there is no file), "
              "evaluated", "Load the shipped model of --model (or --checkpoint); only when no "
              "such file exists, train one into runs/<stem>.pt (or --checkpoint), resuming a "
              "partial run; then evaluate it on the held-out test split next to the mean-pose "
              "baseline, in float32 (--bf16: bfloat16 autocast).  Writes "
              "runs/run_<model file stem>.json.")
    o.reading(p), o.data(p), o.compute(p, "seed of the test-time sampling (and of training)")
    p.add_argument("--steps", type=o.positive, default=DEFAULT_STEPS,
                   help="training steps, used only when there is no model file to read")
    o.evaluation(p, None)
    p.add_argument("--bf16", action="store_true",
                   help="sample under bfloat16 autocast (faster; default float32, exact on any "
                        "CPU)")
    o.out_dir(p, "the results JSON (run_<model file stem>.json)")

    p = _verb(sub, "evaluate", "evaluate a model file on the held-out test split",
              "Evaluate the shipped model of --model (or --checkpoint) on the held-out test split "
              "next to the mean-pose baseline: P1/P2 min and median, PCK@150, CPS, ECE, on all "
              "samples and the ambiguous subset.  Float32 by default; --bf16 samples under "
              "bfloat16 autocast.  Writes runs/evaluate_<model file stem>.json.")
    o.reading(p), o.data(p), o.compute(p, "seed of the test-time sampling")
    o.evaluation(p, None)
    p.add_argument("--bf16", action="store_true",
                   help="sample under bfloat16 autocast (faster; default float32, exact on any "
                        "CPU)")
    o.out_dir(p, "the results JSON (evaluate_<model file stem>.json)")


def _add_train(sub) -> None:
    d = TrainConfig()
    p = _verb(sub, "train", "train a model into runs/ (resumes a partial run)",
              "Train --model into runs/diffpose_<model>.pt (runs/lifter.pt for the lifter) or "
              "--checkpoint, writing the whole training state every --ckpt-every steps; an "
              "existing training checkpoint there is resumed exactly.  A shipped model "
              "(data/checkpoints/) is never written: `export` makes one from the result.")
    p.add_argument("--model", default="full", type=o.model_list,
                   help="model to train, or several separated by commas (e.g. "
                        "argmax_only,no_transformer,lifter): they train together on one stream "
                        f"of batches, each into its own file; choose from {', '.join(MODEL_NAMES)}")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="training checkpoint to write and resume (default: "
                        "runs/diffpose_<model>.pt, runs/lifter.pt for the lifter; one model "
                        "only)")
    o.data(p), o.compute(p, "seed of the weights, the training data and dropout")
    p.add_argument("--steps", type=o.positive, default=d.steps,
                   help="optimisation steps in all (resumed ones included)")
    p.add_argument("--batch-size", type=o.positive, default=d.batch_size,
                   help="training samples per step (the paper's 64)")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="bf16: the forward pass under bfloat16 autocast (weights and Adam stay "
                        "float32); default: bf16 where this machine computes it natively "
                        f"(here: {d.precision})")
    p.add_argument("--lr", type=o.learning_rate, default=None,
                   help="Adam's learning rate: a number, or 'scaled' for the large-batch rule "
                        "1e-4 x batch / 64 (default: the model's own, 1e-4 for DiffPose, "
                        "1e-3 for the lifter)")
    p.add_argument("--warmup", type=int, default=d.warmup_steps,
                   help="steps of linear learning-rate warm-up (20 goes with --lr scaled at "
                        "large batches)")
    p.add_argument("--compile", action="store_true",
                   help="run the loss and its backward through torch.compile (the random draws "
                        "stay eager); the first steps wait for the compiler")
    p.add_argument("--graphs", action="store_true",
                   help="compile the whole step (loss, backward, clipping, Adam, EMA) in "
                        "torch.compile's reduce-overhead mode: CUDA graphs on a GPU (DiffPose "
                        "models, one process)")
    p.add_argument("--prefetch", action="store_true",
                   help="simulate the next batches in a background thread during the step (the "
                        "loss then draws from a generator of its own: another random stream)")
    p.add_argument("--stream-chunk", type=o.positive, default=d.stream_chunk,
                   help="batches simulated per call of the data stream (1: the shipped models' "
                        "stream; e.g. 16 on a GPU; must divide --ckpt-every and --steps)")
    p.add_argument("--ckpt-every", type=o.positive, default=d.ckpt_every,
                   help="steps between checkpoint writes")
    p.add_argument("--augment", action="store_true",
                   help="pose augmentation (dphelpers.augment: joint angles, body and limb "
                        "swaps, proportions, leaning and lying) on every training batch")
    p.add_argument("--augment-strength", type=o.positive_float, default=1.0,
                   help="with --augment: every probability and range of the transforms times "
                        "this (AugmentConfig.at_strength; default 1: the shipped model's)")
    p.add_argument("--hold-out", type=o.name_list, default=(),
                   help="comma-separated clip names or prefixes left out of training whole "
                        "(e.g. boxing,deepmimic): the unseen-motion test of `heldout`")
    p.add_argument("--force", action="store_true",
                   help="resume a checkpoint even though it was trained with another batch "
                        "size, seed, learning rate or precision (default: refuse, naming the "
                        "field)")
    p.add_argument("--keep-at", type=o.step_list, default=(),
                   help="comma-separated steps whose state is also kept in a file of its own "
                        "(CHECKPOINT.stepN.pt), e.g. 5000,10000,20000 for a learning curve")


def _add_bench(sub) -> None:
    from .measure import FEW_STEPS
    p = _verb(sub, "bench", "accuracy of the models side by side, and speed against the machine",
              "Accuracy: every --models entry evaluated on the same test samples in float32 "
              "(--bf16 adds bfloat16 rows), with twin coverage and reliability; it takes "
              "minutes and says how many before it starts.  Speed: sampling at each --batches "
              "size and training steps in fp32 and bf16 at batch 64 and 32, as a fraction of a "
              "same-shape matrix product.  Writes runs/bench.json (--out).")
    o.models(p)
    o.data(p), o.compute(p, "seed of the test-time sampling")
    o.evaluation(p, 600)
    p.add_argument("--batches", type=o.positive, nargs="+", default=[1, 8, 32],
                   help="images per batch for the sampling speed rows")
    p.add_argument("--train-steps", type=o.positive, default=20,
                   help="timed training steps per training speed row")
    p.add_argument("--few-step", type=o.step_list, default=FEW_STEPS,
                   help="comma-separated DDIM step counts (eta = 1) whose accuracy (full model) "
                        "and sampling speed are added; '' for none")
    p.add_argument("--e2e-batches", type=o.positive, nargs="+", default=[64],
                   help="batch sizes of the end-to-end training rows (a batch drawn from the "
                        "stream + the step: what `train` gets)")
    p.add_argument("--compile", action="store_true",
                   help="add compiled end-to-end rows (torch.compile of the loss) beside the "
                        "eager ones, same run")
    p.add_argument("--graphs", action="store_true",
                   help="add end-to-end rows with the whole step compiled in reduce-overhead "
                        "mode (TrainConfig.graphs: CUDA graphs on a GPU), and sampling rows at "
                        "the smallest and largest --batches with the sampler compiled as one "
                        "graph (samplegraphs), same run")
    p.add_argument("--prefetch", action="store_true",
                   help="add eager end-to-end rows with the stream simulating the next batch in "
                        "a background thread during the step (TrainConfig.prefetch), same run")
    p.add_argument("--skip-accuracy", action="store_true", help="only the speed part")
    p.add_argument("--skip-speed", action="store_true", help="only the accuracy part")
    p.add_argument("--bf16", action="store_true",
                   help="add bfloat16 autocast rows (accuracy of full, sampling speed); default "
                        "float32 only")
    p.add_argument("--out", type=Path, default=Path("runs") / "bench.json",
                   help="JSON file to write")


def _add_predict(sub) -> None:
    p = _verb(sub, "predict", "a photo -> BlazePose heatmaps -> many 3D hypotheses",
              "Find the person in a photo (BlazePose), make its 16 MPII heatmaps and draw "
              "--n-hypo 3D poses from them.  Sampling uses bfloat16 autocast where the CPU (or "
              "GPU) computes it natively; --fp32 turns it off.  Writes "
              "runs/predict_<image>_<model file stem>.npz and .html (interactive 3D).")
    p.add_argument("image", help="image file (jpg, png, ...), or 'astronaut' for "
                                 "scikit-image's sample photo")
    o.reading(p), o.compute(p, "seed of the hypotheses")
    p.add_argument("--n-hypo", type=o.positive, default=200, help="hypotheses to draw")
    p.add_argument("--fp32", action="store_true",
                   help="sample in float32 (default: bfloat16 autocast where native)")
    o.out_dir(p, "the hypotheses (npz) and the 3D figure (html)")


def _add_tools(sub) -> None:
    p = _verb(sub, "export", "a training checkpoint -> a small float16 model file (the only "
              "writer of shipped models)", "Write the raw weights of SOURCE (a training "
              "checkpoint or a model file) as float16, with the settings, the step and the loss "
              "log; no optimizer, no EMA (~23 MB for DiffPose instead of ~180 MB).")
    p.add_argument("source", type=Path, help="training checkpoint (or model file) to read")
    p.add_argument("dest", type=Path,
                   help="model file to write, e.g. data/checkpoints/diffpose_full.pt")
    p.add_argument("--force", action="store_true",
                   help="replace DEST even when it is a training checkpoint, another model or "
                        "not a model file (default: only an earlier export of the same model)")
    p = _verb(sub, "book", "execute the notebooks once (papermill) and build the HTML book",
              "Execute the chapter notebooks once with papermill and build the Jupyter Book "
              "(book/_build/html) from the executed copies.")
    p.add_argument("notebooks", nargs="*", default=None,
                   help="names like 01_data_and_skeletons (default: all chapters)")
    p.add_argument("--quick", action="store_true", help="run the notebooks with QUICK=True")
    p.add_argument("--no-execute", action="store_true",
                   help="build from the notebooks executed before")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel to execute with")
    p.add_argument("--executed-dir", type=Path, default=None,
                   help="folder for the executed notebooks (default: book/_build/executed)")
    from .sweep import add_sweep_parser
    add_sweep_parser(sub, formatter_class=_Formatter)


#: Tools that are verbs too: VERB -> (module of dphelpers.tools, one-line help).  The module
#: declares its own options in ``add_arguments(parser)`` (with :mod:`~dphelpers.tools.options`)
#: and does the work in ``run_verb(args)``; heavy dependencies are imported inside it.
TOOL_VERBS: dict[str, tuple[str, str]] = {
    "study": ("study", "score models on three test sets (the model study) and a learning curve"),
    "mechanism": ("mechanism", "per failed joint: best-of-N and median error, share within "
                               "100 mm, model by model"),
    "heldout": ("heldout", "score models trained with --hold-out on the clips they never saw"),
    "realcheck": ("realcheck", "how the hypotheses reproject onto a real photo's 2D joints, "
                               "against the test split"),
    "fewstep": ("fewstep", "accuracy and speed of few-step (DDIM) sampling"),
    "curves": ("curves", "training-loss curves of several runs (precision, seed, batch, rate)"),
    "labcheck": ("labcheck", "drive the pose explorer in JupyterLab with Chromium and keep "
                             "screenshots"),
}


def _add_tool_verbs(sub) -> None:
    for verb, (module, help) in TOOL_VERBS.items():
        mod = importlib.import_module(f"{__package__}.{module}")
        p = _verb(sub, verb, help, (mod.__doc__ or help).split("\n\n")[0])
        mod.add_arguments(p)
        for action in p._actions:          # say so where an option has no default to show
            if action.required and action.help and "default" not in action.help:
                action.help += " (required: no default)"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m dphelpers``: ``--debug`` and one subcommand per verb, each with
    its options; errors print one line and exit with status 2."""
    parser = _Parser(prog="dphelpers", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=_Formatter)
    parser.add_argument("--debug", action="store_true",
                        help="on an expected error, raise it with its traceback instead of "
                             "one 'error:' line")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB",
                                parser_class=_Parser)
    _add_evaluating(sub)
    _add_train(sub)
    _add_bench(sub)
    _add_predict(sub)
    _add_tools(sub)
    _add_export_onnx(sub)
    _add_tool_verbs(sub)
    return parser


def _add_export_onnx(sub) -> None:
    """``export-onnx`` and ``serve``: the book's in-browser model
    (:mod:`~dphelpers.tools.tryit`)."""
    from .tryit import add_parsers
    add_parsers(sub, formatter_class=_Formatter)
