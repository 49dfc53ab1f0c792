import pytest
import torch
from torch import nn

from swagbench.swag.posterior import SwagCollector


def _set(model: nn.Linear, flat: list[float]) -> None:
    with torch.no_grad():
        model.weight.copy_(torch.tensor([flat[:2]]))
        model.bias.copy_(torch.tensor(flat[2:]))


def test_moments_match_hand_computation():
    model = nn.Linear(2, 1)  # parameters: weight (1, 2) then bias (1,) -> P = 3
    col = SwagCollector(model, max_rank=2)
    for w in ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [2.0, 2.0, 5.0]):
        _set(model, w)
        col.collect(model)
    post = col.posterior({"model": "linear"})
    assert post.n_models == 3
    torch.testing.assert_close(post.mean, torch.tensor([2.0, 2.0, 3.0]))
    torch.testing.assert_close(post.sq_mean, torch.tensor([14 / 3, 4.0, 35 / 3]))
    # Only the last max_rank=2 deviations, each from the mean *after* adding that iterate:
    # w2 - mean([w1, w2]) = [1, 0, -1]; w3 - mean([w1, w2, w3]) = [0, 0, 2].
    torch.testing.assert_close(post.deviations, torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 2.0]]))
    torch.testing.assert_close(post.variance, torch.tensor([14 / 3 - 4, 1e-30, 35 / 3 - 9]))
    assert post.param_names == ["weight", "bias"] and post.param_shapes == [(1, 2), (1,)]
    assert post.meta == {"model": "linear"}


def test_posterior_without_snapshots_is_an_error():
    with pytest.raises(ValueError, match="no SWAG iterates"):
        SwagCollector(nn.Linear(2, 1)).posterior()


def test_rank_below_two_rejected():
    with pytest.raises(ValueError, match="max_rank"):
        SwagCollector(nn.Linear(2, 1), max_rank=1)
