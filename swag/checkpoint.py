"""Trained weights a user brings: a state_dict file loaded into a model, safely and strictly.

Read with ``torch.load(weights_only=True)`` (a pickle that would run code is refused, nothing runs) or, for
``.safetensors``, with safetensors. Accepted layouts: a bare state_dict, or a dict holding one under
``state_dict`` / ``model_state_dict`` / ``model`` (what training scripts save); a ``module.`` prefix
(DataParallel, DistributedDataParallel) is stripped. Keys and shapes must match the model exactly: a mismatch is
one error listing the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import nn

from swagbench.checked import not_a_file
from swagbench.swag.errors import CheckpointError

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def read_tensors(path: str | Path, what: str = "checkpoint") -> dict:
    """The mapping stored in ``path``, read without unpickling code (CheckpointError otherwise)."""
    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise CheckpointError(f"{what} {path} {problem}; give the path of a saved state_dict file")
    try:
        with warnings.catch_warnings():  # the one line below says what is wrong; torch's warnings would come first
            warnings.simplefilter("ignore")
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path))
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused, truncated zip, not a torch file: all one message
        raise CheckpointError(f"{what} {path} {_unreadable(exc)}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{what} {path} holds a {type(data).__name__}, not a state_dict mapping")
    return data


def _unreadable(exc: Exception) -> str:
    """Why a file could not be read as plain tensors, in our words: torch's own message advises loading with
    ``weights_only=False``, which would run whatever code the file holds."""
    text = " ".join(str(exc).split())
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"holds a pickled Python object ({found.group(1)}) beside its tensors; swagbench never unpickles objects "
            "(that can run code): save plain tensors only, e.g. torch.save(model.state_dict(), path)"
        )
    found = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
    detail = found.group(1).strip() if found else f"{type(exc).__name__}: {text[:160]}"
    return (
        f"cannot be read as plain tensors ({detail}); it is damaged or not a torch.save file: save it again with "
        "torch.save(model.state_dict(), path)"
    )


def unwrap(data: dict) -> dict:
    """The state_dict inside a training script's checkpoint dict (or ``data`` itself), ``module.`` prefix removed."""
    for key in WRAPPER_KEYS:
        if isinstance(data.get(key), dict):
            data = data[key]
            break
    if data and all(isinstance(k, str) and k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    return data


def key_diff(expected: dict[str, tuple], got: dict[str, tuple], limit: int = 4) -> str:
    """``missing [...]; unexpected [...]; shape differs for k: model (..) vs file (..)`` ('' when they match)."""

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")

    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    shapes = [f"{k}: model {expected[k]} vs file {got[k]}" for k in expected if k in got and expected[k] != got[k]]
    parts = []
    if missing:
        parts.append(f"missing {some(missing)}")
    if extra:
        parts.append(f"unexpected {some(extra)}")
    if shapes:
        parts.append(f"shape differs for {some(shapes)}")
    return "; ".join(parts)


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Copy the state_dict in ``path`` into ``model`` (strictly: every key, every shape); returns ``model``."""
    state = unwrap(read_tensors(path))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state.items()}
    diff = key_diff(expected, got)
    if diff:
        raise CheckpointError(
            f"checkpoint {path} does not fit the model ({diff}); use the model (and num_classes / input channels) "
            "it was trained with"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"checkpoint {path} holds NaN or inf in {', '.join(bad[:4])}; it is damaged or diverged")
    model.load_state_dict(state, strict=True)
    return model
