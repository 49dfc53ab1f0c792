"""Backend lookup: built-ins, third-party entry points, or ``module:Class`` specs.

Third-party packages add a backend with an entry point in the group
``swagbench.backends`` (``name = "pkg.module:BackendClass"``).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from swagbench.backends.errors import UnknownBackendError
from swagbench.imports import load_object

ENTRY_POINT_GROUP = "swagbench.backends"
BUILTIN = {
    "eager": "swagbench.backends.eager:EagerBackend",
    "torchscript": "swagbench.backends.torchscript:TorchScriptBackend",
    "inductor": "swagbench.backends.inductor:InductorBackend",
    "onnxruntime": "swagbench.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "swagbench.backends.openvino:OpenVinoBackend",
    "ipex": "swagbench.backends.ipex:IpexBackend",
}


def _targets() -> dict[str, str]:
    targets = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        targets.setdefault(ep.name, ep.value)
    return targets


def backend_names() -> list[str]:
    """Names of all registered backends (built-in first, then entry points)."""
    return list(_targets())


def get_backend(name: str):
    """Instantiate the backend (a :class:`swagbench.backends.base.Backend`) registered as ``name`` or a ``module:Class``
    spec."""
    target = _targets().get(name, name if ":" in name else None)
    if target is None:
        raise UnknownBackendError(f"unknown backend {name!r}; choose from {', '.join(backend_names())}")
    try:
        cls = load_object(target)
    except (ImportError, AttributeError) as exc:
        raise UnknownBackendError(f"backend {name!r} cannot be loaded from {target!r}: {exc}") from exc
    backend = cls()
    if not backend.name:
        backend.name = name
    return backend
