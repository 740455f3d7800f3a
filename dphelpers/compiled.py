"""Compiled functions kept on the model they were made for (:mod:`dphelpers.samplegraphs`,
:mod:`dphelpers.training.graphs`).

``torch.compile`` of a bound method or a closure holds the model it was made from.  Kept in the
model's ``__dict__``, such a function would travel with ``copy.deepcopy(model)`` (a function is
copied by reference) and the copy would then run the original's weights, silently.  Each entry
here remembers its owner and is rebuilt for any other model.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable

from torch import nn

__all__ = ["cached_on"]

_SLOT = "_dphelpers_compiled"


def cached_on(model: nn.Module, key: Hashable, make: Callable[[], Callable]) -> Callable:
    """The function cached on ``model`` under ``key``, made by ``make()`` the first time (and
    again on a copy of ``model``, whose cache entries belong to the original)."""
    cache = model.__dict__.setdefault(_SLOT, {})
    entry = cache.get(key)
    if entry is None or entry[0]() is not model:
        entry = cache[key] = (weakref.ref(model), make())
    return entry[1]
