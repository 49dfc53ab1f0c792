"""A trial's whole-ensemble time at another size (the user's job) from what its run measured, phase by phase.

- ``sample`` (drawing a SWAG sample's weights): per sample, K x S of them;
- ``data`` (reading batches from the memory-mapped data): per image read, the BatchNorm pass's and predict's;
- ``bn_update``: per image of the BatchNorm pass, S x K x (the fold's training images, or the trial's subset);
- ``predict``: per image predicted, S x N;
  both at the steady-state rate the trial measured apart (``steady`` in the row, :mod:`swagbench.bench.measure.steady`),
  plus, per (fold, sample) pair, what the run's own calls of that phase cost beyond that rate (first calls after a
  rebind, partial batches); rows without a steady-state measurement scale the run's own seconds per image;
- prepare + warm-up: the trial's first sample once, each further fold's first sample (K - 1), every other
  sample (K x (S - 1)), as :func:`setup_costs` splits them;
- confident learning: per image, N.

Workers run side by side, so the worker-seconds are turned into wall-clock by the ratio the run measured. Used by
``swagbench estimate`` and by the report's and recommendation's target columns (``target:`` in the config).
"""

from __future__ import annotations

import numpy as np

from swagbench.bench.errors import ConfigError
from swagbench.bench.record.row import TrialRow

# How far a projection may be off, as validated on this 2-core machine (docs/answer-and-estimate.md "Estimating your own
# run": from
# 2,000 to 5,000 images and back within 11-12% median and 23-30% worst, about run-to-run noise): stated with
# every answer made at a target size.
PROJECTION_ERROR = 0.25


def setup_costs(sample_phases: list) -> dict[str, float | None]:
    """Prepare + warm-up seconds split by when they are paid, from a row's ``sample_phases_s``:
    ``first_setup_s`` by the trial's first sample (exports, compilation: once per trial and worker),
    ``fold_setup_s`` by each further fold's first sample (median; int8 calibration), ``sample_setup_s`` by every
    other sample (median; binding, re-preparing). None where the trial had no such sample."""
    cost = [(fold, sample, p["prepare"] + p["warmup"]) for fold, sample, p in sample_phases]
    folds = [c for i, (_, s, c) in enumerate(cost) if s == 0 and i > 0]
    later = [c for _, s, c in cost if s > 0]
    return {
        "first_setup_s": cost[0][2] if cost else None,
        "fold_setup_s": float(np.median(folds)) if folds else None,
        "sample_setup_s": float(np.median(later)) if later else None,
    }


def bn_images(images: int, folds: int, subset: int | None) -> float:
    """Images one sample's BatchNorm pass sees in one fold: the fold's training images or the subset."""
    train = images * (folds - 1) / folds
    return min(train, subset) if subset else train


def phase_seconds(row: TrialRow, phase: str, images_run: float, images_target: float, pairs_target: int) -> float:
    """Worker-seconds of ``phase`` (``bn_update`` or ``predict``) for ``images_target`` images over ``pairs_target``
    (fold, sample) pairs; ``images_run``: the images the phase saw in the run. With a steady-state measurement:
    its seconds per image for every image but those of first calls (paid as warm-up, in the setup), plus, per
    pair, what the run's own calls cost beyond that rate (negative where they ran faster than it: noise, so that
    at the run's own size this gives back what the run measured); without one, the run's seconds per image."""
    total = row.phases_s[phase]
    steady = (row.steady or {}).get(phase)
    if not steady:
        return total / images_run * images_target
    per_image, seen = steady["s_per_image"], steady["in_run_images"]
    per_pair = (total - per_image * seen) / (row.samples * row.folds)
    first_calls = max(0.0, images_run - seen)
    return max(0.0, per_image * max(0.0, images_target - first_calls) + per_pair * pairs_target)


