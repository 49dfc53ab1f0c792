"""OpenVINO CPU plugin.

Weights are graph constants in OpenVINO, so every SWAG sample is compiled anew, but the graph is
exported only once per trial (ONNX, initializers named by state_dict key): each further sample
rebinds the new weights and BN statistics into it, reads it and compiles (swap; about 10x cheaper
than re-converting the PyTorch model for ResNet-50 here). The inference precision is always set
explicitly (on AVX512_BF16 CPUs the plugin's default is bf16 even for an "fp32" model) and read
back with ``get_property``; a mismatch fails the trial. ``hint: throughput`` (default) runs
sub-batches through an ``AsyncInferQueue`` sized by ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``;
``hint: latency`` uses one synchronous request. int8: NNCF post-training quantization on the
fold's training inputs, redone for every sample.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from backends.base import Backend, BackendError, BackendOptions, Runner
from backends.onnx_export import export_onnx, rebind

HINTS = ("throughput", "latency")


class OpenVinoBackend(Backend):
    name = "openvino"
    precisions = ("fp32", "bf16", "int8")
    option_names = ("hint", "calibration_batches")

    def available(self) -> tuple[bool, str]:
        try:
            import openvino as ov
        except ImportError:
            return False, "openvino is not installed; pip install openvino"
        return True, f"openvino {ov.__version__}"

    def versions(self) -> dict[str, str]:
        import openvino as ov

        return {**super().versions(), "openvino": ov.__version__}

    def can_swap(self, options: BackendOptions) -> bool:
        return True

    def prepare(self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None) -> Runner:
        self.check(options)
        return self._compile(export_onnx(model, example), options, calibration)

    def update(self, runner: Runner, model: nn.Module, options: BackendOptions, calibration=None) -> Runner:
        rebind(runner.proto, model)
        return self._compile(runner.proto, options, calibration)

    def _compile(self, proto, options: BackendOptions, calibration) -> Runner:
        import openvino as ov

        hint = self.option(options, "hint", "throughput", HINTS)
        core = ov.Core()
        ov_model = core.read_model(proto.SerializeToString(), b"")
        if options.precision == "int8":
            ov_model = _quantize_nncf(ov_model, calibration, self.option(options, "calibration_batches", 4))
        wanted = "bf16" if options.precision == "bf16" else "f32"
        if wanted == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise BackendError("this CPU has no bf16 support in OpenVINO (no AVX512_BF16/AMX); use fp32")
        compiled = core.compile_model(
            ov_model,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": wanted,
                "PERFORMANCE_HINT": hint.upper(),
                "INFERENCE_NUM_THREADS": options.threads,
            },
        )
        got = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if got != wanted:
            raise BackendError(f"OpenVINO compiled with inference precision {got}, not the requested {wanted}")
        nireq = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) if hint == "throughput" else 1
        info = {
            "inference_precision": got,
            "hint": hint,
            "infer_requests": nireq,
            "streams": int(compiled.get_property("NUM_STREAMS")),
        }
        run = _async_runner(compiled, nireq) if nireq > 1 else _sync_runner(compiled)
        run.info, run.proto = info, proto
        return run


def _sync_runner(compiled) -> Runner:
    request = compiled.create_infer_request()

    def run(batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(request.infer({0: batch.numpy()})[0].copy()).float()

    return run


def _async_runner(compiled, nireq: int) -> Runner:
    import openvino as ov

    queue = ov.AsyncInferQueue(compiled, nireq)
    outputs: dict[int, np.ndarray] = {}
    queue.set_callback(lambda request, i: outputs.__setitem__(i, request.get_output_tensor(0).data.copy()))

    def run(batch: torch.Tensor) -> torch.Tensor:
        chunks = np.array_split(batch.numpy(), min(nireq, len(batch)))
        outputs.clear()
        for i, chunk in enumerate(chunks):
            queue.start_async({0: np.ascontiguousarray(chunk)}, i)
        queue.wait_all()
        return torch.from_numpy(np.concatenate([outputs[i] for i in range(len(chunks))])).float()

    return run


def _quantize_nncf(ov_model, calibration, n: int):
    try:
        import nncf
    except ImportError as exc:
        raise BackendError("openvino int8 needs NNCF; pip install nncf") from exc
    if not calibration:
        raise BackendError("openvino int8 needs calibration batches (the fold's training inputs)")
    data = nncf.Dataset([b.numpy() for b in calibration[:n]])
    return nncf.quantize(ov_model, data, subset_size=sum(len(b) for b in calibration[:n]))
