"""Inference backends behind one small interface (see ``swagbench.backends.base``).

The names below load on first use, so importing a light submodule (``swagbench.backends.errors``,
``swagbench.backends.precisions``) does not import torch.
"""

from swagbench.imports import lazy_exports

_EXPORTS = {
    "Backend": "swagbench.backends.base",
    "BackendOptions": "swagbench.backends.base",
    "Runner": "swagbench.backends.base",
    "backend_names": "swagbench.backends.registry",
    "get_backend": "swagbench.backends.registry",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(_EXPORTS)
