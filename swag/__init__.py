"""SWA-Gaussian posteriors: collection during SGD, sampling, BatchNorm update, I/O.

No backend code lives here; see ``backends/`` for inference strategies. The names below load on first use, so a
light submodule (``swagbench.swag.errors``, ``swagbench.checked``) imports without torch.
"""

from swagbench.imports import lazy_exports

_EXPORTS = {
    "Posterior": "swagbench.swag.posterior",
    "SwagCollector": "swagbench.swag.posterior",
    "sample_parameters": "swagbench.swag.sampling",
    "load_flat_parameters": "swagbench.swag.sampling",
    "recompute_batchnorm": "swagbench.swag.sampling",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(_EXPORTS)
