"""Images as users hold them: an ImageFolder tree (``root/<class>/<image>``) or a CSV manifest (``path,label``
and optionally ``true_label``), decoded once with Pillow into a uint8 store (swagbench.bench.dataset.store).

Decoding: any Pillow mode (L, RGB, RGBA, palette, 16-bit, ...) to the configured channels (RGBA and palette
images lose their alpha channel; 16-bit grey is scaled to 8 bits), the shorter side resized to ``image_size``
(bilinear), then the centre ``image_size`` x ``image_size`` crop. JPEGs are decoded at reduced scale where that
still leaves the shorter side at least ``image_size`` (Pillow's draft mode). Files are decoded in parallel worker
processes (swagbench.bench.dataset.decoder); a file Pillow cannot read is one error naming it; files that are not
images are skipped and counted.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swagbench.bench.errors import DataError

SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def image_extensions() -> set[str]:
    """File extensions Pillow can open (lower case, with the dot)."""
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


@dataclass
class ImageList:
    """The images of a data set, in order: ``paths`` (absolute), given ``labels`` and ``true_labels`` (or None) as
    class ids, the ``class_names``, and how many files were skipped as not images."""

    paths: list[Path]
    labels: np.ndarray
    true_labels: np.ndarray | None
    class_names: list[str]
    skipped: int = 0


def class_label(cls: int, names: list[str] | None) -> str:
    """How messages name class ``cls``: by its name where the data has names (``'zebra'``), else its index."""
    return repr(names[cls]) if names and cls < len(names) else str(cls)


def scan_folder(root: Path) -> ImageList:
    """An ImageFolder tree: classes are the sub-folders of ``root`` sorted by name, each holding its images (at any
    depth, sorted by path)."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise DataError(
            f"image folder {root} needs one sub-folder per class (at least 2; found {found}): root/<class>/<image>"
        )
    exts = image_extensions()
    paths, labels, skipped = [], [], 0
    for k, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in exts]
        skipped += len(files) - len(images)
        if not images:
            raise DataError(f"class folder {root / name} holds no images; remove it or add its images")
        paths += images
        labels += [k] * len(images)
    return ImageList(paths, np.asarray(labels, dtype=np.int64), None, classes, skipped)


def read_manifest(csv_path: Path) -> ImageList:
    """A CSV manifest: columns ``path`` (relative to the CSV's folder, or absolute) and ``label`` (a class name or
    id), optionally ``true_label``; classes are the distinct given labels, sorted (numerically if all are ints)."""
    import pandas as pd

    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"manifest {csv_path} is not a readable CSV ({exc}); write it with columns path,label") from exc
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise DataError(f"manifest {csv_path} lacks column(s) {sorted(missing)}; it needs path,label[,true_label]")
    if table.empty:
        raise DataError(f"manifest {csv_path} lists no images")
    empty = table.index[(table.path.str.strip() == "") | (table.label.str.strip() == "")]
    if len(empty):
        raise DataError(f"manifest {csv_path} row {int(empty[0]) + 2} has an empty path or label; fill or drop it")
    names = sorted(set(table.label))
    if all(v.lstrip("-").isdigit() for v in names):  # class ids: numeric order
        names = sorted(names, key=int)
    ids = {name: i for i, name in enumerate(names)}
    truth = None
    if "true_label" in table.columns:
        unknown = sorted(set(table.true_label) - set(ids))
        if unknown:
            raise DataError(
                f"manifest {csv_path}: true_label {unknown[0]!r} is not among the given labels "
                f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}); use the same class names in both"
            )
        truth = np.asarray([ids[v] for v in table.true_label], dtype=np.int64)
    base = csv_path.parent
    paths = [Path(p) if os.path.isabs(p) else base / p for p in table.path]
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise DataError(
            f"manifest {csv_path}: {len(absent)} listed image(s) do not exist, e.g. {absent[0]}; fix the paths "
            "(relative to the CSV's folder)"
        )
    labels = np.asarray([ids[v] for v in table.label], dtype=np.int64)
    return ImageList(paths, labels, truth, names)


def files_digest(paths: list[Path], root: Path, settings: dict) -> str:
    """Content key of a decoded store: every file's path relative to ``root``, its bytes, and the transform."""
    h = hashlib.sha256(repr(sorted(settings.items())).encode())
    for path in paths:
        h.update(str(path.relative_to(root) if path.is_relative_to(root) else path).encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:24]


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as uint8 (channels, size, size): mode to ``channels``, shorter side to ``size``, centre crop."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB" if channels == 3 else "L", (size, size))  # JPEG: decode at the smallest scale >= size
        if im.mode in SIXTEEN_BIT:
            grey = np.asarray(im, dtype=np.float64) / 257.0
            im = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L")
        im = im.convert("RGB" if channels == 3 else "L")
        w, h = im.size
        scale = size / min(w, h)
        new = (max(size, round(w * scale)), max(size, round(h * scale)))
        if new != (w, h):
            im = im.resize(new, Image.BILINEAR)
        left, top = (new[0] - size) // 2, (new[1] - size) // 2
        pixels = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
