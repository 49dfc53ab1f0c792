"""The method's own errors (posterior files, model specs, checkpoints); the root type is
:class:`swagbench.errors.SwagbenchError`. Imports nothing heavy."""

from swagbench.errors import SwagbenchError


class PosteriorError(SwagbenchError, ValueError):
    """A posterior file is missing, corrupt, or does not match the model it is loaded into."""


class ModelSpecError(SwagbenchError, ValueError):
    """The ``model`` spec cannot be resolved to a model factory."""


class CheckpointError(PosteriorError):
    """A model checkpoint (or posterior file) is missing, unreadable, unsafe, or does not fit the model."""
