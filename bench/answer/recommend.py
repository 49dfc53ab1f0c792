"""The run's answer: which strategy to use, what it saves and what it costs in calibration, as one line and as data.

It is computed from the summary (``swagbench.bench.report.frames.summary_frame``): the line is the last of ``swagbench
run``, the last section of summary.md and the box at the top of report.html; :func:`recommendation_record` is
``recommendation.json``, which ``swagbench run --strategy`` and the Python predictor (``swagbench.bench.api``) take as
the strategy to run.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from swagbench.bench.answer.auto import resolved_options
from swagbench.bench.answer.metrics import HEADLINE_LABELS
from swagbench.bench.answer.projection import PROJECTION_ERROR
from swagbench.bench.config.strategy import FORMAT
from swagbench.bench.progress import duration

# The settings of a trial that make its strategy (TrialConfig fields), as recommendation.json's "strategy" holds them.
STRATEGY_KEYS = ("backend", "precision", "channels_last", "threads", "workers", "batch_size", "members", "options")


def describe(trial: pd.Series) -> str:
    """``openvino bf16 channels_last with BatchNorm from 1024 examples per fold`` for a summary row."""
    text = f"{trial.backend} {trial.precision}" + (" channels_last" if trial.channels_last else "")
    if trial.workers > 1 or trial.get("plan_differs", False):
        text += f" as {trial.workers} worker(s) x {trial.threads} threads"
    if pd.notna(trial.get("bn_examples")):
        text += f" with BatchNorm from {int(trial.bn_examples):,} examples per fold"
        text += (
            " (bn_examples auto: the smallest size of the run's ladder within its limits)"
            if trial.get("bn_auto")
            else ""
        )
    if isinstance(trial.get("bn_engine"), str):
        text += f", its BatchNorm pass in {trial.bn_engine.replace(':', ' ').replace(' cl', ' channels_last')}"
    return text


def ranked(df: pd.DataFrame) -> pd.DataFrame:
    """Successful VALID trials, fastest first at the target size (``target_min``, the projection to the user's job;
    measured minutes where a trial has no projection), each marked with whether its thread plan differs from the
    reference's (``plan_differs``) and whether it is within the fastest's measured noise (``tie``: min-max ranges
    over repeats, scaled to the target, overlap; never with one repeat, which has no range). ``rank_min`` holds the
    minutes ranked by, ``rank_speedup`` the speedup over eager fp32 there."""
    if df.empty or "validity" not in df:
        return df.iloc[0:0]
    valid = df[(df.status == "ok") & (df.validity == "VALID")]
    if "target_lacks" in valid:  # a precision the job machine does not run natively: shown, never recommended
        valid = valid[valid.target_lacks.isna()]
    if valid.empty:
        return valid
    # at the run's own size the measured minutes are the answer; a projection only where the target differs
    at_target = "target_min" in valid and valid.target_min.notna().all() and (valid.target_size != valid.run_size).all()
    minutes = valid.target_min if at_target else valid.ensemble_min
    speedup = valid.target_speedup if at_target else valid.speedup
    valid = valid.assign(rank_min=minutes, rank_speedup=speedup).sort_values("rank_min")
    ref_plan = df[df.is_reference].plan.tolist()
    valid = valid.assign(plan_differs=valid.plan != ref_plan[0] if ref_plan else False)
    scale = valid.rank_min / valid.ensemble_min
    best = valid.iloc[0]
    measured = (valid.repeats > 1) & (best.repeats > 1)
    tie = measured & (valid.ensemble_min_lo * scale <= best.ensemble_min_hi * scale.iloc[0])
    tie.iloc[0] = False
    return valid.assign(tie=tie)


def _projected(best: pd.Series) -> bool:
    """Whether the answer is made at a target size other than the run's own."""
    return pd.notna(best.get("target_min")) and best.get("target_size") != best.get("run_size")


