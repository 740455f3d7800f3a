"""Batch experiments: a notebook run with papermill over a parameter grid, on Dask (notebook 05).

Each grid point is one papermill execution of a notebook with those values injected
into its ``parameters`` cell; the runs are Dask tasks, so they spread over the
processes of a local cluster or over the machines of an existing Dask cluster
(``scheduler="tcp://HOST:8786"``; the workers must see the same files).

Convention for results: a notebook publishes its metrics by writing one JSON object
(``{"P1_min": 45.2, ...}``, numbers or strings) to the path it receives as the
parameter ``RESULTS_JSON`` (``None`` when run by hand, then it writes nothing)::

    RESULTS_JSON = None      # in the parameters cell
    ...
    if RESULTS_JSON:
        Path(RESULTS_JSON).write_text(json.dumps(metrics))

The grid (``--grid KEY=V1,V2``) is parsed, expanded and checked against the notebook's
parameters by :mod:`dphelpers.tools.grid`.  A failing notebook never stops the sweep: its run is
reported with the notebook's name, the cell and the error, and the others finish.  From the
command line::

    python -m dphelpers sweep notebooks/05_evaluation.ipynb --grid N_HYPO=1,10,50,200 \\
        --grid QUICK=True --out runs/sweep_hypo
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from ..evaluation.tables import format_cell, table
from ..files import require_file
from .grid import check_grid, expand_grid, parse_grid

__all__ = ["SCHEDULER_TIMEOUT_S", "run_notebook", "sweep", "default_metric", "results_table",
           "sweep_figure", "add_sweep_parser", "run_sweep_cli"]


#: seconds to wait for a ``--scheduler`` to answer before giving up
SCHEDULER_TIMEOUT_S = 10


def _slug(params: dict) -> str:
    text = "_".join(f"{k}={v}" for k, v in params.items()) or "default"
    return re.sub(r"[^A-Za-z0-9=._-]+", "-", text)[:120]


def run_notebook(notebook: str | Path, params: dict, out_dir: str | Path,
                 kernel: str = "python3") -> dict:
    """Execute ``notebook`` once with ``params`` (plus ``RESULTS_JSON``) and collect its metrics.

    The executed copy goes to ``out_dir/<stem>__<params>.ipynb``, the metrics to the
    ``.json`` beside it; the kernel runs in the notebook's folder.  Returns
    ``{"params", "ok", "metrics", "error", "output", "seconds"}``; a failing notebook
    does not raise: ``ok`` is False and ``error`` names the notebook, the cell and the error.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook not found: {notebook}")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{notebook.stem}__{_slug(params)}.ipynb"
    results_json = output.with_suffix(".json")
    results_json.unlink(missing_ok=True)
    ok, metrics, error = False, None, None
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(notebook, output,
                            parameters={**params, "RESULTS_JSON": str(results_json)},
                            kernel_name=kernel, cwd=str(notebook.parent), progress_bar=False)
        ok = True
    except PapermillExecutionError as err:
        error = (f"notebook {notebook.name} failed in cell {err.exec_count}: {err.ename}: "
                 f"{err.evalue}")
    except Exception as err:  # noqa: BLE001 - kernel death, no kernel...: report, keep sweeping
        error = f"notebook {notebook.name} could not run: {type(err).__name__}: {err}"
    seconds = time.perf_counter() - t0
    if ok and results_json.is_file():
        try:
            metrics = json.loads(results_json.read_text())
        except json.JSONDecodeError as err:
            ok, error = False, f"notebook {notebook.name} wrote invalid JSON to RESULTS_JSON: {err}"
        else:
            if not isinstance(metrics, dict):
                ok, error = False, (f"notebook {notebook.name} wrote a {type(metrics).__name__} to "
                                    "RESULTS_JSON; expected a JSON object of metrics")
                metrics = None
    return {"params": dict(params), "ok": ok, "metrics": metrics, "error": error,
            "output": str(output), "seconds": round(seconds, 2)}


