"""BatchNorm statistics computed in each backend against torch's update_bn (momentum=None)."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from swagbench.backends import BackendOptions, get_backend
from swagbench.backends.base import BackendError
from swagbench.bench.answer.fidelity import TOLERANCES
from swagbench.bench.execute.worker_loop import StatisticsStep
from swagbench.swag.batchnorm import (
    REDUCTIONS,
    StatisticsAccumulator,
    StatisticsGraph,
    StatisticsUnsupported,
    bn_layers,
    eager_batch_statistics,
    load_statistics,
    statistics_vector,
)
from swagbench.swag.models import build_model


class TransposedNet(nn.Module):
    """BatchNorms that see a non-contiguous (transposed) input and a 2-D (BatchNorm1d) one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 8 * 8, 12)
        self.bn1d = nn.BatchNorm1d(12)
        self.head = nn.Linear(12, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x).transpose(2, 3)))
        return self.head(torch.relu(self.bn1d(self.fc(x.flatten(1)))))


CASES = [
    ("eager", "fp32", False, {}),
    ("eager", "fp32", True, {}),
    ("eager", "bf16", True, {}),
    ("torchscript", "fp32", False, {}),
    ("torchscript", "bf16", False, {}),
    ("inductor", "fp32", False, {}),
    ("inductor", "fp32", True, {}),
    ("inductor", "bf16", False, {}),
    ("onnxruntime", "fp32", False, {}),
    ("onnxruntime", "fp32", False, {"binding": "constants"}),
    ("onnxruntime", "int8", False, {}),
    ("openvino", "fp32", False, {}),
    ("openvino", "fp32", False, {"binding": "constants"}),
    ("openvino", "bf16", False, {}),
    ("openvino", "int8", False, {}),
]


