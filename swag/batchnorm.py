"""BatchNorm statistics of a SWAG sample, equal to ``torch.optim.swa_utils.update_bn``, in a form any runtime can run.

``update_bn`` resets every BatchNorm layer, sets ``momentum=None`` and runs the model in train mode over the
batches: each layer normalises with its batch's own mean and (biased) variance, and its running statistics
end as the *mean over batches* of the batch means and of the *unbiased* batch variances (every batch weighted
equally, whatever its size).

Two ways to get the same numbers in a backend:

- a :class:`StatisticsGraph`: the model with each BatchNorm replaced by plain tensor ops that normalise with
  the batch's statistics and also *return* them (graph outputs ``mean_0, var_0, mean_1, var_1, ...``, biased
  variances, float32). It traces, exports to ONNX and compiles like any module, so ONNX Runtime, OpenVINO,
  TorchScript and Inductor all run it in their own runtime and precision (torch's exporters never make a
  train-mode BatchNorm's running statistics graph outputs, and momentum=None breaks torch.compile's fullgraph).
- eager PyTorch with the model's own BatchNorm kernels in train mode (:func:`eager_batch_statistics`).

Either yields one :data:`BatchStatistics` per batch; :class:`StatisticsAccumulator` averages them as
``update_bn`` does and :func:`load_statistics` writes the result into the model.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

BatchStatistics = list[tuple[torch.Tensor, torch.Tensor]]
"""Per BatchNorm layer (in :func:`bn_layers` order): (batch mean (C,), unbiased batch variance (C,)), float32."""


class StatisticsUnsupported(RuntimeError):
    """This model or backend cannot compute BatchNorm statistics this way; the message says why."""


def bn_layers(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """The BatchNorm layers whose running statistics ``update_bn`` recomputes, in ``model.modules()`` order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@dataclass(frozen=True)
class BatchNormFacts:
    """What a model's BatchNorm layers mean for the BatchNorm pass (see :func:`batchnorm_facts`).

    Attributes
    ----------
    layers : int
        BatchNorm layers with running statistics: the ones the pass recomputes (0: there is no pass).
    batch_dependent : list of str
        BatchNorm layers without running statistics (``track_running_stats=False``): they normalise every batch
        with its own statistics, at prediction too, so probabilities depend on the batch size and on which
        examples share a batch.
    dropout_before : list of str
        Dropout modules that run before a BatchNorm layer in the forward pass: as in ``update_bn``, they are
        active (train mode) during the pass, so the statistics are those of randomly dropped activations.
    """

    layers: int
    batch_dependent: list[str] = field(default_factory=list)
    dropout_before: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One sentence per fact a reader of the results must know (none for an ordinary model)."""
        out = []
        if not self.layers:
            out.append("the model has no BatchNorm layer with running statistics, so there is no BatchNorm pass")
        if self.batch_dependent:
            out.append(
                f"{len(self.batch_dependent)} BatchNorm layer(s) without running statistics "
                f"({_names(self.batch_dependent)}) normalise each batch with its own statistics, at prediction too: "
                "probabilities depend on the batch size and on which images share a batch"
            )
        if self.dropout_before:
            out.append(
                f"dropout ({_names(self.dropout_before)}) runs before BatchNorm layers and is active during the "
                "BatchNorm pass, as in torch's update_bn: the statistics are those of randomly dropped activations"
            )
        return out


def _names(names: list[str], most: int = 3) -> str:
    return ", ".join(repr(n) for n in names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def batchnorm_facts(model: nn.Module, example: torch.Tensor) -> BatchNormFacts:
    """Inspect ``model``'s BatchNorm layers, running ``example`` (one or two images) through it once in eval mode
    to see which dropout modules run before a BatchNorm layer. Dropout called as a function inside ``forward``
    is not a module and cannot be seen."""
    tracked = {id(m) for _, m in bn_layers(model)}
    untracked = [n for n, m in model.named_modules() if isinstance(m, _BatchNorm) and not m.track_running_stats]
    order: list[tuple[str, nn.Module]] = []
    watched = [
        (n, m)
        for n, m in model.named_modules()
        if id(m) in tracked or (isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0)
    ]
    hooks = [m.register_forward_pre_hook(lambda mod, _i, n=n: order.append((n, mod))) for n, m in watched]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    last_bn = max((i for i, (_, m) in enumerate(order) if id(m) in tracked), default=-1)
    dropout = []
    for name, m in order[:last_bn]:
        if id(m) not in tracked and name not in dropout:
            dropout.append(name)
    return BatchNormFacts(len(tracked), untracked, dropout)


def unbiased(var: torch.Tensor, count: int) -> torch.Tensor:
    """Biased variance over ``count`` values per channel -> unbiased (what BatchNorm keeps as running_var)."""
    if count < 2:
        raise StatisticsUnsupported(f"a BatchNorm layer sees {count} value per channel; batches need more than one")
    return var * (count / (count - 1))


REDUCTIONS = ("ops", "convolution")
"""How a :class:`StatisticsGraph` sums a (N, C, H, W) activation per channel: ``ops`` with mean reductions over
(N, H, W), which torch.compile fuses into one pass; ``convolution`` with depthwise convolutions whose kernels
are all ones (each row summed, then the row sums), which OpenVINO runs in the inference precision on
its own blocked layout: its reductions run in float32 on a plain layout, so every BatchNorm layer paid two
full-size reorders (ResNet-50 bf16 on 2 AMX cores, statistics graph at batch 32: 39 img/s with ``ops``, 108
with ``convolution``; TorchScript bf16 ResNet-8 1.7x faster; ONNX Runtime the same; Inductor 1.8x slower).
Both are two-pass (mean, then the mean square of the centred values), as stable as torch's kernels."""


