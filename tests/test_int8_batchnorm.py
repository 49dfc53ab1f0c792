"""The BatchNorm pass in int8 (OpenVINO, NNCF): statistics against torch's ``update_bn`` on a small model, for the
first sample of a fold and a re-quantized later one, and the graph really runs its convolutions in int8."""

import dataclasses

import pytest
import torch
from torch.optim.swa_utils import update_bn

from swagbench.backends import BackendOptions, get_backend
from swagbench.backends.base import BackendError
from swagbench.bench.answer.fidelity import TOLERANCES
from swagbench.swag.batchnorm import StatisticsAccumulator, bn_layers
from swagbench.swag.models import build_model

# Stated in docs/backends.md: the int8 pass's statistics on ResNet-8 here stay within this many standard deviations
# in mean, and this relative error in standard deviation, of update_bn's (measured: see the doc).
MEAN_ERR, STD_ERR = 0.1, 0.1


@pytest.fixture(scope="module")
def backend():
    backend = get_backend("openvino")
    ok, reason = backend.available()
    if not ok:
        pytest.skip(reason)
    return backend


def _batches(seed: int, n: int = 4):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(64, 3, 32, 32, generator=gen) for _ in range(n)]


def _model(seed: int):
    torch.manual_seed(seed)
    model = build_model("resnet8", 10, 3).requires_grad_(False).eval()
    update_bn(_batches(seed + 100, 2), model)  # statistics that look like a trained model's
    return model.eval()


def _sample_of(model, seed: int, spread: float = 0.3):
    """Another SWAG-like sample around ``model``: every weight moved by ``spread`` of its tensor's std."""
    gen = torch.Generator().manual_seed(seed)
    other = _model(1)
    other.load_state_dict(model.state_dict())
    for p in other.parameters():
        p.add_(torch.randn(p.shape, generator=gen) * spread * p.std().clamp(min=1e-3))
    return other


def _errors(stats, model) -> tuple[float, float]:
    """Largest error in mean (in the reference's standard deviations) and relative error in standard deviation
    of ``stats`` against ``model``'s running statistics, over every layer."""
    mean_err = std_err = 0.0
    for (m, v), (_, bn) in zip(stats, bn_layers(model), strict=True):
        std = bn.running_var.sqrt().clamp(min=1e-3)
        mean_err = max(mean_err, ((m - bn.running_mean).abs() / std).max().item())
        std_err = max(std_err, (v.sqrt() / std - 1).abs().max().item())
    return mean_err, std_err


def _pass(runner, batches):
    acc = StatisticsAccumulator()
    for b in batches:
        acc.add(runner(b))
    return acc.result()


def test_int8_statistics_match_update_bn_for_a_fold_and_a_requantized_sample(backend):
    options = BackendOptions(precision="int8", threads=2, batch_size=64, extra={"bn_precision": "int8"})
    fold, model = _batches(1), _model(1)
    runner = backend.statistics(model, fold[0], options, calibration=fold)
    assert runner.info["precision"] == "int8" and "NNCF" in runner.info["method"]
    reference = _model(1)
    update_bn(fold, reference)
    first = _errors(_pass(runner, fold), reference)
    assert first[0] <= MEAN_ERR and first[1] <= STD_ERR, first

    # a later sample of the fold: other weights, re-quantized into the fold's calibrated graph
    other = _sample_of(model, 2)
    model.load_state_dict(other.state_dict())
    runner = backend.update_statistics(runner, model, fold[0], options, calibration=fold)
    update_bn(fold, other)
    second = _errors(_pass(runner, fold), other)
    assert second[0] <= MEAN_ERR and second[1] <= STD_ERR, second
    assert _errors(_pass(runner, fold), reference)[0] > 5 * MEAN_ERR  # the new weights really reached the graph

    # a new fold (other calibration batches) after the weights moved: calibrated on the weights it has now
    third, fold = _sample_of(model, 3), _batches(2)
    model.load_state_dict(third.state_dict())
    runner = backend.update_statistics(runner, model, fold[0], options, calibration=fold)
    update_bn(fold, third)
    refold = _errors(_pass(runner, fold), third)
    assert refold[0] <= MEAN_ERR and refold[1] <= STD_ERR, refold
    assert max(first + second + refold) <= min(TOLERANCES["int8"].max_bn_mean_err, TOLERANCES["int8"].max_bn_var_err)

    # the compiled graph runs its convolutions in int8 (read back from OpenVINO's executed graph)
    runtime = runner.quantized.graph.compiled
    executed = next(iter(runtime.values())).compiled.get_runtime_model()
    precisions = {
        op.get_rt_info()["runtimePrecision"].astype(str).upper()
        for op in executed.get_ops()
        if op.get_rt_info()["layerType"].astype(str) == "Convolution"
    }
    assert precisions & {"I8", "U8"}, precisions


