/* DiffPose in the browser: heatmaps -> candidates -> condition -> 25 ancestral steps -> 3D poses.
 *
 * The same math as the Python package (dphelpers): candidate sampling as
 * dphelpers/sampling.py (clamp at 0, the argmax with its raw value, then n_samples - 1 pixels
 * drawn with replacement, x = col / 32 - 1, y = row / 32 - 1, likelihood = the clamped value;
 * an all-zero map draws uniformly with likelihood 0), the condition graph once per hypothesis,
 * the step graph 25 times (DiffPose.sample's ancestral loop; the schedule's coefficients come
 * from model.json, written by dphelpers/tools/onnxexport.py), then x0 -> millimetres with the
 * pelvis at the hips' midpoint (diffusion.x0_to_poses).
 *
 * Needs onnxruntime-web's classic script (ort.wasm.min.js) loaded first (global `ort`).
 * Defines the global `DiffPoseWeb`.
 */
(function (global) {
  "use strict";

  /** A seeded uniform generator on [0, 1) (mulberry32). */
  function uniform(seed) {
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /** Standard normal draws (Box-Muller) from a uniform generator. */
  function normal(rand) {
    let spare = null;
    return function () {
      if (spare !== null) { const s = spare; spare = null; return s; }
      let u = 0;
      while (u === 0) u = rand();
      const r = Math.sqrt(-2 * Math.log(u)), phi = 2 * Math.PI * rand();
      spare = r * Math.sin(phi);
      return r * Math.cos(phi);
    };
  }

  /** Decode base64 little-endian float32 into a Float32Array. */
  function float32FromBase64(text) {
    const bin = atob(text), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  /** Threads need SharedArrayBuffer, i.e. a cross-origin isolated page; then half the cores
   * (at most 4), onnxruntime-web's own default: on a 2-core machine one thread, which was
   * faster there than two while anything else (the page's 3D figure, another program) ran. */
  function threadsWanted() {
    if (!global.crossOriginIsolated) return 1;
    return Math.max(1, Math.min(4, Math.ceil((global.navigator.hardwareConcurrency || 1) / 2)));
  }

  class DiffPoseWeb {
    /** Load model.json and the two graphs from `modelUrl` (a folder URL ending in '/');
     * `wasmUrl`: the folder holding ort-wasm-simd-threaded.{mjs,wasm}. */
    static async load(modelUrl, wasmUrl, options = {}) {
      const ort = global.ort;
      if (!ort) throw new Error("onnxruntime-web (ort.wasm.min.js) is not loaded");
      modelUrl = new URL(modelUrl, document.baseURI).href;   // module imports need absolute URLs
      ort.env.wasm.wasmPaths = new URL(wasmUrl, document.baseURI).href;
      ort.env.wasm.numThreads = options.threads || threadsWanted();
      ort.env.wasm.proxy = false;
      ort.env.logLevel = "error";
      const t0 = performance.now();
      const response = await fetch(modelUrl + "model.json");
      if (!response.ok) throw new Error(`model.json: HTTP ${response.status}`);
      const meta = await response.json();
      const t1 = performance.now();
      const opts = { executionProviders: ["wasm"], graphOptimizationLevel: options.optimization || "all" };
      const condition = await ort.InferenceSession.create(modelUrl + meta.files.condition.file, opts);
      const t2 = performance.now();
      const step = await ort.InferenceSession.create(modelUrl + meta.files.step.file, opts);
      const t3 = performance.now();
      // No warm-up run: a small one did not spare the first 200-hypothesis draw its one-off
      // costs (buffers for the larger batch), it only delayed it.
      const model = new DiffPoseWeb(meta, condition, step);
      model.loadSeconds = (t3 - t0) / 1000;
      model.loadParts = { meta: (t1 - t0) / 1000, condition: (t2 - t1) / 1000, step: (t3 - t2) / 1000 };
      model.threads = ort.env.wasm.numThreads;
      model.simd = ort.env.wasm.simd !== false;
      return model;
    }

    constructor(meta, condition, step) {
      this.meta = meta;
      this.conditionSession = condition;
      this.stepSession = step;
    }

    /** A backend description for the page: "wasm SIMD, 2 threads". */
    backend() {
      return `onnxruntime-web wasm${this.simd ? " SIMD" : ""}, ${this.threads} thread` +
        (this.threads === 1 ? "" : "s") + (global.crossOriginIsolated ? "" : " (page not cross-origin isolated)");
    }

    /** heatmaps: Float32Array(16 * size * size) -> candidates Float32Array(nHypo * 16 * s * 3). */
    sampleCandidates(heatmaps, nHypo, rand) {
      const m = this.meta, size = m.heatmap_size, area = size * size, j = 16, s = m.n_samples;
      const out = new Float32Array(nHypo * j * s * 3);
      const cum = new Float64Array(area);
      const nRandom = m.use_argmax ? s - 1 : s;
      for (let k = 0; k < j; k++) {
        const map = heatmaps.subarray(k * area, (k + 1) * area);
        let best = 0, bestValue = -Infinity, total = 0;
        for (let i = 0; i < area; i++) {
          const v = map[i] > 0 ? map[i] : 0;
          if (v > bestValue) { bestValue = v; best = i; }
          total += v;
          cum[i] = total;
        }
        const empty = !(total > 0);
        const put = (h, slot, index) => {
          const o = ((h * j + k) * s + slot) * 3;
          out[o] = (index % size) / (size / 2) - 1;
          out[o + 1] = Math.floor(index / size) / (size / 2) - 1;
          out[o + 2] = empty ? 0 : (map[index] > 0 ? map[index] : 0);
        };
        for (let h = 0; h < nHypo; h++) {
          let slot = 0;
          if (m.use_argmax) put(h, slot++, best);
          for (let r = 0; r < nRandom; r++) {
            let index;
            if (empty) {
              index = Math.min(area - 1, Math.floor(rand() * area));
            } else {
              const u = rand() * total;
              let lo = 0, hi = area - 1;                  // first i with cum[i] > u
              while (lo < hi) { const mid = (lo + hi) >> 1; if (cum[mid] > u) hi = mid; else lo = mid + 1; }
              while (lo > 0 && !(map[lo] > 0)) lo--;        // never a zero-weight pixel
              index = lo;
            }
            put(h, slot++, index);
          }
        }
      }
      return out;
    }

    /** candidates (n * 16 * s * 3) -> cond_h Float32Array(n * hidden). */
    async condition(candidates, n) {
      const t = new global.ort.Tensor("float32", candidates, [n, 16, this.meta.n_samples, 3]);
      const result = await this.conditionSession.run({ candidates: t });
      return result.cond_h.data;
    }

    /** The ancestral loop: from x_T (n * 48) to x0; `noise(t)` returns step t's noise
     * (Float32Array(n * 48)) for t = T-1 .. 1; step 0 adds none. */
    async denoise(condH, n, xT, noise) {
      const ort = global.ort, m = this.meta, d = m.pose_dim;
      const cond = new ort.Tensor("float32", condH, [n, m.hidden]);
      const zero = new Float32Array(n * d);
      let x = xT;
      for (let t = m.n_steps - 1; t >= 0; t--) {
        const feeds = {
          x_t: new ort.Tensor("float32", x, [n, d]),
          cond_h: cond,
          noise: new ort.Tensor("float32", t > 0 ? noise(t) : zero, [n, d]),
          coef: new ort.Tensor("float32", Float32Array.from(m.coef[t]), [m.coef[t].length]),
        };
        const result = await this.stepSession.run(feeds);
        x = result.x_prev.data;
      }
      return x;
    }

    /** x0 (n * 48, network units) -> poses Float32Array(n * 17 * 3) mm, pelvis at the origin. */
    toPoses(x0, n) {
      const m = this.meta, scale = 1000 / m.pose_scale, out = new Float32Array(n * 17 * 3);
      const r = m.r_hip - 1, l = m.l_hip - 1;
      for (let h = 0; h < n; h++) {
        const src = h * 48;
        for (let c = 0; c < 3; c++) {
          const pelvis = 0.5 * (x0[src + r * 3 + c] + x0[src + l * 3 + c]) * scale;
          out[h * 51 + c] = 0;
          for (let k = 0; k < 16; k++) out[h * 51 + (k + 1) * 3 + c] = x0[src + k * 3 + c] * scale - pelvis;
        }
      }
      return out;
    }

    /** Draw nHypo poses for one image's heatmaps; returns {poses, n, seconds: {...}}. */
    async sample(heatmaps, nHypo, seed) {
      const d = this.meta.pose_dim, n = nHypo;
      const rand = uniform(seed), gauss = normal(uniform(seed ^ 0x9e3779b9));
      const t0 = performance.now();
      const cand = this.sampleCandidates(heatmaps, n, rand);
      const t1 = performance.now();
      const condH = await this.condition(cand, n);
      const t2 = performance.now();
      const xT = new Float32Array(n * d);
      for (let i = 0; i < xT.length; i++) xT[i] = gauss();
      const buf = new Float32Array(n * d);
      const x0 = await this.denoise(condH, n, xT, () => {
        for (let i = 0; i < buf.length; i++) buf[i] = gauss();
        return buf;
      });
      const t3 = performance.now();
      return {
        poses: this.toPoses(x0, n), n: n, candidates: cand,
        seconds: { candidates: (t1 - t0) / 1000, condition: (t2 - t1) / 1000,
                   steps: (t3 - t2) / 1000, total: (t3 - t0) / 1000 },
      };
    }

    /** Fidelity check: candidates, x_T and every step's noise supplied (from Python). */
    async sampleGiven(candidates, xT, noises, n) {
      const condH = await this.condition(candidates, n);
      const x0 = await this.denoise(condH, n, xT, (t) => noises[this.meta.n_steps - 1 - t]);
      return this.toPoses(x0, n);
    }
  }

  DiffPoseWeb.uniform = uniform;
  DiffPoseWeb.normal = normal;
  DiffPoseWeb.float32FromBase64 = float32FromBase64;
  global.DiffPoseWeb = DiffPoseWeb;
})(window);
