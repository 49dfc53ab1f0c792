"""Confident learning (Northcutt et al.) on out-of-sample probabilities, via cleanlab."""

from __future__ import annotations

import numpy as np

from bench.config import CleanlabConfig


def find_label_issues(labels: np.ndarray, probs: np.ndarray, config: CleanlabConfig) -> tuple[np.ndarray, np.ndarray]:
    """Return (issue_mask (N,) bool, label_quality (N,) float in [0, 1], lower = more suspect)."""
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    mask = cl_find(labels, probs, filter_by=config.filter_by, n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method=config.quality_method)
    return np.asarray(mask, dtype=bool), np.asarray(quality, dtype=np.float64)