def test_bn_precision_auto_measures_each_precision_the_target_and_this_cpu_run_natively(backend, monkeypatch):
    from swagbench.backends import openvino

    x = _batches(3, 1)
    monkeypatch.setattr(openvino, "host_isa", lambda: ["avx512", "vnni", "avx512_bf16", "amx"])
    monkeypatch.setattr(type(backend), "has_bf16", lambda self: True)
    here = BackendOptions(precision="int8", threads=2)  # no target.isa: this machine is the target
    assert backend.bn_candidates(here) == ["int8", "bf16", "fp32"]
    n2 = BackendOptions(precision="int8", target_isa=["avx2", "avx512", "vnni"])  # no bf16 on an N2
    assert backend.bn_candidates(n2) == ["int8", "fp32"]
    option, candidates = backend.variants(dataclasses.replace(n2, extra={"binding": "auto"}))  # each float pass
    # with each binding
    assert option == "bn_precision/binding" and list(candidates) == ["int8", "fp32/inputs", "fp32/constants"]
    assert candidates["fp32/constants"].extra == {"bn_precision": "fp32", "binding": "constants"}
    option, candidates = backend.variants(
        BackendOptions(precision="int8", target_isa=["vnni"], extra={"binding": "inputs"})
    )
    assert option == "bn_precision" and list(candidates) == ["int8", "fp32"]
    # int8's predict graph is the same whatever the pass: auto measures it once
    assert len({repr(backend.predict_options(c)) for c in candidates.values()}) == 1
    fp32 = BackendOptions(precision="fp32", extra={"binding": "inputs"})
    assert backend.predict_options(fp32) == fp32
    assert backend.bn_candidates(BackendOptions(precision="int8", target_isa=["avx2"])) == ["fp32"]  # neither
    assert backend.variants(BackendOptions(precision="int8", target_isa=["avx2"], extra={"binding": "inputs"})) is None
    monkeypatch.setattr(type(backend), "has_bf16", lambda self: False)
    assert backend.bn_candidates(here) == ["int8", "fp32"]  # bf16 this CPU would not run natively is not measured
    monkeypatch.setattr(openvino, "host_isa", lambda: ["avx2"])  # a rate measured here would not stand for a VNNI
    assert backend.bn_candidates(n2) == ["fp32"]  # target's int8: nothing to choose
    assert backend.bn_precision(BackendOptions(precision="fp32")) == "fp32"
    assert backend.bn_precision(BackendOptions(precision="int8", extra={"bn_precision": "int8"})) == "int8"
    chosen = BackendOptions(precision="int8", threads=2, extra={"bn_precision": "fp32"})
    runner = backend.statistics(_model(1), x[0], chosen, calibration=x)
    assert runner.info["precision"] == "fp32" and "f32" in runner.info["method"]
    with pytest.raises(BackendError, match="bn_precision='int4' is not one of"):
        backend.check(BackendOptions(extra={"bn_precision": "int4"}))
