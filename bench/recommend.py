"""The run's answer in one line: which strategy to use, what it saves and what it costs in calibration.

It is computed from the summary (``bench.results.summary_frame``) and printed as the last line of
``swagbench run``, the last section of summary.md and the box at the top of report.html.
"""

from __future__ import annotations

import pandas as pd

from bench.metrics import HEADLINE_LABELS


def describe(trial: pd.Series) -> str:
    """``openvino bf16 channels_last with BatchNorm from 1024 examples per fold`` for a summary row."""
    text = f"{trial.backend} {trial.precision}" + (" channels_last" if trial.channels_last else "")
    if trial.workers > 1 or trial.get("plan_differs", False):
        text += f" as {trial.workers} worker(s) x {trial.threads} threads"
    if pd.notna(trial.get("bn_examples")):
        text += f" with BatchNorm from {int(trial.bn_examples)} examples per fold"
    return text


def recommendation(df: pd.DataFrame) -> str:
    """A plain-language "what to use" line from a summary frame.

    The fastest VALID trial by (median) whole-ensemble minutes, its speedup over eager fp32 and its
    calibration cost; when other VALID trials' measured ranges overlap its own (``repeats`` > 1), they are
    named as ties instead of crowning one; with one repeat per trial it says that the noise was not measured.
    """
    if df.empty or not (df.status == "ok").any():
        return "No trial succeeded, so there is nothing to recommend; each trial's error is listed above."
    valid = df[(df.status == "ok") & (df.validity == "VALID")].sort_values("ensemble_min")
    if valid.empty:
        return "No trial was both successful and VALID, so there is nothing to recommend from this run."
    ref_plan = df[df.is_reference].plan.tolist()
    valid = valid.assign(plan_differs=valid.plan != ref_plan[0] if ref_plan else False)
    best = valid.iloc[0]
    others = valid.iloc[1:]
    measured = (others.repeats > 1) & (best.repeats > 1)  # one repeat has no range to overlap
    ties = others[measured & (others.ensemble_min_lo <= best.ensemble_min_hi)]
    if len(ties):
        names = ", ".join(f"{describe(t)} ({t.ensemble_min:.3g} min)" for _, t in ties.iterrows())
        line = (
            f"No single winner: {describe(best)} ({best.ensemble_min:.3g} min, {best.speedup:.2f}x eager fp32) and "
            f"{names} are within this run's measured noise (their min-max ranges over {int(best.repeats)} repeats "
            "overlap); choose among them by calibration and memory below, or rerun with more repeats"
        )
    elif best.is_reference:
        return (
            f"Stay on eager fp32 ({best.ensemble_min:.3g} min for the ensemble): no other VALID trial was faster on "
            "this workload" + _noise_note(best)
        )
    else:
        line = (
            f"Use {describe(best)} ({best.strategy}): the fastest VALID trial, {best.ensemble_min:.3g} min for the "
            f"ensemble, {best.speedup:.2f}x eager fp32"
        )
    if pd.notna(best.get("delta_ece")):
        line += (
            f"; calibration cost vs eager fp32 (vs {HEADLINE_LABELS} labels): ECE {best.delta_ece:+.4f}, "
            f"NLL {best.delta_nll:+.4f}, label-issue set Jaccard {best.issue_jaccard:.3f}"
        )
    elif not best.is_reference:
        line += "; calibration not measured (timing-only run)"
    return line + _noise_note(best)


def _noise_note(best: pd.Series) -> str:
    if best.repeats > 1:
        return f" (spread over {int(best.repeats)} repeats: {best.ensemble_spread:.0%})."
    return " (one repeat per trial: run-to-run noise not measured; repeats=3 measures it)."
