"""Speed regression checks (pytest-benchmark): one SWAG member's predict step per available backend
and precision, and the per-sample work every backend shares (sampling + BatchNorm update).

Fixed workload: DigitsCNN, a 128-image batch of digits, all CPUs of this machine. ``make test``
skips these (``--benchmark-skip``); ``make bench-check`` runs them against this machine type's
stored baseline (see README, "Speed regression checks").
"""

import os

import numpy as np
import pytest
import torch

from swagbench.backends import BackendOptions, get_backend
from swagbench.backends.registry import BUILTIN
from swagbench.swag.models import build_model
from swagbench.swag.posterior import synthesize_posterior
from swagbench.swag.sampling import load_flat_parameters, recompute_batchnorm, sample_parameters

THREADS = os.cpu_count() or 1
BATCH = 128
# IPEX runs in its own interpreter (make ipex-env), so it has no in-process benchmark here.
CASES = [(name, p) for name in BUILTIN if name != "ipex" for p in get_backend(name).precisions]


@pytest.fixture(scope="module")
def member():
    """A DigitsCNN holding one SWAG sample with recomputed BN statistics, plus data batches."""
    from sklearn.datasets import load_digits

    torch.set_num_threads(THREADS)
    x = torch.from_numpy(((load_digits().images.astype(np.float32) / 16.0 - 0.5) / 0.5)[:, None])
    model = build_model("digits_cnn", 10, 1).requires_grad_(False)
    posterior = synthesize_posterior(model, max_rank=20, seed=0)
    bn_batches = list(x[:1024].split(256))
    load_flat_parameters(model, sample_parameters(posterior, seed=1), posterior)
    recompute_batchnorm(model, bn_batches)
    return model, posterior, bn_batches, x[:BATCH]


@pytest.mark.parametrize("backend, precision", CASES, ids=[f"{b}-{p}" for b, p in CASES])
def test_predict_one_member(benchmark, member, backend, precision):
    model, _, bn_batches, batch = member
    impl = get_backend(backend)
    ok, reason = impl.available()
    if not ok:
        pytest.skip(reason)
    options = BackendOptions(precision=precision, threads=THREADS, batch_size=BATCH)
    runner = impl.prepare(model, batch, options, calibration=bn_batches)
    runner(batch)  # warm-up: compilation and first-call costs are not what this measures
    benchmark.extra_info.update(backend=backend, precision=precision, threads=THREADS, batch=BATCH)
    logits = benchmark(runner, batch)
    assert logits.shape == (BATCH, 10)


def test_sample_and_bn_update(benchmark, member):
    model, posterior, bn_batches, _ = member
    seeds = iter(range(10**6))

    def one_sample():
        load_flat_parameters(model, sample_parameters(posterior, seed=next(seeds)), posterior)
        recompute_batchnorm(model, bn_batches)

    benchmark.extra_info.update(threads=THREADS, bn_examples=1024)
    benchmark(one_sample)
    assert not model.training
