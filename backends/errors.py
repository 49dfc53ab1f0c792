"""Errors of the backends package (no torch import: the CLI and config name them cheaply)."""

from swagbench.errors import SwagbenchError


class BackendError(SwagbenchError, RuntimeError):
    """A backend cannot run this model/precision (unsupported option, failed conversion)."""


class UnknownBackendError(SwagbenchError, KeyError):
    """No backend is registered under the requested name."""

    def __str__(self) -> str:
        return str(self.args[0])
