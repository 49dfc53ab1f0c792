import numpy as np
import pytest

from swagbench.bench.config import DataConfig
from swagbench.bench.dataset import load_dataset
from swagbench.bench.errors import DataError
from swagbench.bench.record.folds import fold_split, make_folds


def test_default_is_packaged_mnist_with_injected_noise(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the default data set must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    ds = load_dataset(DataConfig())
    assert ds.name == "mnist" and ds.x.shape == (5000, 1, 28, 28) and ds.x.dtype == np.float32
    assert ds.num_classes == 10 and np.bincount(ds.true_labels).tolist() == [500] * 10
    assert -0.43 < ds.x.min() < -0.42 and 2.82 < ds.x.max() < 2.83  # (pixel / 255 - 0.1307) / 0.3081
    assert 0.15 < ds.is_label_error.mean() < 0.25
    assert np.array_equal(ds.labels, load_dataset(DataConfig()).labels)  # seeded
    assert not np.array_equal(ds.labels, load_dataset(DataConfig(seed=1)).labels)


def test_digits_with_injected_noise():
    ds = load_dataset(DataConfig(source="digits"))
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == np.float32
    assert ds.num_classes == 10 and ds.true_labels is not None
    assert 0.15 < ds.is_label_error.mean() < 0.25


def test_noise_injection_leaves_global_rng_alone():
    np.random.seed(42)
    expected = np.random.rand()
    np.random.seed(42)
    load_dataset(DataConfig(source="digits", max_examples=200))
    assert np.random.rand() == expected


def test_zero_noise_keeps_labels_and_truth_unknown():
    ds = load_dataset(DataConfig(source="digits", noise_rate=0.0, max_examples=300))
    assert ds.true_labels is None and ds.is_label_error is None
    assert len(ds.labels) == 300 and np.bincount(ds.labels).min() >= 25  # stratified subset


def _npz(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return str(path)


def test_user_npz_loads(tmp_path):
    x = np.random.rand(40, 3, 6, 6).astype(np.float32)
    y = np.arange(40) % 4
    ds = load_dataset(DataConfig(source=_npz(tmp_path, x=x, y=y), noise_rate=0.1))
    assert ds.x.shape == (40, 3, 6, 6) and ds.num_classes == 4 and ds.name == "d"


@pytest.mark.parametrize(
    "arrays, msg",
    [
        ({"x": np.zeros((10, 8, 8), np.float32), "y": np.zeros(10, int)}, "expected 4-D"),
        ({"x": np.zeros((10, 1, 8, 8), np.uint8), "y": np.zeros(10, int)}, "expected float"),
        ({"x": np.full((10, 1, 8, 8), np.nan, np.float32), "y": np.zeros(10, int)}, "NaN"),
        ({"x": np.zeros((10, 1, 8, 8), np.float32), "y": np.zeros(9, int)}, r"expected \(10,\)"),
        ({"x": np.zeros((10, 1, 8, 8), np.float32), "y": -np.ones(10, int)}, "negative"),
        ({"x": np.zeros((10, 1, 8, 8), np.float32), "y": np.zeros(10)}, "integer"),
        ({"x": np.zeros((10, 1, 8, 8), np.float32)}, "lacks"),
    ],
)
def test_bad_npz(tmp_path, arrays, msg):
    with pytest.raises(DataError, match=msg):
        load_dataset(DataConfig(source=_npz(tmp_path, **arrays), noise_rate=0.0))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(source=str(tmp_path / "none.npz")))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="is not an .npz archive"):
        load_dataset(DataConfig(source=str(bad)))


def test_folds_partition_and_stratify():
    labels = np.repeat(np.arange(3), [30, 60, 90])
    fold_of = make_folds(labels, 3, seed=0)
    assert set(fold_of) == {0, 1, 2}
    for k in range(3):
        train, test = fold_split(fold_of, k)
        assert np.intersect1d(train, test).size == 0 and len(train) + len(test) == len(labels)
        assert np.array_equal(np.bincount(labels[test]), [10, 20, 30])
    assert np.array_equal(fold_of, make_folds(labels, 3, seed=0))


def test_too_many_folds_for_a_class():
    with pytest.raises(DataError, match=r"class 0 has only 3 example\(s\)"):
        make_folds(np.array([0, 0, 0] + [1] * 10), 5, seed=0)
