"""Command line: ``python -m dphelpers VERB`` (or the ``dphelpers`` script).

Verbs: ``run`` (the main job: the shipped model, trained only when there is no file,
evaluated against the mean-pose baseline), ``train``, ``evaluate``, ``bench``, ``predict``,
``export``, ``book``, ``sweep``.  This module is the parser and the error handling; the work
is in :mod:`~dphelpers.tools.verbs`, :mod:`~dphelpers.tools.benchcli`,
:mod:`~dphelpers.tools.book` and :mod:`~dphelpers.tools.sweep`.  Which model file a verb
reads or writes is :mod:`dphelpers.modelfiles`' rule.

An expected error (a missing or unreadable file, a bad image, no person found, a corrupt or
foreign model file, a bad argument, a value our own checks refuse) prints ONE line
``error: ...`` on stderr and exits with status 2; ``dphelpers --debug VERB ...`` raises it
instead, with its traceback.  Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import torch

from ..checkpoint import CheckpointError
from ..files import FileLocked, check_destination
from ..modelfiles import MODEL_NAMES, SHIPPED_NAMES
from ..train import DEFAULT_STEPS, PRECISIONS, TrainConfig

__all__ = ["main", "build_parser", "EXPECTED_ERRORS", "one_line"]

#: What a user can cause; everything else is a programming error and keeps its traceback.
EXPECTED_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError,
                   PermissionError, CheckpointError, ValueError, KeyError, FileLocked)

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


def one_line(err: BaseException) -> str:
    """An exception's message on one line (a KeyError's without the quotes ``str`` adds)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(text.split()) or type(err).__name__


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _device(text: str) -> str:
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


def _verb(sub, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=textwrap.fill(description, 88),
                          formatter_class=_Formatter)


def _compute(p: argparse.ArgumentParser, seed_help: str) -> None:
    p.add_argument("--device", type=_device, default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (cuda when present, else cpu)")
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--threads", type=_positive, default=None,
                   help="CPU threads for PyTorch (default: PyTorch's choice, one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _reading(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="full", choices=MODEL_NAMES,
                   help="model to read: its shipped file data/checkpoints/<stem>.pt (stem "
                        "diffpose_<model>, or lifter); ignored with --checkpoint")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="model file to read instead (default: the shipped model of --model); "
                        "the file says which model it holds")


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None,
                   help="mocap npz to split into training and test clips (default: the "
                        "embedded data/mocap_h36m17.npz)")


def _evaluation(p: argparse.ArgumentParser, n_test: int | None) -> None:
    p.add_argument("--n-hypo", type=_positive, default=200,
                   help="hypotheses per test sample (the paper's 200)")
    p.add_argument("--n-test", type=_positive, default=n_test,
                   help="test samples, evenly spaced over the held-out clips (default: all of "
                        "them)" if n_test is None else "test samples for the accuracy table")
    p.add_argument("--eval-batch", type=_positive, default=8,
                   help="test images sampled together (all their hypotheses as one tensor)")