def project(row: TrialRow, images: int, folds: int, samples: int) -> dict[str, float]:
    """Projected wall-clock seconds of one successful trial's ensemble, per phase and in total."""
    n0, k0, s0 = row.n_examples, row.folds, row.samples
    phases = row.phases_s
    entries = row.sample_phases_s or []
    if not entries:
        raise ConfigError(f"trial {row.trial_id} has no per-sample timings (recorded by an older swagbench)")
    setup = setup_costs(entries)
    first = setup["first_setup_s"]
    fold = setup["fold_setup_s"] if setup["fold_setup_s"] is not None else setup["sample_setup_s"] or 0.0
    each = setup["sample_setup_s"] if setup["sample_setup_s"] is not None else fold
    pairs = folds * samples
    subset = row.bn_examples
    read_before = s0 * (k0 * bn_images(n0, k0, subset) + n0)  # images read: every BN pass's and predict's
    read_after = samples * (folds * bn_images(images, folds, subset) + images)
    bn_run, bn_target = s0 * k0 * bn_images(n0, k0, subset), pairs * bn_images(images, folds, subset)
    worker = {
        "sample": float(np.mean([p["sample"] for _, _, p in entries])) * pairs,
        "data": phases.get("data", 0.0) / read_before * read_after,  # rows of older runs have no data phase
        "bn_update": phase_seconds(row, "bn_update", bn_run, bn_target, pairs),
        "setup": first + (folds - 1) * fold + folds * (samples - 1) * each,
        "predict": phase_seconds(row, "predict", s0 * n0, samples * images, pairs),
    }
    out = {k: v * wall_ratio(row) for k, v in worker.items()}
    out["confident_learning"] = phases["confident_learning"] / n0 * images
    out["ensemble"] = sum(out.values())
    return out


def wall_ratio(row: TrialRow) -> float:
    """Wall-clock seconds per worker-second the run measured (below 1 where workers ran side by side)."""
    worker = sum(v for k, v in row.phases_s.items() if k != "confident_learning")
    return (row.ensemble_s - row.phases_s["confident_learning"]) / worker if worker else 1.0


def session_setup_seconds(row: TrialRow, members: int) -> float:
    """Wall-clock seconds a fresh worker session pays before ``members`` members taken one per fold (as a job's
    audit takes them): the trial's first setup, then each further fold's."""
    setup = setup_costs(row.sample_phases_s or [])
    fold = setup["fold_setup_s"] if setup["fold_setup_s"] is not None else setup["sample_setup_s"] or 0.0
    return ((setup["first_setup_s"] or 0.0) + (members - 1) * fold) * wall_ratio(row)


def members_seconds(row: TrialRow, images: int, folds: int, samples: int, members: int) -> float:
    """Wall-clock seconds of a fresh worker session computing ``members`` of the job's (folds x samples) members
    at the target size: its setup (:func:`session_setup_seconds`) and each member's share of the per-image phases."""
    p = project(row, images, folds, samples)
    per_member = sum(p[k] for k in ("sample", "data", "bn_update", "predict")) / (folds * samples)
    return session_setup_seconds(row, members) + members * per_member


def target_sizes(row: TrialRow, target: dict | None) -> tuple[int, int, int]:
    """(images, folds, samples) of a config's ``target`` mapping, the row's run's own where one is unset."""
    target = target or {}
    return (
        int(target.get("images") or row.n_examples),
        int(target.get("folds") or row.folds),
        int(target.get("samples") or row.samples),
    )


# The phases a projection gives, in the order a chart stacks them (prepare and warm-up together: "setup").
PROJECTED_PHASES = ("sample", "data", "bn_update", "setup", "predict", "confident_learning")


def target_projection(row: TrialRow, target: dict | None) -> dict[str, float] | None:
    """A successful trial's minutes projected to ``target``, per phase (:data:`PROJECTED_PHASES`) and in total
    (``ensemble``); None where it cannot be (a failed trial, or a row without per-sample timings)."""
    if row.status != "ok" or not row.sample_phases_s or row.ensemble_s is None:
        return None
    return {k: v / 60 for k, v in project(row, *target_sizes(row, target)).items()}
