"""What the exported-graph runtimes (ONNX Runtime, OpenVINO) share: export a model to ONNX once, with initializer
names equal to its state_dict keys; bind a new sample's weights; re-quantize int8 weights per sample.

Two ways to give an exported graph a new SWAG sample's weights (a backend's ``binding`` option):
``inputs`` turns the initializers into graph inputs, so one compiled graph serves every sample and binding
is passing the model's own tensors (no copy); ``constants`` keeps them as constants, which lets the
runtime fold and prepack them, at the price of rebuilding the session / recompiling for every sample.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from swagbench.backends.base import option
from swagbench.backends.errors import BackendError

BINDINGS = ("inputs", "constants", "auto")


@dataclass(frozen=True)
class GraphOptions:
    """Options every backend that runs an exported graph (ONNX Runtime, OpenVINO) has."""

    binding: str = option(
        "inputs",
        "inputs: weights and BN statistics are graph inputs bound to the model's memory (built once); "
        "constants: rebuilt with them as constants for every sample; auto: both measured on the first sample, "
        "the cheaper at the run's target size kept",
        BINDINGS,
    )
    calibration_batches: int = option(4, "int8: BN batches of each fold that calibrate activation ranges")

    def __post_init__(self) -> None:
        if self.calibration_batches < 1:
            raise BackendError(f"calibration_batches must be >= 1 (got {self.calibration_batches})")


def binding_variants(options) -> tuple[str, dict]:
    """``binding: auto``'s candidates (:meth:`swagbench.backends.base.Backend.variants`): the trial's options with each
    concrete binding."""
    import dataclasses

    return "binding", {b: dataclasses.replace(options, extra={**options.extra, "binding": b}) for b in BINDINGS[:2]}


def export_onnx(model: nn.Module, example: torch.Tensor, optimize: bool = False, outputs: int = 1):
    """Return an ``onnx.ModelProto`` of ``model`` with a dynamic batch axis (input ``x``).

    ``model`` is exported in the mode it is in (eval for prediction; train for a statistics graph, as
    ``update_bn`` runs the model). By default ``optimize=False``: BatchNormalization nodes stay and every
    initializer is named after its state_dict key, so new SWAG weights can be bound by name.
    ``optimize=True`` runs the exporter's optimizer, which folds BN into the convolutions but keeps the
    conv's initializer name for the folded values, so a graph with BatchNorm exported that way must never
    be rebound.
    ``outputs``: how many tensors the model returns (one ``logits``, or ``out_<i>`` for several).

    The exporter merges bit-identical initializers, and its optimizer identical computations (two convolutions with
    the same folded bias shared one initializer, so rebinding a sample gave one the other's bias). So the graph is
    traced from a copy of ``model`` whose every float tensor holds distinct values, and ``model``'s own values are
    written into it by name: every state_dict key keeps an initializer of its own.
    """
    import copy

    batch = torch.export.Dim("batch", min=1)
    names = ["logits"] if outputs == 1 else [f"out_{i}" for i in range(outputs)]
    distinct = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in distinct.state_dict().values():
            if tensor.is_floating_point():  # in (0.5, 1.5): valid as any weight, BatchNorm variance included
                tensor.copy_(torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype) + 0.5)
    program = torch.onnx.export(
        distinct,
        (example,),
        dynamo=True,
        optimize=optimize,
        verbose=False,
        dynamic_shapes=({0: batch},),
        input_names=["x"],
        output_names=names,
    )
    proto = program.model_proto
    _write_own_values(proto, float_state(model), float_state(distinct))
    return proto


def _write_own_values(proto, own: dict[str, np.ndarray], traced: dict[str, np.ndarray]) -> None:
    """Replace, in place, each initializer of ``proto`` named after a state_dict key by the model's ``own`` value,
    after checking it holds the ``traced`` copy's value unchanged (an exporter that transformed it would make
    binding by name wrong: refused)."""
    from onnx import numpy_helper

    inits = {init.name: init for init in proto.graph.initializer}
    for name, init in inits.items():
        if name not in own:
            continue
        if not np.array_equal(numpy_helper.to_array(init), traced[name]):
            raise BackendError(f"the ONNX exporter transformed parameter {name}; its graph cannot be bound by name")
        init.CopyFrom(numpy_helper.from_array(own[name].astype(traced[name].dtype, copy=False), name))


def export_statistics(model: nn.Module, example: torch.Tensor, reduction: str = "convolution"):
    """(proto, graph): ``model``'s :class:`~swagbench.swag.batchnorm.StatisticsGraph` exported to ONNX (outputs
    ``out_0 .. out_<2L-1>``: each BatchNorm layer's batch mean and biased variance; initializers named
    ``net.<state_dict key>``) and the graph module, whose ``batch_statistics`` reads those outputs. ``reduction``:
    see :data:`~swagbench.swag.batchnorm.REDUCTIONS` (``convolution`` is the faster for both graph runtimes in
    float; ``ops`` for a graph to be quantized, whose all-ones convolutions would be quantized too)."""
    from swagbench.swag.batchnorm import StatisticsGraph

    graph = StatisticsGraph(model, example, reduction=reduction)
    return export_statistics_graph(graph, example), graph


def export_statistics_graph(graph: nn.Module, example: torch.Tensor):
    """A :class:`~swagbench.swag.batchnorm.StatisticsGraph` exported to ONNX with the weights it shares now (again
    for a graph whose weights moved)."""
    with warnings.catch_warnings():  # train mode is intended: update_bn runs the model in train mode
        warnings.filterwarnings("ignore", message="Exporting a model while it is in training mode")
        return export_onnx(graph, example, outputs=2 * graph.num_layers)


def bound_names(proto, module: nn.Module, binding: str) -> list[str]:
    """The initializers of ``proto`` that carry ``module``'s float state and are rebound for every sample: with
    ``binding`` ``inputs`` they become graph inputs (``proto`` is changed in place), with ``constants`` they stay
    initializers whose values are replaced."""
    if binding not in BINDINGS[:2]:
        raise BackendError(f"binding {binding!r} must be resolved to one of {BINDINGS[:2]} before a graph is bound")
    state = float_state(module)
    if binding == "inputs":
        return initializers_to_inputs(proto, state)
    return [i.name for i in proto.graph.initializer if i.name in state]


def initializers_to_inputs(proto, names) -> list[str]:
    """Turn those of ``names`` that are initializers of ``proto`` into graph inputs (same name, type and
    shape), in place; return them (an exporter drops the initializers of dead code, e.g. a classifier head
    the statistics graph never reaches)."""
    from onnx import helper

    wanted = set(names)
    moved, kept = [], []
    for init in proto.graph.initializer:
        if init.name in wanted:
            proto.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
            moved.append(init.name)
        else:
            kept.append(init)
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    return moved


def float_state(model: nn.Module) -> dict[str, np.ndarray]:
    """``model``'s floating-point state (weights and BN statistics) by state_dict key, as NumPy arrays that
    share the tensors' memory (a copy only where a tensor is not contiguous): what a rebindable graph's
    initializers, or inputs, hold."""
    return {k: np.ascontiguousarray(v.detach().numpy()) for k, v in model.state_dict().items() if v.is_floating_point()}


def symmetric_per_channel(
    w: np.ndarray, axis: int, scale_of: Callable[[np.ndarray], np.ndarray], qmax: int
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 weights, the scheme both runtimes' int8 graphs use: along every axis but
    ``axis``, ``scale = scale_of(max|w|)`` (1 where that is 0) and ``q = clip(round(w / scale), -qmax, qmax)``.
    Returns (q as int8, scale as float32 with ``w``'s rank, size 1 on every axis but ``axis``).

    Each runtime keeps its own ``scale_of``: ONNX Runtime's ``quantize_static`` divides by 127, NNCF multiplies
    by a step read off its calibrated quantizer (narrower for the first layer), and the two round differently."""
    other = tuple(i for i in range(w.ndim) if i != axis)
    absmax = np.abs(w).max(axis=other, keepdims=True) if other else np.abs(w)
    scale = scale_of(absmax).astype(np.float32)
    scale[scale == 0] = 1.0
    return np.clip(np.rint(w / scale), -qmax, qmax).astype(np.int8), scale
