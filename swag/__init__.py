"""SWA-Gaussian posteriors: collection during SGD, sampling, BatchNorm update, I/O.

No backend code lives here; see ``backends/`` for inference strategies. The names below load on first use, so a
light submodule (``swag.errors``, ``swag.checked``) imports without torch.
"""

from swag.imports import lazy_exports

_EXPORTS = {
    "Posterior": "swag.posterior",
    "SwagCollector": "swag.posterior",
    "sample_parameters": "swag.sampling",
    "load_flat_parameters": "swag.sampling",
    "recompute_batchnorm": "swag.sampling",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(_EXPORTS)
