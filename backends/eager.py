"""PyTorch eager execution: the reference backend (fp32, channels_last, bf16 autocast)."""

from __future__ import annotations

import torch
from torch import nn

from swagbench.backends.base import Backend, BackendOptions, Runner, StatisticsRunner
from swagbench.backends.torch_helpers import memory_format, module_runner, native_statistics


class EagerBackend(Backend):
    """Runs the model as is under ``torch.inference_mode``.

    Preparing is only a memory-format change, so each SWAG sample is simply re-prepared.
    bf16 uses CPU autocast (weights stay fp32, matmuls/convs run in bf16); logits are
    returned as fp32. BatchNorm statistics come from the model's own BatchNorm kernels in train
    mode, in the trial's layout and precision (for eager fp32, exactly ``update_bn``).
    """

    name = "eager"
    precisions = ("fp32", "bf16")

    def available(self) -> tuple[bool, str]:
        return True, f"torch {torch.__version__}"

    def prepare_compiles(self, options: BackendOptions) -> bool:
        return False  # a memory-format change; the first call per shape in the worker is the only warm-up

    def prepare(self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None) -> Runner:
        self.check(options)
        return module_runner(model.eval().to(memory_format=memory_format(options)), options)

    def statistics(
        self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None
    ) -> StatisticsRunner:
        return native_statistics(model, options)
