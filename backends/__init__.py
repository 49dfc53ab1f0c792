"""Inference backends behind one small interface (see ``backends.base``).

The names below load on first use, so importing a light submodule (``backends.errors``, ``backends.precisions``)
does not import torch.
"""

from swag.imports import lazy_exports

_EXPORTS = {
    "Backend": "backends.base",
    "BackendOptions": "backends.base",
    "Runner": "backends.base",
    "backend_names": "backends.registry",
    "get_backend": "backends.registry",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(_EXPORTS)
