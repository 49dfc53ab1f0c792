"""Every backend x precision against eager fp32 on the small CNN; weight swapping vs re-preparing."""

import pytest
import torch

from swagbench.backends import BackendOptions, get_backend
from swagbench.backends.base import BackendError
from swagbench.bench.answer.fidelity import TOLERANCES
from swagbench.swag.models import build_model
from swagbench.swag.sampling import recompute_batchnorm

CASES = [
    ("eager", "bf16", {}),
    ("torchscript", "fp32", {}),
    ("torchscript", "bf16", {}),
    ("torchscript", "fp32", {"freeze": False}),
    ("inductor", "fp32", {}),
    ("inductor", "fp32", {"freezing": True}),
    ("onnxruntime", "fp32", {}),
    ("onnxruntime", "int8", {}),
    ("openvino", "fp32", {}),
    ("openvino", "fp32", {"hint": "latency"}),
    ("openvino", "bf16", {}),
    ("openvino", "int8", {}),
]


def _model(seed: int):
    torch.manual_seed(seed)
    model = build_model("digits_cnn", 10, 1).requires_grad_(False)
    recompute_batchnorm(model, [torch.randn(64, 1, 8, 8) * 2 + seed])
    return model


def _sample_of(model, seed: int, spread: float = 0.3):
    """Another SWAG-like sample around ``model``: every weight moved by ``spread`` of its tensor's std, BN redone."""
    gen = torch.Generator().manual_seed(seed)
    other = build_model("digits_cnn", 10, 1).requires_grad_(False)
    other.load_state_dict(model.state_dict())
    for p in other.parameters():
        p.add_(torch.randn(p.shape, generator=gen) * spread * p.std().clamp(min=1e-3))
    recompute_batchnorm(other, [torch.randn(64, 1, 8, 8, generator=gen) * 2 + 1])
    return other


def _backend(name):
    backend = get_backend(name)
    ok, reason = backend.available()
    if not ok:
        pytest.skip(f"{name} unavailable: {reason}")
    return backend


def _prepare(backend, model, x, options, calib):
    """prepare(), skipping (with the backend's reason) where this CPU lacks the precision."""
    try:
        return backend.prepare(model, x, options, calibration=calib)
    except BackendError as exc:
        if "no bf16 support" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(40, 1, 8, 8, generator=gen), [torch.randn(64, 1, 8, 8, generator=gen) for _ in range(4)]


@pytest.mark.parametrize("name, precision, extra", CASES, ids=lambda v: str(v))
def test_backend_matches_eager_within_tolerance(name, precision, extra, data):
    x, calib = data
    backend = _backend(name)
    model = _model(1)
    ref = torch.softmax(model(x), 1)
    options = BackendOptions(precision=precision, threads=2, batch_size=40, extra=extra)
    runner = _prepare(backend, model, x, options, calib)
    probs = torch.softmax(runner(x), 1)
    runner(x[:7])  # a second batch shape works too
    tol = TOLERANCES[precision]
    assert probs.shape == ref.shape and probs.dtype == torch.float32
    assert (probs - ref).abs().max().item() <= tol.max_abs_dp
    assert (probs.argmax(1) == ref.argmax(1)).float().mean().item() >= 0.95
    if precision == "fp32":  # fp32 differs from eager only by summation order
        assert (probs - ref).abs().max().item() < 1e-4


SWAPS = [
    ("torchscript", "fp32", {"freeze": False}),
    ("inductor", "fp32", {}),
    ("onnxruntime", "fp32", {}),
    ("openvino", "fp32", {}),
    ("openvino", "bf16", {}),
    ("onnxruntime", "fp32", {"binding": "constants"}),
    ("openvino", "fp32", {"binding": "constants"}),
]


