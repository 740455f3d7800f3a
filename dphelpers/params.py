"""Notebook parameters: what the caller set always wins; ``QUICK`` only shrinks the rest.

Introduced in notebook 01 and used by every notebook.  A notebook's ``parameters`` cell
sets each size to ``None``, meaning "the default"; papermill (or a sweep) may inject any
other value.  The next cell resolves them::

    settings = Settings(QUICK)
    N_HYPO = settings.choose("N_HYPO", N_HYPO, full=200, quick=20)
    print(settings)      # full settings: N_HYPO=200 (default)

so that ``QUICK=True`` with an injected ``N_HYPO=50`` runs 50 hypotheses, not 20: a sweep over
``N_HYPO`` under QUICK gives one row per value.  :attr:`Settings.label` names the settings in
table captions ("QUICK settings" or "full settings"), so that a reader always knows whether a
number comes from the small CI run or from the real one.
"""
from __future__ import annotations

__all__ = ["choose", "Settings", "QUICK_LABEL", "FULL_LABEL"]

QUICK_LABEL = "QUICK settings (small CI sizes; the numbers only show that the code runs)"
FULL_LABEL = "full settings"


def choose(value, *, full, quick, is_quick: bool):
    """``value`` when the caller set it (not None), else ``quick`` under QUICK, else ``full``."""
    if not isinstance(is_quick, bool):
        raise TypeError(f"is_quick must be a bool (the notebook's QUICK), got {is_quick!r}")
    if value is not None:
        return value
    return quick if is_quick else full


class Settings:
    """Resolves a notebook's parameters and remembers where each value came from.

    ``quick``: the notebook's ``QUICK``.  :meth:`choose` returns the resolved value and
    records it as ``"given"`` (set by the caller) or ``"default"``; ``str(settings)`` lists
    them for the notebook's output.
    """

    def __init__(self, quick: bool) -> None:
        if not isinstance(quick, bool):
            raise TypeError(f"QUICK must be True or False, got {quick!r}")
        self.quick = quick
        self.chosen: dict[str, tuple[object, str]] = {}

    @property
    def label(self) -> str:
        """"QUICK settings (...)" or "full settings": for captions next to every number."""
        return QUICK_LABEL if self.quick else FULL_LABEL

    @property
    def short_label(self) -> str:
        """"QUICK settings" or "full settings", without :attr:`label`'s explanation."""
        return "QUICK settings" if self.quick else "full settings"

    def choose(self, name: str, value, *, full, quick):
        """Resolve one parameter (see :func:`choose`) and record it under ``name``."""
        if not name.isidentifier():
            raise ValueError(f"parameter name {name!r} is not an identifier")
        resolved = choose(value, full=full, quick=quick, is_quick=self.quick)
        self.chosen[name] = (resolved, "given" if value is not None else "default")
        return resolved

    def __str__(self) -> str:
        def show(v) -> str:
            if isinstance(v, int) and not isinstance(v, bool):
                return f"{v:,}"
            return repr(v)
        items = ", ".join(f"{k}={show(v)}" + (" (given)" if src == "given" else "")
                          for k, (v, src) in self.chosen.items())
        return f"{self.short_label}: {items}" if items else self.short_label

    __repr__ = __str__
