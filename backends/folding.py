"""Fold each BatchNorm into the convolution before it (the inference graph int8 quantizers want).

:class:`FoldedModel` is ``model`` with every ``Conv -> BatchNorm`` pair (the BatchNorm being the
convolution's only user) replaced by one convolution with bias, found by ``torch.fx`` tracing. Its
state_dict keys are the model's, less the folded BatchNorms, plus ``<conv>.bias``; :meth:`refold`
recomputes the folded weights from the model's current weights and BatchNorm statistics (a new SWAG
sample) with torch's own ``fuse_conv_bn_weights``.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights

from swagbench.backends.base import BackendError

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class FoldedModel(nn.Module):
    """``model`` with BatchNorms folded into their convolutions; tensors of unfolded layers are shared."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
        try:
            graph = fx.symbolic_trace(copy.deepcopy(model, shared))
        except Exception as exc:  # fx cannot trace data-dependent control flow
            raise BackendError(
                f"cannot fold BatchNorm into convolutions: the model is not fx-traceable ({exc})"
            ) from exc
        modules = dict(graph.named_modules())
        self.pairs: list[tuple[str, str]] = []
        for node in list(graph.graph.nodes):
            prev = node.args[0] if node.op == "call_module" and node.args else None
            if (
                isinstance(modules.get(node.target), _BatchNorm)
                and isinstance(prev, fx.Node)
                and prev.op == "call_module"
                and isinstance(modules.get(prev.target), CONVS)
                and len(prev.users) == 1
            ):
                self.pairs.append((prev.target, node.target))
                node.replace_all_uses_with(prev)
                graph.graph.erase_node(node)
        for conv_name, _ in self.pairs:
            conv = modules[conv_name]
            folded = copy.copy(conv)  # same hyper-parameters; its own weight and bias
            folded._parameters = dict(conv._parameters)
            folded.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=False)
            folded.bias = nn.Parameter(torch.zeros(conv.out_channels), requires_grad=False)
            parent, _, attr = conv_name.rpartition(".")
            setattr(graph.get_submodule(parent) if parent else graph, attr, folded)
        graph.graph.eliminate_dead_code()
        graph.delete_all_unused_submodules()
        graph.recompile()
        self.graph_module = graph
        self._source = dict(model.named_modules())
        self.refold()

    def refold(self) -> None:
        """Recompute every folded convolution from the source model's current weights and BN statistics."""
        with torch.no_grad():
            for conv_name, bn_name in self.pairs:
                conv, bn = self._source[conv_name], self._source[bn_name]
                weight, bias = fuse_conv_bn_weights(
                    conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
                )
                target = self.graph_module.get_submodule(conv_name)
                target.weight.copy_(weight)
                target.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph_module(x)
