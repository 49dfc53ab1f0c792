"""Export a model to ONNX once, with initializer names equal to its state_dict keys."""

from __future__ import annotations

import torch
from torch import nn


def export_onnx(model: nn.Module, example: torch.Tensor, bindable: bool = True):
    """Return an ``onnx.ModelProto`` of ``model`` with a dynamic batch axis (input ``x``).

    ``bindable=True`` exports with ``optimize=False``: BatchNormalization nodes stay and every
    initializer is named after its state_dict key, so new SWAG weights can be bound by name (the
    runtime fuses Conv+BN itself). ``False`` lets the exporter fold BN into the convolutions, whose
    initializers then keep the conv's name but hold folded values — never bind those by name.
    """
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        model.eval(),
        (example,),
        dynamo=True,
        optimize=not bindable,
        verbose=False,
        dynamic_shapes=({0: batch},),
        input_names=["x"],
        output_names=["logits"],
    )
    return program.model_proto
