"""The parameter grid of a sweep (:mod:`dphelpers.tools.sweep`): ``--grid KEY=V1,V2,...``
parsed into values, checked against the notebook's ``parameters`` cell before anything runs,
and expanded into one parameter dict per run.
"""
from __future__ import annotations

import itertools
from pathlib import Path

__all__ = ["expand_grid", "check_grid", "parse_value", "parse_grid"]


def expand_grid(grid: dict[str, list]) -> list[dict]:
    """Cartesian product ``{"a": [1, 2], "b": ["x"]} -> [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]``.

    Stable order: keys in the dict's order, the last key varying fastest; ``{}`` gives ``[{}]``.
    """
    if not isinstance(grid, dict):
        raise ValueError(f"grid must be a dict of name -> list of values, got "
                         f"{type(grid).__name__}")
    for key, values in grid.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"grid key {key!r} is not a valid notebook parameter name")
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


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


def _type_of_default(text: str):
    """The Python type of a parameter's default as written in the cell (None: unknown)."""
    import ast
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    return None if value is None else type(value)


def check_grid(notebook: str | Path, grid: dict[str, list]) -> dict[str, dict]:
    """Refuse a grid the notebook cannot take, before anything runs: a name that is not one of
    its parameters (a misspelling would silently run the defaults), or a value whose type does
    not fit the parameter's default (``N_HYPO=a`` where the default is ``200``).  Returns the
    notebook's parameters (papermill's ``inspect_notebook``)."""
    import papermill as pm
    from papermill.exceptions import PapermillException

    notebook = Path(notebook)
    try:
        params = pm.inspect_notebook(str(notebook))
    except (PapermillException, ValueError, OSError) as err:
        raise ValueError(f"notebook {notebook}: cannot read its parameters ({err})") from None
    unknown = [k for k in grid if k not in params]
    if unknown:
        import difflib
        hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, params, 1))
                 else repr(k) for k in unknown]
        raise ValueError(f"--grid {', '.join(hints)}: not a parameter of {notebook.name}; its "
                         f"parameters are {', '.join(params) or 'none (no parameters cell)'}")
    for key, values in grid.items():
        want = _type_of_default(params[key]["default"])
        if want is None or want is str:
            continue
        ok = (bool,) if want is bool else (int,) if want is int else (int, float)
        bad = [v for v in values if v is not None and (not isinstance(v, ok) or
                                                       (want is not bool and isinstance(v, bool)))]
        if bad:
            raise ValueError(f"--grid {key}: value(s) {', '.join(map(repr, bad))} do not fit "
                             f"{notebook.name}'s {key} = {params[key]['default']} (expected "
                             f"{want.__name__} values)")
    return params


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
