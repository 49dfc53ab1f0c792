"""``bn_examples: auto``: the BatchNorm subset a run chooses by measuring it on its own data.

A subset is a fixed number of images per BatchNorm pass whatever the job's size, so at a user's size it cuts most of
the pass; what it may cost is calibration and the label-issue set. A run with a trial whose ``bn_examples`` is
``auto`` first runs the *ladder*: eager fp32 trials at each size of ``ensemble.bn_ladder`` smaller than a fold's
training part (:func:`ladder_trials`), each gated against the full-data reference on the same SWAG samples like any
trial. The smallest size whose ensemble stays within :data:`LIMITS` of the full-data one is chosen
(:func:`choose`); the ``auto`` trial runs with it and its row keeps the choice (``bn_choice``). A timing-only run
(synthetic data or posterior) has no calibration to judge by, so it keeps the full data.
"""

from __future__ import annotations

from typing import Any

# How far a subset's ensemble may move from the full-data one (vs the given labels; F1 against the injected truth,
# where the run knows it). Changes below these are within what rerunning the full-data ensemble with other SWAG
# samples moves (docs/measurements.md: the subset ladder).
LIMITS = {
    "min_issue_jaccard": 0.95,  # label-issue set vs the full-data ensemble's
    "max_delta_ece": 0.003,  # ECE may grow by at most this
    "max_delta_nll": 0.01,  # NLL may grow by at most this
    "max_issue_f1_drop": 0.01,  # issue F1 vs the truth may fall by at most this
}


def ladder_trials(trials: list, ladder: list[int], train_size: int, make) -> list:
    """``trials`` with the ladder's eager fp32 subset trials after the reference (the first), one per size of
    ``ladder`` below ``train_size`` (a fold's smallest training part) that ``trials`` lacks, where any trial asks
    for ``bn_examples: auto``; ``make(n)`` builds the trial of size ``n``. Unchanged otherwise (so a stored
    config, which already holds them, is left as it is)."""
    if not any(t.bn_examples == "auto" for t in trials):
        return trials
    have = {t.bn_examples for t in trials if is_ladder(t.backend, t.precision, t.channels_last, t.bn)}
    rungs = [make(n) for n in ladder if n < train_size and n not in have]
    return trials[:1] + rungs + trials[1:]


def is_ladder(backend: str, precision: str, channels_last: bool, bn_engine) -> bool:
    """Whether a trial of these settings measures a subset's quality (eager fp32, contiguous, its own pass)."""
    return backend == "eager" and precision == "fp32" and not channels_last and bn_engine is None


def rung(row) -> dict[str, Any] | None:
    """What a finished eager fp32 subset trial says about its size against the full-data reference (None: it is
    not one, or it did not finish, or was not compared)."""
    fidelity = row.fidelity or {}
    if (
        row.status != "ok"
        or not isinstance(row.trial_bn_examples, int)
        or row.bn_choice is not None
        or not is_ladder(row.backend, row.precision, row.channels_last, row.bn_engine)
        or "issue_jaccard" not in fidelity
    ):
        return None
    return {
        "images": row.trial_bn_examples,
        "trial": row.trial_id,
        "issue_jaccard": fidelity["issue_jaccard"],
        "delta_ece": fidelity.get("delta_ece"),
        "delta_nll": fidelity.get("delta_nll"),
        "delta_issue_f1": fidelity.get("delta_issue_f1"),
        "ensemble_s": row.ensemble_s,
    }


def misses(step: dict[str, Any], limits: dict[str, float] = LIMITS) -> list[str]:
    """The limits one ladder step misses, in words (empty: within all of them). A metric the run could not measure
    (issue F1 without a known truth) is not held against it; ECE and NLL are required."""
    out = []
    if step["issue_jaccard"] < limits["min_issue_jaccard"]:
        out.append(f"issue Jaccard {step['issue_jaccard']:.3f} < {limits['min_issue_jaccard']}")
    for key, limit, name in (("delta_ece", "max_delta_ece", "ECE"), ("delta_nll", "max_delta_nll", "NLL")):
        if step[key] is None:
            out.append(f"{name} not measured")
        elif step[key] > limits[limit]:
            out.append(f"{name} +{step[key]:.4f} > +{limits[limit]}")
    f1 = step.get("delta_issue_f1")
    if f1 is not None and f1 < -limits["max_issue_f1_drop"]:
        out.append(f"issue F1 {f1:+.4f} < -{limits['max_issue_f1_drop']}")
    return out


def choose(rows, metrics_meaningful: bool, limits: dict[str, float] = LIMITS) -> dict[str, Any]:
    """The ``bn_choice`` record of an ``auto`` trial from the run's recorded ``rows``: every ladder step with what
    it misses, the limits, and ``chosen``: the smallest size within all of them (None: full data, with ``why``)."""
    steps = sorted(filter(None, map(rung, rows)), key=lambda s: s["images"])
    for step in steps:
        step["misses"] = misses(step, limits)
    record: dict[str, Any] = {"limits": dict(limits), "ladder": steps, "chosen": None}
    if not metrics_meaningful:
        record["why"] = "timing-only run (synthetic data or posterior): no calibration to choose a subset by"
    elif not steps:
        record["why"] = "no ladder trial finished (ensemble.bn_ladder has no size below a fold's training part?)"
    else:
        within = [s for s in steps if not s["misses"]]
        if within:
            record["chosen"] = within[0]["images"]
        else:
            record["why"] = "no size of the ladder stays within the limits"
    return record


def describe(choice: dict[str, Any]) -> str:
    """One line: the subset an ``auto`` trial ran with and why (its ladder step's numbers), or why full data."""
    sizes = ", ".join(f"{s['images']:,}" for s in choice["ladder"]) or "none"
    if choice["chosen"] is None:
        return f"bn_examples auto kept all training images per fold: {choice['why']} (ladder: {sizes})"
    step = next(s for s in choice["ladder"] if s["images"] == choice["chosen"])
    f1 = "" if step["delta_issue_f1"] is None else f", issue F1 {step['delta_issue_f1']:+.4f}"
    return (
        f"bn_examples auto chose {choice['chosen']:,} images per fold, the smallest of the ladder ({sizes}) within "
        f"the limits, against full data: issue Jaccard {step['issue_jaccard']:.3f}, ECE {step['delta_ece']:+.4f}, "
        f"NLL {step['delta_nll']:+.4f}{f1}"
    )
