"""ONNX Runtime, CPUExecutionProvider.

Both graphs of a sample run in ONNX Runtime: the statistics graph (BatchNorm statistics over the fold's
BN batches, see ``swagbench.swag.batchnorm``) and the inference graph, each exported once per trial
(``torch.onnx.export(dynamo=True)``). ``binding`` (fp32) says how a new sample reaches them:
``inputs`` (weights and BN statistics are graph inputs fed from the model's own tensors: one session per
graph for the whole trial) or ``constants`` (initializers: the sample's values are written into the model,
which is serialized and given a new session, so ORT can fold and prepack them).

int8: static QDQ quantization (per-channel int8 weights, uint8 activations) of the inference graph with
BatchNorm folded into the convolutions (``swagbench.backends.folding``; 2.6x faster int8 ResNet-50 here than
quantizing the unfolded graph), calibrated once per fold on the fold's training inputs. Each further
sample of the fold re-quantizes only the weights, with ONNX Runtime's own formulas (symmetric
per-channel weight scales, int32 bias at input scale x weight scale), and rebuilds the session. Its
BatchNorm statistics come from the fp32 statistics graph.

Intra-op threads do not spin after a run (``session.intra_op.allow_spinning=0``): a spinning pool would
keep burning the CPU the next phase runs on.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from swagbench.backends.base import Backend, BackendError, BackendOptions, Runner, StatisticsRunner, option
from swagbench.backends.onnx_graph import (
    GraphOptions,
    binding_variants,
    bound_names,
    export_onnx,
    export_statistics,
    float_state,
    symmetric_per_channel,
)
from swagbench.backends.torch_helpers import describe

LEVELS = ("all", "extended", "basic", "disabled")


@dataclass(frozen=True)
class OrtOptions(GraphOptions):
    """Options of the ``onnxruntime`` backend."""

    graph_optimization: str = option("all", "ONNX Runtime graph optimization level", LEVELS)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "int8")
    Options = OrtOptions

    def available(self) -> tuple[bool, str]:
        try:
            import onnx  # noqa: F401
            import onnxruntime
            import onnxscript  # noqa: F401
        except ImportError as exc:
            return False, f"{exc.name} is not installed; pip install onnxruntime onnx onnxscript"
        return True, f"onnxruntime {onnxruntime.__version__}"

    def versions(self) -> dict[str, str]:
        import onnx
        import onnxruntime

        return {**super().versions(), "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}

    def can_swap(self, options: BackendOptions) -> bool:
        return True  # exported once per trial; int8 re-calibrates once per fold

    def variants(self, options: BackendOptions):
        return binding_variants(options) if self.settings(options).binding == "auto" else None

    def _binding(self, options: BackendOptions) -> str:
        return self.settings(options).binding

    def session(self, model_bytes: bytes, options: BackendOptions):
        """An InferenceSession on ``options.threads`` intra-op threads whose threads do not spin after a run.

        New weights reach a session as graph inputs or written into ``model_bytes`` (:func:`with_values`), never
        through ``SessionOptions.add_initializer``: ONNX Runtime 1.32's constant folding reads the model's own
        initializer, not the override, so e.g. a BatchNorm weight behind a Reshape kept its first value
        (``tests/test_batchnorm.py`` pins rebinding against rebuilding with every parameter changed)."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }[self.settings(options).graph_optimization]
        return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])

    def prepare(self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None) -> Runner:
        self.check(options)
        model = model.eval()
        if options.precision == "int8":
            return _Int8Graph(self, model, example, options, calibration)
        graph = _BoundGraph(self, export_onnx(model, example), model, options)

        def run(batch: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(graph(batch)[0]).float()

        run.graph, run.info = graph, {"binding": graph.binding, **self._levels(options)}
        return run

    def update(self, runner: Runner, model: nn.Module, options: BackendOptions, calibration=None) -> Runner:
        if isinstance(runner, _Int8Graph):
            runner.bind(model, calibration)
        else:
            runner.graph.bind(model)
        return runner

    def statistics(
        self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None
    ) -> StatisticsRunner:
        self.check(options)
        proto, stats_graph = export_statistics(model, example)
        graph = _BoundGraph(self, proto, stats_graph, options)

        def run(batch: torch.Tensor):
            return stats_graph.batch_statistics(graph(batch), batch.shape[0])

        run.graph = graph
        run.info = {**describe(options, "statistics graph (ONNX Runtime)", precision="fp32"), "binding": graph.binding}
        return run

    def update_statistics(self, runner, model, example, options, calibration=None) -> StatisticsRunner:
        runner.graph.bind(runner.graph.module)  # the statistics graph shares the model's parameters
        return runner

    def _levels(self, options: BackendOptions) -> dict[str, str]:
        return {"graph_optimization": self.settings(options).graph_optimization}


class _BoundGraph:
    """One exported fp32 graph in a session, bound to ``module``'s float state by the trial's ``binding``."""

    def __init__(self, backend: OnnxRuntimeBackend, proto, module: nn.Module, options: BackendOptions) -> None:
        self.backend, self.options, self.module = backend, options, module
        self.binding = backend._binding(options)
        self.names = bound_names(proto, module, self.binding)
        self.proto = proto
        self.session, self.feeds = None, {}
        self.bind(module)

    def bind(self, module: nn.Module) -> None:
        """Give the graph the weights (and BN statistics) now in ``module``."""
        full = float_state(module)
        state = {name: full[name] for name in self.names}
        if self.binding == "inputs":
            self.feeds = state  # views of the module's tensors: nothing is copied
            if self.session is None:
                self.session = self.backend.session(self.proto.SerializeToString(), self.options)
        else:
            self.session = self.backend.session(with_values(self.proto, state), self.options)

    def __call__(self, batch: torch.Tensor) -> list[np.ndarray]:
        return self.session.run(None, {"x": batch.numpy(), **self.feeds})


class _Int8Graph:
    """The int8 runner: QDQ graph of the BN-folded model, calibrated per fold, weights re-quantized per sample."""

    def __init__(self, backend, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration) -> None:
        from swagbench.backends.folding import FoldedModel

        self.backend, self.options, self.example = backend, options, example
        self.folded = FoldedModel(model)
        self.calibration = None
        self.info = {"quantization": "static QDQ, BN folded, activations calibrated per fold", "binding": "constants"}
        self.bind(model, calibration)

    def bind(self, model: nn.Module, calibration) -> None:
        """Move to the weights and BN statistics now in ``model``; ``calibration`` (the fold's training
        inputs) that differs from the last one means a new fold: recalibrate the activation ranges."""
        import onnx

        self.folded.refold()
        if calibration is not self.calibration:
            if not calibration:
                raise BackendError("onnxruntime int8 needs calibration batches (the fold's training inputs)")
            n = self.backend.settings(self.options).calibration_batches
            self.model_bytes = quantized_model(self.folded.graph_module, self.example, calibration[:n])
            self.requantize = WeightRequantizer(self.model_bytes)
            self.quantized = onnx.load_from_string(self.model_bytes)
            self.session = self.backend.session(self.model_bytes, self.options)
            self.calibration = calibration
        else:
            weights = self.requantize(float_state(self.folded.graph_module))
            self.session = self.backend.session(with_values(self.quantized, weights), self.options)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"x": batch.numpy()})[0]).float()


