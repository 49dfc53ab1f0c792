"""Sweeps: a run's trials times a grid of workers x threads, batch size, layout, members and BN subset."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from swagbench.bench.config.loading import build
from swagbench.bench.config.settings import TrialConfig
from swagbench.bench.errors import ConfigError

SWEEP_DIMENSIONS = ("workers_threads", "batch_size", "channels_last", "members", "bn_examples")


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["workers_threads=1x2,2x1", "batch_size=32,128"]`` -> {dimension: values}."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in SWEEP_DIMENSIONS:
            raise ConfigError(f"--grid {item!r}: use KEY=V1,V2 with KEY one of {', '.join(SWEEP_DIMENSIONS)}")
        grid[key] = [yaml.safe_load(v) for v in text.split(",") if v.strip()]
    return grid


def parse_plan(text: str) -> tuple[int, int]:
    """``"4x8"`` -> (4 workers, 8 threads each)."""
    try:
        w, t = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"workers x threads {text!r} is not like 4x8 (4 workers of 8 threads)") from None
    if w < 1 or t < 1:
        raise ConfigError(f"workers x threads {text!r} must have both >= 1")
    return w, t


def expand_sweep(trials: list[TrialConfig], grid: dict[str, list[Any]]) -> list[TrialConfig]:
    """Every trial x every combination of the grid's values (duplicates dropped, order kept)."""
    import itertools

    dims = [d for d in SWEEP_DIMENSIONS if grid.get(d)]
    out: list[TrialConfig] = []
    for trial in trials:
        for combo in itertools.product(*(grid[d] for d in dims)):
            changes: dict[str, Any] = {}
            for dim, value in zip(dims, combo, strict=True):
                if dim == "workers_threads":
                    changes["workers"], changes["threads"] = parse_plan(value)
                else:
                    changes[dim] = value
            built = build(TrialConfig, {**dataclasses.asdict(trial), **changes}, "sweep trial")
            if built not in out:
                out.append(built)
    return out
