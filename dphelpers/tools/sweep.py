"""Batch experiments: a notebook run with papermill over a grid of parameters, on Dask (notebook 05).

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

A failing notebook never stops the sweep: its run is reported with the notebook's
name, the cell and the error, and the others finish.  From the command line::

    python -m dphelpers sweep notebooks/05_evaluation.ipynb --grid N_HYPO=1,10,50,200 \\
        --grid QUICK=True --out runs/sweep_hypo
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from pathlib import Path

__all__ = ["expand_grid", "run_notebook", "sweep", "results_table", "sweep_figure",
           "parse_value", "parse_grid", "add_sweep_parser", "run_sweep_cli"]


def expand_grid(grid: dict[str, list]) -> list[dict]:
    """Cartesian product ``{"a": [1, 2], "b": ["x"]} -> [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]``.

    Stable order: keys in the dict's order, the last key varying fastest; ``{}`` gives ``[{}]``.
    """
    if not isinstance(grid, dict):
        raise ValueError(f"grid must be a dict of name -> list of values, got {type(grid).__name__}")
    for key, values in grid.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"grid key {key!r} is not a valid notebook parameter name")
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _slug(params: dict) -> str:
    text = "_".join(f"{k}={v}" for k, v in params.items()) or "default"
    return re.sub(r"[^A-Za-z0-9=._-]+", "-", text)[:120]


def run_notebook(notebook: str | Path, params: dict, out_dir: str | Path, kernel: str = "python3") -> dict:
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
        pm.execute_notebook(notebook, output, parameters={**params, "RESULTS_JSON": str(results_json)},
                            kernel_name=kernel, cwd=str(notebook.parent), progress_bar=False)
        ok = True
    except PapermillExecutionError as err:
        error = f"notebook {notebook.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
    except Exception as err:  # noqa: BLE001 - kernel death, missing kernel...: report, keep sweeping
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


def sweep(notebook: str | Path, grid: dict[str, list], out_dir: str | Path, scheduler: str | None = None,
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

    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook not found: {notebook}")
    points = expand_grid(grid)
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
        client = Client(scheduler)
    results: list[dict | None] = [None] * len(points)
    try:
        futures = {client.submit(run_notebook, notebook, p, out_dir, kernel, pure=False,
                                 key=f"{notebook.stem}-{i}-{_slug(p)}"): i for i, p in enumerate(points)}
        bar = tqdm(as_completed(futures), total=len(futures), desc=f"sweep {notebook.name}",
                   disable=not progress)
        for fut in bar:
            i = futures[fut]
            if fut.status == "error":   # the task itself broke (e.g. a worker died)
                exc = fut.exception()
                res = {"params": points[i], "ok": False, "metrics": None, "output": None, "seconds": None,
                       "error": f"notebook {notebook.name}: task failed: {type(exc).__name__}: {exc}"}
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


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _union(dicts) -> list[str]:
    keys: dict[str, None] = {}
    for d in dicts:
        keys.update(dict.fromkeys(d or {}))
    return list(keys)


def results_table(results: list[dict]) -> str:
    """Plain-text table: one row per run, its parameters, metrics, status and seconds."""
    pkeys = _union(r["params"] for r in results)
    mkeys = _union(r.get("metrics") for r in results)
    header = pkeys + mkeys + ["status", "seconds"]
    rows = []
    for r in results:
        status = "ok" if r["ok"] else f"FAILED: {r['error']}"
        m = r.get("metrics") or {}
        rows.append([_fmt(r["params"].get(k)) for k in pkeys] + [_fmt(m.get(k)) for k in mkeys]
                    + [status, _fmt(r.get("seconds"))])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def sweep_figure(results: list[dict], x: str, y: str, color: str | None = None):
    """Metric ``y`` against parameter ``x`` (one line per value of parameter ``color``), like
    the paper's ablation plots; failed runs and runs without ``y`` are left out."""
    import plotly.graph_objects as go

    ok = [r for r in results if r["ok"] and r.get("metrics") and y in r["metrics"]]
    if not ok:
        raise KeyError(f"metric {y!r} is in no successful run; metrics found: "
                       f"{_union(r.get('metrics') for r in results)}")
    for name, role in ((x, "x"), (color, "color")):
        if name is not None and not all(name in r["params"] for r in ok):
            raise KeyError(f"{role} parameter {name!r} is missing from some runs; parameters: "
                           f"{_union(r['params'] for r in results)}")
    groups: dict = {}
    for r in ok:
        groups.setdefault(r["params"][color] if color else None, []).append(r)
    fig = go.Figure()
    for value, runs in groups.items():
        runs = sorted(runs, key=lambda r: (isinstance(r["params"][x], str), r["params"][x]))
        fig.add_trace(go.Scatter(x=[r["params"][x] for r in runs], y=[r["metrics"][y] for r in runs],
                                 mode="lines+markers", name=f"{color}={value}" if color else y))
    fig.update_layout(title=f"{y} vs {x}", xaxis_title=x, yaxis_title=y, template="plotly_white",
                      showlegend=color is not None)
    return fig


def parse_value(text: str):
    """Command-line value -> bool (true/false), None (none), int, float, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["N_HYPO=1,10,200", "QUICK=true"]`` -> ``{"N_HYPO": [1, 10, 200], "QUICK": [True]}``."""
    grid: dict[str, list] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ValueError(f"--grid {item!r}: expected KEY=V1,V2,...")
        if key.strip() in grid:
            raise ValueError(f"--grid {key.strip()!r} given twice")
        grid[key.strip()] = [parse_value(v) for v in values.split(",")]
    return grid


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``sweep`` verb to the CLI's subparsers."""
    p = subparsers.add_parser("sweep", help="run a notebook over a parameter grid (papermill + Dask)")
    p.add_argument("notebook", type=Path)
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a parameter and its values (repeatable; int/float/bool/none/str)")
    p.add_argument("--out", type=Path, default=Path("runs") / "sweep", help="folder for all outputs")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler "
                   "(default: a local cluster)")
    p.add_argument("--workers", type=int, default=2, help="local cluster: worker processes")
    p.add_argument("--kernel", default="python3")
    p.add_argument("--x", default=None, help="figure: parameter on the x axis (default: the first)")
    p.add_argument("--y", default=None, help="figure: metric (default: the first one found)")
    p.add_argument("--color", default=None, help="figure: parameter per line (default: the second)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run_sweep_cli(args) -> int:
    """Run the sweep; write ``sweep.json`` and ``sweep.html``, print the table; 1 if a run failed."""
    grid = parse_grid(args.grid)
    results = sweep(args.notebook, grid, args.out, scheduler=args.scheduler, n_workers=args.workers,
                    kernel=args.kernel, progress=not args.quiet)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep.json").write_text(json.dumps(
        {"notebook": str(args.notebook), "grid": grid, "results": results}, indent=2))
    print(results_table(results))
    keys = list(grid)
    x = args.x or (keys[0] if keys else None)
    y = args.y or next(iter(_union(r.get("metrics") for r in results if r["ok"])), None)
    color = args.color or (keys[1] if len(keys) > 1 else None)
    if x is not None and y is not None:
        sweep_figure(results, x, y, color).write_html(args.out / "sweep.html", include_plotlyjs=True)
        print(f"wrote {args.out / 'sweep.json'} and {args.out / 'sweep.html'}")
    else:
        print(f"wrote {args.out / 'sweep.json'} (no figure: no grid parameter or no metrics)")
    failed = [r for r in results if not r["ok"]]
    if failed:
        print(f"{len(failed)} of {len(results)} runs failed")
    return 1 if failed else 0
