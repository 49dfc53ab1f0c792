"""TorchScript: trace, then (by default) freeze + optimize_for_inference.

Freezing folds weights and BatchNorm into constants, so each SWAG sample is re-traced.
With ``freeze: false`` the traced module keeps the model's parameters as attributes and a new
sample only needs its weights copied in (swap), at the cost of the fusions freezing enables.

BatchNorm statistics: the model's :class:`~swagbench.swag.batchnorm.StatisticsGraph` traced once per trial
(under autocast for bf16) and never frozen (freezing needs eval mode); a new sample's weights are
copied into the trace.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from swagbench.backends.base import Backend, BackendError, BackendOptions, Runner, StatisticsRunner, option
from swagbench.backends.torch_helpers import autocast, describe, memory_format, module_runner
from swagbench.swag.batchnorm import StatisticsGraph


@dataclass(frozen=True)
class TorchScriptOptions:
    """Options of the ``torchscript`` backend."""

    freeze: bool | str = option(
        True,
        "freeze + optimize_for_inference the traced graph, re-traced per sample; false: trace once per trial and "
        "copy each sample's weights in (swap); auto: both measured on the first sample, the cheaper at the run's "
        "target size kept",
    )

    def __post_init__(self) -> None:
        if not (isinstance(self.freeze, bool) or self.freeze == "auto"):  # 1 == True, but is no setting
            raise BackendError(f"torchscript option freeze must be true, false or auto (got {self.freeze!r})")


class TorchScriptBackend(Backend):
    name = "torchscript"
    precisions = ("fp32", "bf16")
    Options = TorchScriptOptions

    def available(self) -> tuple[bool, str]:
        return True, f"torch {torch.__version__} (torch.jit is deprecated but works)"

    def can_swap(self, options: BackendOptions) -> bool:
        return self.settings(options).freeze is False

    def variants(self, options: BackendOptions):
        if self.settings(options).freeze != "auto":
            return None
        return "freeze", {
            name: dataclasses.replace(options, extra={**options.extra, "freeze": value})
            for name, value in (("frozen", True), ("swap", False))
        }

    def prepare(self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None) -> Runner:
        self.check(options)
        freeze = self.settings(options).freeze
        if freeze == "auto":
            raise BackendError("torchscript freeze: auto must be resolved to true or false before a trace is built")
        fmt = memory_format(options)
        model = model.eval().to(memory_format=fmt)
        with torch.no_grad(), autocast(options):
            traced = torch.jit.trace(model, example.contiguous(memory_format=fmt), check_trace=False)
            if freeze:
                traced = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

        run = module_runner(traced, options, autocast_each_call=False)  # traced under autocast: casts are in it

        run.module = traced
        run.info = {"frozen": freeze}
        return run

    def update(self, runner: Runner, model: nn.Module, options: BackendOptions, calibration=None) -> Runner:
        # The unfrozen trace holds the module's parameter and buffer tensors; copy explicitly so
        # correctness never depends on that sharing.
        runner.module.load_state_dict(model.state_dict())
        return runner

    def statistics(
        self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None
    ) -> StatisticsRunner:
        self.check(options)
        fmt = memory_format(options)
        graph = StatisticsGraph(
            model.to(memory_format=fmt), example.contiguous(memory_format=fmt), reduction="convolution"
        )
        with torch.no_grad(), autocast(options):
            traced = torch.jit.trace(graph, example.contiguous(memory_format=fmt), check_trace=False)

        def run(batch: torch.Tensor):
            with torch.no_grad():
                return graph.batch_statistics(traced(batch.contiguous(memory_format=fmt)), batch.shape[0])

        run.module, run.graph = traced, graph
        run.info = describe(options, "statistics graph (TorchScript trace)")
        return run

    def update_statistics(self, runner, model, example, options, calibration=None) -> StatisticsRunner:
        runner.module.load_state_dict(runner.graph.state_dict())  # never rely on the trace sharing tensors
        return runner
