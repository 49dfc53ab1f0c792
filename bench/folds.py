"""Stratified K-fold assignment and each fold's split: who trains a fold's posterior, who it predicts."""

from __future__ import annotations

import numpy as np

from bench.errors import DataError


def make_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified K-fold assignment: (N,) int, the fold whose model predicts each example."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels)
    present = counts[counts > 0]
    if present.min() < folds:
        cls = int(np.flatnonzero(counts == present.min())[0])
        raise DataError(
            f"class {cls} has only {present.min()} examples by its given labels (after any injected noise) but "
            f"ensemble.folds={folds}; "
            + (
                f"use at most {present.min()} folds or more data"
                if present.min() >= 2
                else "every class needs at least 2 examples (folds must be >= 2): add examples of it or remove it"
            )
        )
    fold_of = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold_of[test] = k
    return fold_of


def fold_split(fold_of: np.ndarray, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) of ``fold``: its posterior trains (and updates BN) on train_idx only
    and is the only model that predicts test_idx."""
    return np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
