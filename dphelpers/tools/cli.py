"""Command line: ``python -m dphelpers VERB`` (or the ``dphelpers`` script).

Verbs: ``run`` (the main job: the shipped model, trained only when there is no file,
evaluated against the mean-pose baseline), ``train``, ``evaluate``, ``bench``, ``predict``,
``export``, ``book``, ``sweep``, ``export-onnx``, ``serve``, and the studies behind the book's
results (:data:`TOOL_VERBS`: ``study``, ``mechanism``, ``heldout``, ``realcheck``,
``fewstep``, ``curves``, ``labcheck``).  One parser (:mod:`~dphelpers.tools.parser`): the
options verbs share are defined once in :mod:`~dphelpers.tools.options`.  This module checks the
arguments, dispatches and handles errors; the work is in :mod:`~dphelpers.tools.verbs`,
:mod:`~dphelpers.tools.bench`, :mod:`~dphelpers.tools.book`, :mod:`~dphelpers.tools.sweep` and
the tool modules.  Which model file a verb reads or writes is
:mod:`dphelpers.models.modelfiles`' rule.

An expected error (a missing or unreadable file, a bad image, no person found, a corrupt or
foreign model file, a bad argument, a value our own checks refuse) prints ONE line
``error: ...`` on stderr and exits with status 2; ``dphelpers --debug VERB ...`` raises it
instead, with its traceback.  Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import importlib
import shlex
import sys

import torch

from ..files import FileLocked, check_destination
from ..models.checkpoint import CheckpointError
from .parser import TOOL_VERBS, build_parser

__all__ = ["main", "build_parser", "EXPECTED_ERRORS", "one_line", "TOOL_VERBS"]

#: What a user can cause; everything else is a programming error and keeps its traceback.
EXPECTED_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError,
                   PermissionError, CheckpointError, ValueError, KeyError, FileLocked)

def one_line(err: BaseException) -> str:
    """An exception's message on one line (a KeyError's without the quotes ``str`` adds)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(text.split()) or type(err).__name__


#: per verb: (attribute, what it is, True for an output folder / False for an output file)
_DESTINATIONS = {
    "run": [("out", "--out", True)], "evaluate": [("out", "--out", True)],
    "predict": [("out", "--out", True)], "sweep": [("out", "--out", True)],
    "bench": [("out", "--out", False)], "train": [("checkpoint", "--checkpoint", False)],
    "export": [("dest", "DEST", False)], "book": [("executed_dir", "--executed-dir", True)],
    "heldout": [("out", "--out", False)],
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
    if args.verb == "export":
        from .export import export
        return export(args)
    from . import verbs
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)   # weight initialisation; every draw after it uses a generator
    if args.verb == "bench":
        from .bench import run_bench
        return run_bench(args)
    if args.verb in TOOL_VERBS:
        return importlib.import_module(f"{__package__}.{TOOL_VERBS[args.verb][0]}").run_verb(args)
    return {"run": verbs.run, "train": verbs.train, "evaluate": verbs.evaluate,
            "predict": verbs.predict}[args.verb](args)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the verb; an expected error -> one line on stderr, status 2."""
    args = build_parser().parse_args(argv)
    args.command = "python -m dphelpers " + shlex.join(sys.argv[1:] if argv is None else argv)
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
