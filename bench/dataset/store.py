"""The on-disk form of every data set: one memory-mapped ``x.npy`` (N, C, H, W) beside ``meta.json``.

Images decoded from files are stored as uint8 and normalised per batch (``(x / 255 - mean) / std``) where a
batch is read; arrays that come as floats (the packaged data sets, a user's ``.npz``) are stored as float32,
already normalised. A store is written once, chunk by chunk, under a content key in the data cache
(``<cache_dir>/data/<key>/``), and reused by every later run: nothing ever holds the whole array in memory,
parent or worker; readers take batches (:class:`BatchReader`). ``meta.json`` is written last, so a store without
it (killed while writing) is never used; it records the SHA-256 of ``x.npy``'s bytes, checked again when a run
is resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swagbench.bench.errors import DataError

X_FILE = "x.npy"
META_FILE = "meta.json"
LABELS_FILE = "y.npz"  # the source's labels (given, and true where known)
PATHS_FILE = "paths.txt"
GROUP_KEY = "copy_of"  # in LABELS_FILE: each row's first exact copy (see copy_groups)
CHUNK_BYTES = 64 << 20  # what a streaming copy or digest holds at a time


@dataclass
class StoreMeta:
    """What a store holds besides the pixels.

    Attributes
    ----------
    name : str
        The data set's name (the folder's, the file's stem, ``mnist``).
    shape : list of int
        (N, C, H, W) of ``x.npy``.
    dtype : str
        ``uint8`` (decoded images, normalised per batch with ``mean`` / ``std``) or ``float32`` (normalised).
    num_classes : int
        Classes (labels are 0 .. num_classes - 1).
    sha256 : str
        SHA-256 of ``x.npy``'s bytes.
    mean, std : list of float or None
        Per-channel normalisation of uint8 pixels scaled to [0, 1] (None for float32 stores).
    class_names : list of str or None
        Name of each class (folder names, CSV labels) where known.
    source : dict
        How the store was made (source path or name, transform settings, skipped files).
    """

    name: str
    shape: list[int]
    dtype: str
    num_classes: int
    sha256: str
    mean: list[float] | None = None
    std: list[float] | None = None
    class_names: list[str] | None = None
    source: dict[str, Any] = field(default_factory=dict)


def normalise(raw: np.ndarray, mean: list[float] | None, std: list[float] | None, out: np.ndarray | None = None):
    """A batch read from a store as float32, normalised: uint8 pixels become ``(x / 255 - mean) / std`` per
    channel; a float32 store's values are copied as they are. ``out``: a float32 array of ``raw``'s shape to fill
    (e.g. a torch tensor's memory, which torch aligns for its kernels), else a new one is returned."""
    out = np.empty(raw.shape, dtype=np.float32) if out is None else out
    out[...] = raw
    if raw.dtype == np.uint8:
        out /= np.float32(255.0)
        out -= np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        out /= np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return out


class BatchReader:
    """Reads rows of a store's memory map as normalised float32 batches, gathering them straight into the output
    (float32 stores) or through one reused uint8 buffer: a reader allocates nothing per batch but the batch itself.
    (A fresh copy per batch is not only slower: glibc's malloc raises its mmap threshold after freeing a big block
    and then serves such copies from its heap, which fragments and grows with every batch read.)"""

    def __init__(self, x: np.ndarray, mean: list[float] | None, std: list[float] | None) -> None:
        self.x, self.mean, self.std = x, mean, std
        self._raw: np.ndarray | None = None

    def read(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``rows`` (in that order) as a normalised float32 (n, C, H, W) batch, into ``out`` if given."""
        shape = (len(rows), *self.x.shape[1:])
        out = np.empty(shape, dtype=np.float32) if out is None else out
        if self.x.dtype == np.float32:
            np.take(self.x, rows, axis=0, out=out, mode="clip")  # "clip": unbuffered (rows are valid)
            return out
        if self._raw is None or len(self._raw) < len(rows):
            self._raw = np.empty(shape, dtype=self.x.dtype)
        raw = self._raw[: len(rows)]
        np.take(self.x, rows, axis=0, out=raw, mode="clip")
        return normalise(raw, self.mean, self.std, out)


class StoreWriter:
    """Writes a new store chunk by chunk into ``<folder>.tmp``, then renames it into place: a store is either
    whole or absent (used as a context manager, a failure removes the partial one). Rows come by :meth:`write`
    (consecutive) or are written into ``tmp / X_FILE`` by other processes (swagbench.bench.dataset.decoder)."""

    def __init__(self, folder: Path, shape: tuple[int, ...], dtype: str) -> None:
        check_room(folder.parent, int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, shape, dtype)
        self.folder, self.tmp = folder, folder.with_name(folder.name + ".tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.x = np.lib.format.open_memmap(self.tmp / X_FILE, mode="w+", dtype=dtype, shape=tuple(shape))
        self.filled = 0

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None:  # a failed write leaves nothing behind
            self.x = None
            shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, chunk: np.ndarray) -> None:
        self.x[self.filled : self.filled + len(chunk)] = chunk
        self.filled += len(chunk)

    def finish(self, meta: dict[str, Any], labels: dict[str, np.ndarray], paths: list[str] | None = None) -> Path:
        """Flush, digest, write labels, paths and meta.json (last), move the store into place; return it."""
        self.x.flush()
        labels = {**labels, GROUP_KEY: copy_groups(self.x)}
        del self.x
        meta = {**meta, "sha256": file_sha256(self.tmp / X_FILE)}
        np.savez(self.tmp / LABELS_FILE, **{k: v for k, v in labels.items() if v is not None})
        if paths is not None:
            (self.tmp / PATHS_FILE).write_text("\n".join(paths) + "\n")
        (self.tmp / META_FILE).write_text(json.dumps(meta, indent=1))
        shutil.rmtree(self.folder, ignore_errors=True)
        os.replace(self.tmp, self.folder)
        return self.folder


def copy_groups(x: np.ndarray) -> np.ndarray:
    """(N,) int64: for each row of ``x``, the index of the first row with exactly the same bytes (its own index
    where it has no earlier copy). Rows are hashed chunk by chunk (BLAKE2b, 128 bits); nothing is held whole."""
    first: dict[bytes, int] = {}
    groups = np.empty(len(x), dtype=np.int64)
    step = max(1, CHUNK_BYTES // max(1, x[0].nbytes)) if len(x) else 1
    for start in range(0, len(x), step):
        chunk = np.ascontiguousarray(x[start : start + step])
        for i, row in enumerate(chunk, start):
            groups[i] = first.setdefault(hashlib.blake2b(row.tobytes(), digest_size=16).digest(), i)
    return groups


def check_room(folder: Path, nbytes: int, shape, dtype) -> None:
    """Refuse (DataError) to create a store of ``nbytes`` that the disk under ``folder`` cannot hold."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise DataError(
            f"No space left on device for the data set {tuple(shape)} {dtype} in the data cache {folder}: it needs "
            f"{_size(nbytes)}, {_size(free)} are free; free disk space, set cache_dir elsewhere, or use fewer or "
            "smaller images"
        )


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.2f} MB"


