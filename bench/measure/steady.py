"""Steady-state rates of a trial's two per-image phases, measured apart from the ensemble it runs (``steady:`` in
the config, :class:`swagbench.bench.config.SteadyConfig`).

A proxy run's BatchNorm pass and predict see few batches per sample, often partial ones, and every one of them right
after a rebind or a rebuild; a user's job runs thousands of full batches per sample. So after its last sample each
worker times full batches of both phases on its warm runners (one untimed call first: a new shape may compile) until a
minimum of calls and seconds is met, and records seconds per image. The projection to the target size
(:mod:`swagbench.bench.answer.projection`) takes the per-image cost from these and the rest of what the run measured per
phase (rebinding, first calls, partial batches) as a cost per sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

STEADY_PHASES = ("bn_update", "predict")


def time_calls(call: Callable[[Any], Any], batch, images: int, batches: int, seconds: float) -> dict[str, float]:
    """Time ``call(batch)`` (``images`` images) until at least ``batches`` calls and ``seconds`` seconds were
    timed, after one untimed call; returns the calls, their seconds and seconds per image (their mean)."""
    call(batch)
    times: list[float] = []
    while len(times) < max(batches, 1) or sum(times) < seconds:
        t0 = time.perf_counter()
        call(batch)
        times.append(time.perf_counter() - t0)
    total = float(sum(times))
    return {"batch": images, "calls": len(times), "seconds": total, "s_per_image": total / (len(times) * images)}


def harness_seconds(call: Callable[[Any], Any], arg, images: int, calls: int = 7) -> float:
    """Seconds per image of one of the per-batch steps around a runtime's call (reading and normalising a batch,
    softmax, adding a batch's statistics): the median of ``calls`` calls after an untimed one. These steps take
    microseconds to milliseconds, so a fixed handful of calls measures them without the phases' seconds-long
    minimum, and the median ignores a call a busy neighbour interrupted."""
    call(arg)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call(arg)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / images


def harness_share(steady: dict[str, Any], per_pair: dict[str, float]) -> float | None:
    """Share of the per-image phases' steady time spent outside the runtime's call, with each phase weighted by the
    images it sees per (fold, sample) pair (``per_pair``, e.g. at the target): reading and normalising the batches
    (``read_s_per_image``) and the work on the call's output (``post_s_per_image``), over those plus the timed step
    (the call and the work on its output). None where a phase was measured without them (older rows)."""
    phases = [p for p in STEADY_PHASES if p in steady]
    if not phases or any("read_s_per_image" not in steady[p] for p in phases):
        return None
    outside = sum(per_pair[p] * (steady[p]["read_s_per_image"] + steady[p]["post_s_per_image"]) for p in phases)
    total = sum(per_pair[p] * (steady[p]["read_s_per_image"] + steady[p]["s_per_image"]) for p in phases)
    return outside / total


def full_rows(rows: np.ndarray, size: int) -> np.ndarray:
    """``size`` row indices taken from ``rows`` in turn (repeated where the proxy's fold has fewer)."""
    return np.resize(rows, size)


def merge_steady(parts: list[dict[str, Any]], in_run_images: dict[str, int]) -> dict[str, Any] | None:
    """A trial's steady-state record from its workers' (None where none measured): per phase the workers' mean
    seconds per image (one worker's, as the phases' worker-seconds are), their summed rate (img/s: workers run
    side by side), the calls and batch size, and ``in_run_images``: the images the run's own timed calls of that
    phase saw (what the projection subtracts to find the per-sample rest)."""
    measured = [p["steady"] for p in parts if p.get("steady")]
    if len(measured) != len(parts):
        return None
    out: dict[str, Any] = {}
    for phase in STEADY_PHASES:
        each = [m[phase] for m in measured if phase in m]
        if len(each) != len(measured):
            continue
        out[phase] = {
            "s_per_image": float(np.mean([e["s_per_image"] for e in each])),
            "img_per_s": float(sum(1.0 / e["s_per_image"] for e in each)),
            "batch": each[0]["batch"],
            "calls": int(sum(e["calls"] for e in each)),
            "in_run_images": int(in_run_images[phase]),
            **{
                key: float(np.mean([e[key] for e in each]))
                for key in ("read_s_per_image", "post_s_per_image")
                if all(key in e for e in each)
            },
        }
    return out or None
