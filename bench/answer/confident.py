"""Confident learning (Northcutt et al.) on out-of-sample probabilities, via cleanlab."""

from __future__ import annotations

import numpy as np


def find_label_issues(
    labels: np.ndarray, probs: np.ndarray, filter_by: str, quality_method: str
) -> tuple[np.ndarray, np.ndarray]:
    """Label issues and label quality of ``labels`` (N,) int under out-of-sample ``probs`` (N, C).

    Parameters
    ----------
    labels : np.ndarray
        (N,) int, the given labels.
    probs : np.ndarray
        (N, C) float, each row the ensemble's probabilities for an example it did not train on.
    filter_by : str
        ``cleanlab.filter.find_label_issues`` method (``swagbench.bench.config.FILTER_BY``).
    quality_method : str
        ``cleanlab.rank.get_label_quality_scores`` method (``swagbench.bench.config.QUALITY_METHODS``).

    Returns
    -------
    issues : np.ndarray
        (N,) bool, True where the given label is likely wrong.
    quality : np.ndarray
        (N,) float in [0, 1], lower = more suspect.
    """
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    mask = cl_find(labels, probs, filter_by=filter_by, n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method=quality_method)
    return np.asarray(mask, dtype=bool), np.asarray(quality, dtype=np.float64)