@dataclass
class Store:
    """An opened store: ``x`` is a read-only memory map; ``labels`` holds ``y`` (and ``y_true`` where known)."""

    folder: Path
    meta: StoreMeta
    x: np.ndarray
    labels: dict[str, np.ndarray]

    @property
    def x_path(self) -> Path:
        """The memory-mapped (N, C, H, W) array's file."""
        return self.folder / X_FILE

    @property
    def copy_of(self) -> np.ndarray:
        """(N,) int64: each row's first exact copy in this store (its own index where it has none); stores made
        before copies were recorded are hashed now."""
        if GROUP_KEY not in self.labels:
            self.labels[GROUP_KEY] = copy_groups(self.x)
        return self.labels[GROUP_KEY]

    @property
    def paths(self) -> list[str] | None:
        """Each example's source file (images from files), else None."""
        path = self.folder / PATHS_FILE
        return path.read_text().splitlines() if path.is_file() else None


def open_store(folder: Path) -> Store | None:
    """The store in ``folder``, or None where there is none (or only a partial one)."""
    try:
        meta = StoreMeta(**json.loads((folder / META_FILE).read_text()))
        x = np.load(folder / X_FILE, mmap_mode="r", allow_pickle=False)
        with np.load(folder / LABELS_FILE, allow_pickle=False) as f:
            labels = {k: f[k] for k in f.files}
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if list(x.shape) != list(meta.shape) or str(x.dtype) != meta.dtype:
        return None
    return Store(folder, meta, x, labels)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def content_key(*parts: Any) -> str:
    """A store's key: SHA-256 (24 hex) of JSON-able parts (what the store's contents depend on)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
