"""PyTorch eager execution: the reference backend (fp32, channels_last, bf16 autocast)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from backends.base import Backend, BackendOptions, Runner


class EagerBackend(Backend):
    """Runs the model as is under ``torch.inference_mode``.

    Preparing is only a memory-format change, so each SWAG sample is simply re-prepared.
    bf16 uses CPU autocast (weights stay fp32, matmuls/convs run in bf16); logits are
    returned as fp32.
    """

    name = "eager"
    precisions = ("fp32", "bf16")

    def available(self) -> tuple[bool, str]:
        return True, f"torch {torch.__version__}"

    def prepare(self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None) -> Runner:
        self.check(options)
        model = model.eval()
        fmt = torch.channels_last if options.channels_last else torch.contiguous_format
        if options.channels_last:
            model = model.to(memory_format=torch.channels_last)

        def run(batch: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), autocast(options):
                return model(batch.contiguous(memory_format=fmt)).float()

        return run


def autocast(options: BackendOptions):
    """CPU bf16 autocast for bf16 trials, else a no-op context. The weight-cast cache is off so a
    trace taken under it keeps no grad-requiring constants."""
    if options.precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()
