"""Calibration and label-issue detection metrics on (N, C) probability matrices."""

from __future__ import annotations

import numpy as np

ECE_BINS = 15
# What calibration() returns: each becomes the summary columns <key>_given and <key>_true
# (swagbench.bench.record.row_store).
CALIBRATION_KEYS = ("ece", "mce", "nll", "brier", "accuracy")
# Which labels the headline calibration (tables, charts, the recommendation, delta_ece/delta_nll) is measured
# against. Confident learning consumes the model's probabilities of the *given* labels (its per-class
# thresholds are mean self-confidences of the given labels), and the given labels are all a user has on their
# own data; calibration against the true labels (known only when noise was injected) is reported beside it.
HEADLINE_LABELS = "given"
HEADLINE_WHY = (
    "confident learning consumes probabilities of the given labels, and they are all you have on your own data"
)


def calibration(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, float]:
    """Top-label calibration of ``probs`` against ``labels``.

    Parameters
    ----------
    probs : np.ndarray
        (N, C) probabilities, rows summing to 1.
    labels : np.ndarray
        (N,) int class ids (given or true labels).
    n_bins : int
        Equal-width confidence bins (lo, hi] for ECE and MCE (the first also holds 0).

    Returns
    -------
    dict
        ``ece`` / ``mce``: expected (bin-size weighted) / maximum |accuracy - confidence| over the bins, in
        [0, 1]; ``nll``: mean -log p[label] in nats (p clipped at 1e-12); ``brier``: mean over examples of
        sum_c (p_c - onehot_c)^2, in [0, 2]; ``accuracy``: top-1 agreement with ``labels``, in [0, 1].
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs must be (N, C) matching labels (N,); got {probs.shape} and {labels.shape}")
    n = len(labels)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece, mce = 0.0, 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            gap = abs(correct[mask].mean() - conf[mask].mean())
            ece += mask.sum() / n * gap
            mce = max(mce, gap)
    onehot = np.zeros_like(probs)
    onehot[np.arange(n), labels] = 1.0
    return {
        "ece": float(ece),
        "mce": float(mce),
        "nll": float(-np.log(np.clip(probs[np.arange(n), labels], 1e-12, 1.0)).mean()),
        "brier": float(((probs - onehot) ** 2).sum(axis=1).mean()),
        "accuracy": float(correct.mean()),
    }


def detection_scores(found: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    """Precision, recall and F1 of the label issues found against the true label errors.

    Parameters
    ----------
    found, truth : np.ndarray
        (N,) bool: flagged by confident learning; the given label is really wrong.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` in [0, 1] (precision 1.0 when nothing was found, recall 1.0 when
        there is nothing to find), ``n_found`` and ``n_true`` counts.
    """
    found = np.asarray(found, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    tp = int((found & truth).sum())
    precision = tp / found.sum() if found.any() else 1.0
    recall = tp / truth.sum() if truth.any() else 1.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "n_found": int(found.sum()),
        "n_true": int(truth.sum()),
    }


def sample_checkpoints(samples: int) -> list[int]:
    """Ensemble sizes at which calibration is recorded: 1, 2, 4, ... and ``samples`` itself."""
    points, s = [], 1
    while s < samples:
        points.append(s)
        s *= 2
    return points + [samples]