class _StatsLayer(nn.Module):
    """Train-mode BatchNorm as plain ops: normalise with the batch's mean / biased variance and put them, as
    float32, into the shared ``sink``. ``reduction`` (one of :data:`REDUCTIONS`) says how the per-channel sums
    are taken; ``ops`` computes in float32 whatever the input's dtype, as torch's kernels do."""

    def __init__(self, bn: _BatchNorm, index: int, sink: dict, reduction: str) -> None:
        super().__init__()
        self.weight, self.bias = bn.weight, bn.bias  # the same Parameter objects: a rebind reaches both
        self.eps, self.index, self.sink, self.reduction = bn.eps, index, sink, reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.reduction == "convolution" and x.dim() == 4:
            mean = _channel_mean(x)
            centred = x - mean.to(x.dtype)
            var = _channel_mean(centred * centred)
            dtype = x.dtype
        else:
            dims, xf = [0, *range(2, x.dim())], x.float()
            mean = xf.mean(dims, keepdim=True)
            centred = xf - mean
            var = (centred * centred).mean(dims, keepdim=True)
            dtype = torch.float32
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.float().view(shape)
        y = centred * scale.to(dtype)
        if self.bias is not None:
            y = y + self.bias.to(dtype).view(shape)
        self.sink[self.index] = (mean.reshape(-1), var.reshape(-1))
        return y.to(x.dtype)


def _channel_mean(x: torch.Tensor) -> torch.Tensor:
    """(1, C, 1, 1) float32 mean of (N, C, H, W) ``x`` per channel: each image's channel summed by two depthwise
    convolutions with all-ones kernels ((1, W) then (H, 1); ones are exact in any precision, the row sums are
    rounded to ``x``'s dtype, as the runtime's own bf16 kernels round), averaged over images in float32."""
    n, c, h, w = x.shape
    rows = F.conv2d(x, torch.ones(c, 1, 1, w, dtype=x.dtype), groups=c)
    sums = F.conv2d(rows, torch.ones(c, 1, h, 1, dtype=x.dtype), groups=c).float()
    return sums.mean(0, keepdim=True) / (h * w)


class StatisticsGraph(nn.Module):
    """``model``'s forward in train-mode BatchNorm, returning every layer's batch mean and biased variance.

    Parameters and buffers are *shared* with ``model`` (not copied): weights copied into ``model`` in place
    are what this graph computes with. ``example`` (a batch shaped like the real ones) is run once to learn
    each layer's values per channel per example and to check that every layer runs exactly once per forward
    (otherwise :class:`StatisticsUnsupported`: ``update_bn`` would average a layer over its calls).
    ``reduction`` (:data:`REDUCTIONS`): how each layer's per-channel sums are taken, the fastest way for the
    runtime that will run the graph. Output: a tuple ``(mean_0, var_0, mean_1, var_1, ...)`` of float32 (C_i,)
    tensors; the classifier head after the last BatchNorm is dead code that exporters and compilers drop.
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, reduction: str = "ops") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction {reduction!r} is not one of {REDUCTIONS}")
        layers = bn_layers(model)
        if not layers:
            raise StatisticsUnsupported("the model has no BatchNorm layer with running statistics")
        shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
        self.net = copy.deepcopy(model, shared)  # module structure copied, tensors shared
        self._sink: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        named = dict(self.net.named_modules())
        for i, (name, bn) in enumerate(layers):
            parent, _, attr = name.rpartition(".")
            setattr(named[parent] if parent else self.net, attr, _StatsLayer(bn, i, self._sink, reduction))
        self.net.train()
        self.num_layers = len(layers)
        self.per_example = self._dry_run(example[:1])

    def _dry_run(self, x: torch.Tensor) -> list[int]:
        calls: list[int] = []
        per_example: dict[int, int] = {}

        def record(layer: _StatsLayer, inputs: tuple, _out) -> None:
            calls.append(layer.index)
            per_example[layer.index] = inputs[0][0].numel() // inputs[0].shape[1]

        hooks = [m.register_forward_hook(record) for m in self.net.modules() if isinstance(m, _StatsLayer)]
        try:
            with torch.no_grad():
                self.forward(x)
        finally:
            for hook in hooks:
                hook.remove()
        if len(calls) != self.num_layers or len(per_example) != self.num_layers:
            raise StatisticsUnsupported(
                "a BatchNorm layer runs more or less than once per forward pass, so its statistics are not one "
                "batch's; they are computed in eager"
            )
        return [per_example[i] for i in range(self.num_layers)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._sink.clear()
        self.net(x)
        out = tuple(t for i in range(self.num_layers) for t in self._sink[i])
        self._sink.clear()
        return out

    def batch_statistics(self, outputs: Sequence, batch_size: int) -> BatchStatistics:
        """This graph's outputs for one batch (tensors or arrays, any runtime) -> :data:`BatchStatistics`."""
        as_tensor = [torch.as_tensor(np.asarray(o) if not isinstance(o, torch.Tensor) else o).float() for o in outputs]
        return [
            (as_tensor[2 * i].reshape(-1), unbiased(as_tensor[2 * i + 1].reshape(-1), batch_size * n))
            for i, n in enumerate(self.per_example)
        ]


