"""A phase's time is that phase's cost: no runtime keeps threads burning CPU after its call has returned.

Measured as this process's CPU time (user + system) in a short idle window right after a call, so the
result does not depend on wall-clock speed or on other processes. ONNX Runtime's default lets its
intra-op threads spin for about 20 ms after every run (one whole core here), which is stolen from the
next phase on a 2-core machine; the backends switch that off.
"""

import time

import psutil
import pytest
import torch

from swagbench.backends import BackendOptions, get_backend
from swagbench.swag.models import build_model

WINDOW_S = 0.02
MAX_CORES = 0.3  # a spinning pool shows ~1 core per spinning thread in this window


def _idle_cpu(call, pick=min) -> float:
    """Cores' worth of this process's CPU time in the WINDOW_S after ``call()`` returns, over 3 tries: the least
    (a runtime must be quiet every time) or, with ``pick=max``, the most (a spinning pool shows in at least one
    try even when other processes keep the CPUs busy and its threads get little time)."""
    proc = psutil.Process()
    seen = []
    for _ in range(3):
        call()
        t = proc.cpu_times()
        before, t0 = t.user + t.system, time.perf_counter()
        while time.perf_counter() - t0 < WINDOW_S:
            time.sleep(0.002)
        t = proc.cpu_times()
        seen.append((t.user + t.system - before) / (time.perf_counter() - t0))
    return pick(seen)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = build_model("resnet18", 10, 3).requires_grad_(False).eval()
    x = torch.randn(8, 3, 48, 48)
    return model, x, [torch.randn(8, 3, 48, 48) for _ in range(2)]


@pytest.mark.parametrize("name, precision", [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32")])
def test_no_runtime_thread_spins_after_a_call(name, precision, setup):
    model, x, calib = setup
    backend = get_backend(name)
    ok, reason = backend.available()
    if not ok:
        pytest.skip(reason)
    options = BackendOptions(precision=precision, threads=2, batch_size=8)
    runner = backend.prepare(model, x, options, calibration=calib)
    assert _idle_cpu(lambda: runner(x)) < MAX_CORES
    stats = backend.statistics(model, calib[0], options)
    assert _idle_cpu(lambda: stats(calib[0])) < MAX_CORES


def test_the_check_sees_a_spinning_pool(setup):
    """The measurement can fail: an ONNX Runtime session with its default (spinning) threads is caught."""
    import onnxruntime as ort

    from swagbench.backends.onnx_graph import export_onnx

    model, x, _ = setup
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    session = ort.InferenceSession(export_onnx(model, x).SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    assert _idle_cpu(lambda: session.run(None, feed), pick=max) > MAX_CORES
