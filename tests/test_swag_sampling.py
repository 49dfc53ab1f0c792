import numpy as np
import pytest
import torch

from swagbench.swag.errors import PosteriorError
from swagbench.swag.models import build_model
from swagbench.swag.posterior import Posterior
from swagbench.swag.sampling import load_flat_parameters, recompute_batchnorm, sample_parameters


def _posterior(p=5, rank=3, max_rank=4, seed=0) -> Posterior:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(p, generator=g)
    var = torch.rand(p, generator=g) * 0.5 + 0.1
    return Posterior(
        mean=mean,
        sq_mean=var + mean**2,
        deviations=torch.randn(rank, p, generator=g),
        max_rank=max_rank,
        n_models=10,
        param_names=["w"],
        param_shapes=[(p,)],
    )


def test_sample_matches_independent_formula():
    post = _posterior()
    theta = sample_parameters(post, seed=123, scale=0.5)
    # Independent computation in NumPy with the documented draw order (z1 then z2).
    g = torch.Generator().manual_seed(123)
    z1 = torch.randn(5, generator=g).numpy().astype(np.float64)
    z2 = torch.randn(3, generator=g).numpy().astype(np.float64)
    mean, sq, dev = (t.numpy().astype(np.float64) for t in (post.mean, post.sq_mean, post.deviations))
    var = np.maximum(sq - mean**2, 1e-30)
    expected = mean + np.sqrt(0.5) * (np.sqrt(var) * z1 + dev.T @ z2 / np.sqrt(4 - 1))
    np.testing.assert_allclose(theta.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_sampling_is_deterministic_per_seed():
    post = _posterior()
    assert torch.equal(sample_parameters(post, 7), sample_parameters(post, 7))
    assert not torch.equal(sample_parameters(post, 7), sample_parameters(post, 8))


def test_scale_zero_gives_swa_mean():
    post = _posterior()
    assert torch.equal(sample_parameters(post, 3, scale=0.0), post.mean)


@pytest.mark.parametrize("diag_only", [False, True])
def test_sample_covariance_matches_posterior(diag_only):
    post = _posterior(p=4, rank=2, max_rank=5, seed=1)
    draws = torch.stack([sample_parameters(post, s, scale=0.5, diag_only=diag_only) for s in range(20000)]).double()
    emp = np.cov(draws.numpy(), rowvar=False)
    dev = post.deviations.double().numpy()
    expected = np.diag(post.variance.double().numpy())
    if not diag_only:
        expected = expected + dev.T @ dev / (5 - 1)
    expected *= 0.5
    np.testing.assert_allclose(emp, expected, atol=0.06 * np.abs(expected).max())
    np.testing.assert_allclose(draws.mean(0).numpy(), post.mean.double().numpy(), atol=0.05)


def test_batchnorm_statistics_are_recomputed():
    model = build_model("digits_cnn", 10, 1)
    bn = model.features[1]
    assert torch.all(bn.running_mean == 0)
    batches = [torch.randn(32, 1, 8, 8) * 2 + 3 for _ in range(4)]
    recompute_batchnorm(model, batches)
    assert not model.training
    assert bn.running_mean.abs().sum() > 0 and not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    before = bn.running_mean.clone()
    recompute_batchnorm(model, [b * 0.1 for b in batches])  # different data -> different statistics
    assert not torch.allclose(before, bn.running_mean)


def test_loading_into_a_different_model_is_refused():
    post = _posterior()
    with pytest.raises(PosteriorError, match="different model"):
        load_flat_parameters(build_model("digits_cnn", 10, 1), post.mean, post)