def recommendation(df: pd.DataFrame) -> str:
    """A plain-language "what to use" line from a summary frame.

    The fastest VALID trial for the target job (by its whole-ensemble minutes projected there, see
    :mod:`swagbench.bench.answer.projection`; by the measured ones where the target is the run itself), its speedup over
    eager fp32 and its calibration cost; when other VALID trials' measured ranges overlap its own (``repeats`` > 1),
    they are named as ties instead of crowning one; with one repeat per trial it says that the noise was not measured.
    """
    if df.empty or not (df.status == "ok").any():
        return "No trial succeeded, so there is nothing to recommend; each trial's error is listed above."
    valid = ranked(df)
    if valid.empty:
        return (
            "No trial was both successful and VALID"
            + (f" in precisions {_machine(df)} runs natively" if _foreign(df).any() else "")
            + ", so there is nothing to recommend from this run."
        )
    best, ties = valid.iloc[0], valid[valid.tie]
    took = duration(best.rank_min * 60)
    where = f" for a job of {best.target_size}" if _projected(best) else ""
    if len(ties):
        names = ", ".join(f"{describe(t)} ({duration(t.rank_min * 60)})" for _, t in ties.iterrows())
        line = (
            f"No single winner{where}: {describe(best)} ({took}, {best.rank_speedup:.2f}x eager "
            f"fp32) and {names} are within this run's measured noise (their min-max ranges over {int(best.repeats)} "
            "repeats overlap); choose among them by calibration and memory below, or rerun with more repeats"
        )
    elif best.is_reference:
        return (
            f"Stay on eager fp32{where} ({took} for the ensemble): no other VALID trial was faster"
            + _measured_note(best)
            + _isa_note(df)
            + _noise_note(best)
        )
    else:
        line = (
            f"Use {describe(best)} ({best.strategy}): the fastest VALID trial{where}, {took} for "
            f"the ensemble, {best.rank_speedup:.2f}x eager fp32"
        )
    line += _measured_note(best) + _isa_note(df)
    if pd.notna(best.get("delta_ece")):
        line += (
            f"; calibration cost vs eager fp32 (vs {HEADLINE_LABELS} labels): ECE {best.delta_ece:+.4f}, "
            f"NLL {best.delta_nll:+.4f}, label-issue set Jaccard {best.issue_jaccard:.3f}"
        )
    elif not best.is_reference:
        line += "; calibration not measured (timing-only run)"
    return line + _noise_note(best)


def _foreign(df: pd.DataFrame) -> pd.Series:
    """VALID trials left out of the answer because the job machine lacks a precision they used."""
    if "target_lacks" not in df:
        return pd.Series(False, index=df.index)
    return (df.status == "ok") & (df.validity == "VALID") & df.target_lacks.notna()


def _machine(df: pd.DataFrame) -> str:
    return str(df.target_machine.dropna().iloc[0]) if "target_machine" in df and df.target_machine.notna().any() else ""


def _isa_note(df: pd.DataFrame) -> str:
    """Which VALID trials the answer left out for the job machine's instruction set, and why."""
    foreign = df[_foreign(df)]
    if foreign.empty:
        return ""
    names = ", ".join(f"{describe(t)} (needs {t.target_lacks})" for _, t in foreign.iterrows())
    return f"; not recommended for {_machine(df)}, which lacks them natively: {names}"


def _measured_note(best: pd.Series) -> str:
    """What the run itself measured, where the answer is a projection, and how far to trust the projection."""
    if not _projected(best):
        return ""
    return (
        f" (projected from this run's {best.run_size}, good to about +-{PROJECTION_ERROR:.0%}; measured there: "
        f"{duration(best.ensemble_min * 60)}, {best.speedup:.2f}x)"
    )


def _noise_note(best: pd.Series) -> str:
    if best.repeats > 1:
        return f" (spread over {int(best.repeats)} repeats: {best.ensemble_spread:.0%})."
    return " (one repeat per trial: run-to-run noise not measured; repeats=3 measures it)."


def recommendation_record(df: pd.DataFrame, rows: list, run_name: str) -> dict[str, Any]:
    """recommendation.json: the winning trial's strategy (its TrialConfig settings, ``strategy`` None when no trial
    was successful and VALID) for the target job, its minutes and speedup there (``target``: projected, with the
    projection's expected relative error, unless the target is the run itself), what the run measured (speedup,
    calibration cost, the size), the trials tied with it, and the one-line answer."""
    valid = ranked(df)
    record: dict[str, Any] = {"format": FORMAT, "run": run_name, "answer": recommendation(df), "strategy": None}
    if valid.empty:
        return record
    best = valid.iloc[0]
    row = next(r for r in rows if r.trial_id == best.trial)

    def number(key: str) -> float | None:
        value = best.get(key)
        return None if value is None or pd.isna(value) else float(value)

    record.update(
        trial_id=row.trial_id,
        strategy={
            **{key: getattr(row, key) for key in STRATEGY_KEYS},
            "options": resolved_options(row.options, row.auto),  # what auto chose, for the target it was chosen for
            # the run's own thread plan is left to the machine that runs the strategy (its CPUs / workers)
            **({} if best.plan_differs else {"threads": None, "workers": None}),
            "bn_examples": row.trial_bn_examples,
            "bn": row.bn_engine,
        },
        target={
            "size": best.get("target_size"),
            "projected": bool(_projected(best)),
            "ensemble_min": number("rank_min"),
            "speedup_vs_eager_fp32": number("rank_speedup"),
            "expected_error": PROJECTION_ERROR if _projected(best) else 0.0,
        },
        measured={
            "ensemble_min": number("ensemble_min"),
            "speedup_vs_eager_fp32": number("speedup"),
            "delta_ece": number("delta_ece"),
            "delta_nll": number("delta_nll"),
            "issue_jaccard": number("issue_jaccard"),
            "repeats": int(best.repeats or 1),
            "images": row.n_examples,
            "folds": row.folds,
            "samples": row.samples,
        },
        ties=[str(t) for t in valid[valid.tie].trial],
    )
    return record
