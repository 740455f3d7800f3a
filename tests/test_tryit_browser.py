"""The Try it page in headless Chromium, offline: the model in the browser (issue #27).

A small site with what the book's Try it page loads (book/static_js/tryit/, plotly.min.js,
the int8 model and samples.json as the book build writes them, and the raw HTML block of
book/tryit.md), served on 127.0.0.1 with the cross-origin isolation headers
(dphelpers.tools.tryit.start_server).  One page is opened for the whole module; every request
to another host is aborted and reported, and every console error fails the test that saw it.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import plotly
import pytest
import torch
from conftest import watched_page
from test_book import CHROMIUM, CHROMIUM_ARGS, _sync_playwright

from dphelpers.models.checkpoint import load_model
from dphelpers.models.modelfiles import shipped_file
from dphelpers.tools.book import BOOK_DIR
from dphelpers.tools.onnxexport import export_onnx
from dphelpers.tools.tryit import start_server, write_samples

#: the issue's budgets, seconds: 200 hypotheses per draw, the page's first load
DRAW_BUDGET_S = 2.0
LOAD_BUDGET_S = 5.0


def _exported(tmp_path_factory, weights: str) -> Path:
    """The shipped full model exported once per session (as in test_onnxexport)."""
    out = tmp_path_factory.getbasetemp() / f"onnx_full_{weights}"
    if not (out / "model.json").is_file():
        export_onnx(load_model(shipped_file("full")), out, weights=weights, progress=False)
    return out


def _raw_html(md: Path) -> str:
    block = re.search(r"```\{raw\} html\n(.*?)```", md.read_text(), re.S)
    assert block, f"{md} has no raw html block"
    return block.group(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tryit_site")
    static = root / "_static"
    shutil.copytree(BOOK_DIR / "static_js" / "tryit", static / "tryit")
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                    static / "plotly.min.js")
    for weights, name in (("int8", "tryit_model"), ("fp32", "tryit_fp32")):
        shutil.copytree(_exported(tmp_path_factory, weights), static / name)
    write_samples(static / "tryit_model" / "samples.json", photo=False)
    (root / "index.html").write_text(
        '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        '<script src="_static/plotly.min.js"></script></head><body>'
        f"{_raw_html(BOOK_DIR / 'tryit.md')}</body></html>")
    return root


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing: Debian's chromium is not installed")
    with _sync_playwright()() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """One open page and what went wrong on it so far."""

    def __init__(self, page, problems: list[str], first_load_s: float) -> None:
        self.page, self.problems, self.first_load_s = page, problems, first_load_s

    def eval(self, js: str, arg=None):
        return self.page.evaluate(js, arg)

    def check(self) -> None:
        problems, self.problems[:] = list(self.problems), []
        assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def tryit(site, browser):
    server, thread = start_server(site)
    page, context, problems = watched_page(browser)
    page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html", wait_until="load")
    page.wait_for_function("() => window.dpTryit && (window.dpTryit.draws >= 1 || "
                           "window.dpTryit.error)", timeout=90_000)
    assert not page.evaluate("() => window.dpTryit.error && String(window.dpTryit.error)")
    first_load_s = page.evaluate("() => dpTryit.readyAt")       # since navigation start
    yield Page(page, problems, first_load_s)
    context.close()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _draw(tryit: Page, n: int, seed: int | None = None) -> dict:
    """Draw ``n`` hypotheses in the page (its own candidates and noise) with ``seed``, or, with
    None, with the next seed (as the Resample button does)."""
    return tryit.eval("""async ([n, seed]) => {
        const w = window.dpTryit;
        w.nSlider.value = String(n);
        if (seed !== null) w.seed = seed; else w.seed += 1;
        const r = await w.draw();
        return {n: r.n, seconds: r.seconds, poses: Array.from(r.poses)};
    }""", [n, seed])


def test_model_loads_and_draws_200_twice(tryit):
    info = tryit.eval("() => ({isolated: crossOriginIsolated, backend: dpTryit.model.backend(), "
                      "threads: dpTryit.model.threads, draws: dpTryit.draws, "
                      "plotted: document.querySelectorAll('.dp-plot.js-plotly-plot').length, "
                      "timing: dpTryit.timing.textContent})")
    assert info["isolated"] and info["threads"] >= 1 and "wasm SIMD" in info["backend"]
    assert info["draws"] >= 1 and info["plotted"] == 1, info
    assert "200 hypotheses in" in info["timing"], info["timing"]
    drawn = []
    for _ in range(2):
        r = _draw(tryit, 200)
        poses = np.asarray(r["poses"]).reshape(r["n"], 17, 3)
        assert r["n"] == 200 and np.isfinite(poses).all() and (poses[:, 0] == 0).all()
        drawn.append(poses)
    assert np.abs(drawn[0] - drawn[1]).mean() > 1.0          # resampled: new draws
    spread = np.linalg.norm(drawn[0] - drawn[0].mean(0), axis=-1).mean()
    assert 5 < spread < 500, spread                          # hypotheses, not one pose or noise
    tryit.check()


def test_time_budgets(tryit):
    """200 hypotheses in <= 2 s (best of three draws) and the first load (navigation start to
    the model ready) in <= 5 s.  Timing on a machine whose load exceeds its cores measures the
    other programs: the test then reports the numbers and skips."""
    backend = tryit.eval("() => dpTryit.model.backend()")
    times = [_draw(tryit, 200)["seconds"]["total"] for _ in range(3)]
    load = os.getloadavg()[0]
    report = (f"200 hypotheses: {', '.join(f'{t:.2f}' for t in times)} s on {backend}; first "
              f"load {tryit.first_load_s:.2f} s; load average {load:.1f} on {os.cpu_count()} cores")
    print("\n" + report)
    tryit.check()
    if load > (os.cpu_count() or 1):
        pytest.skip(f"machine busy, timings not meaningful: {report}")
    assert min(times) <= DRAW_BUDGET_S, report
    assert tryit.first_load_s <= LOAD_BUDGET_S, report


def test_candidates_follow_the_package_rule(tryit):
    """The page's candidates: the argmax first with its raw value, then pixels with positive
    heatmap value and that value as likelihood, on the i/32 - 1 grid."""
    got = tryit.eval("""() => {
        const w = window.dpTryit, c = w.model.sampleCandidates(w.heatmaps, 50,
                                                               DiffPoseWeb.uniform(7));
        return {cand: Array.from(c), heat: Array.from(w.heatmaps)};
    }""")
    cand = np.asarray(got["cand"]).reshape(50, 16, 32, 3)
    heat = np.asarray(got["heat"], np.float32).reshape(16, 64, 64)
    ix = np.rint((cand[..., 0] + 1) * 32).astype(int)
    iy = np.rint((cand[..., 1] + 1) * 32).astype(int)
    assert np.allclose(cand[..., 0], ix / 32 - 1) and np.allclose(cand[..., 1], iy / 32 - 1)
    value = heat[np.arange(16)[None, :, None], iy, ix]
    assert np.array_equal(cand[..., 2].astype(np.float32), np.maximum(value, 0))
    flat = np.maximum(heat.reshape(16, -1), 0)
    best = flat.argmax(1)
    assert (ix[:, :, 0] == best % 64).all() and (iy[:, :, 0] == best // 64).all()
    assert (cand[:, :, 1:, 2] > 0).all()                     # drawn pixels carry weight
    assert len(np.unique(ix[:, :, 1:] + 64 * iy[:, :, 1:])) > 50   # and vary
    tryit.check()


def test_page_loop_reproduces_diffpose_sample(tryit, site):
    """Candidates and noise from Python, the float32 graphs in the page's loop: within 1e-2 mm
    of DiffPose.sample per joint."""
    model = load_model(shipped_file("full"))
    hm = tryit.eval("() => Array.from(window.dpTryit.heatmaps)")
    heatmaps = torch.tensor(hm, dtype=torch.float32).reshape(1, 16, 64, 64)
    n = 40
    ref = model.sample(heatmaps, n, generator=torch.Generator().manual_seed(5),
                       autocast_dtype=None)[0]
    gen = torch.Generator().manual_seed(5)                   # the same draws, in sample's order
    from dphelpers.candidates import sample_candidates
    cand = sample_candidates(heatmaps, n, model.config.sampling, generator=gen)[0]
    x_t = torch.randn((n, 48), generator=gen)
    noises = [torch.randn((n, 48), generator=gen) for _ in range(24)]

    def b64(t: torch.Tensor) -> str:
        return base64.b64encode(t.contiguous().numpy().astype("<f4").tobytes()).decode()

    got = tryit.eval("""async ([cand, xT, noises, n]) => {
        const f = DiffPoseWeb.float32FromBase64;
        const m = await DiffPoseWeb.load(dpTryit.modelUrl.replace('tryit_model/', 'tryit_fp32/'),
                                         '_static/tryit/');
        const poses = await m.sampleGiven(f(cand), f(xT), noises.map(f), n);
        return Array.from(poses);
    }""", [b64(cand), b64(x_t), [b64(z) for z in noises], n])
    got = torch.tensor(got).reshape(n, 17, 3)
    err = (got - ref).norm(dim=-1)
    print(f"\npage loop vs DiffPose.sample: max {err.max():.2e} mm per joint")
    assert err.max() < 1e-2
    tryit.check()


def test_editing_a_heatmap_moves_the_hypotheses(tryit):
    """Clicks on the heatmap canvas: the map's peak moves there and the hypotheses change; the
    truth button adds a second peak.  Same seed before and after, so only the edit differs."""
    p = tryit.page
    joint = 10                                                # RWrist
    tryit.eval("j => { dpTryit.jointSelect.value = String(j); dpTryit.paint(); "
               "dpTryit.seed = 11; }", joint)
    before = _draw(tryit, 100, seed=11)
    draws = tryit.eval("() => dpTryit.draws")
    box = p.locator(".dp-tryit canvas.dp-heatmap").bounding_box()
    p.mouse.click(box["x"] + 4 * 5 + 2, box["y"] + 4 * 58 + 2)   # pixel (5, 58): bottom left
    p.wait_for_function("d => dpTryit.draws > d && !dpTryit.busy", arg=draws)
    peak = tryit.eval("j => { const m = dpTryit.heatmaps.subarray(j * 4096, (j + 1) * 4096);"
                      " let b = 0; for (let i = 1; i < 4096; i++) if (m[i] > m[b]) b = i;"
                      " return [b % 64, Math.floor(b / 64)]; }", joint)
    assert peak == [5, 58]
    after = _draw(tryit, 100, seed=11)
    a = np.asarray(before["poses"]).reshape(100, 17, 3)
    b = np.asarray(after["poses"]).reshape(100, 17, 3)
    moved = np.linalg.norm(a - b, axis=-1).mean(0)            # (17,) mm, mean over hypotheses
    wrist = 16                                                # H36M RWrist
    assert moved[wrist] > 50, moved
    assert moved[wrist] >= np.median(moved), moved            # the edited joint moves most
    draws = tryit.eval("() => dpTryit.draws")
    total = tryit.eval("j => dpTryit.heatmaps.subarray(j * 4096, (j + 1) * 4096)"
                       ".reduce((s, v) => s + v, 0)", joint)
    p.locator(".dp-tryit button", has_text="Second peak at the truth").click()
    p.wait_for_function("d => dpTryit.draws > d && !dpTryit.busy", arg=draws)
    total2 = tryit.eval("j => dpTryit.heatmaps.subarray(j * 4096, (j + 1) * 4096)"
                        ".reduce((s, v) => s + v, 0)", joint)
    assert total2 > total
    p.locator(".dp-tryit button", has_text="Reset heatmaps").click()
    p.wait_for_function("() => !dpTryit.busy")
    again = _draw(tryit, 100, seed=11)
    assert np.allclose(np.asarray(again["poses"]), np.asarray(before["poses"]), atol=1e-3)
    tryit.check()


def test_every_sample_draws(tryit):
    """Each sample of the menu draws (choosing one from the menu redraws)."""
    n = tryit.eval("() => dpTryit.samples.length")
    assert n >= 4
    for i in range(n):
        draws = tryit.eval("() => dpTryit.draws")
        tryit.page.select_option(".dp-tryit select[aria-label=sample]", str(i))
        tryit.page.wait_for_function("d => dpTryit.draws > d && !dpTryit.busy", arg=draws)
        shown = tryit.eval("() => dpTryit.plot.layout.meta.sample")     # the figure's sample
        assert shown == tryit.eval("() => dpTryit.samples[%d].label" % i)
        title = tryit.eval("() => dpTryit.plot.layout.title.text")
        assert title == tryit.eval("() => dpTryit.nSlider.value") + " hypotheses"
    t0 = time.perf_counter()
    _draw(tryit, 10)
    assert time.perf_counter() - t0 < 5
    tryit.check()
