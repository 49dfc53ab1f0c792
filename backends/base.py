"""The backend interface every inference strategy implements.

A backend turns a PyTorch model holding one SWAG sample into a *runner*: a callable
mapping a float32 batch (N, C, H, W) to logits (N, classes) as a CPU float32 tensor.
Backends import their heavy libraries inside methods, so listing them is cheap and a
missing package only affects that backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

Runner = Callable[[torch.Tensor], torch.Tensor]

PRECISIONS = ("fp32", "bf16", "int8")


class BackendError(RuntimeError):
    """A backend cannot run this model/precision (unsupported option, failed conversion)."""


@dataclass(frozen=True)
class BackendOptions:
    """What a trial asks of a backend.

    Attributes:
        precision: one of ``PRECISIONS``.
        threads: intra-op thread budget of the trial's worker.
        batch_size: images per runner call.
        channels_last: use NHWC memory format where the backend supports it.
        extra: backend-specific options from the config (validated by the backend).
    """

    precision: str = "fp32"
    threads: int = 1
    batch_size: int = 64
    channels_last: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {PRECISIONS}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1 (got {self.threads})")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {self.batch_size})")


class Backend(ABC):
    """One inference strategy.

    Class attributes:
        name: registry name.
        precisions: precisions this backend implements.
        swaps_weights: True if :meth:`update` moves a prepared runner to new weights
            without re-preparing (export/compile) — the cheap path over a SWAG ensemble.
    """

    name: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    swaps_weights: bool = False

    @abstractmethod
    def available(self) -> tuple[bool, str]:
        """Return (ok, reason); reason says why not and how to fix it when ok is False."""

    @abstractmethod
    def prepare(self, model: nn.Module, example: torch.Tensor, options: BackendOptions) -> Runner:
        """Build a runner for ``model`` (eval mode, BN statistics already set)."""

    def update(self, runner: Runner, model: nn.Module, options: BackendOptions) -> Runner:
        """Move ``runner`` to the weights now in ``model``; only for ``swaps_weights`` backends."""
        raise BackendError(f"backend {self.name!r} cannot swap weights; it re-prepares per sample")

    def versions(self) -> dict[str, str]:
        """Library versions this backend runs on, recorded in each result row."""
        return {"torch": torch.__version__}

    def check(self, options: BackendOptions) -> None:
        """Raise BackendError if ``options`` are impossible for this backend."""
        if options.precision not in self.precisions:
            raise BackendError(
                f"backend {self.name!r} has no {options.precision} mode; choose one of {', '.join(self.precisions)}"
            )
