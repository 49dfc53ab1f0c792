"""The parent's finishing step of a trial: member probabilities -> ensemble, confident learning, metrics.

It reads the trial's ``member_probs.npy`` (S, N, C) one sample at a time (never all of it in memory), checks each
member is a probability table, keeps the ensemble means at S = 1, 2, 4, ..., runs confident learning on the
full ensemble and computes calibration and detection metrics.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from swagbench.bench.measure.timing import merge_timings


def check_probabilities(probs: np.ndarray, what: str) -> None:
    """Raise ValueError unless every row of ``probs`` (N, C) is finite, in [0, 1] and sums to 1 (within
    float32 rounding): a trial whose outputs are not probabilities must fail, never become a result."""
    if not np.isfinite(probs).all():
        raise ValueError(f"{what}: the backend produced non-finite probabilities (NaN or inf)")
    sums = probs.sum(axis=1, dtype=np.float64)
    if probs.min() < 0 or probs.max() > 1 or np.abs(sums - 1).max() > 1e-3:
        raise ValueError(f"{what}: probabilities outside [0, 1] or not summing to 1 (worst sum {sums.min():.4g})")


def ensemble_means(members_path: Path) -> dict[int, np.ndarray]:
    """{S: (N, C) float64 mean of the first S members} for S in
    :func:`swagbench.bench.answer.metrics.sample_checkpoints`, streamed
    one member at a time from the (S, N, C) map; each member is checked to be a probability table."""
    from swagbench.bench.answer.metrics import sample_checkpoints

    members = np.load(members_path, mmap_mode="r")
    samples = members.shape[0]
    checkpoints = sample_checkpoints(samples)
    running = np.zeros(members.shape[1:], dtype=np.float64)
    means = {}
    for s in range(samples):  # streamed: one (N, C) member in memory at a time
        check_probabilities(members[s], f"SWAG sample {s}")
        running += members[s]
        if s + 1 in checkpoints:
            means[s + 1] = running / (s + 1)
    return means


def quality(means: dict[int, np.ndarray], labels: np.ndarray, true_labels: np.ndarray | None, issues) -> dict:
    """Calibration against the given labels (the headline, see swagbench.bench.answer.metrics.HEADLINE_LABELS) and
    against the true
    labels when they are known (injected noise), for the full ensemble and per S; detection vs the truth."""
    from swagbench.bench.answer.metrics import calibration, detection_scores

    probs = means[max(means)]
    eval_labels = labels if true_labels is None else true_labels
    return {
        "calibration_labels": "given" if true_labels is None else "true",
        "calibration": calibration(probs, eval_labels),
        "calibration_given": calibration(probs, labels),
        "calibration_vs_samples": [
            {
                "samples": s,
                **calibration(p, eval_labels),
                **{f"{k}_given": v for k, v in calibration(p, labels).items()},
            }
            for s, p in means.items()
        ],
        "label_issues": None if true_labels is None else detection_scores(issues, labels != true_labels),
        "n_label_issues_found": int(issues.sum()),
    }


def write_label_issues(path: Path, dataset, probs: np.ndarray, issues: np.ndarray, label_quality: np.ndarray) -> None:
    """``label_issues.csv``: every example, worst label quality first: its index, image path (where known), given
    label, suggested label (the ensemble's top class), both as class names where known, cleanlab's label quality
    score, whether confident learning flagged it, and (``duplicate_of``) the index of the example it is an exact
    copy of (empty where it is none)."""
    import pandas as pd

    order = np.argsort(label_quality, kind="stable")
    names = dataset.class_names
    table = pd.DataFrame({"index": order})
    if dataset.paths is not None:
        table["path"] = np.asarray(dataset.paths, dtype=object)[order]
    given, suggested = dataset.labels[order], probs.argmax(axis=1)[order]
    table["given_label"], table["suggested_label"] = given, suggested
    if names is not None:
        table["given_class"] = np.asarray(names, dtype=object)[given]
        table["suggested_class"] = np.asarray(names, dtype=object)[suggested]
    table["label_quality"] = label_quality[order]
    table["is_issue"] = issues[order]
    copies = zip(dataset.copy_of[order].tolist(), order.tolist(), strict=True)
    table["duplicate_of"] = pd.array([None if c == i else c for c, i in copies], dtype="Int64")
    table.to_csv(path, index=False)


def finish_trial(trial, dataset, cleanlab: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the workers' timings and turn the member probabilities into the trial's results (row fields).

    ``trial`` is the trial's :class:`swagbench.bench.record.rundir.TrialDir` and ``dataset`` the run's (its labels,
    class names and paths); this writes the trial's ``probs.npy`` (N, C) ensemble probabilities, ``label_issues.npy``,
    ``label_quality.npy``, ``label_issues.csv`` (:func:`write_label_issues`) and ``predict_batch_s.npy`` (raw per-batch
    predict seconds of all workers). ``ensemble_s`` is wall-clock: first worker's loop start to last worker's loop end
    (worker start-up and imports excluded, as a long-lived service would not pay them), plus confident learning.
    ``phases_s`` are worker-seconds summed over workers; with one worker their sum is the ensemble time.
    """
    from swagbench.bench.answer.confident import find_label_issues

    labels, true_labels = dataset.labels, dataset.true_labels
    means = ensemble_means(trial.members)
    samples = max(means)
    timing = merge_timings(parts)
    probs = means[samples]
    t0 = time.perf_counter()
    issues, label_quality = find_label_issues(labels, probs, cleanlab["filter_by"], cleanlab["quality_method"])
    timing["phases_s"]["confident_learning"] = time.perf_counter() - t0
    timing["ensemble_s"] += timing["phases_s"]["confident_learning"]
    np.save(trial.probs, probs.astype(np.float32))
    np.save(trial.label_issues, issues)
    np.save(trial.label_quality, label_quality)
    write_label_issues(trial.label_issues_csv, dataset, probs, issues, label_quality)
    np.save(trial.predict_batch_s, timing.pop("predict_batch_s"))
    first = parts[0]
    return {
        "strategy": first["strategy"],
        "auto": first.get("auto"),
        "backend_info": first["backend_info"],
        **timing,
        "images_predicted": int(len(labels) * samples),
        "bn_update": first["bn_update"],
        **quality(means, labels, true_labels, issues),
        "threads": first["threads"],
        "versions": first["versions"],
        "baseline_rss_bytes": first["baseline_rss_bytes"],
    }
