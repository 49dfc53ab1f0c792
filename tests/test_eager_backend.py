import pytest
import torch

from swagbench.backends import BackendOptions, get_backend
from swagbench.backends.base import BackendError
from swagbench.backends.registry import UnknownBackendError
from swagbench.swag.models import build_model


@pytest.fixture
def model_and_batch():
    torch.manual_seed(0)
    model = build_model("digits_cnn", 10, 1)
    model.train()
    model(torch.randn(64, 1, 8, 8))  # give BN non-trivial running statistics
    return model.eval(), torch.randn(32, 1, 8, 8)


def test_eager_fp32_is_the_model(model_and_batch):
    model, x = model_and_batch
    with torch.no_grad():
        ref = model(x)
    out = get_backend("eager").prepare(model, x, BackendOptions(threads=1))(x)
    torch.testing.assert_close(out, ref)


def test_channels_last_and_bf16_close_to_fp32(model_and_batch):
    model, x = model_and_batch
    eager = get_backend("eager")
    ref = torch.softmax(eager.prepare(model, x, BackendOptions())(x), 1)
    cl = torch.softmax(eager.prepare(model, x, BackendOptions(channels_last=True))(x), 1)
    bf16 = eager.prepare(model, x, BackendOptions(precision="bf16"))(x)
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(cl, ref, atol=1e-5, rtol=1e-4)
    assert (torch.softmax(bf16, 1) - ref).abs().max() < 0.05


def test_impossible_precision_and_unknown_backend():
    with pytest.raises(BackendError, match="no int8 mode"):
        get_backend("eager").check(BackendOptions(precision="int8"))
    with pytest.raises(UnknownBackendError, match="unknown backend 'nope'; choose from eager"):
        get_backend("nope")
