import pytest
import torch
from torch import nn

from swagbench.swag.errors import PosteriorError
from swagbench.swag.io import load_posterior, save_posterior
from swagbench.swag.posterior import SwagCollector


@pytest.fixture
def posterior():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    col = SwagCollector(model, max_rank=3)
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        col.collect(model)
    return col.posterior({"model": "mlp", "num_classes": "2"})


def test_round_trip(tmp_path, posterior):
    path = save_posterior(posterior, tmp_path / "p.safetensors")
    back = load_posterior(path, expect={"model": "mlp", "num_classes": 2})
    assert torch.equal(back.mean, posterior.mean) and torch.equal(back.deviations, posterior.deviations)
    assert back.max_rank == 3 and back.n_models == 5
    assert back.param_names == posterior.param_names and back.param_shapes == posterior.param_shapes
    assert back.meta == posterior.meta


def test_missing_file(tmp_path):
    with pytest.raises(PosteriorError, match="does not exist"):
        load_posterior(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path, posterior):
    path = save_posterior(posterior, tmp_path / "p.safetensors")
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(PosteriorError, match="corrupt"):
        load_posterior(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "p.safetensors"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(PosteriorError, match="corrupt"):
        load_posterior(path)


def test_mismatched_architecture(tmp_path, posterior):
    path = save_posterior(posterior, tmp_path / "p.safetensors")
    with pytest.raises(PosteriorError, match="model='mlp'.*resnet18"):
        load_posterior(path, expect={"model": "resnet18"})