def eager_batch_statistics(model: nn.Module, batch: torch.Tensor) -> BatchStatistics:
    """One train-mode forward of ``model`` with its own BatchNorm kernels; return each layer's batch statistics.

    With ``momentum=1`` a layer's running statistics after the forward *are* its batch mean and unbiased
    variance. ``model`` is left in eval mode with its momenta restored; its running statistics are
    overwritten (the caller loads the averaged ones afterwards). The caller sets layout and autocast.
    """
    layers = [bn for _, bn in bn_layers(model)]
    momenta = [bn.momentum for bn in layers]
    try:
        for bn in layers:
            bn.momentum = 1.0
        model.train()
        with torch.no_grad():
            model(batch)
        return [(bn.running_mean.detach().clone().float(), bn.running_var.detach().clone().float()) for bn in layers]
    finally:
        for bn, m in zip(layers, momenta, strict=True):
            bn.momentum = m
        model.eval()


class StatisticsAccumulator:
    """Averages per-batch statistics exactly as ``update_bn`` (momentum=None) does: every batch weighs the same."""

    def __init__(self) -> None:
        self._sums: list[list[torch.Tensor]] | None = None
        self.batches = 0

    def add(self, stats: BatchStatistics) -> None:
        if self._sums is None:
            self._sums = [[m.double().clone(), v.double().clone()] for m, v in stats]
        else:
            if len(stats) != len(self._sums):
                raise ValueError(f"got statistics of {len(stats)} layers, expected {len(self._sums)}")
            for acc, (m, v) in zip(self._sums, stats, strict=True):
                acc[0] += m
                acc[1] += v
        self.batches += 1

    def result(self) -> BatchStatistics:
        """(running_mean, running_var) per layer, float32."""
        if self._sums is None:
            raise ValueError("no batch statistics were added; the BatchNorm pass needs at least one batch")
        return [((m / self.batches).float(), (v / self.batches).float()) for m, v in self._sums]


def load_statistics(model: nn.Module, stats: BatchStatistics, batches: int) -> None:
    """Write running statistics into ``model``'s BatchNorm layers (and ``num_batches_tracked``, as update_bn)."""
    layers = bn_layers(model)
    if len(stats) != len(layers):
        raise ValueError(f"statistics for {len(stats)} layers, the model has {len(layers)} BatchNorm layers")
    with torch.no_grad():
        for (name, bn), (mean, var) in zip(layers, stats, strict=True):
            if mean.shape != bn.running_mean.shape or var.shape != bn.running_var.shape:
                raise ValueError(f"statistics of shape {tuple(mean.shape)} for {name}, which has {bn.num_features}")
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            if bn.num_batches_tracked is not None:
                bn.num_batches_tracked.fill_(batches)


def statistics_vector(model: nn.Module) -> np.ndarray:
    """(2, total channels) float32: every layer's running mean, then running variance, concatenated in layer order."""
    layers = [bn for _, bn in bn_layers(model)]
    if not layers:
        return np.zeros((2, 0), dtype=np.float32)
    return np.stack(
        [
            torch.cat([bn.running_mean.detach().float().reshape(-1) for bn in layers]).numpy(),
            torch.cat([bn.running_var.detach().float().reshape(-1) for bn in layers]).numpy(),
        ]
    )
