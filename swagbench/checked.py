"""The one dict-to-dataclass checker: run configs, backend options, result rows and profiles are built with it.

:func:`build` makes a dataclass from a (YAML or JSON) mapping, nested dataclasses included, and raises the
caller's error type, with a message naming the bad key and the valid ones, for: an unknown key, a value of the
wrong type (an int is accepted where a float is declared, never a bool for a number), a value outside a field's
``choices`` (field metadata), and any ``TypeError``/``ValueError`` the dataclass's own ``__post_init__`` raises.
It sits in the lowest package and imports nothing heavy, so every layer can use it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

QUOTE_LIMIT = 80  # characters of a bad value an error message shows (a huge value must not make a huge message)


def quoted(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def not_a_file(path) -> str | None:
    """Why ``path`` cannot be read as a file, in the words an error line needs ("is a directory, not a file", "does
    not exist"), or None when it is a file."""
    from pathlib import Path

    path = Path(path)
    if path.is_file():
        return None
    return "is a directory, not a file" if path.is_dir() else "does not exist"


def build(cls, raw: Any, where: str, error: type[Exception], root: str = "the mapping"):
    """An instance of dataclass ``cls`` from mapping ``raw``; ``where`` names it in messages (``trials[2]``),
    ``root`` names the top level where ``where`` is empty."""
    kwargs = fields_of(cls, raw, where, error, root)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, error):
            raise
        raise error(f"{where}: {exc}" if where else str(exc)) from exc


def fields_of(cls, raw: Any, where: str, error: type[Exception], root: str = "the mapping") -> dict[str, Any]:
    """The checked (and, for nested dataclasses, built) keyword arguments of ``cls`` from ``raw``."""
    if not isinstance(raw, dict):
        raise error(f"{where or root} must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        shown = sorted(map(str, unknown))
        raise error(
            f"unknown key(s) {quoted(shown)} in {where or root}; valid keys: {', '.join(sorted(fields)) or 'none'}"
        )
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in raw.items():
        name = f"{where}.{key}" if where else key
        value = coerce(hints[key], value, name, error)
        choices = fields[key].metadata.get("choices")
        if choices is not None and value not in choices:
            raise error(f"{name}={quoted(value)} is not one of {tuple(choices)}")
        out[key] = value
    return out


def coerce(tp, value: Any, where: str, error: type[Exception]) -> Any:
    """``value`` checked against type hint ``tp`` (Optional, unions of None, list, dict, dataclasses, scalars)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            return value  # a real union of several types: the dataclass checks it
        return coerce(inner[0], value, where, error)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where, error)
    if tp is list or origin is list:
        if not isinstance(value, list):
            raise error(f"{where} must be a list, got {quoted(value)}")
        return [coerce(args[0], v, f"{where}[{i}]", error) for i, v in enumerate(value)] if args else value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise error(f"{where} must be a mapping, got {quoted(value)}")
        return dict(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp, True)
    if not ok:
        raise error(f"{where} must be {tp.__name__}, got {quoted(value)}")
    return float(value) if tp is float else value