def _model(kind: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("digits_cnn", 10, 1) if kind == "cnn" else TransposedNet()
    return model.requires_grad_(False).eval()


def _batches(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    # Unequal last batch: update_bn weighs every batch the same whatever its size.
    return [torch.randn(n, 1, 8, 8, generator=gen) * 1.5 + 0.5 for n in (32, 32, 20)]


def _reference(model: nn.Module, batches) -> np.ndarray:
    ref = copy.deepcopy(model)
    update_bn(batches, ref)
    return statistics_vector(ref.eval())


def _backend_statistics(name, model, batches, options) -> tuple[np.ndarray, dict]:
    backend = get_backend(name)
    ok, reason = backend.available()
    if not ok:
        pytest.skip(f"{name} unavailable: {reason}")
    step = StatisticsStep(backend, options)
    try:
        step.bind(model, batches)
    except BackendError as exc:
        if "no bf16 support" in str(exc):
            pytest.skip(str(exc))
        raise
    acc = StatisticsAccumulator()
    for batch in batches:
        acc.add(step.runner(batch))
    load_statistics(model, acc.result(), acc.batches)
    return statistics_vector(model), step


def _errors(got: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    var = ref[1].astype(np.float64) + 1e-5
    return float((np.abs(got[0] - ref[0]) / np.sqrt(var)).max()), float((np.abs(got[1] - ref[1]) / var).max())


@pytest.mark.parametrize("kind", ["cnn", "transposed"])
@pytest.mark.parametrize("name, precision, channels_last, extra", CASES, ids=str)
def test_backend_statistics_equal_update_bn(name, precision, channels_last, extra, kind):
    model, batches = _model(kind), _batches()
    ref = _reference(model, batches)
    options = BackendOptions(precision=precision, threads=2, batch_size=32, channels_last=channels_last, extra=extra)
    got, step = _backend_statistics(name, model, batches, options)
    assert step.info["where"] == "backend", step.info
    assert step.info["layout"] == ("channels_last" if channels_last else "contiguous")
    mean_err, var_err = _errors(got, ref)
    tol = TOLERANCES[step.info["precision"]]
    assert mean_err <= tol.max_bn_mean_err and var_err <= tol.max_bn_var_err
    if step.info["precision"] == "fp32":  # summation order only
        assert mean_err < 1e-4 and var_err < 1e-4
    assert all(bn.num_batches_tracked.item() == len(batches) for _, bn in bn_layers(model))


@pytest.mark.parametrize(
    "name, extra",
    [
        ("torchscript", {}),
        ("inductor", {}),
        ("onnxruntime", {}),
        ("onnxruntime", {"binding": "constants"}),
        ("openvino", {}),
        ("openvino", {"binding": "constants"}),
    ],
    ids=str,
)
def test_statistics_binding_equals_rebuilding(name, extra):
    """A statistics runner moved to new weights in place gives what one built on those weights gives. Every
    parameter changes, the BatchNorm affine ones too: two fresh inits share those (ones and zeros), which once
    hid ONNX Runtime folding a BatchNorm weight's first value into the graph."""
    options = BackendOptions(threads=2, batch_size=32, extra=extra)
    batches = _batches()
    model = _model("cnn", seed=1)
    first, step = _backend_statistics(name, model, batches, options)
    new = _model("cnn", seed=2)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(torch.rand_like(p) * 0.5)
    model.load_state_dict(new.state_dict())  # the harness overwrites the bound model's parameters in place
    step.bind(model, batches)
    acc = StatisticsAccumulator()
    for batch in batches:
        acc.add(step.runner(batch))
    load_statistics(model, acc.result(), acc.batches)
    swapped = statistics_vector(model)
    rebuilt, _ = _backend_statistics(name, new, batches, options)
    assert np.abs(swapped - first).max() > 1e-2  # the weights really changed
    np.testing.assert_allclose(swapped, rebuilt, rtol=1e-5, atol=1e-6)


def test_a_backend_without_statistics_falls_back_to_eager_and_says_why():
    model, batches = _model("cnn"), _batches()
    ref = _reference(model, batches)
    got, step = _backend_statistics("tests.faulty_backends:NoStatisticsBackend", model, batches, BackendOptions())
    assert step.info["where"] == "eager" and step.info["precision"] == "fp32"
    assert "does not compute BatchNorm statistics" in step.info["reason"]
    assert "'no-statistics'" in step.info["reason"]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_statistics_graph_refuses_a_layer_called_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(1)

        def forward(self, x):
            return self.bn(self.bn(x)).flatten(1)

    with pytest.raises(StatisticsUnsupported, match="more or less than once"):
        StatisticsGraph(Twice(), torch.randn(2, 1, 8, 8))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_both_reductions_give_torchs_statistics_even_far_from_zero(reduction):
    """Either way of summing channels (``ops``, ``convolution``) gives the statistics of torch's own train-mode
    kernels, for affine and plain layers alike, on activations whose mean is 1,000 standard deviations from zero,
    where a one-pass E[x^2] - E[x]^2 would lose the variance to float32 cancellation."""

    class Offset(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.plain = nn.BatchNorm2d(4, affine=False)

        def forward(self, x):
            return self.plain(self.bn(self.conv(x)) + 1000.0).flatten(1)

    torch.manual_seed(0)
    model = Offset().requires_grad_(False).eval()
    model.bn.weight.uniform_(0.5, 2.0)
    model.bn.bias.uniform_(-1.0, 1.0)
    batch = torch.randn(16, 1, 12, 10)
    graph = StatisticsGraph(model, batch, reduction=reduction)
    with torch.no_grad():
        got = graph.batch_statistics(graph(batch), len(batch))
    want = eager_batch_statistics(model, batch)
    for (mean, var), (ref_mean, ref_var) in zip(got, want, strict=True):
        torch.testing.assert_close(mean, ref_mean, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(var, ref_var, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        StatisticsGraph(model, batch, reduction="sum")


def test_accumulator_weighs_batches_equally_like_update_bn():
    acc = StatisticsAccumulator()
    acc.add([(torch.tensor([1.0]), torch.tensor([2.0]))])
    acc.add([(torch.tensor([3.0]), torch.tensor([6.0]))])
    ((mean, var),) = acc.result()
    assert mean.item() == 2.0 and var.item() == 4.0
    with pytest.raises(ValueError, match="at least one batch"):
        StatisticsAccumulator().result()
