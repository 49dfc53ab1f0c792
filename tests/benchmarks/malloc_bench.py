"""Eager's speed under the workers' malloc settings (``python -m tests.benchmarks.malloc_bench RUN_DIR TRIAL_ID``;
docs/measurements.md, "The harness share", quotes it).

In one process, as a worker of the run's trial ``TRIAL_ID`` sets up (its spec: data, folds, posteriors, threads),
draws fold 0's first sample, sets its BatchNorm statistics, then times full batches of eager predict and of the
BatchNorm pass's train-mode forward. ``--malloc workers`` fixes malloc as the workers do
(``swagbench.bench.measure.memory.fix_mmap_threshold``: mmap threshold and trim threshold); ``mmap-only`` fixes only
the mmap threshold (the workers before 2026-12-05, whose heap top went back to the kernel after nearly every batch);
``default`` leaves glibc's own adjustment. Prints images/s of both and the process's RSS.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import time
from pathlib import Path

import numpy as np


def rate(call, images: int, calls: int) -> float:
    call()
    t0 = time.perf_counter()
    for _ in range(calls):
        call()
    return images * calls / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("trial_id")
    parser.add_argument("--malloc", choices=("workers", "mmap-only", "default"), default="workers")
    args = parser.parse_args(argv)

    import psutil

    from swagbench.bench.execute.worker_loop import TrialSpec, _Worker
    from swagbench.bench.measure.memory import MMAP_THRESHOLD, fix_mmap_threshold
    from swagbench.swag.batchnorm import eager_batch_statistics

    if args.malloc == "workers":
        fix_mmap_threshold()
    elif args.malloc == "mmap-only":
        ctypes.CDLL(None).mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD alone
    spec = TrialSpec.load(args.run_dir / "trials" / args.trial_id / "spec.json")
    spec = dataclasses.replace(spec, tasks=[[0, 0, 1]], members_path=None, bn_stats_path=None, journal_path=None)
    worker = _Worker(spec)
    data = worker.fold(0)
    worker.sample(data, 0, {})
    size, bn_size = worker.options.batch_size, data.bn_batches.size
    x = worker.read_untimed(np.resize(data.test_batches.rows, size))
    xb = worker.read_untimed(np.resize(data.bn_batches.rows, bn_size))
    predict = rate(lambda: worker.runner(x), size, 60)
    bn = rate(lambda: eager_batch_statistics(worker.model, xb), bn_size, 20)
    rss = psutil.Process().memory_info().rss / 1e6
    print(f"malloc {args.malloc}: predict {predict:,.0f} img/s, BatchNorm pass {bn:,.0f} img/s, RSS {rss:,.0f} MB")


if __name__ == "__main__":
    main()
