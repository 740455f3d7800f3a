"""The live explorer in a real JupyterLab, driven by headless Chromium (notebook 06's section 8).

Starts a JupyterLab server on a scratch folder holding a small notebook that displays
:func:`~dphelpers.evaluation.explorer.pose_explorer`, opens it in Chromium (``playwright`` driving
``/usr/bin/chromium``), runs all cells, and then uses the explorer as a reader would: set the
denoising step (typed into the slider's readout, the same event as releasing the handle),
press *resample*, switch the test sample.  After each action it waits for the figure's new
title, records how long the redraw took, counts the plotly figures drawn inside the widget and
saves a screenshot.  Writes ``report.json`` and the PNGs to ``--out``.

    python -m dphelpers labcheck --out runs/lab
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

__all__ = ["explorer_notebook", "add_arguments", "run_verb"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def explorer_notebook(path: Path, checkpoint: str | None, n_test: int, n_hypo: int) -> Path:
    """A two-cell notebook: read the model and a test set, display the live explorer."""
    import nbformat
    setup = f"""import torch
from dphelpers.data import load_mocap, split_clips
from dphelpers.models.modelfiles import load_or_train
from dphelpers.pipeline import make_test_set
from dphelpers.evaluation.explorer import pose_explorer
train_m, test_m = split_clips(load_mocap())
model, info = load_or_train("full", {checkpoint!r}, train_m, quick=False)
test = make_test_set(test_m, {n_test})
print(info)"""
    show = f"""explorer = pose_explorer(model, test, generator=torch.Generator().manual_seed(0),
                         max_hypo=200, n_hypo={n_hypo})
display(explorer)"""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(show)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {seconds:.0f} s")


TITLE_JS = """() => { const p = document.querySelector('.widget-output .js-plotly-plot');
  const t = p && p.querySelector('.gtitle'); return t ? t.textContent : null; }"""
KERNEL_IDLE_JS = """() => { const app = window.jupyterapp; const w = app && app.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && k.connectionStatus === 'connected'; }"""
PLOTS_JS = "() => document.querySelectorAll('.widget-output .js-plotly-plot').length"


def _wait_title(page, contains: str, timeout_s: float) -> float:
    """Seconds until the explorer's 3D figure title contains ``contains``."""
    t0 = time.perf_counter()
    page.wait_for_function(f"() => {{ const t = ({TITLE_JS})(); "
                           f"return t !== null && t.includes({json.dumps(contains)}); }}",
                           timeout=timeout_s * 1000)
    return time.perf_counter() - t0


def drive(url: str, out: Path, timeout_s: float = 300) -> dict:
    """Open the explorer notebook at ``url`` in headless Chromium, run all cells, set the step,
    resample and switch the sample; screenshots go to ``out``.  Returns the report dict
    (per action: seconds to redraw, figure title, plots in the widget; page errors)."""
    from playwright.sync_api import sync_playwright
    report: dict = {"actions": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_selector(".jp-Notebook", timeout=timeout_s * 1000)
        page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout_s * 1000)
        t0 = time.perf_counter()
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            first = _wait_title(page, "denoising steps", timeout_s)
        except Exception:
            page.screenshot(path=str(out / "failed_first_display.png"), full_page=True)
            raise
        page.wait_for_function(f"() => ({PLOTS_JS})() >= 2", timeout=timeout_s * 1000)

        def record(name: str, seconds: float) -> None:
            shot = out / f"explorer_{len(report['actions'])}_{name}.png"
            page.screenshot(path=str(shot), full_page=True)
            report["actions"].append({"action": name, "seconds": round(seconds, 2),
                                      "title": page.evaluate(TITLE_JS),
                                      "plots_in_widget": page.evaluate(PLOTS_JS),
                                      "screenshot": shot.name})

        record("first display (run all)", time.perf_counter() - t0)
        report["first_display_after_title_s"] = round(first, 2)
        readouts = page.locator(".widget-slider .widget-readout")   # hypotheses, step
        step = readouts.nth(1)
        step.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("5")
        page.keyboard.press("Enter")
        record("step set to 5", _wait_title(page, "after 5 of", timeout_s))
        before = page.evaluate(TITLE_JS)
        t0 = time.perf_counter()
        page.evaluate("() => { window.__plot = document.querySelector("
                      "'.widget-output .js-plotly-plot'); }")
        page.locator("button:has-text('resample')").click()
        page.wait_for_function("() => { const p = document.querySelector("
                               "'.widget-output .js-plotly-plot'); "
                               "return p !== null && p !== window.__plot; }",
                               timeout=timeout_s * 1000)     # a new figure replaced the old
        record("resample", time.perf_counter() - t0)
        select = page.locator(".widget-dropdown select")
        value = select.locator("option").nth(3).get_attribute("value")
        label = select.locator("option").nth(3).text_content().split()[0]
        select.select_option(value=value)
        record(f"test sample {label}", _wait_title(page, f"test sample {label}", timeout_s))
        report["title_before_resample"] = before
        report["page_errors"] = errors
        browser.close()
    return report


def add_arguments(p) -> None:
    """The ``labcheck`` verb's options."""
    from . import options as o
    p.add_argument("--checkpoint", default=None, help="model file (default: the shipped one)")
    p.add_argument("--n-test", type=o.positive, default=32, help="test samples in the dropdown")
    p.add_argument("--n-hypo", type=o.positive, default=50, help="hypotheses at first display")
    p.add_argument("--timeout", type=float, default=300, help="seconds per wait")
    p.add_argument("--out", type=Path, required=True, help="folder for screenshots and report")
    p.set_defaults(seed=0, threads=None)



def run_verb(args) -> int:
    """The ``labcheck`` verb."""
    if not Path(CHROMIUM).is_file():
        raise FileNotFoundError(f"{CHROMIUM} is missing: install Debian's chromium "
                                "(`bash .ci/install` as root)")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="labcheck_"))
    explorer_notebook(work / "explorer.ipynb", args.checkpoint, args.n_test, args.n_hypo)
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--LabApp.expose_app_in_browser=True", "--ServerApp.ip=127.0.0.1"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:      # containers and CI run as root
        cmd.append("--allow-root")
    settings = work / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)                     # no "news?" pop-up over the screenshots
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = {**os.environ, "DPHELPERS_BOOK": "0", "PYTHONPATH": str(Path(__file__).parents[2]),
           "JUPYTERLAB_SETTINGS_DIR": str(work / "lab-settings")}
    log = open(args.out / "jupyterlab.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    try:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited at once: see {args.out / 'jupyterlab.log'}")
        _wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", 120)
        report = drive(f"http://127.0.0.1:{port}/lab/tree/explorer.ipynb?token={token}",
                       args.out, args.timeout)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    import jupyterlab
    report.update(jupyterlab=jupyterlab.__version__, n_test=args.n_test, n_hypo=args.n_hypo)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    for a in report["actions"]:
        print(f"{a['action']:28s} {a['seconds']:6.2f} s  plots {a['plots_in_widget']}  "
              f"{a['title']}")
    print(f"labcheck: wrote {args.out / 'report.json'} and {len(report['actions'])} screenshots")
    return 0