def sweep(notebook: str | Path, grid: dict[str, list], out_dir: str | Path,
          scheduler: str | None = None,
          n_workers: int = 2, threads_per_worker: int = 1, kernel: str = "python3",
          progress: bool = True) -> list[dict]:
    """Run ``notebook`` at every point of ``grid`` as Dask tasks; results in grid order.

    ``scheduler``: address of a running Dask scheduler (``Client(scheduler)``); None starts a
    ``LocalCluster`` of ``n_workers`` processes with ``threads_per_worker`` threads each (one
    notebook at a time per thread) and closes it at the end.  Failed runs are reported as
    they finish (name and error) while the others go on.
    """
    from distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    notebook = require_file(notebook, "notebook").resolve()
    points = expand_grid(grid)
    check_grid(notebook, grid)
    out_dir = Path(out_dir).resolve()
    cluster = None
    if scheduler is None:
        if n_workers < 1 or threads_per_worker < 1:
            raise ValueError(f"n_workers and threads_per_worker must be >= 1, got {n_workers}, "
                             f"{threads_per_worker}")
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as err:
            raise ValueError(f"--scheduler {scheduler!r}: no Dask scheduler answered within "
                             f"{SCHEDULER_TIMEOUT_S} s ({type(err).__name__}: "
                             f"{' '.join(str(err).split())[:200]})") from None
    results: list[dict | None] = [None] * len(points)
    try:
        futures = {client.submit(run_notebook, notebook, p, out_dir, kernel, pure=False,
                                 key=f"{notebook.stem}-{i}-{_slug(p)}"): i
                   for i, p in enumerate(points)}
        bar = tqdm(as_completed(futures), total=len(futures), desc=f"sweep {notebook.name}",
                   disable=not progress)
        for fut in bar:
            i = futures[fut]
            if fut.status == "error":   # the task itself broke (e.g. a worker died)
                exc = fut.exception()
                res = {"params": points[i], "ok": False, "metrics": None, "output": None,
                       "seconds": None, "error": f"notebook {notebook.name}: task failed: "
                                                 f"{type(exc).__name__}: {exc}"}
            else:
                res = fut.result()
            results[i] = res
            if not res["ok"]:
                tqdm.write(f"FAILED {notebook.name} {_slug(points[i])}: {res['error']}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results


def _union(dicts) -> list[str]:
    keys: dict[str, None] = {}
    for d in dicts:
        keys.update(dict.fromkeys(d or {}))
    return list(keys)


def _varies(results: list[dict], key: str) -> bool:
    values = [r["metrics"].get(key) for r in results if r["ok"] and r.get("metrics")]
    return len({json.dumps(v) for v in values}) > 1


def default_metric(results: list[dict]) -> str | None:
    """The metric a sweep plots unless told: the first P1 min one (notebook 05 writes
    ``full_P1_min``), else the first that varies over the runs, else the first; None when no
    run wrote metrics."""
    keys = _union(r.get("metrics") for r in results if r["ok"])
    for key in keys:
        if key == "P1_min" or key.endswith("_P1_min"):
            return key
    return next((k for k in keys if _varies(results, k)), keys[0] if keys else None)


def results_table(results: list[dict], first: str | None = None, show: list[str] | None = None):
    """A :func:`dphelpers.evaluation.tables.table`: one row per run, its parameters, the metrics
    that vary over the runs (``first`` leading), status and seconds.  A metric with one value in
    every run goes to the caption; one named like a parameter is shown (as "reported NAME")
    only where some run reports another value than it was given.  ``show``: only these
    metrics (after ``first``).  ``sweep.json`` keeps all."""
    pkeys = _union(r["params"] for r in results)
    mkeys = _union(r.get("metrics") for r in results)
    ok = [r for r in results if r["ok"] and r.get("metrics")]
    echoed = {k for k in mkeys if k in pkeys and all(
        r["metrics"].get(k) == r["params"].get(k) for r in ok)}   # a parameter reported back
    varying = [k for k in mkeys if k not in echoed and (len(ok) < 2 or _varies(results, k))]
    if first in varying:
        varying.remove(first)
    if show is not None:
        unknown = [k for k in show if k not in mkeys]
        if unknown:
            raise ValueError(f"--show {unknown}: not metrics the runs wrote; they wrote: "
                             f"{', '.join(mkeys) or 'none'}")
        varying = [k for k in show if k != first]
    shown = ([first] if first in mkeys else []) + varying
    same = [f"{k}={format_cell(ok[0]['metrics'].get(k))}" for k in mkeys
            if k not in shown and k not in echoed]
    rows = []
    for r in results:
        m = r.get("metrics") or {}
        rows.append([r["params"].get(k) for k in pkeys] + [m.get(k) for k in shown]
                    + ["ok" if r["ok"] else f"FAILED: {r['error']}", r.get("seconds")])
    names = [f"reported {k}" if k in pkeys else k for k in shown]
    caption = f"same in every run: {', '.join(same)}" if same else ""
    return table(rows, columns=pkeys + names + ["status", "seconds"], caption=caption)


def sweep_figure(results: list[dict], x: str, y: str, color: str | None = None):
    """Metric ``y`` against parameter ``x`` (one line per value of parameter ``color``), like
    the paper's ablation plots; failed runs and runs without ``y`` are left out."""
    import plotly.graph_objects as go

    ok = [r for r in results if r["ok"] and r.get("metrics") and y in r["metrics"]]
    if not ok:
        raise ValueError(f"metric {y!r} is in no successful run; metrics found: "
                       f"{_union(r.get('metrics') for r in results)}")
    for name, role in ((x, "x"), (color, "color")):
        if name is not None and not all(name in r["params"] for r in ok):
            raise ValueError(f"{role} parameter {name!r} is missing from some runs; parameters: "
                           f"{_union(r['params'] for r in results)}")
    groups: dict = {}
    for r in ok:
        groups.setdefault(r["params"][color] if color else None, []).append(r)
    fig = go.Figure()
    for value, runs in groups.items():
        runs = sorted(runs, key=lambda r: (isinstance(r["params"][x], str), r["params"][x]))
        fig.add_trace(go.Scatter(x=[r["params"][x] for r in runs],
                                 y=[r["metrics"][y] for r in runs],
                                 mode="lines+markers", name=f"{color}={value}" if color else y))
    fig.update_layout(title=f"{y} vs {x}", xaxis_title=x, yaxis_title=y, template="plotly_white",
                      showlegend=color is not None)
    return fig


def add_sweep_parser(subparsers, **kwargs) -> argparse.ArgumentParser:
    """Add the ``sweep`` verb to the CLI's subparsers (``kwargs``: e.g. its formatter_class)."""
    p = subparsers.add_parser(
        "sweep", help="run a notebook over a parameter grid (papermill jobs on Dask)",
        description="Execute a notebook with papermill at every point of a parameter grid, as "
                    "Dask tasks (a local cluster, or --scheduler); each run writes its metrics "
                    "to the JSON file named by its RESULTS_JSON parameter.  Prints the results "
                    "table and writes OUT/sweep.json and OUT/sweep.html (the --y metric against "
                    "--x).", **kwargs)
    p.add_argument("notebook", type=Path, help="notebook with a parameters cell, e.g. "
                   "notebooks/05_evaluation.ipynb")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a parameter and its values (repeatable; int/float/bool/none/str; "
                        "default: one run with the notebook's own values)")
    p.add_argument("--out", type=Path, default=Path("runs") / "sweep",
                   help="folder for the executed notebooks, sweep.json and sweep.html")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, "
                   "e.g. tcp://HOST:8786 (default: a local cluster of --workers processes)")
    p.add_argument("--workers", type=int, default=2, help="local cluster: worker processes")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel to execute with")
    p.add_argument("--x", default=None,
                   help="figure: parameter on the x axis (default: the first --grid one)")
    p.add_argument("--y", default=None,
                   help="figure: a metric the notebook writes to RESULTS_JSON (default: its P1 "
                        "min one, full_P1_min for notebook 05, else the first that varies)")
    p.add_argument("--color", default=None,
                   help="figure: parameter with one line per value (default: the second --grid "
                        "one when it varies)")
    p.add_argument("--show", nargs="+", default=None, metavar="METRIC",
                   help="metrics to print in the table besides --y (default: every metric that "
                        "varies; sweep.json keeps them all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run_sweep_cli(args) -> int:
    """Run the sweep; write ``sweep.json`` and ``sweep.html``, print the table; 1 if a run
    failed."""
    grid = parse_grid(args.grid)
    check_grid(require_file(args.notebook, "notebook"), grid)     # before a cluster starts
    t0 = time.time()
    results = sweep(args.notebook, grid, args.out, scheduler=args.scheduler, n_workers=args.workers,
                    kernel=args.kernel, progress=not args.quiet)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [args.out / "sweep.json"]
    written[0].write_text(json.dumps(
        {"notebook": str(args.notebook), "grid": grid, "results": results}, indent=2))
    metrics = _union(r.get("metrics") for r in results if r["ok"])
    y = args.y or default_metric(results)
    if args.y is not None and args.y not in metrics:
        print(results_table(results))
        raise ValueError(f"--y {args.y!r} is not a metric the runs wrote to RESULTS_JSON; "
                         f"they wrote: {', '.join(metrics) or 'none'}")
    keys = list(grid)
    x = args.x or (keys[0] if keys else None)
    color = args.color or next((k for k in keys[1:] if len(grid[k]) > 1), None)
    if x is not None and y is not None:
        sweep_figure(results, x, y, color).write_html(args.out / "sweep.html",
                                                      include_plotlyjs=True)
        written.append(args.out / "sweep.html")
    print(results_table(results, first=y, show=args.show))
    failed = [r for r in results if not r["ok"]]
    plotted = (f"plotted {y} against {x}" if len(written) > 1
               else "no figure (no grid parameter or no metrics)")
    print(f"sweep: {len(results)} run(s) of {args.notebook.name}, {len(failed)} failed, in "
          f"{time.time() - t0:.0f} s; {plotted}; wrote {' and '.join(map(str, written))}")
    return 1 if failed else 0
