"""Resolve a model spec to an ``nn.Module``.

A spec is a built-in name (``resnet8``, ``digits_cnn``, ``resnet18``, ``resnet50``) or ``module:factory``
where ``factory(num_classes=..., in_channels=...)`` returns an ``nn.Module``.
"""

from __future__ import annotations

from torch import nn

from swag.errors import ModelSpecError
from swag.imports import load_object

BUILTIN = {
    "resnet8": "swag.models.resnet:resnet8",
    "digits_cnn": "swag.models.digits_cnn:digits_cnn",
    "resnet18": "swag.models.resnet:resnet18",
    "resnet50": "swag.models.resnet:resnet50",
}
MODEL_NAMES = tuple(BUILTIN)


def resolve_model(spec: str):
    """The factory ``spec`` names (ModelSpecError if there is none): checked before any data is read."""
    target = BUILTIN.get(spec, spec)
    if ":" not in target:
        raise ModelSpecError(f"unknown model {spec!r}; use one of {', '.join(MODEL_NAMES)} or 'package.module:factory'")
    try:
        return load_object(target)
    except (ImportError, AttributeError) as exc:
        raise ModelSpecError(f"cannot load model factory {target!r} ({exc}); check the module is importable") from exc


def build_model(spec: str, num_classes: int, in_channels: int) -> nn.Module:
    """Build the model named by ``spec`` for ``num_classes`` outputs and ``in_channels`` inputs; a factory that
    cannot be called so, or raises, is a ModelSpecError naming it (never a traceback)."""
    target = BUILTIN.get(spec, spec)
    factory = resolve_model(spec)
    try:
        model = factory(num_classes=num_classes, in_channels=in_channels)
    except TypeError as exc:
        raise ModelSpecError(
            f"model factory {target!r} cannot be called as factory(num_classes=..., in_channels=...) ({exc}); "
            "give it those keyword arguments"
        ) from exc
    except Exception as exc:
        raise ModelSpecError(f"model factory {target!r} raised {type(exc).__name__}: {exc}; fix the factory") from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model factory {target!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
