"""The package's import graph: no cycles, and the method core never reaches into tooling.

Every module of ``dphelpers`` is read with :mod:`ast` (nothing is imported); every ``import``
and ``from ... import`` counts, at module level, inside functions and under
``if TYPE_CHECKING:`` alike (a function-local import still ties the two modules together).
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "dphelpers"

#: The method itself (DESIGN.md's flow, data file to metrics).
CORE = ("skeleton", "data", "cameras", "heatmaps", "candidates", "embedding", "denoiser",
        "schedule", "diffusion", "metrics")
#: Training, evaluation and tooling: the core must not import these, even indirectly.
OUTSIDE_CORE = ("training", "models", "evaluation", "pipeline", "calibration", "lifter", "viz",
                "vizcore", "tools")
#: The subpackages below the flat top level (training, model files, evaluation, tooling, ...).
SUBPACKAGES = ("training", "models", "evaluation", "tools", "datasets", "detector")


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``root`` (the package dir)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute dotted names every import statement of ``tree`` may load (relative ones resolved;
    ``from a import b`` yields both ``a`` and ``a.b``, the caller keeps those that are modules)."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports.  Importing ``a.b.c`` also runs the packages
    ``a`` and ``a.b`` (their ``__init__``), except those the importer already lies inside."""
    files = module_files(root, package)
    graph = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        own = module.split(".") if is_package else module.split(".")[:-1]
        edges = set()
        for name in _imported_names(tree, module, is_package):
            if name not in files:
                continue
            parts = name.split(".")
            for k in range(1, len(parts) + 1):
                target = ".".join(parts[:k])
                if target in files and own[:k] != parts[:k] and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` per strongly connected component with more than one module
    (Tarjan's algorithm, iterative), sorted."""
    index, low, on_stack, stack, comps, counter = {}, {}, set(), [], [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp.append(member)
                        if member == node:
                            break
                    if len(comp) > 1:
                        comps.append(set(comp))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(_cycle_in(graph, comp) for comp in comps)


def _cycle_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, by breadth-first search."""
    start = min(comp)
    parent, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & comp):
                if child == start:
                    path = [node]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle in component {sorted(comp)}")


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """Every module ``start`` imports, directly or not -> one import chain leading there."""
    chains, frontier = {start: [start]}, [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child not in chains:
                    chains[child] = chains[node] + [child]
                    nxt.append(child)
        frontier = nxt
    return chains


def _describe(cycles: list[list[str]]) -> str:
    return "; ".join(" -> ".join(c) for c in cycles)


def test_the_package_has_no_import_cycle():
    graph = import_graph(PACKAGE_DIR, "dphelpers")
    assert len(graph) > 50 and "dphelpers.diffusion" in graph
    assert "dphelpers.models.checkpoint" in graph["dphelpers.models.modelfiles"]     # edges are really read
    cycles = find_cycles(graph)
    assert not cycles, f"import cycle(s): {_describe(cycles)}"


def test_the_method_core_imports_no_training_evaluation_or_tooling_module():
    graph = import_graph(PACKAGE_DIR, "dphelpers")
    outside = tuple(f"dphelpers.{name}" for name in OUTSIDE_CORE)
    bad = []
    for name in CORE:
        for module, chain in reachable(graph, f"dphelpers.{name}").items():
            if module in outside or module.startswith(tuple(o + "." for o in outside)):
                bad.append(" -> ".join(chain))
    assert not bad, "the method core reaches outside itself: " + "; ".join(bad)


def test_the_flat_top_level_imports_nothing_below_it():
    """Every module at the top of the package (the method and its data) reads no module of a
    subpackage, even indirectly: the reader can learn the method without the tooling."""
    graph = import_graph(PACKAGE_DIR, "dphelpers")
    top = sorted(m for m in graph if m.count(".") == 1
                 and m.split(".")[1] not in SUBPACKAGES + ("__main__",))
    assert len(top) >= 20 and "dphelpers.diffusion" in top
    below = tuple(f"dphelpers.{p}" for p in SUBPACKAGES)
    bad = [" -> ".join(chain) for name in top
           for module, chain in reachable(graph, name).items() if module.startswith(below)]
    assert not bad, "a top-level module reaches into a subpackage: " + "; ".join(bad)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checks_find_a_cycle_through_function_level_and_relative_imports(tmp_path):
    pkg = _write(tmp_path / "fake", {
        "__init__.py": "",
        "a.py": "from .b import thing\n",
        "b.py": "def f():\n    from .sub import c\n",
        "sub/__init__.py": "",
        "sub/c.py": "import typing\nif typing.TYPE_CHECKING:\n    from .. import a\n",
        "leaf.py": "import os\nfrom . import a\n",
    })
    graph = import_graph(pkg, "fake")
    assert graph["fake.leaf"] == {"fake.a"}
    assert graph["fake.b"] == {"fake.sub", "fake.sub.c"}
    assert find_cycles(graph) == [["fake.a", "fake.b", "fake.sub.c", "fake.a"]]
    with pytest.raises(AssertionError, match=r"fake\.a -> fake\.b -> fake\.sub\.c -> fake\.a"):
        assert not find_cycles(graph), f"import cycle(s): {_describe(find_cycles(graph))}"
    (pkg / "sub" / "c.py").write_text("X = 1\n")                      # the cycle broken
    assert find_cycles(import_graph(pkg, "fake")) == []


def test_a_package_init_importing_its_own_submodules_is_no_cycle(tmp_path):
    pkg = _write(tmp_path / "fake", {
        "__init__.py": "",
        "det/__init__.py": "from .d import run\n",
        "det/d.py": "from ..core import x\nfrom . import e\n",
        "det/e.py": "",
        "core.py": "x = 1\n",
        "user.py": "from .det.d import run\n",
    })
    graph = import_graph(pkg, "fake")
    assert graph["fake.user"] == {"fake.det", "fake.det.d"}
    assert graph["fake.det.d"] == {"fake.core", "fake.det.e"}
    assert find_cycles(graph) == []
    chains = reachable(graph, "fake.user")
    assert chains["fake.core"] == ["fake.user", "fake.det.d", "fake.core"]     # a shortest chain


# --- no work at import ------------------------------------------------------------------------
#: Calls that probe the hardware or build the training settings (whose precision probes it).
PROBES = ("TrainConfig", "default_precision", "resolve_autocast", "is_available",
          "is_bf16_supported", "_is_mkldnn_bf16_supported", "device_count", "get_device_name")
#: Default arguments that still build a settings object at import, in modules other engineers
#: own; the rule is the same there (default None, built inside) and this list only shrinks.
NOT_YET_LAZY = {
    ("dphelpers.calibration", "calibration_samples"), ("dphelpers.calibration", "calibration_table"),
    ("dphelpers.data", "split_clips"), ("dphelpers.datasets.base", "to_sample_batch"),
    ("dphelpers.denoiser", "__init__"), ("dphelpers.embedding", "__init__"),
    ("dphelpers.detector.detect", "mpii_from_blazepose"), ("dphelpers.detector.detect", "detect_heatmaps"),
    ("dphelpers.evaluation.mechanism", "collect"), ("dphelpers.pipeline", "make_batch"),
    ("dphelpers.pipeline", "make_test_set"), ("dphelpers.pipeline", "__init__"),
    ("dphelpers.tools.measure", "sampling_flops"), ("dphelpers.tools.measure", "training_flops"),
}


def _called(node: ast.AST) -> list[str]:
    """Names (last attribute) of every call inside ``node``."""
    out = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            f = sub.func
            out.append(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return out


def work_at_import(root: Path, package: str) -> list[str]:
    """Default arguments that call anything (they run once, at import) and module- or
    class-level statements that probe the hardware, as 'module:line what'."""
    found = []
    for module, path in module_files(root, package).items():
        if module.endswith("__main__"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                defaults = node.args.defaults + [d for d in node.args.kw_defaults if d]
                for d in defaults:
                    calls = _called(d)
                    if calls and (set(calls) & set(PROBES)
                                  or (module, getattr(node, "name", "")) not in NOT_YET_LAZY):
                        found.append(f"{module}:{d.lineno} default {ast.unparse(d)}")
        bodies = [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        for body in bodies:
            for stmt in body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    stmt = ast.Module(body=stmt.decorator_list, type_ignores=[])
                elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                    stmt = stmt.value            # dataclass fields: default_factory=f is lazy
                probes = sorted(set(_called(stmt)) & set(PROBES))
                if probes:
                    found.append(f"{module}:{getattr(stmt, 'lineno', '?')} runs {probes}")
    return sorted(found)


def test_no_default_argument_or_module_statement_does_work_at_import():
    found = work_at_import(PACKAGE_DIR, "dphelpers")
    assert not found, "work at import time: " + "; ".join(found)


def test_the_work_at_import_check_sees_defaults_and_module_level_probes(tmp_path):
    pkg = _write(tmp_path / "fake", {
        "__init__.py": "",
        "a.py": "import torch\nGPU = torch.cuda.is_available()\n"
                "def f(config=TrainConfig()):\n    pass\n"
                "def g(config=None, n=3, name='x'):\n    cfg = TrainConfig()\n",
        "b.py": "from dataclasses import dataclass, field\n"
                "@dataclass\nclass C:\n    p: str = field(default_factory=default_precision)\n"
                "    q: str = default_precision()\n",
    })
    assert work_at_import(pkg, "fake") == [
        "fake.a:2 runs ['is_available']", "fake.a:3 default TrainConfig()",
        "fake.b:5 runs ['default_precision']"]


def test_importing_every_module_probes_no_hardware():
    """In a fresh interpreter: import every module of the package with the hardware probes
    and :func:`default_precision` replaced by recorders; none may run."""
    code = textwrap.dedent("""
        import importlib, pkgutil, torch
        calls = []
        def recorder(name, real):
            def f(*a, **k):
                calls.append(name)
                return real(*a, **k)
            return f
        torch.cuda.is_available = recorder("cuda.is_available", torch.cuda.is_available)
        torch.cuda.is_bf16_supported = recorder("cuda.is_bf16_supported", torch.cuda.is_bf16_supported)
        torch.ops.mkldnn._is_mkldnn_bf16_supported = recorder(
            "mkldnn_bf16", torch.ops.mkldnn._is_mkldnn_bf16_supported)
        import dphelpers, dphelpers.precision as P
        P.default_precision = recorder("default_precision", P.default_precision)
        names = sorted(m.name for m in pkgutil.walk_packages(dphelpers.__path__, "dphelpers.")
                       if not m.name.endswith("__main__"))
        for name in names:
            importlib.import_module(name)
        assert len(names) > 50, names
        print("CALLS", calls)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE_DIR.parent, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "CALLS []" in out.stdout, out.stdout[-2000:]