@pytest.mark.parametrize("name, precision, extra", SWAPS, ids=lambda v: str(v))
def test_weight_swap_equals_reprepare(name, precision, extra, data):
    x, calib = data
    backend = _backend(name)
    options = BackendOptions(precision=precision, threads=2, batch_size=40, extra=extra)
    assert backend.can_swap(options)
    model = _model(1)
    runner = _prepare(backend, model, x, options, calib)
    before = runner(x)
    model.load_state_dict(_model(2).state_dict())  # the harness updates the same module in place
    swapped = backend.update(runner, model, options, calibration=calib)(x)
    reprepared = backend.prepare(_model(2), x, options, calibration=calib)(x)
    assert (swapped - before).abs().max() > 1e-2  # the weights really changed
    torch.testing.assert_close(swapped, reprepared, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_int8_swap_keeps_the_folds_calibration_and_requantizes_weights(name, data):
    """int8 calibrates activation ranges once per fold; a further sample of the fold re-quantizes only its
    weights. That cannot equal a fresh calibration on the new weights, so it is held to the int8 tolerance
    against eager, and a new fold (other calibration batches) recalibrates."""
    x, calib = data
    backend = _backend(name)
    options = BackendOptions(precision="int8", threads=2, batch_size=40)
    assert backend.can_swap(options)
    model = _model(1)
    runner = _prepare(backend, model, x, options, calib)
    before = runner(x)
    sample = _sample_of(model, seed=3)
    model.load_state_dict(sample.state_dict())
    swapped = torch.softmax(backend.update(runner, model, options, calibration=calib)(x), 1)
    ref = torch.softmax(sample(x), 1)
    assert (swapped - torch.softmax(before, 1)).abs().max() > 1e-2  # the weights really changed
    # Measured: 0.001 (ONNX Runtime) and 0.004 (OpenVINO) here; the gate's int8 limit is 0.25. (Argmax says
    # nothing on these near-uniform random-model probabilities, so only |dp| is checked.)
    assert (swapped - ref).abs().max().item() <= 0.02
    other_fold = [b * 1.5 for b in calib]
    refolded = torch.softmax(backend.update(runner, model, options, calibration=other_fold)(x), 1)
    assert (refolded - ref).abs().max().item() <= 0.02


def test_frozen_backends_do_not_claim_to_swap():
    assert not get_backend("eager").can_swap(BackendOptions())
    assert not get_backend("torchscript").can_swap(BackendOptions())
    assert not get_backend("inductor").can_swap(BackendOptions(extra={"freezing": True}))


@pytest.mark.parametrize("shapes", ["static", "dynamic"])
def test_openvino_fp32_is_really_f32(data, shapes):
    # On AVX512_BF16 CPUs OpenVINO's default is bf16; the backend must force f32, and every graph it compiled must
    # say so when asked (read back from OpenVINO, not echoed from the request).
    x, _ = data
    runner = _backend("openvino").prepare(_model(1), x, BackendOptions(threads=2, extra={"shapes": shapes}))
    runner(x[:5])  # a partial batch: with static shapes, a second compiled graph
    compiled = [c.compiled for c in runner.graph.compiled.values()]
    assert len(compiled) >= 2 if shapes == "static" else len(compiled) == 1
    assert {c.get_property("INFERENCE_PRECISION_HINT").get_type_name() for c in compiled} == {"f32"}
    assert runner.info["inference_precision"] == "f32"


@pytest.mark.parametrize("binding", ["inputs", "constants"])
def test_openvino_compiles_each_batch_shape_static_and_a_rebind_reaches_every_one(data, binding):
    # With shapes: static a partial last batch and the predict queue's sub-batches get graphs of their own, and a
    # new sample must reach them all.
    x, _ = data
    backend, first, second = _backend("openvino"), _model(1), _sample_of(_model(1), 7)
    options = BackendOptions(threads=2, extra={"binding": binding, "shapes": "static"})
    runner = backend.prepare(first, x, options)
    requests = runner.info["infer_requests"]  # the throughput hint splits a batch over its requests
    assert runner.info["static_shapes"] == [[len(x) // requests, *x.shape[1:]]]
    runner(x), runner(x[:5])  # a partial batch compiles its own shape(s) on first use
    parts = {len(a) for a in torch.arange(5).tensor_split(min(requests, 5))} | {len(x) // requests}
    assert sorted(s[0] for s in runner.info["static_shapes"]) == sorted(parts)
    runner = backend.update(runner, second, options)
    fresh = backend.prepare(second, x, options)
    for batch in (x, x[:5]):
        torch.testing.assert_close(runner(batch), fresh(batch), rtol=0, atol=1e-5)
        torch.testing.assert_close(runner(batch), second(batch), rtol=1e-4, atol=1e-4)


def test_openvino_shapes_auto_times_both_and_keeps_the_faster(data):
    x, calib = data
    backend = _backend("openvino")
    for precision in ("fp32", "int8"):
        runner = backend.prepare(_model(1), x, BackendOptions(precision=precision, threads=2), calibration=calib)
        rates = runner.info["shapes_img_per_s"]
        assert set(rates) == {"dynamic", "static"} and min(rates.values()) > 0
        assert runner.info["shapes"] == max(rates, key=rates.get)
    statistics = backend.statistics(_model(1).train(), calib[0], BackendOptions(threads=2)).info
    assert statistics["shapes"] == max(statistics["shapes_img_per_s"], key=statistics["shapes_img_per_s"].get)
    dynamic = backend.prepare(_model(1), x, BackendOptions(threads=2, extra={"shapes": "dynamic"}))
    dynamic(x), dynamic(x[:5])
    assert dynamic.info["shapes"] == "dynamic" and "static_shapes" not in dynamic.info
    assert "shapes_img_per_s" not in dynamic.info  # nothing timed when the user chose


def test_unknown_backend_option_is_refused():
    with pytest.raises(BackendError, match=r"unknown key\(s\) \['freez'\] in torchscript options; valid keys: freeze"):
        get_backend("torchscript").check(BackendOptions(extra={"freez": False}))
    with pytest.raises(BackendError, match="hint='fast' is not one of \\('throughput', 'latency'\\)"):
        get_backend("openvino").check(BackendOptions(extra={"hint": "fast"}))
    with pytest.raises(BackendError, match="freeze must be true, false or auto \\(got 1\\)"):
        get_backend("torchscript").check(BackendOptions(extra={"freeze": 1}))
    with pytest.raises(BackendError, match="calibration_batches must be int, got True"):
        get_backend("onnxruntime").check(BackendOptions(extra={"calibration_batches": True}))
    with pytest.raises(BackendError, match="calibration_batches must be >= 1"):
        get_backend("onnxruntime").check(BackendOptions(extra={"calibration_batches": 0}))


def test_backend_options_are_typed_with_defaults_and_help():
    from swagbench.backends.base import describe_options

    ort = get_backend("onnxruntime")
    assert ort.settings(BackendOptions()) == ort.Options(
        graph_optimization="all", binding="inputs", calibration_batches=4
    )
    assert ort.settings(BackendOptions(extra={"binding": "constants"})).binding == "constants"
    lines = describe_options(ort.Options)
    assert lines[0].startswith("binding (default: 'inputs'; one of inputs|constants|auto): ")
    assert lines[2].startswith("graph_optimization (default: 'all'; one of all|extended|basic|disabled): ")
    assert all(line.split(": ", 1)[1] for line in lines)  # every option has help text
    assert describe_options(get_backend("eager").Options) == []
