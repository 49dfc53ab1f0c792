"""A fixed small run gives bit-identical results to the stored ones (tests/golden.py made them): member
probabilities, BatchNorm statistics, label issues and quality, ensemble probabilities and every metric.
A refactor must not move them; a change that is meant to regenerates the fixture and says why."""

import json

import numpy as np
import pytest

from tests import golden

pytestmark = pytest.mark.e2e


def test_the_golden_run_is_bit_identical(tmp_path):
    stored = json.loads((golden.FIXTURE / "metrics.json").read_text())
    if stored["machine"] != golden.machine():
        pytest.skip(f"the fixture was made on {stored['machine']}, this is {golden.machine()}: bits may differ")
    arrays, metrics = golden.outputs(golden.run(tmp_path))
    with np.load(golden.FIXTURE / "arrays.npz") as f:
        expected = {k.replace("__", "/"): f[k] for k in f.files}
    assert sorted(arrays) == sorted(expected)
    for name, array in arrays.items():
        assert array.dtype == expected[name].dtype and array.shape == expected[name].shape, name
        assert np.array_equal(array, expected[name]), f"{name} differs"
    assert json.loads(json.dumps(metrics)) == stored["trials"]