def _out_dir(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", type=Path, default=Path("runs"), help=f"folder for {what}")


def _add_evaluating(sub) -> None:
    p = _verb(sub, "run", "the main job: the shipped model (trained only if there is no file), "
              "evaluated", "Load the shipped model of --model (or --checkpoint); only when no "
              "such file exists, train one into runs/<stem>.pt (or --checkpoint), resuming a "
              "partial run; then evaluate it on the held-out test split next to the mean-pose "
              "baseline, in float32 (--bf16: bfloat16 autocast).  Writes "
              "runs/run_<model file stem>.json.")
    _reading(p), _data(p), _compute(p, "seed of the test-time sampling (and of training)")
    p.add_argument("--steps", type=_positive, default=DEFAULT_STEPS,
                   help="training steps, used only when there is no model file to read")
    _evaluation(p, None)
    p.add_argument("--bf16", action="store_true",
                   help="sample under bfloat16 autocast (faster; default float32, exact on any "
                        "CPU)")
    _out_dir(p, "the results JSON (run_<model file stem>.json)")

    p = _verb(sub, "evaluate", "evaluate a model file on the held-out test split",
              "Evaluate the shipped model of --model (or --checkpoint) on the held-out test split "
              "next to the mean-pose baseline: P1/P2 min and median, PCK@150, CPS, ECE, on all "
              "samples and the ambiguous subset.  Float32 by default; --bf16 samples under "
              "bfloat16 autocast.  Writes runs/evaluate_<model file stem>.json.")
    _reading(p), _data(p), _compute(p, "seed of the test-time sampling")
    _evaluation(p, None)
    p.add_argument("--bf16", action="store_true",
                   help="sample under bfloat16 autocast (faster; default float32, exact on any "
                        "CPU)")
    _out_dir(p, "the results JSON (evaluate_<model file stem>.json)")


def _add_train(sub) -> None:
    d = TrainConfig()
    p = _verb(sub, "train", "train a model into runs/ (resumes a partial run)",
              "Train --model into runs/diffpose_<model>.pt (runs/lifter.pt for the lifter) or "
              "--checkpoint, writing the whole training state every --ckpt-every steps; an "
              "existing training checkpoint there is resumed exactly.  A shipped model "
              "(data/checkpoints/) is never written: `export` makes one from the result.")
    p.add_argument("--model", default="full", type=_model_list,
                   help="model to train, or several separated by commas (e.g. "
                        "argmax_only,no_transformer,lifter): they train together on one stream "
                        f"of batches, each into its own file; choose from {', '.join(MODEL_NAMES)}")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="training checkpoint to write and resume (default: "
                        "runs/diffpose_<model>.pt, runs/lifter.pt for the lifter; one model "
                        "only)")
    _data(p), _compute(p, "seed of the weights, the training data and dropout")
    p.add_argument("--steps", type=_positive, default=d.steps,
                   help="optimisation steps in all (resumed ones included)")
    p.add_argument("--batch-size", type=_positive, default=d.batch_size,
                   help="training samples per step (the paper's 64)")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="bf16: the forward pass under bfloat16 autocast (weights and Adam stay "
                        "float32); default: bf16 where this machine computes it natively "
                        f"(here: {d.precision})")
    p.add_argument("--lr", type=_learning_rate, default=None,
                   help="Adam's learning rate: a number, or 'scaled' for the large-batch rule "
                        "1e-4 x sqrt(batch / 64) (default: the model's own, 1e-4 for DiffPose, "
                        "1e-3 for the lifter)")
    p.add_argument("--warmup", type=int, default=d.warmup_steps,
                   help="steps of linear learning-rate warm-up (500 goes with --lr scaled at "
                        "large batches)")
    p.add_argument("--compile", action="store_true",
                   help="run the loss and its backward through torch.compile (the random draws "
                        "stay eager); the first steps wait for the compiler")
    p.add_argument("--stream-chunk", type=_positive, default=d.stream_chunk,
                   help="batches simulated per call of the data stream (1: the shipped models' "
                        "stream; e.g. 16 on a GPU; must divide --ckpt-every and --steps)")
    p.add_argument("--ckpt-every", type=_positive, default=d.ckpt_every,
                   help="steps between checkpoint writes")
    p.add_argument("--augment", action="store_true",
                   help="pose augmentation (dphelpers.augment: joint angles, body and limb "
                        "swaps, proportions, leaning and lying) on every training batch")
    p.add_argument("--hold-out", type=_name_list, default=(),
                   help="comma-separated clip names or prefixes left out of training whole "
                        "(e.g. boxing,deepmimic): the unseen-motion test of `heldout`")
    p.add_argument("--force", action="store_true",
                   help="resume a checkpoint even though it was trained with another batch "
                        "size, seed, learning rate or precision (default: refuse, naming the "
                        "field)")
    p.add_argument("--keep-at", type=_step_list, default=(),
                   help="comma-separated steps whose state is also kept in a file of its own "
                        "(CHECKPOINT.stepN.pt), e.g. 5000,10000,20000 for a learning curve")


def _learning_rate(text: str) -> float | str:
    if text.strip().lower() == "scaled":
        return "scaled"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'scaled', got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'scaled', got {text!r}")
    return value


