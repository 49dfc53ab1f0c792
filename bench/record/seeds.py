"""Every seed of a run, from its base seeds: the same (fold, sample) gets the same weights in every backend."""

from __future__ import annotations

import numpy as np


def sample_seed(base: int, fold: int, sample: int) -> int:
    """Seed of SWAG sample ``sample`` of fold ``fold``: identical across backends, so they are comparable."""
    return int(base) * 1_000_003 + fold * 10_007 + sample


def fold_seed(base: int, fold: int) -> int:
    """Seed of fold ``fold``'s training (initial weights and SGD order), from the data seed ``base``."""
    return int(base) * 7919 + fold


def bn_subset_seed(base: int, fold: int) -> int:
    """Seed of fold ``fold``'s BatchNorm subset (``bn_examples``), from the ensemble seed ``base``."""
    return int(base) + fold


def bn_subset(train_idx: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """The training examples whose statistics set BatchNorm: all, or a seeded sorted subset of ``n``."""
    if n is None or n >= len(train_idx):
        return train_idx
    return np.sort(np.random.default_rng(seed).choice(train_idx, size=n, replace=False))
