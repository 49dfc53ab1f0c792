import json
from pathlib import Path

import pytest
import torch

from swagbench.swag.models import build_model
from swagbench.swag.models.registry import ModelSpecError

# Every state_dict key, shape and dtype of torchvision's resnet18/50, written by torchvision itself
# (tests/fixtures/make_torchvision_resnets.py; torchvision cannot load beside this project's CPU torch).
TORCHVISION = json.loads((Path(__file__).parent / "fixtures" / "torchvision_resnets.json").read_text())


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_matches_torchvision_layout(name):
    """Same keys, in the same order, with the same shapes and dtypes: a torchvision checkpoint loads strictly."""
    ours = {k: [list(v.shape), str(v.dtype)] for k, v in build_model(name, 1000, 3).state_dict().items()}
    theirs = TORCHVISION["models"][name]
    assert list(ours) == list(theirs)
    assert ours == theirs


def test_resnet50_bottleneck_keys():
    sd = build_model("resnet50", 1000, 3).state_dict()
    assert tuple(sd["layer1.0.conv3.weight"].shape) == (256, 64, 1, 1)
    assert tuple(sd["layer1.0.downsample.0.weight"].shape) == (256, 64, 1, 1)
    assert tuple(sd["layer2.0.conv2.weight"].shape) == (128, 128, 3, 3)  # stride lives on the 3x3 (v1.5)


def test_models_run_forward():
    x = torch.randn(2, 1, 8, 8)
    assert build_model("digits_cnn", 10, 1).eval()(x).shape == (2, 10)
    assert build_model("resnet18", 7, 1).eval()(x).shape == (2, 7)


def test_module_factory_spec():
    model = build_model("swagbench.swag.models.digits_cnn:digits_cnn", 3, 2)
    assert model(torch.randn(4, 2, 8, 8)).shape == (4, 3)


@pytest.mark.parametrize(
    "spec, msg",
    [
        ("vgg", "unknown model"),
        ("nosuchmod:f", "cannot load"),
        ("swagbench.swag.models.digits_cnn:nothing", "cannot load"),
        ("builtins:dict", "not a torch.nn.Module"),
    ],
)
def test_bad_model_specs(spec, msg):
    with pytest.raises(ModelSpecError, match=msg):
        build_model(spec, 10, 1)


def test_resnet8_for_28px_images():
    model = build_model("resnet8", 10, 1).eval()
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert 70_000 < sum(p.numel() for p in model.parameters()) < 90_000
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 9  # stem + 3 blocks x 2 + 2 shortcuts
