"""Fidelity gate (MLPerf-style validity): every trial against the eager fp32 reference.

Both trials evaluate the same SWAG samples (same seeds), so their per-sample probabilities
(``member_probs.npy``, (S, N, C)) are compared element by element.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """Limits a trial must meet to be VALID.

    max_abs_dp: largest |p_trial - p_eager| over all samples, examples and classes.
    min_argmax_agreement: fraction of (sample, example) pairs with the same top class.
    min_issue_jaccard: |A ∩ B| / |A ∪ B| of the label-issue sets found by confident learning.
    """

    max_abs_dp: float
    min_argmax_agreement: float
    min_issue_jaccard: float


# The one place tolerances live. fp32 backends differ from eager only by summation order;
# bf16 keeps 8 mantissa bits and int8 quantizes weights and activations, so both are looser
# but still require the label-issue set, the product of the pipeline, to stay nearly the same.
TOLERANCES = {
    "fp32": Tolerance(max_abs_dp=1e-3, min_argmax_agreement=0.999, min_issue_jaccard=0.95),
    "bf16": Tolerance(max_abs_dp=0.15, min_argmax_agreement=0.97, min_issue_jaccard=0.85),
    "int8": Tolerance(max_abs_dp=0.25, min_argmax_agreement=0.95, min_issue_jaccard=0.75),
}


def is_reference(backend: str, precision: str, channels_last: bool) -> bool:
    """The eager fp32 (contiguous) trial every other trial is compared with."""
    return backend == "eager" and precision == "fp32" and not channels_last


def compare(ref_dir: Path, trial_dir: Path, ref_row: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Fidelity of one trial's outputs against the reference trial's (both trial directories)."""
    ref = np.load(ref_dir / "member_probs.npy", mmap_mode="r")
    got = np.load(trial_dir / "member_probs.npy", mmap_mode="r")
    if ref.shape != got.shape:
        raise ValueError(f"member_probs shapes differ: reference {ref.shape}, trial {got.shape}")
    max_dp, agree = 0.0, 0
    for s in range(ref.shape[0]):  # one sample at a time: never S x N x C in memory twice
        max_dp = max(max_dp, float(np.abs(ref[s] - got[s]).max()))
        agree += int((ref[s].argmax(1) == got[s].argmax(1)).sum())
    a = np.load(ref_dir / "label_issues.npy")
    b = np.load(trial_dir / "label_issues.npy")
    union = int((a | b).sum())
    out = {
        "max_abs_dp": max_dp,
        "argmax_agreement": agree / (ref.shape[0] * ref.shape[1]),
        "issue_jaccard": 1.0 if union == 0 else int((a & b).sum()) / union,
    }
    for key in ("ece", "nll"):
        out[f"delta_{key}"] = row["calibration"][key] - ref_row["calibration"][key]
    return out


def verdict(fidelity: dict[str, Any], precision: str, check_decisions: bool = True) -> tuple[str, list[str]]:
    """("VALID" | "INVALID", reasons) for ``fidelity`` under the tolerance of ``precision``.

    ``check_decisions=False`` (timing-only runs) checks max |dp| only: an untrained network's
    near-uniform outputs make argmax agreement and issue sets measure ties, not numerics.
    """
    tol = TOLERANCES[precision]
    reasons = []
    if fidelity["max_abs_dp"] > tol.max_abs_dp:
        reasons.append(f"max |dp| {fidelity['max_abs_dp']:.3g} > {tol.max_abs_dp}")
    if check_decisions and fidelity["argmax_agreement"] < tol.min_argmax_agreement:
        reasons.append(f"argmax agreement {fidelity['argmax_agreement']:.4f} < {tol.min_argmax_agreement}")
    if check_decisions and fidelity["issue_jaccard"] < tol.min_issue_jaccard:
        reasons.append(f"issue-set Jaccard {fidelity['issue_jaccard']:.3f} < {tol.min_issue_jaccard}")
    return ("INVALID" if reasons else "VALID"), reasons


def tolerances_table() -> dict[str, dict[str, float]]:
    return {k: asdict(v) for k, v in TOLERANCES.items()}
