"""Export a model to ONNX once, with initializer names equal to its state_dict keys."""

from __future__ import annotations

import torch
from torch import nn


def export_onnx(model: nn.Module, example: torch.Tensor, fold_batchnorm: bool = False):
    """Return an ``onnx.ModelProto`` of ``model`` with a dynamic batch axis (input ``x``).

    By default exported with ``optimize=False``: BatchNormalization nodes stay and every initializer
    is named after its state_dict key, so new SWAG weights can be bound by name (:func:`rebind`); the
    runtimes fuse Conv+BN themselves. ``fold_batchnorm=True`` runs the exporter's optimizer, which
    folds BN into the convolutions but keeps the conv's initializer name for the folded values, so
    such a graph must never be rebound; ORT's int8 quantizer gives much faster models from it.
    """
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        model.eval(),
        (example,),
        dynamo=True,
        optimize=fold_batchnorm,
        verbose=False,
        dynamic_shapes=({0: batch},),
        input_names=["x"],
        output_names=["logits"],
    )
    return program.model_proto


def rebind(proto, model: nn.Module) -> None:
    """Overwrite ``proto``'s initializers in place with ``model``'s current floating-point state
    (weights and BN statistics), matched by state_dict key (an :func:`export_onnx` graph)."""
    from onnx import numpy_helper

    state = float_state(model)
    bound = 0
    for init in proto.graph.initializer:
        if init.name in state:
            init.CopyFrom(numpy_helper.from_array(state[init.name], init.name))
            bound += 1
    if bound != len(state):
        raise RuntimeError(f"bound {bound} of {len(state)} tensors; export the graph with export_onnx")


def float_state(model: nn.Module) -> dict:
    """``model``'s floating-point state (weights and BN statistics) as contiguous NumPy arrays, by
    state_dict key: what a rebindable graph's initializers hold."""
    import numpy as np

    return {k: np.ascontiguousarray(v.detach().numpy()) for k, v in model.state_dict().items() if v.is_floating_point()}
