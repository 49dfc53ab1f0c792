"""SWA-Gaussian posteriors: collection during SGD, sampling, BatchNorm update, I/O.

No backend code lives here; see ``backends/`` for inference strategies.
"""

from swag.posterior import Posterior, SwagCollector
from swag.sampling import load_flat_parameters, recompute_batchnorm, sample_parameters

__all__ = ["Posterior", "SwagCollector", "sample_parameters", "load_flat_parameters", "recompute_batchnorm"]
