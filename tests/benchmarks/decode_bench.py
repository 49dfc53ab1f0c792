"""Decode rate of the image cache: ``make bench-decode`` (``python -m tests.benchmarks.decode_bench``).

Writes a folder of JPEGs of ``--width`` x ``--height`` pixels (photo-like: smooth gradients and texture, quality
90, in 10 class folders), then times building the data store from it (``load_dataset``: hashing the files,
decoding with Pillow in ``--workers`` processes, resizing and centre-cropping to ``--size``, writing the uint8
memory map) once per worker count, each into a fresh cache. Prints images/s and images/s per process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_jpegs(root: Path, images: int, width: int, height: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(images):
        a, b, c = rng.uniform(0.005, 0.03, size=3)
        base = np.stack([np.sin(a * xx + b * yy), np.cos(b * xx - c * yy), np.sin(c * (xx + yy))], axis=-1)
        pixels = (127 + 100 * base + rng.normal(0, 12, size=base.shape)).clip(0, 255).astype(np.uint8)
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "RGB").save(folder / f"{i:06d}.jpg", quality=90)


def main(argv: list[str] | None = None) -> int:
    from swagbench.bench.config import DataConfig
    from swagbench.bench.dataset import load_dataset

    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.decode_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", default="1,2", help="comma list of decode process counts")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="swagbench-decode-") as tmp:
        root = Path(tmp) / "jpegs"
        write_jpegs(root, args.images, args.width, args.height)
        print("| decode processes | images | seconds | images/s | images/s per process |\n|--:|--:|--:|--:|--:|")
        for workers in (int(w) for w in args.workers.split(",")):
            config = DataConfig(source=str(root), image_size=args.size, decode_workers=workers)
            start = time.perf_counter()
            ds = load_dataset(config, Path(tmp) / f"cache-{workers}", log=lambda _msg: None)
            seconds = time.perf_counter() - start
            assert ds.x.shape == (args.images, 3, args.size, args.size)
            rate = args.images / seconds
            print(f"| {workers} | {args.images:,} | {seconds:.1f} | {rate:.0f} | {rate / workers:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
