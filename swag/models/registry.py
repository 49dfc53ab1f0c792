"""Resolve a model spec to an ``nn.Module``.

A spec is a built-in name (``resnet8``, ``digits_cnn``, ``resnet18``, ``resnet50``) or ``module:factory`` where
``factory(num_classes=...)`` returns an ``nn.Module``; the input channels go to the argument its signature names
(``in_channels``, timm's ``in_chans``), or nowhere.
"""

from __future__ import annotations

from torch import nn

from swagbench.imports import load_object
from swagbench.swag.errors import ModelSpecError

BUILTIN = {
    "resnet8": "swagbench.swag.models.resnet:resnet8",
    "digits_cnn": "swagbench.swag.models.digits_cnn:digits_cnn",
    "resnet18": "swagbench.swag.models.resnet:resnet18",
    "resnet50": "swagbench.swag.models.resnet:resnet50",
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


# The names model libraries give the input-channel argument: torch-style and timm-style.
CHANNEL_ARGUMENTS = ("in_channels", "in_chans")


def factory_arguments(factory, num_classes: int, in_channels: int) -> dict[str, int]:
    """The keyword arguments ``factory`` takes: ``num_classes``, and the input channels under the name its signature
    gives them (``in_channels``, ``in_chans``), or none where it names neither (a torchvision-style
    ``resnet18(num_classes=...)``); ``**kwargs`` gets ``in_channels``."""
    import inspect

    kwargs = {"num_classes": num_classes}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C extension: call it the documented way
        return {**kwargs, "in_channels": in_channels}
    named = next((name for name in CHANNEL_ARGUMENTS if name in params), None)
    if named is None and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        named = "in_channels"
    return {**kwargs, named: in_channels} if named else kwargs


def build_model(spec: str, num_classes: int, in_channels: int, checkpoint: str | None = None) -> nn.Module:
    """Build the model named by ``spec`` for ``num_classes`` outputs and ``in_channels`` inputs (see
    :func:`factory_arguments`), with the weights of ``checkpoint`` (a state_dict file, see
    :func:`swagbench.swag.checkpoint.load_checkpoint`) where given; a factory that cannot be called so, or raises, is a
    ModelSpecError naming it (never a traceback)."""
    target = BUILTIN.get(spec, spec)
    factory = resolve_model(spec)
    kwargs = factory_arguments(factory, num_classes, in_channels)
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        called = ", ".join(f"{k}=..." for k in kwargs)
        raise ModelSpecError(
            f"model factory {target!r} cannot be called as factory({called}) ({exc}); give it a num_classes keyword "
            f"argument (and the input channels as one of {', '.join(CHANNEL_ARGUMENTS)})"
        ) from exc
    except Exception as exc:
        raise ModelSpecError(f"model factory {target!r} raised {type(exc).__name__}: {exc}; fix the factory") from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model factory {target!r} returned {type(model).__name__}, not a torch.nn.Module")
    if checkpoint is not None:
        from swagbench.swag.checkpoint import load_checkpoint

        load_checkpoint(model, checkpoint)
    return model