def with_values(proto, values: dict[str, np.ndarray]) -> bytes:
    """``proto`` serialized with the initializers named in ``values`` replaced by them (``proto`` keeps them)."""
    from onnx import numpy_helper

    for init in proto.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(values[init.name]), init.name))
    return proto.SerializeToString()


class WeightRequantizer:
    """Re-quantizes float weights for a QDQ graph made by ONNX Runtime's ``quantize_static``, keeping its
    calibrated activation scales: for every ``<w>_quantized`` int8 initializer, symmetric per-channel
    ``scale = max|w| / 127`` and ``round(w / scale)``; for every ``<b>_quantized`` int32 bias,
    ``round(b / (input scale x weight scale))`` (the input scale read off the calibrated bias and weight
    scales). Calling it with a float state returns the initializers to bind."""

    def __init__(self, model_bytes: bytes) -> None:
        import onnx
        from onnx import numpy_helper

        proto = onnx.load_from_string(model_bytes)
        inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
        axes = {}
        for node in proto.graph.node:
            if node.op_type == "DequantizeLinear" and node.input[0].endswith("_quantized"):
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                axes[node.input[0]] = axis
        self.weights: dict[str, int] = {}  # float name -> per-channel axis
        self.biases: dict[str, str] = {}  # float bias name -> its weight's float name
        for qname, axis in axes.items():
            name = qname[: -len("_quantized")]
            if inits[qname].dtype == np.int8:
                self.weights[name] = axis
        for qname in axes:
            name = qname[: -len("_quantized")]
            if inits[qname].dtype == np.int32:
                weight = name[: -len("bias")] + "weight"
                if weight not in self.weights:
                    raise BackendError(f"cannot re-quantize bias {name}: no quantized weight {weight}")
                self.biases[name] = weight
        self.input_scale = {}
        for bias, weight in self.biases.items():
            ratio = inits[f"{bias}_quantized_scale"] / np.where(
                inits[f"{weight}_scale"] == 0, 1, inits[f"{weight}_scale"]
            )
            self.input_scale[bias] = np.float32(np.median(ratio))

    def __call__(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        scales = {}
        for name, axis in self.weights.items():
            q, scale = symmetric_per_channel(state[name].astype(np.float32), axis, lambda a: a / 127.0, 127)
            out[f"{name}_quantized"] = q
            out[f"{name}_scale"] = scales[name] = scale.reshape(-1)
        for bias, weight in self.biases.items():
            scale = (self.input_scale[bias] * scales[weight]).astype(np.float32)
            out[f"{bias}_quantized"] = np.rint(state[bias] / scale).astype(np.int32)
            out[f"{bias}_quantized_scale"] = scale
        return out


def quantized_model(folded: nn.Module, example: torch.Tensor, calibration: list[torch.Tensor]) -> bytes:
    """The int8 QDQ model (bytes) of a BN-folded module (:class:`swagbench.backends.folding.FoldedModel`'s graph
    module),
    its activations calibrated on ``calibration``: what an int8 trial runs for its fold's first sample."""
    return _quantize_qdq(export_onnx(folded, example, optimize=True), calibration)


def _quantize_qdq(proto, calibration: list[torch.Tensor]) -> bytes:
    """Static QDQ int8 quantization (per-channel weights) calibrated on ``calibration`` batches."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"x": b.numpy()} for b in calibration])

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = Path(tmp) / "m.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "q.onnx"
        onnx.save(proto, src)
        quant_pre_process(str(src), str(pre))
        quantize_static(
            str(pre),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return dst.read_bytes()
