"""Checks made before a run folder exists or any trial runs, so a bad setting fails in seconds, leaving nothing."""

from __future__ import annotations

import dataclasses

import numpy as np

from swagbench.backends import get_backend
from swagbench.bench.config import RunConfig
from swagbench.bench.dataset import Dataset
from swagbench.bench.errors import DataError
from swagbench.bench.execute.trial import trial_options
from swagbench.bench.measure.roofline import gflop_per_image
from swagbench.swag.models import build_model


def thread_warnings(config: RunConfig) -> list[str]:
    """Thread plans that ask for more threads than this machine has CPUs: allowed (a plan may be meant for the
    target VM), but oversubscribed threads time slower than the plan would on its machine, so say so."""
    import os

    cpus = os.cpu_count() or 1
    out = []
    if config.threads > cpus:
        out.append(f"threads={config.threads} but this machine has {cpus} logical CPUs")
    for trial in config.trials:
        total = (trial.threads or 0) * (trial.workers or config.workers)
        if total > cpus:
            out.append(f"trial {trial.label} runs {total} threads (workers x threads) on {cpus} logical CPUs")
    return [f"{w}: oversubscribed threads run slower than on a machine that has them" for w in out]


def check_trials(config: RunConfig) -> None:
    """Fail before any work on unknown backends or impossible options (raises a USER_ERRORS type)."""
    for trial in config.trials:
        for part in filter(None, (trial, trial.bn_engine)):  # a hybrid's BatchNorm engine too
            get_backend(part.backend).check(trial_options(config, part))


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """gflop: GFLOPs of one forward pass per image (roofline); bn_channels: channels over all BatchNorm
    layers with running statistics (the width of a trial's recorded statistics); bn_notes: what the model's
    BatchNorm layers mean for the results (:meth:`swagbench.swag.batchnorm.BatchNormFacts.notes`)."""

    gflop: float
    bn_channels: int
    bn_notes: tuple[str, ...] = ()


def check_model(config: RunConfig, dataset: Dataset) -> ModelFacts:
    """Build the model and run two examples through it, so a bad spec fails before any work."""
    import torch

    from swagbench.swag.batchnorm import batchnorm_facts, bn_layers

    model = build_model(config.model, dataset.num_classes, dataset.x.shape[1], config.model_checkpoint).eval()
    try:
        with torch.no_grad():
            out = model(dataset.tensor(slice(0, 2)))
    except RuntimeError as exc:
        raise DataError(
            f"model {config.model!r} cannot take inputs of shape {dataset.x.shape[1:]} ({exc}); "
            "use a model that fits the data"
        ) from exc
    if tuple(out.shape) != (2, dataset.num_classes):
        raise DataError(
            f"model {config.model!r} returns shape {tuple(out.shape)[1:]} per example, "
            f"expected ({dataset.num_classes},) logits"
        )
    channels = sum(bn.num_features for _, bn in bn_layers(model))
    notes = tuple(batchnorm_facts(model, dataset.tensor(slice(0, 2))).notes())
    return ModelFacts(gflop_per_image(model, dataset.tensor(slice(0, 1))), channels, notes)


def check_shards(config: RunConfig, fold_of: np.ndarray) -> None:
    """Every data shard of every fold must hold at least one held-out example."""
    smallest_fold = int(np.bincount(fold_of).min())
    if config.data_shards > smallest_fold:
        raise DataError(
            f"data_shards={config.data_shards} but the smallest fold holds {smallest_fold} examples; "
            f"use at most {smallest_fold} shards"
        )


def check_room(config: RunConfig, dataset: Dataset, model: ModelFacts) -> None:
    """Every trial keeps its (S, N, C) member probabilities and (S, K, 2, channels) BatchNorm statistics on disk
    (float32 memory maps): refuse a run whose trials would not fit on the results folder's disk."""
    import shutil
    from pathlib import Path

    samples, folds = config.ensemble.samples, config.ensemble.folds
    per_trial = 4 * samples * (len(dataset.labels) * dataset.num_classes + folds * 2 * model.bn_channels)
    need = per_trial * len(config.trials)
    free = shutil.disk_usage(Path(config.results_dir)).free
    if need > free:
        raise DataError(
            f"ensemble.samples={samples} x {len(dataset.labels):,} images x {dataset.num_classes} classes needs "
            f"{per_trial / 1e9:.2f} GB of member probabilities per trial, {need / 1e9:.2f} GB for the run's "
            f"{len(config.trials)} trials, but {config.results_dir} has {free / 1e9:.2f} GB free; use fewer samples "
            "or trials, or free disk space"
        )
