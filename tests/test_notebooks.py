"""Every notebook of the book runs end to end under papermill with ``QUICK=True``.

Also checks the committed form: exactly one ``parameters`` cell holding ``QUICK``, and no
outputs or execution counts.
"""
from pathlib import Path

import nbformat
import pytest

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
