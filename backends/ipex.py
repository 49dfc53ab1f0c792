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

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from swagbench.backends.base import Backend, BackendOptions, Runner, StatisticsRunner, option
from swagbench.backends.torch_helpers import autocast, memory_format, module_runner
from swagbench.swag.batchnorm import StatisticsUnsupported

ENV_VAR = "SWAGBENCH_IPEX_PYTHON"
FIX = (
    "run 'make ipex-env' in the checkout (creates .venv-ipex with torch 2.8.0 + intel-extension-for-pytorch 2.8.0) "
    f"or point {ENV_VAR} at such an environment's python"
)


def env_python() -> Path:
    """The IPEX interpreter: ``$SWAGBENCH_IPEX_PYTHON``; else ``.venv-ipex/bin/python`` of the checkout this
    package runs from (``make ipex-env``), or of the current directory when it is installed elsewhere."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    checkout = Path(__file__).resolve().parent.parent
    root = checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()
    return root / ".venv-ipex" / "bin" / "python"


@dataclass(frozen=True)
class IpexOptions:
    """Options of the ``ipex`` backend."""

    jit: bool = option(False, "trace + freeze on top of ipex.optimize")


class IpexBackend(Backend):
    name = "ipex"
    precisions = ("fp32", "bf16")
    Options = IpexOptions

    def python(self) -> str | None:
        return str(env_python())

    def available(self) -> tuple[bool, str]:
        python = env_python()
        if not python.is_file():
            return False, f"no IPEX environment at {python.parent.parent}; {FIX}"
        probe = subprocess.run(
            [
                str(python),
                "-c",
                "import intel_extension_for_pytorch as i, torch; print(torch.__version__, i.__version__)",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
            return False, f"IPEX does not import in {python} ({last}); {FIX}"
        torch_v, ipex_v = probe.stdout.split()
        return True, f"intel-extension-for-pytorch {ipex_v} on torch {torch_v} in {python.parent.parent.name}"

    def versions(self) -> dict[str, str]:
        import intel_extension_for_pytorch as ipex

        return {**super().versions(), "intel-extension-for-pytorch": ipex.__version__}

    def prepare(self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None) -> Runner:
        import intel_extension_for_pytorch as ipex

        self.check(options)
        jit = self.settings(options).jit
        fmt = memory_format(options)
        model = model.eval().to(memory_format=fmt)
        dtype = torch.bfloat16 if options.precision == "bf16" else torch.float32
        optimized = ipex.optimize(model, dtype=dtype, inplace=False)
        if jit:
            with torch.no_grad(), autocast(options):
                optimized = torch.jit.freeze(torch.jit.trace(optimized, example.contiguous(memory_format=fmt)))

        run = module_runner(optimized, options)

        run.info = {"jit": jit, "dtype": str(dtype)}
        return run

    def statistics(
        self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None
    ) -> StatisticsRunner:
        raise StatisticsUnsupported(
            "ipex.optimize refuses train mode without an optimizer, and IPEX is discontinued: statistics in eager fp32"
        )
