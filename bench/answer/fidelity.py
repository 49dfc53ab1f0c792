"""Fidelity gate (MLPerf-style validity): every trial against the eager fp32 reference.

Both trials evaluate the same SWAG samples (same seeds), so their per-sample probabilities
(``member_probs.npy``, (S, N, C)) are compared element by element.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swagbench.bench.record.row import TrialRow
from swagbench.bench.record.rundir import TrialDir


@dataclass(frozen=True)
class Tolerance:
    """Limits a trial must meet to be VALID.

    max_abs_dp: largest |p_trial - p_eager| over all samples, examples and classes.
    min_argmax_agreement: fraction of (sample, example) pairs with the same top class.
    min_issue_jaccard: |A ∩ B| / |A ∪ B| of the label-issue sets found by confident learning.
    max_bn_mean_err: largest |mean_trial - mean_eager| / sqrt(var_eager + eps) over every BatchNorm channel
        of every sample: the shift of the normalised activations, in units of their standard deviation.
    max_bn_var_err: largest |var_trial - var_eager| / (var_eager + eps): relative error of the variance
        as the normalisation sees it (eps = 1e-5, BatchNorm's default, so dead channels do not divide by 0).
    """

    max_abs_dp: float
    min_argmax_agreement: float
    min_issue_jaccard: float
    max_bn_mean_err: float
    max_bn_var_err: float


# The one place tolerances live. fp32 backends differ from eager only by summation order;
# bf16 keeps 8 mantissa bits and int8 quantizes weights and activations, so both are looser
# but still require the label-issue set, the product of the pipeline, to stay nearly the same.
# BatchNorm statistics: fp32 runtimes differ from eager's kernels by summation order (at most 2e-4 std in
# mean on ResNet-50, `swagbench run --config configs/resnet50-timing.yaml`); bf16 convolutions move them more
# (there: up to 0.026 std in mean, 9.5% in variance), which the probability limits judge in the end; int8
# trials compute statistics in bf16 or fp32. 0.5 leaves room for models whose bf16 statistics drift further.
TOLERANCES = {
    "fp32": Tolerance(1e-3, 0.999, 0.95, max_bn_mean_err=1e-3, max_bn_var_err=1e-3),
    "bf16": Tolerance(0.15, 0.97, 0.85, max_bn_mean_err=0.5, max_bn_var_err=0.5),
    "int8": Tolerance(0.25, 0.95, 0.75, max_bn_mean_err=0.5, max_bn_var_err=0.5),
}
BN_EPS = 1e-5


# A trial that computes BatchNorm statistics from a subset of each fold's training data is an approximation by
# design: its probabilities differ from the full-data reference by more than any precision's rounding. It is
# judged on the decisions confident learning makes from them (argmax, label-issue set), at these levels (those
# of bf16), and its quality cost (ECE, NLL, issue F1 vs the reference) is reported beside it.
BN_SUBSET_DECISIONS = {"min_argmax_agreement": 0.97, "min_issue_jaccard": 0.85}


def is_reference(
    backend: str, precision: str, channels_last: bool, bn_examples: int | None = None, bn_engine: str | None = None
) -> bool:
    """The eager fp32 (contiguous, full BatchNorm data, its own BatchNorm pass) trial every other trial is compared
    with."""
    plain = bn_examples is None and bn_engine is None
    return backend == "eager" and precision == "fp32" and not channels_last and plain


def is_reference_row(row: TrialRow) -> bool:
    """A recorded row that can serve as (or is) the run's reference: successful eager fp32, full BatchNorm data
    (not a ``bn_examples: auto`` trial that kept it)."""
    return (
        row.status == "ok"
        and row.bn_choice is None
        and is_reference(row.backend, row.precision, row.channels_last, row.trial_bn_examples, row.bn_engine)
    )


def gate(row: TrialRow, reference: TrialRow | None, run) -> TrialRow:
    """``row`` with ``fidelity`` and ``validity`` (VALID / INVALID / UNCHECKED) against ``reference`` (a finished
    trial of run folder ``run``, a :class:`swagbench.bench.record.rundir.RunDir`); a trial that did not succeed is
    returned as is."""
    if row.status != "ok":
        return row
    if reference is None:
        return dataclasses.replace(
            row, validity="UNCHECKED", validity_reasons=["no successful eager fp32 reference trial"]
        )
    fidelity = compare(run.trial(reference.trial_id).path, run.trial(row.trial_id).path, reference, row)
    validity, reasons = verdict(
        fidelity,
        looser(row.precision, (row.bn_update or {}).get("precision", row.precision)),
        check_decisions=row.metrics_meaningful,
        bn_subset=row.bn_examples != reference.bn_examples,
    )
    return dataclasses.replace(row, fidelity=fidelity, validity=validity, validity_reasons=reasons)


def looser(*precisions: str) -> str:
    """The precision with the widest tolerance among ``precisions`` (a hybrid trial is judged at its looser
    engine's: its BatchNorm pass in one, predict in the other)."""
    return max(precisions, key=lambda p: TOLERANCES[p].max_abs_dp)


def compare(ref_dir: Path, trial_dir: Path, ref_row: TrialRow, row: TrialRow) -> dict[str, Any]:
    """Fidelity of one trial's outputs against the reference trial's.

    Parameters
    ----------
    ref_dir, trial_dir : Path
        The two trial folders: ``member_probs.npy`` (S, N, C), ``label_issues.npy`` (N,) bool and, when
        recorded, ``bn_stats.npy`` (S, K, 2, channels).
    ref_row, row : TrialRow
        Their result rows (``calibration_given``, ``label_issues``).

    Returns
    -------
    dict
        ``max_abs_dp`` (largest |p - p_ref| over samples, examples, classes), ``argmax_agreement`` (fraction
        of (sample, example) pairs with the same top class), ``issue_jaccard`` (of the label-issue sets),
        ``bn_mean_err`` / ``bn_var_err`` (see :class:`Tolerance`), ``delta_ece`` / ``delta_nll`` (vs the given
        labels) and ``delta_issue_f1``, each as trial minus reference.
    """
    ref_dir, trial_dir = TrialDir(Path(ref_dir)), TrialDir(Path(trial_dir))
    ref = np.load(ref_dir.members, mmap_mode="r")
    got = np.load(trial_dir.members, mmap_mode="r")
    if ref.shape != got.shape:
        raise ValueError(f"member_probs shapes differ: reference {ref.shape}, trial {got.shape}")
    max_dp, agree = 0.0, 0
    for s in range(ref.shape[0]):  # one sample at a time: never S x N x C in memory twice
        max_dp = max(max_dp, float(np.abs(ref[s] - got[s]).max()))
        agree += int((ref[s].argmax(1) == got[s].argmax(1)).sum())
    a = np.load(ref_dir.label_issues)
    b = np.load(trial_dir.label_issues)
    union = int((a | b).sum())
    out = {
        "max_abs_dp": max_dp,
        "argmax_agreement": agree / (ref.shape[0] * ref.shape[1]),
        "issue_jaccard": 1.0 if union == 0 else int((a & b).sum()) / union,
    }
    if ref_dir.bn_stats.is_file() and trial_dir.bn_stats.is_file():  # older runs lack them
        out.update(bn_statistics_error(ref_dir.bn_stats, trial_dir.bn_stats))
    for key in (
        "ece",
        "nll",
    ):  # against the given labels: the headline (swagbench.bench.answer.metrics.HEADLINE_LABELS)
        out[f"delta_{key}"] = row.calibration_given[key] - ref_row.calibration_given[key]
    f1, ref_f1 = ((r.label_issues or {}).get("f1") for r in (row, ref_row))
    if f1 is not None and ref_f1 is not None:  # the label-issue detection a strategy costs (the pipeline's product)
        out["delta_issue_f1"] = f1 - ref_f1
    return out


def bn_statistics_error(ref_path: Path, trial_path: Path) -> dict[str, float]:
    """``bn_mean_err`` and ``bn_var_err`` (see :class:`Tolerance`) of a trial's recorded BatchNorm statistics
    ((S, K, 2, channels): running mean, running variance per sample and fold) against the reference's."""
    ref = np.load(ref_path, mmap_mode="r")
    got = np.load(trial_path, mmap_mode="r")
    if ref.shape != got.shape:
        raise ValueError(f"bn_stats shapes differ: reference {ref.shape}, trial {got.shape}")
    return bn_error(ref, got)


def bn_error(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """``bn_mean_err`` and ``bn_var_err`` of statistics ``got`` against ``ref`` (``(..., 2, channels)``: running
    means and variances); infinite where either holds a non-finite number."""
    if ref.shape[-1] == 0:
        return {"bn_mean_err": 0.0, "bn_var_err": 0.0}
    var = np.asarray(ref[..., 1, :], dtype=np.float64) + BN_EPS
    mean_err = np.abs(np.asarray(got[..., 0, :], dtype=np.float64) - ref[..., 0, :]) / np.sqrt(var)
    var_err = np.abs(np.asarray(got[..., 1, :], dtype=np.float64) - ref[..., 1, :]) / var
    if not (np.isfinite(mean_err).all() and np.isfinite(var_err).all()):
        return {"bn_mean_err": float("inf"), "bn_var_err": float("inf")}
    return {"bn_mean_err": float(mean_err.max()), "bn_var_err": float(var_err.max())}


def member_fidelity(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], members, fold_of) -> dict[str, float]:
    """A job's audit: ``members`` ((fold, sample) pairs) as the strategy computed them (``got``) against eager fp32
    (``ref``); each a mapping with ``members`` (S, N, C) and ``bn_stats`` (S, K, 2, channels) maps. Returns
    ``max_abs_dp`` and ``argmax_agreement`` over the members' held-out examples and the BatchNorm statistics' errors
    (:func:`bn_error`). Non-finite probabilities give an infinite ``max_abs_dp``."""
    max_dp, agree, seen = 0.0, 0, 0
    for fold, sample in members:
        rows = np.flatnonzero(fold_of == fold)
        a, b = np.asarray(ref["members"][sample, rows]), np.asarray(got["members"][sample, rows])
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            max_dp = float("inf")
        else:
            max_dp = max(max_dp, float(np.abs(a - b).max()))
        agree, seen = agree + int((a.argmax(1) == b.argmax(1)).sum()), seen + len(rows)
    cells = tuple(np.array(members).T[::-1])  # (samples, folds)
    return {
        "max_abs_dp": max_dp,
        "argmax_agreement": agree / seen if seen else 1.0,
        **bn_error(np.asarray(ref["bn_stats"])[cells], np.asarray(got["bn_stats"])[cells]),
    }


def audit_verdict(fidelity: dict[str, float], precision: str, check_decisions: bool) -> tuple[str, list[str]]:
    """("VALID" | "INVALID", reasons) of a job's audit under ``precision``'s tolerance: probabilities, argmax
    agreement (where the outputs mean anything: not in a timing-only job) and BatchNorm statistics; the label-issue
    set, a whole ensemble's product, is not judged on a few members."""
    tol = TOLERANCES[precision]
    reasons = []
    if not fidelity["max_abs_dp"] <= tol.max_abs_dp:
        reasons.append(f"max |dp| {fidelity['max_abs_dp']:.3g} > {tol.max_abs_dp}")
    if check_decisions and not fidelity["argmax_agreement"] >= tol.min_argmax_agreement:
        reasons.append(f"argmax agreement {fidelity['argmax_agreement']:.4f} < {tol.min_argmax_agreement}")
    if not fidelity["bn_mean_err"] <= tol.max_bn_mean_err:
        reasons.append(f"BN mean error {fidelity['bn_mean_err']:.3g} std > {tol.max_bn_mean_err}")
    if not fidelity["bn_var_err"] <= tol.max_bn_var_err:
        reasons.append(f"BN variance error {fidelity['bn_var_err']:.3g} > {tol.max_bn_var_err}")
    return ("INVALID" if reasons else "VALID"), reasons


def verdict(
    fidelity: dict[str, Any], precision: str, check_decisions: bool = True, bn_subset: bool = False
) -> tuple[str, list[str]]:
    """("VALID" | "INVALID" | "UNCHECKED", reasons) for ``fidelity`` under the tolerance of ``precision``.

    ``check_decisions=False`` (timing-only runs) checks max |dp| only: an untrained network's
    near-uniform outputs make argmax agreement and issue sets measure ties, not numerics.
    ``bn_subset``: the trial's BatchNorm statistics come from fewer examples than the reference's, so only
    decisions are checked, at the looser of the precision's and :data:`BN_SUBSET_DECISIONS`' levels
    (UNCHECKED in a timing-only run, where there is nothing left to judge it by).
    """
    tol = TOLERANCES[precision]
    if bn_subset:
        if not check_decisions:
            return "UNCHECKED", [
                "BatchNorm subset in a timing-only run: neither its numbers nor its decisions can be judged"
            ]
        tol = dataclasses.replace(
            tol,
            max_abs_dp=float("inf"),
            max_bn_mean_err=float("inf"),
            max_bn_var_err=float("inf"),
            **{k: min(v, getattr(tol, k)) for k, v in BN_SUBSET_DECISIONS.items()},
        )
    reasons = []
    if not fidelity["max_abs_dp"] <= tol.max_abs_dp:  # NaN fails too
        reasons.append(f"max |dp| {fidelity['max_abs_dp']:.3g} > {tol.max_abs_dp}")
    if check_decisions and not fidelity["argmax_agreement"] >= tol.min_argmax_agreement:
        reasons.append(f"argmax agreement {fidelity['argmax_agreement']:.4f} < {tol.min_argmax_agreement}")
    if check_decisions and not fidelity["issue_jaccard"] >= tol.min_issue_jaccard:
        reasons.append(f"issue-set Jaccard {fidelity['issue_jaccard']:.3f} < {tol.min_issue_jaccard}")
    if "bn_mean_err" in fidelity:  # rows recorded before BatchNorm statistics were compared lack it
        if not fidelity["bn_mean_err"] <= tol.max_bn_mean_err:
            reasons.append(f"BN mean error {fidelity['bn_mean_err']:.3g} std > {tol.max_bn_mean_err}")
        if not fidelity["bn_var_err"] <= tol.max_bn_var_err:
            reasons.append(f"BN variance error {fidelity['bn_var_err']:.3g} > {tol.max_bn_var_err}")
    return ("INVALID" if reasons else "VALID"), reasons


def tolerances_table() -> dict[str, dict[str, float]]:
    return {k: asdict(v) for k, v in TOLERANCES.items()}
