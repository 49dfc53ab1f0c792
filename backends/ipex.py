"""Intel Extension for PyTorch, run in its own interpreter.

IPEX's last release (2.8.0) needs torch 2.8.* and fails to import beside the harness's torch, so
its worker runs under ``.venv-ipex/bin/python`` (``make ipex-env``) or a trial's ``python:``.
``ipex.optimize`` folds BatchNorm into the convolutions and prepacks weights, so each SWAG sample is
re-prepared. Options: ``jit`` (trace + freeze on top, default false). bf16 uses ``ipex.optimize``'s
bf16 weights with CPU autocast; channels_last as the trial says.

BatchNorm statistics run in eager fp32 (recorded as such): ``ipex.optimize`` refuses a model in train mode
unless it is given an optimizer, and IPEX's releases have ended, so there is no IPEX route for them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
from torch import nn

from backends.base import Backend, BackendOptions, Runner, StatisticsRunner
from backends.eager import autocast
from swag.batchnorm import StatisticsUnsupported

ENV_PYTHON = Path(__file__).resolve().parent.parent / ".venv-ipex" / "bin" / "python"
FIX = "run 'make ipex-env' (creates .venv-ipex with torch 2.8.0 + intel-extension-for-pytorch 2.8.0)"


class IpexBackend(Backend):
    name = "ipex"
    precisions = ("fp32", "bf16")
    option_names = ("jit",)

    def python(self) -> str | None:
        return str(ENV_PYTHON)

    def available(self) -> tuple[bool, str]:
        if not ENV_PYTHON.is_file():
            return False, f"no IPEX environment at {ENV_PYTHON.parent.parent}; {FIX}"
        probe = subprocess.run(
            [
                str(ENV_PYTHON),
                "-c",
                "import intel_extension_for_pytorch as i, torch; print(torch.__version__, i.__version__)",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
            return False, f"IPEX does not import in {ENV_PYTHON} ({last}); {FIX}"
        torch_v, ipex_v = probe.stdout.split()
        return True, f"intel-extension-for-pytorch {ipex_v} on torch {torch_v} in {ENV_PYTHON.parent.parent.name}"

    def versions(self) -> dict[str, str]:
        import intel_extension_for_pytorch as ipex

        return {**super().versions(), "intel-extension-for-pytorch": ipex.__version__}

    def prepare(self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None) -> Runner:
        import intel_extension_for_pytorch as ipex

        self.check(options)
        jit = self.option(options, "jit", False)
        fmt = torch.channels_last if options.channels_last else torch.contiguous_format
        model = model.eval().to(memory_format=fmt)
        dtype = torch.bfloat16 if options.precision == "bf16" else torch.float32
        optimized = ipex.optimize(model, dtype=dtype, inplace=False)
        if jit:
            with torch.no_grad(), autocast(options):
                optimized = torch.jit.freeze(torch.jit.trace(optimized, example.contiguous(memory_format=fmt)))

        def run(batch: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), autocast(options):
                return optimized(batch.contiguous(memory_format=fmt)).float()

        run.info = {"jit": jit, "dtype": str(dtype)}
        return run

    def statistics(self, model: nn.Module, example: torch.Tensor, options: BackendOptions) -> StatisticsRunner:
        raise StatisticsUnsupported(
            "ipex.optimize refuses train mode without an optimizer, and IPEX is discontinued: statistics in eager fp32"
        )
