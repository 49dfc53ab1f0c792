"""Stratified K-fold assignment and each fold's split: who trains a fold's posterior, who it predicts."""

from __future__ import annotations

import numpy as np

from swagbench.bench.dataset.images import class_label
from swagbench.bench.errors import DataError
from swagbench.checked import not_a_file


def make_folds(
    labels: np.ndarray,
    folds: int,
    seed: int,
    copy_of: np.ndarray | None = None,
    class_names: list[str] | None = None,
) -> np.ndarray:
    """Stratified K-fold assignment: (N,) int, the fold whose model predicts each example. Where ``copy_of`` (each
    example's first exact copy, see swagbench.bench.dataset.Dataset.copy_of) shows copies, they share a fold
    (stratified group folds): a copy in another fold would be predicted by a model trained on itself.
    ``class_names`` name the classes in errors."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    counts = np.bincount(labels)
    present = counts[counts > 0]
    if present.min() < folds:
        cls = class_label(int(np.flatnonzero(counts == present.min())[0]), class_names)
        raise DataError(
            f"class {cls} has only {present.min()} example(s) by its given labels (after any injected noise) but "
            f"ensemble.folds={folds}; "
            + (
                f"use at most {present.min()} folds or more data"
                if present.min() >= 2
                else "every class needs at least 2 examples (folds must be >= 2): add examples of it or remove it"
            )
        )
    fold_of = np.empty(len(labels), dtype=np.int64)
    if copy_of is not None and (copy_of != np.arange(len(labels))).any():
        splits = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(
            np.zeros(len(labels)), labels, copy_of
        )
    else:
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    for k, (_, test) in enumerate(splits):
        fold_of[test] = k
    return fold_of


def fold_split(fold_of: np.ndarray, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) of ``fold``: its posterior trains (and updates BN) on train_idx only
    and is the only model that predicts test_idx."""
    return np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)


def assign_folds(spec: str | None, dataset, folds: int, seed: int, source: str, log=print) -> np.ndarray:
    """The run's fold assignment (N,): the user's (``spec``, see :func:`read_folds`) where given (a warning names
    exact copies it puts in different folds), else stratified folds drawn from ``seed`` with copies kept together."""
    if spec is None:
        return make_folds(dataset.labels, folds, seed, dataset.copy_of, dataset.class_names)
    fold_of = check_folds(read_folds(spec, dataset, source), len(dataset.labels), folds, spec)
    split = np.flatnonzero(fold_of != fold_of[dataset.copy_of])
    if len(split):
        names = dataset.paths or [str(i) for i in range(len(fold_of))]
        pairs = "; ".join(f"{names[i]} = {names[dataset.copy_of[i]]}" for i in split[:3])
        log(
            f"swagbench: warning: data.folds {spec} puts {len(split)} exact copies in another fold than their "
            f"original ({pairs}{'; ...' if len(split) > 3 else ''}): their out-of-sample probabilities come from a "
            "model trained on the same image; give copies one fold or remove them"
        )
    return fold_of


def read_folds(spec: str, dataset, source: str) -> np.ndarray:
    """Fold ids from an ``.npy`` file (N,), or from column ``spec`` of CSV manifest ``source``, matched to the data's
    images by path (so a subset, ``data.max_examples``, takes its examples' folds)."""
    from pathlib import Path

    if spec.endswith(".npy"):
        problem = not_a_file(spec)
        if problem:
            raise DataError(f"data.folds file {spec} {problem}; save the fold ids with numpy.save(path, ids)")
        try:
            return np.load(spec, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"data.folds file {spec} is not a plain .npy array ({exc}); save it with numpy.save"
            ) from exc
    if not source.endswith(".csv"):
        raise DataError(
            f"data.folds={spec!r}: give an .npy file of fold ids, or (with a CSV manifest as data.source) the name of "
            "its fold column"
        )
    import pandas as pd

    table = pd.read_csv(source, dtype=str, keep_default_na=False)
    if spec not in table.columns:
        raise DataError(
            f"manifest {source} has no column {spec!r} (data.folds); its columns: {', '.join(table.columns)}"
        )
    import os

    base = Path(source).parent
    by_path = {os.path.abspath(base / p): v for p, v in zip(table.path, table[spec], strict=True)}
    values = [by_path.get(os.path.abspath(p), "") for p in dataset.paths or []]
    if any(not v.strip().lstrip("-").isdigit() for v in values):
        raise DataError(f"manifest {source}: column {spec!r} must hold an integer fold id on every row")
    return np.asarray([int(v) for v in values], dtype=np.int64)


def check_folds(fold_of: np.ndarray, n: int, folds: int, where: str) -> np.ndarray:
    """``fold_of`` as (N,) int64 after checking it is one fold id in 0..folds-1 per example with no fold empty."""
    if fold_of.ndim != 1 or len(fold_of) != n:
        raise DataError(
            f"data.folds {where} holds {fold_of.shape} fold ids but the data has {n} examples; give one id per example "
            "in the data's order (and no data.max_examples subset with an .npy)"
        )
    if not np.issubdtype(fold_of.dtype, np.integer):
        raise DataError(f"data.folds {where} holds {fold_of.dtype} values; fold ids must be integers 0..K-1")
    if len(fold_of) and (fold_of.min() < 0 or fold_of.max() >= folds):
        raise DataError(
            f"data.folds {where} has fold ids {int(fold_of.min())}..{int(fold_of.max())} but ensemble.folds={folds}; "
            f"use ids 0..{folds - 1} or set ensemble.folds to the number of folds the posteriors were trained with"
        )
    empty = [k for k in range(folds) if not (fold_of == k).any()]
    if empty:
        raise DataError(f"data.folds {where}: fold {empty[0]} has no example; every fold needs held-out examples")
    return fold_of.astype(np.int64)
