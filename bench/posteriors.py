"""Training stage: one SWAG posterior per cross-validation fold, saved as safetensors."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.config import RunConfig
from bench.dataset import Dataset, fold_split


def posterior_meta(config: RunConfig, dataset: Dataset, fold: int) -> dict[str, str]:
    """Metadata stored with (and checked against) each fold's posterior."""
    return {
        "model": config.model,
        "num_classes": str(dataset.num_classes),
        "in_channels": str(dataset.x.shape[1]),
        "input_hw": f"{dataset.x.shape[2]}x{dataset.x.shape[3]}",
        "dataset": dataset.name,
        "fold": str(fold),
    }


def train_posteriors(
    config: RunConfig,
    dataset: Dataset,
    fold_of: np.ndarray,
    out_dir: Path,
    on_epoch: Callable[[], None] = lambda: None,
) -> tuple[list[Path], float]:
    """Train a SWAG posterior on every fold's training part (noisy labels); return (paths, seconds)."""
    import torch

    from swag.io import save_posterior
    from swag.models import build_model
    from swag.training import train_swag

    torch.set_num_threads(config.resolved_threads)
    x = torch.from_numpy(dataset.x)
    y = torch.from_numpy(dataset.labels)
    paths, start = [], time.perf_counter()
    for fold in range(config.ensemble.folds):
        train = torch.from_numpy(fold_split(fold_of, fold)[0])
        torch.manual_seed(config.data.seed * 7919 + fold)
        model = build_model(config.model, dataset.num_classes, dataset.x.shape[1])
        posterior = train_swag(
            model, x[train], y[train], config.train, seed=config.data.seed * 7919 + fold, on_epoch=lambda _e: on_epoch()
        )
        posterior.meta.update(posterior_meta(config, dataset, fold))
        paths.append(save_posterior(posterior, out_dir / f"fold{fold}.safetensors"))
    return paths, time.perf_counter() - start
