"""Every notebook of the book runs end to end under papermill with ``QUICK=True``.

Also checks the committed form: exactly one ``parameters`` cell holding ``QUICK``, no outputs
or execution counts, code lines that fit the book's column (88 characters), the setup cell
hidden (``hide-input``), and parameters that QUICK never overwrites (``dphelpers.params``).
"""
import ast
import json
from pathlib import Path

import nbformat
import pytest

from dphelpers.params import Settings, choose

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, f"expected at least 3 notebooks in {ROOT / 'notebooks'}, found {NOTEBOOKS}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_clean(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{nb_path.name}: {len(params)} cells tagged 'parameters', expected 1"
    assert params[0].cell_type == "code" and "QUICK" in params[0].source, \
        f"{nb_path.name}: the parameters cell must be code and set QUICK"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{nb_path.name}: cell {i} has outputs (commit notebooks without outputs)"
            assert cell.execution_count is None, f"{nb_path.name}: cell {i} has an execution count"
    # nbformat >= 4.5 wants an id on every cell (nbformat.read adds missing ones silently)
    raw = json.loads(nb_path.read_text())["cells"]
    missing = [i for i, c in enumerate(raw) if not c.get("id")]
    assert not missing, f"{nb_path.name}: cells {missing} have no id"
    ids = [c["id"] for c in raw]
    assert len(set(ids)) == len(ids), f"{nb_path.name}: cell ids repeat"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(nb_path, executed_notebooks):
    """Executed once per session by the ``executed_notebooks`` fixture (papermill, QUICK=True)."""
    result = executed_notebooks[nb_path.name]
    if isinstance(result, Exception):
        raise result
    nb = nbformat.read(result, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{nb_path.name}: error outputs {errors[:1]}"
    assert sum(bool(c.outputs) for c in nb.cells if c.cell_type == "code") >= 3, \
        f"{nb_path.name}: fewer than 3 cells produced output"


# --- what a reader sees: line length, hidden plumbing, parameters that win ------------------
MAX_LINE = 88


def _params_cell(nb):
    return next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))


def _parameter_names(nb) -> set[str]:
    tree = ast.parse(_params_cell(nb).source)
    return {t.id for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_code_lines_fit_the_page_column(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    long = [(i, len(line), line[:40]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for line in c.source.splitlines() if len(line) > MAX_LINE]
    assert not long, f"{nb_path.name}: code lines over {MAX_LINE} characters (cell, length, " \
                     f"start): {long}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_plumbing_is_hidden_and_parameters_are_visible(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    hidden = ["hide-input" in c.get("metadata", {}).get("tags", []) for c in code]
    params = code.index(_params_cell(nb))
    assert not hidden[params], f"{nb_path.name}: the parameters cell must stay visible"
    setup = code[params + 1]
    assert "import" in setup.source and hidden[params + 1], \
        f"{nb_path.name}: the setup cell after the parameters (imports) must be tagged hide-input"
    assert sum(hidden) < len(code) / 2, f"{nb_path.name}: most cells should teach (stay visible)"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_quick_never_overwrites_a_parameter(nb_path):
    """Static check: after the parameters cell, a parameter is only ever re-assigned as
    ``NAME = settings.choose("NAME", NAME, ...)`` (the caller's value wins), never by
    ``if QUICK: NAME = ...``; and no ``*_QUICK`` shadow parameters."""
    nb = nbformat.read(nb_path, as_version=4)
    names = _parameter_names(nb)
    assert not [n for n in names if n.endswith("_QUICK")], f"{nb_path.name}: *_QUICK parameters"
    params = _params_cell(nb)
    bad = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or cell is params:
            continue
        for node in ast.walk(ast.parse(cell.source)):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                for name in {n.id for n in ast.walk(t) if isinstance(n, ast.Name)} & names:
                    ok = (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                          and getattr(node.value.func, "attr", "") == "choose"
                          and any(isinstance(a, ast.Name) and a.id == name
                                  for a in node.value.args))
                    if not ok:
                        bad.append(f"cell {i}: {ast.unparse(node)[:60]}")
    assert not bad, f"{nb_path.name}: parameters overwritten after the parameters cell: {bad}"


def test_choose_and_settings():
    assert choose(None, full=200, quick=20, is_quick=True) == 20
    assert choose(None, full=200, quick=20, is_quick=False) == 200
    assert choose(50, full=200, quick=20, is_quick=True) == 50        # the caller wins
    assert choose(0, full=200, quick=20, is_quick=True) == 0          # 0 is a value, not None
    with pytest.raises(TypeError, match="bool"):
        choose(None, full=1, quick=2, is_quick="yes")
    s = Settings(True)
    assert s.choose("N_HYPO", 50, full=200, quick=20) == 50
    assert s.choose("N_TEST", None, full=None, quick=16) == 16
    assert str(s) == "QUICK settings: N_HYPO=50 (given), N_TEST=16"
    assert s.label.startswith("QUICK settings") and Settings(False).label == "full settings"
    with pytest.raises(TypeError, match="QUICK must be True or False"):
        Settings(1)


def test_injected_parameter_wins_under_quick_in_papermill(tmp_path):
    """One papermill run: a notebook written like the book's (parameters default to None,
    resolved with Settings) keeps the injected N_HYPO under QUICK."""
    import papermill as pm
    from nbformat.v4 import new_code_cell, new_notebook

    params = new_code_cell("QUICK = False\nN_HYPO = None\nN_TEST = None")
    params.metadata["tags"] = ["parameters"]
    resolve = new_code_cell(
        "from dphelpers.params import Settings\n"
        "settings = Settings(QUICK)\n"
        "N_HYPO = settings.choose('N_HYPO', N_HYPO, full=200, quick=20)\n"
        "N_TEST = settings.choose('N_TEST', N_TEST, full=None, quick=16)\n"
        "print(N_HYPO, N_TEST, settings)")
    src = tmp_path / "tiny.ipynb"
    nbformat.write(new_notebook(cells=[params, resolve], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), src)
    out = pm.execute_notebook(src, tmp_path / "out.ipynb", parameters={"QUICK": True, "N_HYPO": 50},
                              kernel_name="python3", progress_bar=False)
    text = out.cells[-1].outputs[0]["text"]
    assert text.split()[:2] == ["50", "16"], text
    assert "N_HYPO=50 (given)" in text
