"""SWA-Gaussian posteriors: collection during SGD, sampling, BatchNorm update, I/O.

No backend code lives here; see ``backends/`` for inference strategies. The names below load on first use, so a
light submodule (``swag.errors``, ``swag.checked``) imports without torch.
"""

import importlib

_EXPORTS = {
    "Posterior": "swag.posterior",
    "SwagCollector": "swag.posterior",
    "sample_parameters": "swag.sampling",
    "load_flat_parameters": "swag.sampling",
    "recompute_batchnorm": "swag.sampling",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'swag' has no attribute {name!r}")
