"""Load-or-compute for results that take long to compute (notebooks 04 and 05).

Introduced in notebook 05, section 2 (and used for notebook 04's hand-written training run).
Like :func:`dphelpers.models.modelfiles.load_or_train` for models: a result is read from a cache
file when one exists for exactly the same inputs, else computed and saved, so that a
second build of the book is fast and shows identical numbers.

The key of a result is a SHA-256 over its settings (a JSON-able dict), typically holding
the content hash of the model file (:func:`file_digest`), the content of the test set
(:func:`tensor_digest`) and the code of the modules that compute it
(:func:`source_digest`, docstrings and comments excluded): change any of them and the result is
computed again.

Cache files live in ``runs/cache/`` of the project (ignored by git); the environment
variable ``DPHELPERS_CACHE`` names another folder, or ``off`` to always compute.  Files
hold only tensors, numbers, strings, lists and dicts, read back with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = ["CACHE_DIR", "CACHE_ENV", "cache_dir", "file_digest", "tensor_digest",
           "code_text", "source_digest", "package_digest", "cache_key", "load_or_compute",
           "evaluation_to_dict", "evaluation_from_dict", "cached_evaluate"]

CACHE_DIR = Path(__file__).resolve().parents[2] / "runs" / "cache"
CACHE_ENV = "DPHELPERS_CACHE"
T = TypeVar("T")
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def cache_dir(folder: str | os.PathLike | None = None) -> Path | None:
    """The cache folder: ``folder`` if given, else ``$DPHELPERS_CACHE``, else
    :data:`CACHE_DIR`; None when caching is off (``DPHELPERS_CACHE=off``)."""
    if folder is not None:
        return Path(folder)
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() in ("off", "0", "no", "false"):
        return None
    return Path(env) if env else CACHE_DIR


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (hex); remembered per (path, size, mtime) in this process."""
    p = Path(path).resolve()
    st = p.stat()
    memo = (str(p), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_DIGESTS[memo] = h.hexdigest()
    return _FILE_DIGESTS[memo]


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 over the shapes, dtypes and values of tensors (hex)."""
    h = hashlib.sha256()
    for t in tensors:
        t = torch.as_tensor(t).detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype};".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def code_text(source: str) -> str:
    """What of a module's source can change a result: its syntax tree without docstrings
    (comments and formatting are not in the tree), as text.  Editing a docstring, a comment
    or the layout keeps the text; any change of the code changes it."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)) or not node.body:
            continue
        first = node.body[0]
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def source_digest(modules: Iterable[Any]) -> str:
    """SHA-256 over the code of modules (imported module objects): :func:`code_text` of each
    source file, so that documentation edits keep cached results."""
    h = hashlib.sha256()
    for m in modules:
        h.update(code_text(Path(m.__file__).read_text()).encode())
    return h.hexdigest()


def package_digest() -> str:
    """SHA-256 over the code (:func:`code_text`) of every module of ``dphelpers``: any code
    change counts, documentation does not."""
    root = Path(__file__).resolve().parents[1]           # the package
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(code_text(f.read_text()).encode())
    return h.hexdigest()


def cache_key(settings: dict) -> str:
    """A short stable key of a JSON-able settings dict (order of keys does not matter)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load_or_compute(what: str, settings: dict, compute: Callable[[], T],
                    folder: str | os.PathLike | None = None) -> tuple[T, bool]:
    """``(value, loaded)``: the cached value for ``(what, settings)`` or ``compute()`` (then saved).

    ``what``: a short name (letters, digits, ``_`` and ``-``), the start of the file name;
    ``compute()`` must return tensors, numbers, strings, lists and dicts only.
    """
    if not what or not all(c.isalnum() or c in "_-" for c in what):
        raise ValueError(f"load_or_compute: what={what!r} must be letters, digits, _ or -")
    root = cache_dir(folder)
    if root is None:
        return compute(), False
    path = root / f"{what}-{cache_key({'what': what, **settings})}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True), True
        except Exception:          # a damaged or foreign file: compute again and replace it
            path.unlink(missing_ok=True)
    value = compute()
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(value, tmp)
    tmp.replace(path)                                  # atomic: no half-written cache file
    return value, False


def evaluation_to_dict(ev) -> dict:
    """An :class:`~dphelpers.evaluation.evaluate.Evaluation` as a plain dict (for the cache)."""
    return {f.name: getattr(ev, f.name) for f in dataclasses.fields(ev)}


def evaluation_from_dict(d: dict):
    """Inverse of :func:`evaluation_to_dict`: the cached dict back as an
    :class:`~dphelpers.evaluation.evaluate.Evaluation`."""
    from .evaluate import Evaluation
    return Evaluation(**d)


def cached_evaluate(model, model_file: str | os.PathLike | None, test, n_hypo: int,
                    batch_size: int, seed: int = 0, keep: bool = False,
                    progress: bool = False, folder: str | os.PathLike | None = None):
    """:func:`dphelpers.evaluation.evaluate.evaluate` with load-or-compute:
    ``(Evaluation, loaded)``.

    The key holds the content hash of ``model_file``, the test set's heatmaps and poses,
    the settings and the source of the sampling and scoring modules.  ``model_file=None``
    (a model that lives only in memory, e.g. a QUICK stand-in) is never cached.
    """
    from .. import candidates, denoiser, diffusion, embedding, metrics, schedule
    from . import evaluate
    run = lambda: evaluation_to_dict(evaluate.evaluate(  # noqa: E731
        model, test, n_hypo, batch_size, seed=seed, progress=progress, keep=keep))
    if model_file is None:
        return evaluation_from_dict(run()), False
    settings = {"model": file_digest(model_file), "device": str(model.device),
                "test": tensor_digest(test.heatmaps, test.poses_3d_mm, test.ambiguous),
                "n_hypo": n_hypo, "batch_size": batch_size, "seed": seed, "keep": keep,
                "code": source_digest([candidates, denoiser, diffusion, embedding, evaluate,
                                       metrics, schedule]),
                "torch": torch.__version__}
    d, loaded = load_or_compute("evaluate", settings, run, folder)
    return evaluation_from_dict(d), loaded
