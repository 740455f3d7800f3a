"""The ``fewstep`` verb: time and score few-step samplers of one model file and write the rows
(:mod:`dphelpers.evaluation.fewstep`) to a results file.

    python -m dphelpers fewstep --n-test 600 --threads 2 --out data/results/fewstep.json
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..evaluation.fewstep import default_candidates, few_step_figure, few_step_rows, rows_table

__all__ = ["add_arguments", "run_verb"]


def add_arguments(p) -> None:
    """The ``fewstep`` verb's options."""
    from . import options as o
    p.add_argument("--checkpoint", type=Path, default=Path("data/checkpoints/diffpose_full.pt"),
                   help="model file to time and score")
    p.add_argument("--n-test", type=o.positive, default=600, help="test samples")
    p.add_argument("--n-hypo", type=o.positive, default=200, help="hypotheses per sample")
    p.add_argument("--batch-size", type=o.positive, default=8, help="images sampled together")
    p.add_argument("--repeats", type=o.positive, default=3,
                   help="timed calls per sampler (best counts)")
    o.compute(p, "seed of the sampling")
    p.add_argument("--out", type=Path, default=Path("data/results/fewstep.json"),
                   help="JSON file to write")
    p.add_argument("--html", type=Path, default=None,
                   help="also write the figure here (default: no figure file)")



def run_verb(args) -> int:
    """The ``fewstep`` verb."""
    from ..data import load_mocap, split_clips
    from ..models.checkpoint import load_model, read_checkpoint
    from ..pipeline import make_test_set
    from .measure import machine_info

    t0 = time.time()
    state = read_checkpoint(args.checkpoint)
    model = load_model(args.checkpoint, device=args.device, state=state)
    test = make_test_set(split_clips(load_mocap())[1], args.n_test)
    rows = few_step_rows(model, test, n_hypo=args.n_hypo, batch_size=args.batch_size,
                         seed=args.seed, progress=not args.quiet, repeats=args.repeats)
    print(rows_table(rows, caption=f"{len(test)} test samples x {args.n_hypo} hypotheses, "
                                   f"float32, seed {args.seed}"))
    cands = default_candidates(rows)
    print("default candidates (P1 min and median within 1 mm of 25 steps):",
          ", ".join(cands) if cands else "none")
    out = {"setup": {"checkpoint": str(args.checkpoint), "n_test": len(test),
                     "n_hypo": args.n_hypo, "batch_size": args.batch_size, "seed": args.seed,
                     "repeats": args.repeats, "dtype": "float32",
                     "trained_steps": int(state["step"])},
           "machine": machine_info(args.device), "rows": rows, "default_candidates": cands,
           "command": args.command,
           "seconds": round(time.time() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    if args.html is not None:
        few_step_figure(rows).write_html(args.html, include_plotlyjs=True)
    print(f"wrote {args.out} ({out['seconds']} s)")
    return 0
