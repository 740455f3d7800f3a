/* The "Try it" widget: pick a sample, draw hypotheses in the browser, edit a heatmap.
 *
 * Every element with class "dp-tryit" becomes a widget.  Files (relative to this script's
 * folder's parent, the site's _static/): tryit_model/model.json, condition.onnx, step.onnx
 * and samples.json (written when the book is built, dphelpers/tools/tryit.py), and the
 * vendored onnxruntime-web files in tryit/.  Needs diffpose.js, ort.wasm.min.js and plotly.
 * The first widget on the page is window.dpTryit (the browser tests drive it).
 */
(function (global) {
  "use strict";
  const script = document.currentScript;
  const STATIC = script ? script.src.replace(/tryit\/tryit\.js(\?.*)?$/, "") : "_static/";
  const COLORS = { left: "#1f77b4", right: "#e4572e", centre: "#7f7f7f", gt: "#222222" };
  const H36M_LEFT = [4, 5, 6, 11, 12, 13], H36M_RIGHT = [1, 2, 3, 14, 15, 16];
  // 20% farther than the first view (0.84, -2.16, 0.42): in the narrow column of a wide
  // window the vertical axis title came within 3 px of the canvas edge
  const EYE = { x: 1.01, y: -2.59, z: 0.5 };
  let modelPromise = null;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  function side(j) { return H36M_LEFT.includes(j) ? "left" : H36M_RIGHT.includes(j) ? "right" : "centre"; }

  /** Bone segments of poses (n * 17 * 3 mm) for one side, in plot axes (x, z, -y). */
  function bones(poses, n, parents, which) {
    const x = [], y = [], z = [];
    for (let h = 0; h < n; h++) {
      for (let c = 1; c < 17; c++) {
        if (which !== null && side(c) !== which) continue;
        const p = parents[c], a = (h * 17 + p) * 3, b = (h * 17 + c) * 3;
        x.push(poses[a], poses[b], null); y.push(poses[a + 2], poses[b + 2], null);
        z.push(-poses[a + 1], -poses[b + 1], null);
      }
    }
    return { x, y, z };
  }

  class TryIt {
    constructor(root) {
      this.root = root;
      this.draws = 0;
      this.last = null;
      this.seed = 1;
      this.busy = null;
    }

    async start() {
      this.startAt = performance.now() / 1000;
      const base = this.root.dataset.static || STATIC;
      this.modelUrl = this.root.dataset.model || base + "tryit_model/";
      this.buildUi();
      this.status.textContent = "loading the model (onnxruntime-web) ...";
      const t0 = performance.now();
      const samplesPromise = fetch(this.modelUrl + "samples.json").then((r) => {
        if (!r.ok) throw new Error(`samples.json: HTTP ${r.status}`);
        return r.json();
      });
      if (!modelPromise) modelPromise = global.DiffPoseWeb.load(this.modelUrl, base + "tryit/");
      modelPromise.then(() => { this.modelAt = performance.now() / 1000; }, () => {});
      const samples = await samplesPromise;
      this.samplesAt = performance.now() / 1000;
      this.samples = samples.samples.map((s) => ({ ...s, original: global.DiffPoseWeb.float32FromBase64(s.heatmaps) }));
      for (const [i, s] of this.samples.entries()) this.sampleSelect.append(el("option", { value: i, text: s.label }));
      for (const [i, name] of samples.mpii_names.entries()) this.jointSelect.append(el("option", { value: i, text: name }));
      this.selectSample(0);
      this.model = await modelPromise;
      this.loadSeconds = (performance.now() - t0) / 1000;
      this.ready = true;
      this.readyAt = performance.now() / 1000;
      await this.draw();
      this.firstDrawAt = performance.now() / 1000;
    }

    buildUi() {
      const r = this.root;
      r.innerHTML = "";
      this.sampleSelect = el("select", { "aria-label": "sample" });
      this.nSlider = el("input", { type: "range", min: "10", max: "200", step: "10", value: "200", "aria-label": "hypotheses" });
      this.nLabel = el("span", { class: "dp-n", text: "200" });
      this.resampleButton = el("button", { type: "button", text: "Resample" });
      this.jointSelect = el("select", { "aria-label": "joint" });
      this.modeMove = el("input", { type: "radio", name: "dp-mode-" + Math.random(), value: "move", checked: "" });
      this.modeAdd = el("input", { type: "radio", name: this.modeMove.name, value: "add" });
      this.truthButton = el("button", { type: "button", text: "Second peak at the truth" });
      this.resetButton = el("button", { type: "button", text: "Reset heatmaps" });
      this.canvas = el("canvas", { width: "256", height: "256", class: "dp-heatmap", title: "click to edit this joint's heatmap" });
      this.status = el("div", { class: "dp-status", role: "status" });
      this.timing = el("div", { class: "dp-timing" });
      this.plot = el("div", { class: "dp-plot" });
      r.append(
        el("div", { class: "dp-row" }, el("label", {}, "Sample ", this.sampleSelect), " ",
           el("label", {}, "Hypotheses ", this.nSlider, " ", this.nLabel), " ", this.resampleButton),
        el("div", { class: "dp-row" }, el("label", {}, "Heatmap of ", this.jointSelect), " ",
           el("label", {}, this.modeMove, " click moves its peak"), " ",
           el("label", {}, this.modeAdd, " click adds a weaker second peak"), " ",
           this.truthButton, " ", this.resetButton),
        el("div", { class: "dp-panes" }, this.canvas, this.plot), this.timing, this.status);
      this.sampleSelect.addEventListener("change", () => { this.selectSample(+this.sampleSelect.value); this.draw(); });
      this.nSlider.addEventListener("input", () => { this.nLabel.textContent = this.nSlider.value; });
      this.nSlider.addEventListener("change", () => this.draw());
      this.resampleButton.addEventListener("click", () => { this.seed += 1; this.draw(); });
      this.jointSelect.addEventListener("change", () => this.paint());
      this.canvas.addEventListener("click", (ev) => {
        const box = this.canvas.getBoundingClientRect();
        const px = Math.floor(((ev.clientX - box.left) / box.width) * 64);
        const py = Math.floor(((ev.clientY - box.top) / box.height) * 64);
        if (this.modeAdd.checked) this.addPeak(+this.jointSelect.value, px, py); else this.movePeak(+this.jointSelect.value, px, py);
        this.draw();
      });
      this.truthButton.addEventListener("click", () => {
        const j = +this.jointSelect.value, t = this.sample.joints_hm;
        this.addPeak(j, Math.round(t[j][0]), Math.round(t[j][1]));
        this.draw();
      });
      this.resetButton.addEventListener("click", () => { this.heatmaps = this.sample.original.slice(); this.paint(); this.draw(); });
    }

    selectSample(i) {
      this.sample = this.samples[i];
      this.sampleSelect.value = String(i);
      this.heatmaps = this.sample.original.slice();
      this.jointSelect.value = String(this.sample.joint || 0);   // the joint worth editing
      this.truthButton.disabled = !this.sample.joints_hm;
      this.last = null;
      this.paint();
    }

    /** Shift joint j's whole map so that its peak lands on pixel (px, py). */
    movePeak(j, px, py) {
      const a = 64 * 64, map = this.heatmaps.subarray(j * a, (j + 1) * a), old = map.slice();
      let best = 0;
      for (let i = 1; i < a; i++) if (old[i] > old[best]) best = i;
      const dx = px - (best % 64), dy = py - Math.floor(best / 64);
      map.fill(0);
      for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) {
        const sx = x - dx, sy = y - dy;
        if (sx >= 0 && sx < 64 && sy >= 0 && sy < 64) map[y * 64 + x] = old[sy * 64 + sx];
      }
      this.paint();
    }

    /** Add a Gaussian (sigma 2 px) of half the map's peak at pixel (px, py) of joint j. */
    addPeak(j, px, py, strength = 0.5) {
      const a = 64 * 64, map = this.heatmaps.subarray(j * a, (j + 1) * a);
      let peak = 0;
      for (let i = 0; i < a; i++) peak = Math.max(peak, map[i]);
      const amp = strength * (peak > 0 ? peak : 1);
      for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) {
        const d2 = (x - px) ** 2 + (y - py) ** 2;
        if (d2 < 64) map[y * 64 + x] += amp * Math.exp(-d2 / 8);
      }
      this.paint();
    }

    paint() {
      if (!this.heatmaps) return;
      const j = +this.jointSelect.value || 0, a = 64 * 64, map = this.heatmaps.subarray(j * a, (j + 1) * a);
      const ctx = this.canvas.getContext("2d", { willReadFrequently: true }), img = ctx.createImageData(64, 64);
      let peak = 0;
      for (let i = 0; i < a; i++) peak = Math.max(peak, map[i]);
      for (let i = 0; i < a; i++) {
        const v = peak > 0 ? Math.max(0, map[i]) / peak : 0;
        img.data[4 * i] = 255 * Math.min(1, 1.5 * v); img.data[4 * i + 1] = 255 * v * v;
        img.data[4 * i + 2] = 60 * (1 - v); img.data[4 * i + 3] = 255;
      }
      const off = document.createElement("canvas");
      off.width = off.height = 64;
      off.getContext("2d").putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, 0, 0, 256, 256);
      const t = this.sample && this.sample.joints_hm;
      if (t) {                                  // the true 2D joint: a white circle
        ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2; ctx.beginPath();
        ctx.arc(4 * (t[j][0] + 0.5), 4 * (t[j][1] + 0.5), 7, 0, 2 * Math.PI); ctx.stroke();
      }
    }

    /** Draw hypotheses for the current heatmaps; concurrent requests collapse into one. */
    async draw() {
      if (!this.ready) return null;
      if (this.busy) { this.again = true; return this.busy; }
      this.busy = (async () => {
        let result;
        do {
          this.again = false;
          const n = +this.nSlider.value;
          this.status.textContent = `drawing ${n} hypotheses ...`;
          result = await this.model.sample(this.heatmaps, n, this.seed);
          this.draws += 1;
          this.last = result;
          this.render(result);
        } while (this.again);
        return result;
      })();
      try { return await this.busy; } catch (err) {
        this.status.textContent = "error: " + err.message; console.error(err); throw err;
      } finally { this.busy = null; }
    }

    /** Best-hypothesis error (mm, mean over the 17 joints) against the sample's truth. */
    bestError(result) {
      const gt = this.sample.truth_mm;
      if (!gt) return null;
      let best = Infinity;
      for (let h = 0; h < result.n; h++) {
        let e = 0;
        for (let k = 0; k < 17; k++) {
          const o = (h * 17 + k) * 3;
          e += Math.hypot(result.poses[o] - gt[k][0], result.poses[o + 1] - gt[k][1], result.poses[o + 2] - gt[k][2]);
        }
        best = Math.min(best, e / 17);
      }
      return best;
    }

    render(result, parents = this.model.meta.h36m_parents) {
      const s = result.seconds, n = result.n;
      const traces = ["left", "right", "centre"].map((which) => ({
        type: "scatter3d", mode: "lines", name: `hypotheses (${which})`, hoverinfo: "skip",
        line: { color: COLORS[which], width: 2 }, opacity: n > 50 ? 0.25 : 0.5, ...bones(result.poses, n, parents, which),
      }));
      if (this.sample.truth_mm) {
        const gt = new Float32Array(this.sample.truth_mm.flat());
        traces.push({ type: "scatter3d", mode: "lines+markers", name: "ground truth", line: { color: COLORS.gt, width: 7 },
                      marker: { size: 3, color: COLORS.gt }, ...bones(gt, 1, parents, null) });
      }
      // a 2 m cube, grown in 250 mm steps when a hypothesis reaches past it: plotly draws lines
      // outside an axis range beyond the box, up to the plot's edge
      let reach = 0;
      for (const t of traces) for (const v of [t.x, t.y, t.z]) for (const c of v) if (c !== null) reach = Math.max(reach, Math.abs(c));
      const lim = Math.max(1000, Math.ceil(reach / 250) * 250);
      const axis = (title) => ({ title: { text: title }, range: [-lim, lim], nticks: 5 });
      const layout = {
        height: 460, margin: { l: 0, r: 0, t: 30, b: 0 }, showlegend: false, uirevision: "keep",
        // short: the sample's name is in the menu above; with it, the plot's edge cut the title
        title: { text: `${n} hypotheses`, font: { size: 13 } }, meta: { sample: this.sample.label },
        scene: { xaxis: axis("x (right) mm"), yaxis: axis("z (depth) mm"), zaxis: axis("-y (up) mm"),
                 aspectmode: "cube", camera: { eye: EYE, up: { x: 0, y: 0, z: 1 } } },
      };
      global.Plotly.react(this.plot, traces, layout, { displaylogo: false, responsive: true });
      const best = this.bestError(result);
      this.timing.textContent = `${n} hypotheses in ${s.total.toFixed(2)} s (candidates ${s.candidates.toFixed(3)} s, ` +
        `condition ${s.condition.toFixed(3)} s, 25 steps ${s.steps.toFixed(2)} s) on ${this.model.backend()}; ` +
        `model and samples loaded in ${this.loadSeconds.toFixed(1)} s` +
        (best === null ? "" : `; best hypothesis ${best.toFixed(0)} mm from the truth (mean over joints)`);
      this.status.textContent = `draw ${this.draws} done`;
      this.root.dispatchEvent(new CustomEvent("dp-drawn", { detail: result }));
    }
  }

  function startAll() {
    for (const root of document.querySelectorAll(".dp-tryit")) {
      if (root.dpTryit) continue;
      const w = new TryIt(root);
      root.dpTryit = w;
      if (!global.dpTryit) global.dpTryit = w;
      w.start().catch((err) => {
        w.error = err;
        w.status.textContent = "could not start: " + err.message +
          (location.protocol === "file:" ? " (open the book from a web server: python -m dphelpers book --serve)" : "");
        console.error(err);
      });
    }
  }

  global.DiffPoseTryIt = TryIt;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll); else startAll();
})(window);
