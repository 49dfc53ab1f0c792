"""Model definitions and the ``--model`` lookup (built-in name or ``module:factory``)."""

from swagbench.swag.models.registry import MODEL_NAMES, build_model

__all__ = ["build_model", "MODEL_NAMES"]
