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
