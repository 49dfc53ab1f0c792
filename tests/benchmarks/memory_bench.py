"""Memory against data size: ``make bench-memory`` (``python -m tests.benchmarks.memory_bench``).

Runs the whole pipeline (``swagbench run``: data store, folds, synthesised posteriors, eager trial, confident
learning, report) on N synthetic RGB images for each N and worker count, and samples the process tree (the
harness and its workers) every 20 ms: peak *anonymous* memory (what would run out and be OOM-killed) and peak RSS
(which also counts the memory-mapped data's page cache, shared and reclaimable). The model is :func:`probe_model`,
a strided convolution, BatchNorm and a linear head: it keeps compute out of the way, so what grows with N is the
harness's own memory. Prints a Markdown table and writes it with the raw numbers to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from torch import nn

from swagbench.bench.measure.memory import status_bytes


def probe_model(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """A model whose compute is negligible at 224x224 (stride-8 convolution, BatchNorm, pooling, linear)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 8, stride=8, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )


def _tree(pid: int) -> list[int]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [pid] + [c.pid for c in root.children(recursive=True)]
    except psutil.Error:
        return []


class TreeSampler:
    """Peak anonymous memory and RSS of a process tree (the root alone too), polled every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak = {"tree_anon": 0, "tree_rss": 0, "parent_anon": 0, "parent_rss": 0, "workers_anon": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _tree(self.pid)
            stats = {p: status_bytes(p, "RssAnon", "VmRSS") for p in pids}
            now = {
                "tree_anon": sum(s.get("RssAnon", 0) for s in stats.values()),
                "tree_rss": sum(s.get("VmRSS", 0) for s in stats.values()),
                "parent_anon": stats.get(self.pid, {}).get("RssAnon", 0),
                "parent_rss": stats.get(self.pid, {}).get("VmRSS", 0),
            }
            now["workers_anon"] = now["tree_anon"] - now["parent_anon"]
            for k, v in now.items():
                self.peak[k] = max(self.peak[k], v)
            time.sleep(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure(
    images: int, workers: int, size: int, cache: Path, results: Path, model: str, repo: str | None, extra=()
) -> dict:
    """One run of ``images`` synthetic size x size RGB images with ``workers`` workers; its peaks and time.
    ``repo``: run another checkout of swagbench (its folder first on PYTHONPATH), e.g. an older commit;
    ``extra``: more ``key=value`` settings."""
    argv = [
        sys.executable,
        "-m",
        "swagbench.bench.cli",
        "run",
        "--name",
        f"mem-{images}-w{workers}",
        "--results-dir",
        str(results),
        "--backends",
        "eager",
        "data.source=synthetic",
        f"data.max_examples={images}",
        f"data.synthetic_shape=[3, {size}, {size}]",
        f"model={model}",
        "train.synthesize=true",
        "ensemble.folds=2",
        "ensemble.samples=1",
        f"workers={workers}",
        f"cache_dir={cache}",
        *extra,
    ]
    env = dict(os.environ)
    if repo:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=repo)
    with TreeSampler(proc.pid) as sampler:
        _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the run of {images} images, {workers} workers failed:\n{err[-2000:]}")
    return {"images": images, "workers": workers, "seconds": time.perf_counter() - start, **sampler.peak}


def table(points: list[dict], size: int) -> str:
    gb = 1e9
    lines = [
        f"| images (3x{size}x{size}) | workers | their uint8 pixels GB | tree peak anon GB | parent peak anon GB | "
        "workers peak anon GB | tree peak RSS GB | run s |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in points:
        lines.append(
            f"| {p['images']:,} | {p['workers']} | {p['images'] * 3 * size * size / gb:.2f} "
            f"| {p['tree_anon'] / gb:.2f} | {p['parent_anon'] / gb:.2f} | {p['workers_anon'] / gb:.2f} "
            f"| {p['tree_rss'] / gb:.2f} | {p['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.memory_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sizes", default="400,1600,6400,20000", help="comma list of image counts")
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--out", default="results/memory", help="folder for memory.md and memory.json")
    parser.add_argument("--model", default="tests.benchmarks.memory_bench:probe_model", help="model spec of the runs")
    parser.add_argument("--repo", help="run this checkout of swagbench instead (e.g. an older commit's worktree)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more run settings")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points = []
    with tempfile.TemporaryDirectory(prefix="swagbench-memory-") as tmp:
        for images in (int(v) for v in args.sizes.split(",")):
            for workers in (int(v) for v in args.workers.split(",")):
                cache, runs = Path(tmp) / "cache", Path(tmp) / "runs"
                point = measure(images, workers, args.image_size, cache, runs, args.model, args.repo, args.set)
                points.append(point)
                print(json.dumps(points[-1]), flush=True)
            for folder in (runs, cache):  # keep the disk free: each size's runs and data store go
                subprocess.run(["rm", "-rf", str(folder)], check=False)
    text = table(points, args.image_size)
    (out / "memory.md").write_text(text + "\n")
    (out / "memory.json").write_text(json.dumps({"args": vars(args), "points": points}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
