"""Timing bookkeeping: a worker's seconds per phase (:class:`PhaseClock`) and the merging of a trial's
workers' timings into the trial's (:func:`merge_timings`).

Phases, in the order a sample runs them: ``sample`` (draw and load the weights), ``data`` (read batches from the
memory-mapped data set and normalise them), ``bn_update`` (the BatchNorm pass), ``prepare`` (build or re-bind
runners), ``warmup`` (the first call per batch shape after a runner was built), ``predict``, and, once per trial
in the parent, ``confident_learning``. A phase timed inside another (a batch read while preparing) counts once,
in the inner phase.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

PHASES = ("sample", "data", "bn_update", "prepare", "warmup", "predict", "confident_learning")
WORKER_PHASES = PHASES[:-1]


class PhaseClock:
    """Seconds per worker phase. ``with clock(phase)`` times a block; ``with clock.call(phase, fresh, n)``
    times one runner call of ``n`` images: the first call per batch shape since ``fresh`` was emptied (a
    runner just built: compilation, allocation) goes to ``warmup``, the others to ``phase``, counted as
    timed images and, for predict, kept as raw batch times."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(WORKER_PHASES, 0.0)
        self._inner: list[float] = []  # per open block: seconds of the blocks timed inside it
        self.images = {"predict": 0, "bn_update": 0}
        self.batches: dict[str, list[float]] = {"predict": []}
        self.per_sample: list[list] = []  # [fold, sample, {phase: seconds}]
        self._before = dict(self.seconds)

    @contextlib.contextmanager
    def _block(self):
        """Time a block; yields a one-item list that holds its own seconds (less those of blocks inside it)."""
        t0 = time.perf_counter()
        self._inner.append(0.0)
        own = [0.0]
        try:
            yield own
        finally:
            dt = time.perf_counter() - t0
            own[0] = dt - self._inner.pop()
            if self._inner:
                self._inner[-1] += dt

    @contextlib.contextmanager
    def __call__(self, phase: str):
        with self._block() as own:
            yield
        self.seconds[phase] += own[0]

    @contextlib.contextmanager
    def call(self, phase: str, fresh: set[int], images: int):
        warm = images not in fresh
        with self._block() as own:
            yield
        if warm:
            fresh.add(images)
            self.seconds["warmup"] += own[0]
        else:
            self.seconds[phase] += own[0]
            self.images[phase] += images
            self.batches.get(phase, []).append(own[0])

    def start_sample(self) -> None:
        """A (fold, sample) pair begins: what follows until :meth:`end_sample` is its cost."""
        self._before = dict(self.seconds)

    def end_sample(self, fold: int, sample: int) -> None:
        """Record the pair's seconds per phase (``sample_phases_s``: one-off vs per-sample costs)."""
        self.per_sample.append([fold, sample, {k: self.seconds[k] - self._before[k] for k in WORKER_PHASES}])

    def payload(self, start_wall: float, loop_start: float, loop_end: float) -> dict[str, Any]:
        """The worker's timing fields (JSON-able): seconds per phase, per sample, images timed, raw predict batch
        times, and when its loop ran (Unix seconds; ``startup_s`` = imports and loading before it)."""
        return {
            "phases_s": self.seconds,
            "sample_phases_s": self.per_sample,
            "images_timed": self.images["predict"],
            "bn_images_timed": self.images["bn_update"],
            "predict_batch_s": self.batches["predict"],
            "loop_start_unix": loop_start,
            "loop_end_unix": loop_end,
            "startup_s": loop_start - start_wall,
        }


def merge_timings(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A trial's timing from its workers' payloads (:meth:`PhaseClock.payload`).

    ``phases_s``: worker-seconds summed over workers (``confident_learning`` is added by the caller); ``ensemble_s``:
    wall-clock from the first worker's loop start to the last one's end (worker start-up and imports excluded, as a
    long-lived service would not pay them; the caller adds confident learning); throughputs add up over concurrent
    workers, taken from the steady-state measurement (``steady``, see :mod:`swagbench.bench.measure.steady`) where the
    run made one, else from the run's own timed calls; ``predict_batch_s``: every worker's raw predict batch times,
    (batches,) seconds, for the caller to store.
    """
    from swagbench.bench.measure.steady import merge_steady

    bt = np.concatenate([np.asarray(p["predict_batch_s"], dtype=np.float64) for p in parts])
    in_run = {"predict": sum(p["images_timed"] for p in parts), "bn_update": sum(p["bn_images_timed"] for p in parts)}
    steady = merge_steady(parts, in_run) or {}
    return {
        "phases_s": {p: sum(part["phases_s"][p] for part in parts) for p in WORKER_PHASES},
        "ensemble_s": max(p["loop_end_unix"] for p in parts) - min(p["loop_start_unix"] for p in parts),
        "worker_startup_s": max(p["startup_s"] for p in parts),
        "images_timed": int(sum(p["images_timed"] for p in parts)),
        "predict_img_per_s": steady["predict"]["img_per_s"]
        if "predict" in steady
        else _throughput(parts, "images_timed", "predict"),
        "bn_img_per_s": steady["bn_update"]["img_per_s"]
        if "bn_update" in steady
        else _throughput(parts, "bn_images_timed", "bn_update"),
        "steady": steady or None,
        "sample_phases_s": [entry for p in parts for entry in p.get("sample_phases_s", [])],
        "predict_batch_ms": {
            "median": float(np.median(bt) * 1e3),
            "p90": float(np.percentile(bt, 90) * 1e3),
            "count": len(bt),
        }
        if len(bt)
        else None,  # every batch was a first call after prepare (tiny folds)
        "predict_batch_s": bt,
    }


def _throughput(parts: list[dict[str, Any]], images: str, phase: str) -> float | None:
    """Images per second of ``phase`` over the trial: workers run concurrently, so their rates add up;
    None when a worker timed no image (every call was a first call per shape)."""
    rates = [p[images] / p["phases_s"][phase] for p in parts if p.get(images) and p["phases_s"][phase]]
    return float(sum(rates)) if len(rates) == len(parts) else None
