"""A user's ``.npz`` copied into a float32 store without loading ``x`` whole (its ``.npy`` member is streamed
from the archive, row block by row block), every array checked on the way."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from swagbench.bench.dataset.store import CHUNK_BYTES, StoreWriter
from swagbench.bench.errors import DataError


def _header(member) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(member)
    read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        raise ValueError(f"unsupported .npy format version {version}")
    return read(member)


def _small(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray | None:
    """A small member (y, y_true, num_classes) read whole, never unpickled; None where absent."""
    if f"{name}.npy" not in archive.namelist():
        return None
    with archive.open(f"{name}.npy") as member:
        try:
            return np.lib.format.read_array(member, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"dataset {path}: {name} is not a plain numeric array ({exc}); save it with numpy") from exc


def _check_labels(path: Path, n: int, declared: int | None, **arrays) -> None:
    for key, arr in arrays.items():
        if arr is None:
            continue
        if arr.ndim != 1 or len(arr) != n:
            raise DataError(f"dataset {path}: {key} has shape {arr.shape}, expected ({n},) to match x")
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"dataset {path}: {key} has dtype {arr.dtype}, expected integer class ids")
        if arr.min() < 0:
            raise DataError(f"dataset {path}: {key} has negative labels; use class ids 0..C-1")
        if declared is not None and arr.max() >= declared:
            raise DataError(
                f"dataset {path}: {key} has label {arr.max()} but num_classes={declared}; "
                "use class ids 0..num_classes-1"
            )


def copy_npz(path: Path, folder: Path) -> Path:
    """Check ``path`` and write it as a float32 store in ``folder``; return the folder."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"dataset file {path} is not a readable .npz ({exc}); save it with numpy.savez") from exc
    with archive:
        names = {n.removesuffix(".npy") for n in archive.namelist()}
        missing = {"x", "y"} - names
        if missing:
            raise DataError(
                f"dataset {path} lacks array(s) {sorted(missing)}; it needs x (N,C,H,W) float and y (N,) int"
            )
        y, y_true = _small(archive, "y", path), _small(archive, "y_true", path)
        declared = _small(archive, "num_classes", path)
        declared = None if declared is None else int(declared)
        with archive.open("x.npy") as member:
            try:
                shape, fortran, dtype = _header(member)
            except ValueError as exc:
                raise DataError(f"dataset {path}: x is not a readable .npy array ({exc}); save it with numpy") from exc
            if len(shape) != 4:
                raise DataError(f"dataset {path}: x has shape {shape}, expected 4-D (N, C, H, W); add a channel axis")
            if not np.issubdtype(dtype, np.floating):
                raise DataError(
                    f"dataset {path}: x has dtype {dtype}, expected float; convert with x.astype('float32')"
                )
            if fortran:
                raise DataError(f"dataset {path}: x is stored in Fortran order; save np.ascontiguousarray(x)")
            _check_labels(path, shape[0], declared, y=y, y_true=y_true)
            # The writer refuses what the disk cannot hold before any copy (a header may claim any shape).
            with StoreWriter(folder, shape, "float32") as writer:
                _copy_rows(member, shape, dtype, writer, path)
                num_classes = declared or int(y.max()) + 1
                meta = {"name": path.stem, "shape": list(shape), "dtype": "float32", "num_classes": num_classes}
                labels = {"y": y.astype(np.int64), "y_true": None if y_true is None else y_true.astype(np.int64)}
                return writer.finish({**meta, "source": {"path": str(path.resolve())}}, labels)


def _copy_rows(member, shape, dtype: np.dtype, writer: StoreWriter, path: Path) -> None:
    row = int(np.prod(shape[1:])) * dtype.itemsize
    step = max(1, CHUNK_BYTES // max(row, 1))
    for start in range(0, shape[0], step):
        rows = min(step, shape[0] - start)
        raw = member.read(rows * row)
        if len(raw) != rows * row:
            raise DataError(
                f"dataset {path}: x is truncated (its header declares {shape}, the archive holds fewer bytes); "
                "save the array again"
            )
        chunk = np.frombuffer(raw, dtype=dtype).reshape(rows, *shape[1:])
        if not np.isfinite(chunk).all():
            raise DataError(f"dataset {path}: x contains NaN or inf; clean or impute them first")
        writer.write(chunk.astype(np.float32))
