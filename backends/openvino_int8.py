"""OpenVINO int8 through NNCF: a graph quantized once per fold, its weights re-quantized for every sample.

Two graphs use it: the inference graph with BatchNorm folded into the convolutions (predict) and the statistics
graph (the BatchNorm pass: its convolutions in int8 on VNNI, each layer's batch mean and variance and the
normalisation kept in float32, see ``swagbench.swag.batchnorm``). NNCF's post-training quantization calibrates
activation ranges on the fold's first training batches; each further sample of the fold re-quantizes only the
weights (NNCF's symmetric per-channel int8, max|w| / 127), keeps the fold's ranges and bias correction, writes every
other float constant (a BatchNorm layer's scale and shift) anew, then recompiles.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from swagbench.backends.base import BackendError
from swagbench.backends.onnx_graph import float_state, symmetric_per_channel


class QuantizedGraph:
    """``module``'s graph (``export()`` gives its ONNX proto) quantized by NNCF and compiled by OpenVINO as a
    :class:`~swagbench.backends.openvino._Graph` (``graph``): :meth:`bind` with a ``calibration`` (the fold's
    training batches) other than the last one calibrates anew (a new fold), else re-quantizes the weights now in
    ``module``."""

    def __init__(self, backend, options, module: nn.Module, export: Callable, build: Callable) -> None:
        self.backend, self.options, self.module = backend, options, module
        self.export, self.build = export, build  # build(quantized OpenVINO model, static or None) -> its _Graph
        self.calibration, self.graph = None, None

    def bind(self, calibration) -> None:
        state = float_state(self.module)
        if calibration is not self.calibration:
            self._calibrate(calibration, state)
            return
        for name, (weights, scales, axis, step, qmax) in self.weights.items():
            q, scale = quantize_weights(state[name], axis, step, qmax, self.constants[scales].get_data().shape)
            self.constants[weights] = replace_constant(self.constants[weights], q)
            self.constants[scales] = replace_constant(self.constants[scales], scale)
        for name, delta in self.bias_correction.items():
            self.constants[name] = replace_constant(self.constants[name], state[name] + delta)
        self.graph.recompile()

    def _calibrate(self, calibration, state: dict[str, np.ndarray]) -> None:
        import openvino as ov

        try:
            import nncf
        except ImportError as exc:
            raise BackendError("openvino int8 needs NNCF; pip install nncf") from exc
        if not calibration:
            raise BackendError("openvino int8 needs calibration batches (the fold's training inputs)")
        settings = self.backend.settings(self.options)
        batches = calibration[: settings.calibration_batches]
        float_model = ov.Core().read_model(self.export().SerializeToString(), b"")
        weight_of = _weight_constants(float_model, state)
        data = nncf.Dataset([b.numpy() for b in batches])
        quantized = nncf.quantize(float_model, data, subset_size=len(batches))  # items: batches
        self._track(quantized, state, weight_of, _state_constants(float_model, state))
        self.calibration = calibration
        # a further fold's graph keeps the first one's shapes choice (the same model and batch)
        previous = self.graph
        self.graph = self.build(quantized, None if previous is None else previous.static)
        if previous is not None:
            self.graph.rates = previous.rates  # what the choice was made on

    def _track(self, quantized, state, weight_of: dict[str, str], expected: set[str]) -> None:
        """Find in NNCF's graph each quantized weight (its int8 constant and scale) and every other float constant
        of ``state``; every one of ``expected`` must be found, or a sample's values would not reach it."""
        self.weights, self.constants, self.bias_correction = {}, {}, {}
        for op in quantized.get_ops():
            name = op.get_friendly_name()
            consumer, _, suffix = name.rpartition("/fq_weights_")
            if op.get_type_name() == "Multiply" and suffix and consumer in weight_of:
                int8 = op.input(0).get_source_output().get_node().input(0).get_source_output().get_node()
                scale = op.input(1).get_source_output().get_node()
                shape = scale.get_data().shape
                axis = next((i for i, s in enumerate(shape) if s != 1), 0)
                key_w, key_s = f"{consumer}#int8", f"{consumer}#scale"
                self.constants[key_w], self.constants[key_s] = int8, scale
                # NNCF's range for this layer (narrower for the first layer: its overflow fix), read off
                # the calibrated quantizer: scale = max|w| * step, |q| <= qmax.
                w = state[weight_of[consumer]]
                absmax = np.abs(w).max(axis=tuple(i for i in range(w.ndim) if i != axis), keepdims=True)
                step = float(np.median(scale.get_data() / np.where(absmax == 0, 1, absmax).reshape(shape)))
                qmax = int(np.abs(int8.get_data()).max())
                self.weights[weight_of[consumer]] = (key_w, key_s, axis, step, qmax)
            elif op.get_type_name() == "Constant" and name in state and op.get_data().dtype == np.float32:
                self.constants[name] = op  # a float constant left as it was (or bias-corrected by NNCF)
                self.bias_correction[name] = op.get_data() - state[name]
        for name in set(self.bias_correction) & set(self.weights):  # a quantized weight is re-quantized, not copied
            del self.bias_correction[name], self.constants[name]
        missing = sorted(expected - set(self.weights) - set(self.bias_correction))
        if missing:
            raise BackendError(
                f"NNCF's int8 graph has no rebindable constant for {missing[:3]}"
                + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
                + ": a sample's weights would not reach it; use precision fp32 or bf16 for this model"
            )


def quantize_weights(
    w: np.ndarray, axis: int, step: float, qmax: int, scale_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 weights as NNCF makes them
    (:func:`swagbench.backends.onnx_graph.symmetric_per_channel` with scale = max|w| * ``step``: 1/127, or 1/63.5
    where NNCF narrows the first layer). Returns (q int8, scale shaped ``scale_shape``)."""
    q, scale = symmetric_per_channel(w, axis, lambda a: a * step, qmax)
    return q, scale.reshape(scale_shape)


def replace_constant(node, array: np.ndarray):
    """Put a new Constant holding ``array`` where ``node`` was (same name); return it."""
    from openvino import opset13

    new = opset13.constant(np.ascontiguousarray(array, dtype=node.get_data().dtype), shared_memory=False)
    new.set_friendly_name(node.get_friendly_name())
    node.output(0).replace(new.output(0))
    return new


def _state_constants(model, state: dict[str, np.ndarray]) -> set[str]:
    """The float constants of ``state`` the float graph holds (the ones a sample must reach)."""
    return {op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "Constant"} & set(state)


def _weight_constants(model, state: dict[str, np.ndarray]) -> dict[str, str]:
    """Consumer op name -> the name of the float weight (a Constant of ``state``) it reads as its second input."""
    weight_of = {}
    for op in model.get_ops():
        for inp in op.inputs()[1:2]:
            source = inp.get_source_output().get_node()
            if source.get_type_name() == "Constant" and source.get_friendly_name() in state:
                weight_of[op.get_friendly_name()] = source.get_friendly_name()
    return weight_of
