"""Torch pieces every torch-based backend shares: memory format, bf16 autocast, a module as a runner, the
statistics of a model's own BatchNorm kernels, and the ``info`` a statistics runner records."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from swagbench.backends.base import BackendOptions, Runner, StatisticsRunner
from swagbench.swag.batchnorm import eager_batch_statistics


def native_statistics(model: nn.Module, options: BackendOptions) -> StatisticsRunner:
    """Statistics from ``model``'s own BatchNorm kernels in train mode, in ``options``' layout and precision."""
    fmt = memory_format(options)
    model = model.to(memory_format=fmt)

    def run(batch: torch.Tensor):
        with autocast(options):
            return eager_batch_statistics(model, batch.contiguous(memory_format=fmt))

    run.info = describe(options, "train-mode BatchNorm (torch)")
    return run


def describe(options: BackendOptions, method: str, precision: str | None = None) -> dict[str, str]:
    """The ``info`` of a statistics runner: how the BatchNorm pass ran."""
    return {
        "precision": precision or options.precision,
        "layout": "channels_last" if options.channels_last else "contiguous",
        "method": method,
    }


def module_runner(module, options: BackendOptions, autocast_each_call: bool = True) -> Runner:
    """``module`` (a module, or a traced or compiled one) as a runner: each batch in the trial's memory format,
    under inference mode and, for bf16 trials, CPU autocast (``autocast_each_call=False`` for a graph traced
    under autocast, which holds its casts already); logits returned as fp32."""
    fmt = memory_format(options)
    cast = (lambda: autocast(options)) if autocast_each_call else contextlib.nullcontext

    def run(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), cast():
            return module(batch.contiguous(memory_format=fmt)).float()

    return run


def memory_format(options: BackendOptions) -> torch.memory_format:
    return torch.channels_last if options.channels_last else torch.contiguous_format


def autocast(options: BackendOptions):
    """CPU bf16 autocast for bf16 trials, else a no-op context. The weight-cast cache is off so a
    trace taken under it keeps no grad-requiring constants."""
    if options.precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()
