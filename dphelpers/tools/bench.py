"""``python -m dphelpers bench``: the models' accuracy side by side, and speed against the
machine, printed and written as JSON (``runs/bench.json``; notebook 05 reads it).

- Accuracy: every ``--models`` entry (a name: its shipped file; ``NAME=PATH``: that file,
  which must hold model NAME) on the same test samples, float32 (``--bf16`` adds bfloat16
  rows of the full model), the mean-pose baseline, twin coverage and reliability.  It takes
  minutes; :func:`accuracy_estimate` measures one batch and says how many before starting.
- Few-step sampling (:mod:`dphelpers.tools.fewstep`): for each ``--few-step`` k, the full
  model's accuracy with k DDIM steps (eta = 1) and its sampling speed at every batch size.
- Speed: sampling at each ``--batches`` size (``--bf16``: also bfloat16), and
  :func:`~dphelpers.tools.measure.bench_training` in fp32 and bf16 side by side at batch 64 and
  32 in the same run, so their ratio is a same-machine ratio; training end to end (stream +
  step) at each ``--e2e-batches`` size, with the stream's share of a step (``--prefetch``: also
  with the stream in a background thread).

Which file is read is :mod:`dphelpers.models.modelfiles`' rule (through
:mod:`~dphelpers.tools.modelref`, which also names the rows).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..evaluation.coverage import subset_coverage
from ..evaluation.tables import table
from ..models.modelfiles import SHIPPED_NAMES, display_path, shipped_file
from ..pipeline import TrainStream
from ..training.profile import profile_training
from ..training.train import TrainConfig
from . import measure, modelref
from .modelref import Loaded, model_entry
from .verbs import duration, evaluation_table

__all__ = ["model_entry", "resolve_entries", "load_models", "accuracy_estimate", "accuracy",
           "speed", "run_bench", "TRAIN_BATCHES", "FEW_STEPS"]

TRAIN_BATCHES = (64, 32)        # the paper's batch and the authors' code's
FEW_STEPS = measure.FEW_STEPS


def resolve_entries(entries: list[tuple[str, Path | None]] | None) -> list[tuple[str, Path | None]]:
    """``--models`` as parsed; None: the shipped models present (a note names missing ones).

    Duplicate entries (same name and file) are an error naming them.
    """
    if entries is None:
        present = [n for n in SHIPPED_NAMES if shipped_file(n).is_file()]
        missing = [n for n in SHIPPED_NAMES if n not in present]
        if not present:
            raise FileNotFoundError(f"no shipped models in {shipped_file('full').parent}: name "
                                    "model files with --models NAME=PATH")
        if missing:
            print(f"bench: no shipped file for {', '.join(missing)}: comparing "
                  f"{', '.join(present)} (train the others and pass them as NAME=PATH)")
        return [(n, None) for n in present]
    seen = set()
    for name, path in entries:
        key = (name, None if path is None else Path(path).resolve())
        if key in seen:
            raise ValueError(f"--models names {name}{'' if path is None else '=' + str(path)} "
                             "twice")
        seen.add(key)
    return list(entries)


def load_models(entries: list[tuple[str, Path | None]], device: str | torch.device = "cpu"
                ) -> list[Loaded]:
    """Read every entry first (a bad one fails before any work) and print what was read."""
    loaded = [modelref.load(name, path, device) for name, path in entries]
    labels = [m.label for m in loaded]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"--models: two entries make the same row {dup}: give the files "
                         "different names")
    for m in loaded:
        print(m.info)
    return loaded


def _hypotheses_per_s(model, heatmaps: torch.Tensor, n_hypo: int, dtype) -> float:
    gen = torch.Generator(device=model.device).manual_seed(0)
    t0 = time.perf_counter()
    model.sample(heatmaps.to(model.device), n_hypo, generator=gen, autocast_dtype=dtype)
    return heatmaps.shape[0] * n_hypo / (time.perf_counter() - t0)


def accuracy_estimate(models: list[Loaded], test, n_hypo: int, eval_batch: int,
                      bf16: bool) -> tuple[float, str]:
    """Seconds the accuracy part will take, from one timed batch of the first DiffPose model
    (the lifter's single prediction is free), and a line saying so."""
    diffpose = [m for m in models if m.info.name != "lifter"]
    if not diffpose:
        return 0.0, f"accuracy: {len(models)} model(s) x {len(test):,} test samples: seconds"
    hm = test.heatmaps[:eval_batch]
    total = len(test) * n_hypo
    seconds = len(diffpose) * total / _hypotheses_per_s(diffpose[0].model, hm, n_hypo, None)
    extra = ""
    if bf16:
        seconds += total / _hypotheses_per_s(diffpose[0].model, hm, n_hypo, torch.bfloat16)
        extra = f" + bfloat16 rows of {_bf16_model(models).label}"
    return seconds, (f"accuracy: {len(models)} model(s) x {len(test):,} test samples x {n_hypo} "
                     f"hypotheses in float32{extra}: about {duration(seconds)} on this machine "
                     "(from one timed batch; --skip-accuracy skips it)")


def _bf16_model(models: list[Loaded]) -> Loaded:
    full = [m for m in models if m.info.name == "full"]
    return (full or [m for m in models if m.info.name != "lifter"] or models)[0]



def accuracy(models: list[Loaded], train_m, test_m, n_test: int | None, n_hypo: int = 200,
             eval_batch: int = 8, seed: int = 0, bf16: bool = False, progress: bool = True,
             few_steps: tuple[int, ...] = ()) -> dict:
    """Every model on the same test set; returns the JSON parts ``accuracy`` (rows named
    ``"LABEL (subset)"``), ``coverage``, ``reliability`` and ``accuracy_setup``."""
    from ..evaluation.coverage import mean_hypothesis
    from ..evaluation.evaluate import evaluate, evaluate_fixed, table_rows, training_mean_pose
    from ..evaluation.twins import depth_flip_twins_batch
    from ..metrics import reliability_from_quantiles
    from ..pipeline import make_test_set
    test = make_test_set(test_m, n_test)
    twins = depth_flip_twins_batch(test.poses_3d_mm)
    _, line = accuracy_estimate(models, test, n_hypo, eval_batch, bf16)
    print(line, flush=True)
    evals, cover, reliab = {}, {}, {}
    single = _bf16_model(models)
    for m in models:
        ev = evaluate(m.model, test, n_hypo, eval_batch, seed=seed, progress=progress, keep=True,
                      autocast_dtype=None)
        evals[m.label] = ev
        cover[m.label] = subset_coverage(ev.predictions, test, twins)
        levels, freq = reliability_from_quantiles(ev.quantiles)
        reliab[m.label] = {"levels": levels.tolist(), "freq": freq[1:].mean(0).tolist()}
        if m is single and m.info.name != "lifter":
            cover["single hypothesis (one sample)"] = subset_coverage(ev.predictions[:, :1],
                                                                      test, twins)
            cover["single hypothesis (mean)"] = subset_coverage(mean_hypothesis(ev.predictions),
                                                                test, twins)
            if bf16:
                label = modelref.label_of(f"{m.info.name} bf16", m.path)
                evals[label] = evaluate(m.model, test, n_hypo, eval_batch, seed=seed,
                                        progress=progress, autocast_dtype=torch.bfloat16)
            for k in few_steps:
                label = modelref.label_of(f"{m.info.name} {k} DDIM eta=1", m.path)
                evals[label] = evaluate(m.model, test, n_hypo, eval_batch, seed=seed,
                                        progress=progress, autocast_dtype=None,
                                        sample_kwargs={"steps": k, "eta": 1.0})
        ev.predictions = None      # the hypotheses are large; the metrics stay
    evals["mean pose"] = evaluate_fixed(training_mean_pose(train_m, seed=seed + 1), test)
    print(evaluation_table(evals, caption="accuracy (mm; PCK@150 in %; float32 unless bf16)"))
    print("twin coverage (fraction of depth-flip twins with a hypothesis within 50 / 100 mm; "
          "ground truth alike)")
    width = max(len(f"{k} ({s})") for k, parts in cover.items() for s in parts) + 2
    for name, parts in cover.items():
        for subset, c in parts.items():
            print(f"  {name + ' (' + subset + ')':{width}s} twins {c['twin@50']:.3f} / "
                  f"{c['twin@100']:.3f}   gt {c['gt_same@50']:.3f} / {c['gt_same@100']:.3f}   "
                  f"n_twins {int(c['n_twins'])}")
    rows = {k: v for label, e in evals.items() for k, v in table_rows(label, e).items()}
    return {"accuracy": rows, "coverage": cover, "reliability": reliab,
            "accuracy_setup": {"n_test": len(test), "n_ambiguous": int(test.ambiguous.sum()),
                               "n_hypo": n_hypo, "models": [_model_json(m) for m in models]}}


def _model_json(m: Loaded) -> dict:
    return {"label": m.label, "name": m.info.name, "file": display_path(m.path),
            "trained_steps": m.info.trained_steps}


def _speed_model(models: list[Loaded], device):
    """The full model read for accuracy, else the shipped one, else an untrained one (speed
    does not depend on the weights)."""
    full = [m for m in models if m.info.name == "full"]
    if full:
        return full[0].model, full[0].label
    if shipped_file("full").is_file():
        m = modelref.load("full", None, device)
        print(m.info)
        return m.model, m.label
    from ..diffusion import DiffPose
    return DiffPose().to(device).eval(), "untrained full-size DiffPose"


def speed(models: list[Loaded], train_m, test_m, device="cpu", batches=(1, 8, 32),
          n_hypo: int = 200, bf16: bool = False, train_steps: int = 20, data_batches: int = 10,
          few_steps: tuple[int, ...] = FEW_STEPS, e2e_batches: tuple[int, ...] = (64,),
          compile: bool = False, graphs: bool = False, prefetch: bool = False) -> dict:
    """Sampling and training speed; returns the JSON parts ``speed`` (one record per row),
    ``training_bf16_over_fp32``, ``stream_share`` (:func:`_end_to_end`) and the FLOP counts."""
    from ..pipeline import make_test_set
    model, label = _speed_model(models, device)
    print(f"speed: {label}, sampling at batches {list(batches)} x {n_hypo} hypotheses, training "
          f"{train_steps} steps in fp32 and bf16 at batches {list(TRAIN_BATCHES)}", flush=True)
    test = make_test_set(test_m, max(batches))
    rows = _LiveRows()
    for b in batches:
        rows.append(measure.bench_sampling(model, test.heatmaps, b, n_hypo))
        if bf16:
            rows.append(measure.bench_sampling(model, test.heatmaps, b, n_hypo,
                                             autocast_dtype=torch.bfloat16))
        for k in few_steps:               # the few-step sampler (DDIM, eta = 1) at this batch
            rows.append(measure.bench_sampling(model, test.heatmaps, b, n_hypo, steps=k))
        if graphs and b in (min(batches), max(batches)):    # one compile per shape and dtype
            for dtype in (None, torch.bfloat16) if bf16 else (None,):
                rows.append(measure.bench_sampling(model, test.heatmaps, b, n_hypo,
                                                   autocast_dtype=dtype, graphs=True))
    stream = TrainStream(train_m, seed=0, device=device)
    batch = stream.next_batch(max(TRAIN_BATCHES))
    ratio = {}
    for b in TRAIN_BATCHES:
        part = batch.subset(slice(0, b))
        fp32, bf = (measure.bench_training(model, part, train_steps, TrainConfig(precision=p))
                    for p in ("fp32", "bf16"))
        rows.append(fp32)
        rows.append(bf)
        ratio[str(b)] = bf.per_second / fp32.per_second
    e2e, compile_ratio, graphs_ratio, share = _end_to_end(model, stream, e2e_batches, train_steps,
                                                          bf16, compile, graphs, prefetch)
    rows.extend(e2e)                                  # printed as measured, in _end_to_end
    t0 = time.perf_counter()
    for _ in range(data_batches):
        stream.next_batch(64)
    data_s = (time.perf_counter() - t0) / data_batches
    print(table([r.as_dict() for r in rows], caption="speed (per s: hypotheses or training "
                "steps; fraction: of a same-shape matrix product's GFLOP/s)"))
    print("training steps/s, bf16 over fp32 (same run, same machine): "
          + ", ".join(f"batch {b} {r:.2f}x" for b, r in ratio.items()))
    print(f"data stream: {1 / data_s:.1f} batches of 64 per second (heatmap simulation, not in "
          "the step)")
    print(_share_table(share))
    profile = profile_training(model, stream, TrainConfig(precision="bf16"), steps=10)
    print(table(profile, caption="where a bf16 training step's time goes (torch.profiler, batch "
                "64; phases nest: forward holds candidates, embedding and denoiser)", digits=3))
    for what, r in (("compiled", compile_ratio), ("whole step compiled (--graphs)", graphs_ratio)):
        if r:
            print(f"end-to-end steps/s, {what} over eager (same run): " + ", ".join(
                f"{k} {v:.2f}x" for k, v in r.items()))
    return {"speed": [r.as_dict() for r in rows], "speed_model": label,
            "training_bf16_over_fp32": ratio, "compiled_over_eager": compile_ratio,
            "graphs_over_eager": graphs_ratio,
            "data_batches_per_s": 1 / data_s, "stream_share": share,
            "training_profile": profile,
            "flops_per_hypothesis": measure.sampling_flops(model.config),
            "flops_per_training_sample": measure.training_flops(model.config)}


class _LiveRows(list):
    """Speed rows, each printed as soon as it is measured, so that a benchmark stopped early
    (a time limit on a lent GPU) still has them in its log; the tables come at the end."""

    def append(self, row) -> None:
        super().append(row)
        print(f"  measured: {row.what}, batch {row.batch}: {row.per_second:,.1f} per s",
              flush=True)


def _end_to_end(model, stream, batches, steps: int, bf16: bool, compile: bool, graphs: bool,
                prefetch: bool = False):
    """End-to-end training rows (stream + step) at each batch size, fp32 (and bf16), eager (and
    compiled, and the whole step compiled: CUDA graphs on a GPU; and, ``prefetch``, the eager
    step with the stream simulating the next batch in a background thread); returns the rows,
    the compiled/eager and graphs/eager ratios of steps per second, and the stream's share.

    The share is what the stream adds to a step: the eager step alone on a batch built
    beforehand is timed right before the end-to-end row, and ``share = t_end_to_end / t_step -
    1`` (0.1: simulating the data makes each step 10% longer)."""
    rows, ratios = _LiveRows(), {"compile": {}, "graphs": {}}
    variants = [key for key, on in (("compile", compile), ("graphs", graphs)) if on]
    share: dict[str, dict] = {}
    for b in batches:
        for precision in ("fp32", "bf16") if bf16 else ("fp32",):
            config = TrainConfig(batch_size=b, precision=precision)
            alone = measure.bench_training(model, stream.next_batch(b), steps, config)
            eager = measure.bench_end_to_end(model, stream, config, steps)
            rows.append(eager)
            key_b = f"batch {b} {precision}"
            share[key_b] = {"step_ms": 1e3 / alone.per_second,
                            "end_to_end_ms": 1e3 / eager.per_second,
                            "share": alone.per_second / eager.per_second - 1}
            if prefetch:
                ahead = TrainStream(stream.poses, seed=1, device=stream.device,
                                    camera_config=stream.camera_config,
                                    heatmap_config=stream.heatmap_config)
                ahead.set_prefetch(True)
                try:
                    row = measure.bench_end_to_end(model, ahead, config, steps)
                finally:
                    ahead.set_prefetch(False)
                rows.append(row)
                share[key_b].update(prefetch_ms=1e3 / row.per_second,
                                    prefetch_share=alone.per_second / row.per_second - 1)
            for key in variants:
                row = measure.bench_end_to_end(model, stream, TrainConfig(
                    batch_size=b, precision=precision, **{key: True}), steps)
                rows.append(row)
                ratios[key][key_b] = row.per_second / eager.per_second
    return rows, ratios["compile"], ratios["graphs"], share


def _share_table(share: dict[str, dict]):
    """The stream's share of a training step as a printed table."""
    records = []
    for key, s in share.items():
        record = {"batch, precision": key.removeprefix("batch "),
                  "step alone (ms)": s["step_ms"], "end to end (ms)": s["end_to_end_ms"],
                  "stream's share": f"{100 * s['share']:.0f}%"}
        if "prefetch_ms" in s:
            record.update({"prefetch (ms)": s["prefetch_ms"],
                           "share, prefetch": f"{100 * s['prefetch_share']:.0f}%"})
        records.append(record)
    return table(records, caption="what simulating the data adds to a training step (eager; "
                 "step alone: on a batch built beforehand, timed just before; prefetch: the "
                 "next batch simulated in a background thread during the step)", digits=1)


def run_bench(args) -> int:
    """The ``bench`` verb: read the models, accuracy, speed, one JSON file."""
    from ..data import load_mocap, split_clips
    t0 = time.time()
    models = [] if args.skip_accuracy else load_models(resolve_entries(args.models), args.device)
    train_m, test_m = split_clips(load_mocap(args.data))
    out: dict = {"machine": measure.machine_info(args.device)}
    if not args.skip_accuracy:
        out.update(accuracy(models, train_m, test_m, args.n_test, args.n_hypo, args.eval_batch,
                            args.seed, args.bf16, progress=not args.quiet,
                            few_steps=args.few_step))
    if not args.skip_speed:
        out.update(speed(models, train_m, test_m, args.device, args.batches, args.n_hypo,
                         args.bf16, args.train_steps, few_steps=args.few_step,
                         e2e_batches=tuple(args.e2e_batches), compile=args.compile,
                         graphs=args.graphs, prefetch=args.prefetch))
    out["seconds"] = round(time.time() - t0, 1)
    path = measure.write_json(args.out, out)
    parts = [p for p, skip in (("accuracy", args.skip_accuracy), ("speed", args.skip_speed))
             if not skip]
    print(f"bench: {' and '.join(parts) or 'nothing'} in {duration(out['seconds'])}; wrote {path}")
    return 0
