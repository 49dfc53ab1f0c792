"""Resolve ``package.module:attribute`` strings, the form used for user models and backends."""

from __future__ import annotations

import importlib
from typing import Any


def load_object(target: str) -> Any:
    """Import ``module`` and return its ``attribute`` for ``target = "module:attribute"``.

    Raises ImportError or AttributeError (callers turn them into their own messages).
    """
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def lazy_exports(exports: dict[str, str]):
    """A module ``__getattr__`` that imports ``exports`` (name -> module) on first use, so a package can offer its
    main names without importing them (and torch) whenever one of its light submodules is imported."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module has no attribute {name!r}")

    return __getattr__
