"""Data sets: where they come from (``sources``: packaged, synthetic, a user's ``.npz``, an image folder or CSV
manifest via ``images``), their one on-disk form (``store``: a memory-mapped file, decoded once, cached by
content), and the run's view of one (:class:`Dataset`: the store, the labels the pipeline sees, injected noise).

Nothing here holds a data set's pixels in memory: readers take batches (:meth:`Dataset.batch`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from swagbench.bench.dataset.store import CHUNK_BYTES, BatchReader, Store, StoreWriter, content_key, open_store
from swagbench.bench.errors import DataError

if TYPE_CHECKING:  # the decode workers import this package: keep it free of torch (swagbench.bench.config imports it)
    from swagbench.bench.config import DataConfig

__all__ = ["Dataset", "inject_label_noise", "load_dataset"]


@dataclass
class Dataset:
    """A run's data: ``store`` (the memory-mapped pixels, see swagbench.bench.dataset.store), ``labels`` (N,) int64 the
    pipeline sees (noisy), ``true_labels`` (N,) int64 or None when the truth is unknown."""

    store: Store
    labels: np.ndarray
    true_labels: np.ndarray | None
    num_classes: int
    name: str
    root: Path | None = None
    _x_hash: object = field(default=None, repr=False)
    _reader: BatchReader | None = field(default=None, repr=False)

    @property
    def x(self) -> np.ndarray:
        """(N, C, H, W) read-only memory map (uint8 pixels or normalised float32): read it with :meth:`batch`."""
        return self.store.x

    @property
    def mean(self) -> list[float] | None:
        return self.store.meta.mean

    @property
    def std(self) -> list[float] | None:
        return self.store.meta.std

    @property
    def class_names(self) -> list[str] | None:
        return self.store.meta.class_names

    @property
    def paths(self) -> list[str] | None:
        """Each example's source file under the caller's ``root`` (the store holds them relative to it), or None."""
        stored = self.store.paths
        if stored is None or self.root is None:
            return stored
        return [str(self.root / p) for p in stored]

    @property
    def copy_of(self) -> np.ndarray:
        """(N,) int64: each example's first exact copy (same stored bytes) in this data set, else its own index."""
        return self.store.copy_of

    @property
    def copies(self) -> int:
        """How many examples are exact copies of an earlier one."""
        return int((self.copy_of != np.arange(len(self.copy_of))).sum())

    @property
    def is_label_error(self) -> np.ndarray | None:
        """(N,) bool: which given labels are wrong, or None if the truth is unknown."""
        return None if self.true_labels is None else self.labels != self.true_labels

    def batch(self, rows) -> np.ndarray:
        """Examples ``rows`` (indices or a slice), in that order, as a normalised float32 (n, C, H, W) array."""
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(len(self.labels)))
        return self.reader.read(np.asarray(rows))

    def tensor(self, rows):
        """:meth:`batch` as a torch tensor in torch's own (aligned) memory: numerical kernels can take another code
        path, and round differently, on memory NumPy allocated."""
        import torch

        rows = np.arange(*rows.indices(len(self.labels))) if isinstance(rows, slice) else np.asarray(rows)
        out = torch.empty((len(rows), *self.x.shape[1:]), dtype=torch.float32)
        self.reader.read(rows, out=out.numpy())
        return out

    @property
    def reader(self) -> BatchReader:
        if self._reader is None:
            self._reader = BatchReader(self.x, self.mean, self.std)
        return self._reader

    def digest(self, *more: np.ndarray) -> str:
        """SHA-256 (hex, 24 chars) of the pixels' dtype, shape and bytes, then of each of ``more`` likewise (the
        pixels are read once per process, in chunks)."""
        if self._x_hash is None:
            h = hashlib.sha256(str((self.x.dtype, self.x.shape)).encode())
            step = max(1, CHUNK_BYTES // max(1, self.x[0].nbytes))
            for start in range(0, len(self.x), step):
                h.update(np.ascontiguousarray(self.x[start : start + step]).tobytes())
            self._x_hash = h
        h = self._x_hash.copy()
        for arr in more:
            h.update(str((arr.dtype, arr.shape)).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:24]


def data_cache(cache_dir: str | Path) -> Path:
    """Where data stores live under a run's cache folder."""
    return Path(cache_dir) / "data"


def load_dataset(config: DataConfig, cache_dir: str | Path = "results/cache", log=print) -> Dataset:
    """Open (making it once) the configured data set's store, subset it, and inject label noise (see DataConfig)."""
    from swagbench.bench.dataset.sources import source_name, source_root, source_store

    root = data_cache(cache_dir)
    store = source_store(config, root, log)
    y, y_true = store.labels["y"], store.labels.get("y_true")
    # the caller's name and folder: a store is shared by byte-identical sources wherever they lie
    name, num_classes = source_name(config.source), store.meta.num_classes
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
        store = subset_store(store, np.sort(keep), root)
        y, y_true = store.labels["y"], store.labels.get("y_true")
    noise = config.resolved_noise_rate
    if noise > 0:
        y_true, y = y, inject_label_noise(y, num_classes, noise, config.seed)
    dataset = Dataset(store, y, y_true, num_classes, name, source_root(config.source))
    if dataset.copies:
        groups = len(np.unique(dataset.copy_of[dataset.copy_of != np.arange(len(y))]))
        log(
            f"swagbench: note: {dataset.copies} of {len(y):,} examples are exact copies of another ({groups} "
            "image(s) with copies): each set of copies is kept in one fold, and label_issues.csv names each copy's "
            "original (duplicate_of)"
        )
    return dataset


def subset_store(store: Store, keep: np.ndarray, root: Path) -> Store:
    """The store of rows ``keep`` (sorted) of ``store``, made once (copied chunk by chunk) and cached."""
    folder = root / content_key("subset", store.meta.sha256, hashlib.sha256(keep.tobytes()).hexdigest())
    found = open_store(folder)
    if found is not None:
        return found
    shape = (len(keep), *store.x.shape[1:])
    step = max(1, CHUNK_BYTES // max(1, store.x[0].nbytes))
    with StoreWriter(folder, shape, store.meta.dtype) as writer:
        for start in range(0, len(keep), step):
            writer.write(store.x[keep[start : start + step]])
        meta = {
            **store.meta.__dict__,
            "shape": list(shape),
            "source": {**store.meta.source, "subset_of": str(store.folder)},
        }
        meta.pop("sha256")
        labels = {k: v[keep] for k, v in store.labels.items()}
        paths = store.paths
        writer.finish(meta, labels, None if paths is None else [paths[i] for i in keep])
    return open_store(folder)


def open_recorded(record: dict, labels: np.ndarray, true_labels: np.ndarray | None, rebuild=None) -> Dataset:
    """The data set a run folder recorded (``record``: its store folder and SHA-256), its bytes hashed again: they
    must match, so a resumed run never reads changed data. Where the store is gone (a cleared cache),
    ``rebuild()`` (the run's data config loaded again) may make it anew; it is used if its bytes are the same."""
    from swagbench.bench.dataset.store import file_sha256

    folder = Path(record["store"])
    store = open_store(folder)
    if store is None and rebuild is not None:
        try:
            store = rebuild().store
        except DataError as exc:
            raise DataError(f"the run's data store {folder} is gone and cannot be made again ({exc})") from exc
        if store.meta.sha256 != record["sha256"]:
            raise DataError(
                f"the run's data store {folder} is gone and its data.source now gives other data; start a new run"
            )
    if store is None:
        raise DataError(f"the run's data store {folder} is missing or damaged; restore it or start a new run")
    if store.meta.sha256 != record["sha256"] or file_sha256(store.x_path) != record["sha256"]:
        raise DataError(f"the run's data in {store.folder} changed since the run was made; start a new run for it")
    root = record.get("root")
    name = record.get("name", store.meta.name)
    return Dataset(store, labels, true_labels, store.meta.num_classes, name, None if root is None else Path(root))


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
