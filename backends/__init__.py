"""Inference backends behind one small interface (see ``backends.base``)."""

from backends.base import Backend, BackendOptions, Runner
from backends.registry import backend_names, get_backend

__all__ = ["Backend", "BackendOptions", "Runner", "backend_names", "get_backend"]
