"""Settings as plain dicts and back, strictly (notebook 04; every module's config uses it).

Every module owns a frozen dataclass of settings (``HeatmapConfig``, ``DiffPoseConfig``,
``TrainConfig``, ...); checkpoints and command lines carry them as plain dicts.
:func:`from_dict` reads such a dict back refusing any key the class does not have (a typo
would otherwise be a silent default), and :func:`config_diff` names every field in which two
of them differ (a checkpoint refuses a model built from other settings with it).
"""
from __future__ import annotations

import dataclasses
import types
import typing

__all__ = ["UnknownSetting", "from_dict", "config_diff"]


class UnknownSetting(KeyError, ValueError):
    """A settings key the dataclass does not have (a ``KeyError`` and a ``ValueError``: callers
    of either kind catch it); the message names the key, the class and the known fields."""

    def __str__(self) -> str:                          # not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


def _is_tuple_field(cls: type, name: str) -> bool:
    """Whether field ``name`` of dataclass ``cls`` is declared a tuple (JSON turns it into a
    list)."""
    try:
        hint = typing.get_type_hints(cls)[name]
    except Exception:                                # an annotation this Python cannot evaluate
        return False
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    return any(o is tuple or typing.get_origin(o) is tuple for o in options)


def from_dict(cls: type, d: dict, where: str | None = None, nested: dict | None = None):
    """``cls(**d)``, strictly: a key that is not a field of the dataclass ``cls`` is an
    :class:`UnknownSetting` naming it, the class and the known fields; a list where the field
    is a tuple becomes a tuple.  ``nested``: field name -> dataclass, for fields that are
    settings of their own (read with this same rule).  ``where`` starts the message (default:
    the class)."""
    where = where or cls.__name__
    if not isinstance(d, dict):
        raise TypeError(f"{where}: expected a dict of settings, got {type(d).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise UnknownSetting(f"{where} has no field(s) {unknown} (unknown key(s)); "
                             f"known: {sorted(known)}")
    kwargs = {}
    for name, value in d.items():
        if nested and name in nested:
            value = from_dict(nested[name], value)
        elif isinstance(value, list) and _is_tuple_field(cls, name):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Fields that differ between two nested config dicts, as 'path: a != b'."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} != {vb!r}")
    return out
