"""torch.compile with the Inductor backend.

Default (``freezing: false``): compile once per trial; parameters stay graph inputs, so a
new SWAG sample is copied into the model in place and the compiled code is reused (swap).
``freezing: true`` constant-folds weights (and BN) for faster kernels but must recompile for
every sample (caches are reset so no stale constants are reused).

BatchNorm statistics: the model's :class:`~swagbench.swag.batchnorm.StatisticsGraph` (plain ops that return each
layer's batch statistics; a train-mode BatchNorm with momentum=None does not compile under fullgraph),
compiled once per trial without freezing, reading the model's parameters in place (swap) whatever
``freezing`` says.

Compilation starts cold: unless the user set TORCHINDUCTOR_CACHE_DIR, the runner gives each worker a
fresh cache directory, so an earlier run's on-disk cache never hides the compile cost a new VM pays.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import torch
from torch import nn

from swagbench.backends.base import Backend, BackendOptions, Runner, StatisticsRunner, option
from swagbench.backends.torch_helpers import autocast, describe, memory_format, module_runner
from swagbench.swag.batchnorm import StatisticsGraph


@dataclass(frozen=True)
class InductorOptions:
    """Options of the ``inductor`` backend."""

    freezing: bool = option(False, "fold the weights into the compiled graph: faster kernels, recompiled per sample")
    cpp_wrapper: bool = option(False, "Inductor's C++ wrapper instead of the Python one")
    max_autotune: bool = option(False, "autotune kernel choices (a longer compile)")


class InductorBackend(Backend):
    name = "inductor"
    precisions = ("fp32", "bf16")
    Options = InductorOptions

    def available(self) -> tuple[bool, str]:
        compiler = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
        if compiler is None:
            return False, "Inductor needs a C++ compiler on PATH; install one (e.g. apt-get install g++)"
        return True, f"torch {torch.__version__}, compiler {compiler}"

    def can_swap(self, options: BackendOptions) -> bool:
        return not self.settings(options).freezing

    def _inductor_options(self, options: BackendOptions, freezing: bool) -> dict[str, bool]:
        return {
            "freezing": freezing,
            "cpp_wrapper": self.settings(options).cpp_wrapper,
            "max_autotune": self.settings(options).max_autotune,
        }

    def prepare(self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None) -> Runner:
        self.check(options)
        inductor_options = self._inductor_options(options, self.settings(options).freezing)
        fmt = memory_format(options)
        model = model.eval().to(memory_format=fmt)
        if inductor_options["freezing"]:
            torch._dynamo.reset()  # drop graphs compiled for earlier weights
        compiled = torch.compile(model, backend="inductor", options=inductor_options)

        run = module_runner(compiled, options)

        run.info = {**inductor_options, "cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR")}
        return run

    def update(self, runner: Runner, model: nn.Module, options: BackendOptions, calibration=None) -> Runner:
        return runner  # the compiled graph reads the model's (updated in place) parameters

    def statistics(
        self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None
    ) -> StatisticsRunner:
        self.check(options)
        fmt = memory_format(options)
        graph = StatisticsGraph(model.to(memory_format=fmt), example.contiguous(memory_format=fmt))
        compiled = torch.compile(graph, backend="inductor", options=self._inductor_options(options, False))

        def run(batch: torch.Tensor):
            with torch.no_grad(), autocast(options):
                return graph.batch_statistics(compiled(batch.contiguous(memory_format=fmt)), batch.shape[0])

        run.info = describe(options, "statistics graph (torch.compile)")
        return run

    def update_statistics(self, runner, model, example, options, calibration=None) -> StatisticsRunner:
        return runner  # compiled without freezing: it reads the parameters updated in place