def _model_list(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [n for n in names if n not in MODEL_NAMES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"unknown model {', '.join(map(repr, bad or [text]))}; "
                                         f"choose from {', '.join(MODEL_NAMES)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a model is named twice in {text!r}")
    return names


def _name_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated clip names, got {text!r}")
    return names


def _step_list(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated step counts such as "
                                         f"5000,10000, got {text!r}") from None
    if any(s < 1 for s in steps):
        raise argparse.ArgumentTypeError(f"steps must be >= 1, got {text!r}")
    return steps


def _add_bench(sub) -> None:
    from .bench import FEW_STEPS
    from .modelref import model_entry
    p = _verb(sub, "bench", "accuracy of the models side by side, and speed against the machine",
              "Accuracy: every --models entry evaluated on the same test samples in float32 "
              "(--bf16 adds bfloat16 rows), with twin coverage and reliability; it takes "
              "minutes and says how many before it starts.  Speed: sampling at each --batches "
              "size and training steps in fp32 and bf16 at batch 64 and 32, as a fraction of a "
              "same-shape matrix product.  Writes runs/bench.json (--out).")
    p.add_argument("--models", nargs="+", type=model_entry, default=None, metavar="NAME[=PATH]",
                   help="models to compare: a name (its shipped file) or NAME=PATH (that file, "
                        f"which must hold model NAME); names: {', '.join(MODEL_NAMES)} "
                        f"(default: the shipped ones present of {', '.join(SHIPPED_NAMES)})")
    _data(p), _compute(p, "seed of the test-time sampling")
    _evaluation(p, 600)
    p.add_argument("--batches", type=_positive, nargs="+", default=[1, 8, 32],
                   help="images per batch for the sampling speed rows")
    p.add_argument("--train-steps", type=_positive, default=20,
                   help="timed training steps per training speed row")
    p.add_argument("--few-step", type=_step_list, default=FEW_STEPS,
                   help="comma-separated DDIM step counts (eta = 1) whose accuracy (full model) "
                        "and sampling speed are added; '' for none")
    p.add_argument("--e2e-batches", type=_positive, nargs="+", default=[64],
                   help="batch sizes of the end-to-end training rows (a batch drawn from the "
                        "stream + the step: what `train` gets)")
    p.add_argument("--compile", action="store_true",
                   help="add compiled end-to-end rows (torch.compile of the loss) beside the "
                        "eager ones, same run")
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
    _reading(p), _compute(p, "seed of the hypotheses")
    p.add_argument("--n-hypo", type=_positive, default=200, help="hypotheses to draw")
    p.add_argument("--fp32", action="store_true",
                   help="sample in float32 (default: bfloat16 autocast where native)")
    _out_dir(p, "the hypotheses (npz) and the 3D figure (html)")


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


def build_parser() -> argparse.ArgumentParser:
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
    return parser


def _add_export_onnx(sub) -> None:
    """``export-onnx`` and ``serve``: the book's in-browser model (:mod:`~dphelpers.tools.tryit`)."""
    from .tryit import add_parsers
    add_parsers(sub, formatter_class=_Formatter)


#: per verb: (attribute, what it is, True for an output folder / False for an output file)
_DESTINATIONS = {
    "run": [("out", "--out", True)], "evaluate": [("out", "--out", True)],
    "predict": [("out", "--out", True)], "sweep": [("out", "--out", True)],
    "bench": [("out", "--out", False)], "train": [("checkpoint", "--checkpoint", False)],
    "export": [("dest", "DEST", False)], "book": [("executed_dir", "--executed-dir", True)],
}


def check_arguments(args) -> None:
    """What the parser cannot see, checked before any work: every output path is writable as
    what it is (a folder, or a file), and the options asked for make sense together."""
    for attr, what, folder in _DESTINATIONS.get(args.verb, []):
        if getattr(args, attr, None) is not None:
            check_destination(getattr(args, attr), what, folder=folder)
    if args.verb == "bench" and args.skip_speed and args.skip_accuracy:
        raise ValueError("bench: --skip-speed and --skip-accuracy together leave nothing to "
                         "measure: drop one of them")


def _dispatch(args) -> int:
    check_arguments(args)
    if args.verb == "book":
        import time

        from .book import build_book
        t0 = time.time()
        html = build_book(out_dir=args.executed_dir, quick=args.quick, execute=not args.no_execute,
                          kernel=args.kernel, notebooks=args.notebooks or None)
        print(f"book: built in {time.time() - t0:.0f} s; wrote {html / 'index.html'}")
        return 0
    if args.verb == "sweep":
        from .sweep import run_sweep_cli
        return run_sweep_cli(args)
    if args.verb in ("export-onnx", "serve"):
        from .tryit import run_cli
        return run_cli(args)
    from . import verbs
    if args.verb == "export":
        return verbs.export(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)   # weight initialisation; every draw after it uses a generator
    if args.verb == "bench":
        from .benchcli import run_bench
        return run_bench(args)
    return {"run": verbs.run, "train": verbs.train, "evaluate": verbs.evaluate,
            "predict": verbs.predict}[args.verb](args)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the verb; an expected error -> one line on stderr, status 2."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except EXPECTED_ERRORS as err:
        if args.debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:        # Ctrl-C: what was kept, in one line, no traceback
        if args.debug:
            raise
        print(f"error: interrupted{': ' + one_line(err) if str(err) else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
