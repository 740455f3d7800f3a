"""The book's "Try it" page: its data files, and a local server that lets wasm threads run.

:func:`write_tryit_assets` writes what the page's script (``book/static_js/tryit/``) loads,
into one folder (the book build puts it at ``_static/tryit_model/``): the exported model
(:func:`dphelpers.tools.onnxexport.export_onnx`: ``condition.onnx``, ``step.onnx``,
``model.json``) and ``samples.json``, a few held-out test samples (heatmaps as base64
float32, the true root-relative 3D pose in mm and the true 2D joints in heatmap pixels) and,
when the detector is installed, the photo of notebook 06 (no truth).

:func:`serve` serves a built site on 127.0.0.1 with the two headers that make a page
cross-origin isolated (``Cross-Origin-Opener-Policy: same-origin``,
``Cross-Origin-Embedder-Policy: require-corp``): only then may onnxruntime-web run several
wasm threads.  ``python -m dphelpers book --serve`` uses it.  From ``file://`` the page cannot
load its model at all (browsers refuse ``fetch`` there).
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import torch

__all__ = ["ISOLATION_HEADERS", "pick_samples", "sample_entry", "write_samples",
           "write_tryit_assets", "IsolatedHandler", "start_server", "serve", "add_parsers",
           "run_cli"]

ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin",
                     "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin"}


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def sample_entry(label: str, heatmaps: torch.Tensor, truth_mm: torch.Tensor | None = None,
                 joints_hm: torch.Tensor | None = None, joint: int = 0, **extra) -> dict:
    """One entry of ``samples.json``: ``heatmaps: (16, 64, 64)``; ``truth_mm: (17, 3)``
    root-relative; ``joints_hm: (16, 2)``; ``joint``: the MPII joint the page shows first."""
    hm = torch.as_tensor(heatmaps, dtype=torch.float32).cpu()
    if hm.shape != (16, 64, 64):
        raise ValueError(f"heatmaps must have shape (16, 64, 64), got {tuple(hm.shape)}")
    def rounded(a):
        return None if a is None else np.round(np.asarray(a, float), 2).tolist()

    return {"label": label, "heatmaps": _b64(hm.numpy()), "joint": int(joint),
            "truth_mm": rounded(truth_mm), "joints_hm": rounded(joints_hm), **extra}


def pick_samples(test, n: int = 6) -> list[int]:
    """Indices of test samples worth trying: samples where some joint's heatmap peak fails
    (PCKh@0.5) while the simulator kept a weaker mode at the truth, then ambiguous ones, then
    clear ones; at most ``n``, in that order, no repeats."""
    failed = test.failed_joints.any(1)
    kept = (test.failed_joints & test.kept_true_mode).any(1)
    groups = [kept, failed & ~kept, test.ambiguous & ~failed, ~failed & ~test.ambiguous]
    picked: list[int] = []
    for g, quota in zip(groups, (2, 1, 2, 1)):
        picked += [i for i in torch.nonzero(g).flatten().tolist() if i not in picked][:quota]
    for i in range(len(test)):           # top up when a group is short
        if len(picked) >= n:
            break
        if i not in picked:
            picked.append(i)
    return picked[:n]


def write_samples(path: str | Path, n_test: int = 600, n: int = 6, photo: bool = True) -> dict:
    """``samples.json``: ``n`` held-out test samples of ``make_test_set(test split, n_test)``
    (:func:`pick_samples`) and, with ``photo`` and the detector installed, the astronaut."""
    from ..data import load_mocap, split_clips
    from ..metrics import root_relative
    from ..pipeline import make_test_set
    from ..skeleton import MPII_NAMES

    _, test_m = split_clips(load_mocap())
    test = make_test_set(test_m, n_test)
    entries = []
    for i in pick_samples(test, n):
        fails = torch.nonzero(test.failed_joints[i]).flatten().tolist()
        what = ("ambiguous" if bool(test.ambiguous[i]) else "clear") + (
            f", {MPII_NAMES[fails[0]]}'s peak is off" if fails else "")
        entries.append(sample_entry(f"held-out sample {i} ({what})", test.heatmaps[i],
                                    root_relative(test.poses_3d_mm[i]), test.joints_hm[i],
                                    joint=fails[0] if fails else 0, index=i))
    if photo:
        try:
            import skimage.data

            from ..detector import detect_heatmaps
            det = detect_heatmaps(skimage.data.astronaut())
        except ImportError as err:               # the detector is an optional extra
            print(f"tryit: no photo ({err})")
        else:
            entries.append(sample_entry("the photo (astronaut, no truth)", det.heatmaps[0],
                                        joint=MPII_NAMES.index("LKnee")))
    from ..skeleton import H36M_PARENTS
    payload = {"n_test": n_test, "mpii_names": list(MPII_NAMES),
               "h36m_parents": list(H36M_PARENTS), "samples": entries}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return payload


def write_tryit_assets(dest: str | Path, checkpoint: str | Path | None = None,
                       weights: str = "int8", photo: bool = True, progress: bool = False) -> Path:
    """Export the model (the shipped full model unless ``checkpoint``) and write
    ``samples.json`` into ``dest``; returns ``dest``."""
    from ..models.checkpoint import load_model
    from ..models.modelfiles import shipped_file
    from .onnxexport import export_onnx

    dest = Path(dest)
    model = load_model(checkpoint if checkpoint is not None else shipped_file("full"))
    export_onnx(model, dest, weights=weights, progress=progress)
    write_samples(dest / "samples.json", photo=photo)
    return dest


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the cross-origin isolation headers; ``.mjs`` served as JavaScript."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".wasm": "application/wasm",
                      ".onnx": "application/octet-stream", ".json": "application/json"}

    def end_headers(self) -> None:
        for k, v in ISOLATION_HEADERS.items():
            self.send_header(k, v)
        super().end_headers()

    def log_message(self, *args) -> None:
        pass


def start_server(site: str | Path, port: int = 0) -> tuple[http.server.ThreadingHTTPServer,
                                                             threading.Thread]:
    """Serve ``site`` on 127.0.0.1:``port`` (0: any free port) in a daemon thread."""
    site = Path(site)
    if not (site / "index.html").is_file() and not any(site.glob("*.html")):
        raise FileNotFoundError(f"{site} holds no built site (no .html file): build it first "
                                "(python -m dphelpers book)")
    handler = functools.partial(IsolatedHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def serve(site: str | Path, port: int = 8000) -> None:
    """Serve a built site until Ctrl-C."""
    server, thread = start_server(site, port)
    print(f"serving {site} at http://127.0.0.1:{server.server_address[1]}/ "
          "(cross-origin isolated: wasm threads on); Ctrl-C stops")
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


# --- command line: export-onnx and serve (registered by dphelpers.tools.cli) -----------------
def add_parsers(sub, formatter_class) -> None:
    """The ``export-onnx`` and ``serve`` verbs."""
    from textwrap import fill

    from ..models.modelfiles import DIFFPOSE_NAMES
    from .onnxexport import WEIGHTS
    p = sub.add_parser("export-onnx", formatter_class=formatter_class,
                       help="a DiffPose model -> two ONNX graphs + the schedule as JSON (the "
                            "book's in-browser model)",
                       description=fill("Export MODEL (a DiffPose model name, its shipped file "
                                   "data/checkpoints/diffpose_<name>.pt, or a model file) as "
                                   "condition.onnx, step.onnx and model.json in OUT_DIR, what the "
                                   "book's Try it page runs with onnxruntime-web.", 88))
    p.add_argument("model", help=f"model name ({', '.join(DIFFPOSE_NAMES)}) or a model file")
    p.add_argument("out_dir", type=Path, help="folder to write into (created if missing)")
    p.add_argument("--weights", default="int8", choices=WEIGHTS,
                   help="int8: dynamic int8 matrices (the book's, ~8 MB); fp32: exact")
    p.add_argument("--check-p1", type=int, default=0, metavar="N_TEST",
                   help="afterwards, P1 min and median of PyTorch and of the export on N_TEST "
                        "test samples evenly spaced over the test split (same draws), printed "
                        "and written to OUT_DIR/check_p1.json; 0: no check")
    p.add_argument("--n-hypo", type=int, default=200, help="hypotheses per sample for --check-p1")
    p.add_argument("--samples", action="store_true",
                   help="also write samples.json (held-out samples and the photo), so that "
                        "OUT_DIR is all a Try it page needs")
    p = sub.add_parser("serve", formatter_class=formatter_class,
                       help="serve the built book locally (wasm threads on)",
                       description=fill("Serve a built site on 127.0.0.1 with the cross-origin "
                                   "isolation headers that let the in-browser model use several "
                                   "threads.  Pages with the model must be served: from file:// "
                                   "they cannot load it.", 88))
    p.add_argument("site", type=Path, nargs="?", default=None,
                   help="site folder (default: book/_build/html)")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free one)")


def _model_file(text: str) -> Path:
    from ..models.modelfiles import DIFFPOSE_NAMES, MODEL_NAMES, shipped_file
    if text in MODEL_NAMES:
        return shipped_file(text)
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"export-onnx: {text!r} is neither a DiffPose model name "
                                f"({', '.join(DIFFPOSE_NAMES)}) nor a model file")
    return path


def run_cli(args) -> int:
    """Run ``export-onnx`` or ``serve``."""
    if args.verb == "serve":
        # not tools.book's BOOK_DIR: book imports this module, so importing it back is a cycle
        book_html = Path(__file__).resolve().parents[2] / "book" / "_build" / "html"
        serve(args.site if args.site is not None else book_html, args.port)
        return 0
    import time

    from ..models.checkpoint import load_model, read_checkpoint
    from .onnxexport import export_onnx
    path = _model_file(args.model)
    state = read_checkpoint(path)
    if state["kind"] != "diffpose":
        raise ValueError(f"export-onnx: {path} holds a {state['kind']} model; only DiffPose "
                         "models run in the browser")
    t0 = time.time()
    meta = export_onnx(load_model(path, state=state), args.out_dir, weights=args.weights)
    if args.samples:
        write_samples(Path(args.out_dir) / "samples.json")
    if args.check_p1 > 0:
        from ..data import load_mocap, split_clips
        from ..pipeline import make_test_set
        from .onnxexport import compare_p1
        test = make_test_set(split_clips(load_mocap())[1], args.check_p1)
        res = compare_p1(load_model(path, state=state), args.out_dir, test, args.n_hypo)
        (Path(args.out_dir) / "check_p1.json").write_text(json.dumps(res, indent=2))
        print(f"P1 on {res['n_test']} test samples x {res['n_hypo']} hypotheses (same draws): "
              + "; ".join(f"{k} min {res[k]['P1_min']:.2f} mm, median {res[k]['P1_median']:.2f} "
                          f"mm ({res[k]['seconds']:.0f} s)" for k in ("pytorch", "onnx")))
    total = sum(f["bytes"] for f in meta["files"].values())
    print(f"export-onnx: {path} -> {args.out_dir} ({args.weights}, {total / 1e6:.1f} MB) in "
          f"{time.time() - t0:.0f} s")
    return 0
