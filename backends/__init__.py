"""Inference backends behind one small interface (see ``backends.base``).

The names below load on first use, so importing a light submodule (``backends.errors``, ``backends.precisions``)
does not import torch.
"""

import importlib

_EXPORTS = {
    "Backend": "backends.base",
    "BackendOptions": "backends.base",
    "Runner": "backends.base",
    "backend_names": "backends.registry",
    "get_backend": "backends.registry",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'backends' has no attribute {name!r}")
