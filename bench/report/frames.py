"""The frames a report is drawn from, built once per report from the rows: one flat row per trial
(:func:`summary_frame`) and trial x S calibration (:func:`calibration_frame`). Renderers read only these."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pandas as pd

from swagbench.backends.precisions import not_native
from swagbench.bench.answer.auto import pair_images, strategy_text
from swagbench.bench.answer.fidelity import is_reference_row
from swagbench.bench.answer.metrics import CALIBRATION_KEYS
from swagbench.bench.answer.projection import PROJECTED_PHASES, setup_costs, target_projection, target_sizes
from swagbench.bench.answer.subset import misses, rung
from swagbench.bench.config.settings import parse_engine
from swagbench.bench.measure.steady import harness_share
from swagbench.bench.measure.timing import PHASES
from swagbench.bench.record.row import TrialRow, as_row


def summary_frame(
    rows: list[TrialRow | dict[str, Any]],
    target: dict[str, Any] | None = None,
    isa: tuple[str, list[str]] | None = None,
) -> pd.DataFrame:
    """One flat row per trial: minutes per phase, throughput, memory, calibration, detection, speedup.

    ``ensemble_min`` is the per-trial wall-clock cost (sample + BN update + prepare + warm-up + predict over all
    workers, then confident learning); phase minutes are worker-minutes summed over a trial's workers; ``train_min`` is
    shared by all trials of the run and listed apart. ``speedup`` is eager-fp32 ensemble_min divided by this trial's;
    ``predict_speedup`` the same for steady-state predict throughput (img/s). ``target_min`` is ``ensemble_min``
    projected to ``target`` (the config's ``target`` mapping: the user's job, see
    :mod:`swagbench.bench.answer.projection`) and ``target_speedup`` the speedup there. ``isa`` (what to call the
    job machine, its instruction-set features; ``swagbench.bench.measure.hardware_profiles.target_isa``) fills
    ``target_lacks``: the precisions a trial used (its own, its BatchNorm pass's) that the job machine does not run
    natively, None where it runs them all; such a trial is never recommended.
    """
    df = pd.DataFrame(
        [{**_settings(r), **_timing(r), **_quality(r), **_target(r, target, isa)} for r in map(as_row, rows)]
    )
    if df.empty:
        return df
    # The reference is the first such row, as the run's fidelity gate took it (swagbench.bench.run); another eager fp32
    # trial (say with another thread plan) is a strategy like any other.
    df["is_reference"] = df.index == (df.index[df.is_reference][0] if df.is_reference.any() else -1)
    ref = df[df.is_reference]
    df["speedup"] = ref.ensemble_min.iloc[0] / df.ensemble_min if len(ref) else None
    df["predict_speedup"] = df.img_per_s / ref.img_per_s.iloc[0] if len(ref) else None
    df["target_speedup"] = ref.target_min.iloc[0] / df.target_min if len(ref) else None
    return df


def _settings(r: TrialRow) -> dict[str, Any]:
    """What the trial was: backend, precision, layout, plan, BN pass, outcome."""
    return {
        "trial": r.trial_id,
        "is_reference": is_reference_row(r),
        "backend": r.backend,
        "precision": r.precision,
        "channels_last": r.channels_last,
        "strategy": strategy_text(r.strategy, r.auto),
        "threads": r.threads,
        "workers": r.workers,
        "plan": f"{r.workers}x{r.threads}",
        "members": r.members,
        "bn": bn_description(r.bn_update, r.bn_engine),
        "bn_examples": r.bn_examples,
        "bn_auto": r.bn_choice is not None,
        "bn_engine": r.bn_engine,
        "batch": r.batch_size,
        "status": r.status,
        "result": r.validity if r.status == "ok" else r.status,
        "metrics": "meaningful" if r.metrics_meaningful else "not meaningful (timing-only)",
    }


def _timing(r: TrialRow) -> dict[str, Any]:
    """Minutes (whole ensemble, repeats, per phase), throughput, roofline, setup costs and memory."""
    phases = r.phases_s or {}
    repeats = r.ensemble_s_repeats or ([r.ensemble_s] if r.ensemble_s is not None else [])
    roof, roof_bn = r.roofline or {}, r.roofline_bn or {}
    worker_s = sum(v for k, v in phases.items() if k != "confident_learning")
    samples = r.samples_total or 0
    return {
        "ensemble_min": r.ensemble_s / 60 if r.ensemble_s is not None else None,
        "repeats": len(repeats) or None,
        "ensemble_min_lo": min(repeats) / 60 if repeats else None,
        "ensemble_min_hi": max(repeats) / 60 if repeats else None,
        "ensemble_spread": (max(repeats) - min(repeats)) / r.ensemble_s if len(repeats) > 1 else None,
        "train_min": r.train_s / 60,
        **{f"{p}_min": phases[p] / 60 if p in phases else None for p in PHASES},
        "img_per_s": r.predict_img_per_s,
        "gflops": roof.get("achieved_gflops"),
        "pct_of_peak": roof.get("pct_of_peak"),
        "prepare_s_per_sample": phases["prepare"] / samples if phases and samples else None,
        "sample_prepare_share": (phases["sample"] + phases["prepare"]) / worker_s if worker_s else None,
        "bn_img_per_s": r.bn_img_per_s,
        **setup_costs(r.sample_phases_s or []),
        "bn_pct_of_peak": roof_bn.get("pct_of_peak"),
        "peak_rss_gb": r.peak_rss_bytes / 1e9 if r.peak_rss_bytes else None,
        "peak_anon_gb": r.peak_anon_bytes / 1e9 if r.peak_anon_bytes else None,
        "parent_anon_gb": r.parent_peak_anon_bytes / 1e9 if r.parent_peak_anon_bytes else None,
        "rss_growth_gb": r.rss_growth_bytes / 1e9 if r.rss_growth_bytes is not None else None,
    }


def _quality(r: TrialRow) -> dict[str, Any]:
    """Calibration (given and true labels), detection, fidelity and the verdict; timing-only runs show none of
    their quality numbers."""
    meaningful = r.metrics_meaningful
    # calibration: vs the true labels when known; calibration_given: vs the given labels (the headline)
    cal = (r.calibration or {}) if meaningful and r.calibration_labels == "true" else {}
    given = (r.calibration_given or {}) if meaningful else {}
    det = (r.label_issues or {}) if meaningful else {}
    fid = r.fidelity or {}
    return {
        **{f"{k}_given": given.get(k) for k in CALIBRATION_KEYS},
        **{f"{k}_true": cal.get(k) for k in CALIBRATION_KEYS},
        "issue_precision": det.get("precision"),
        "issue_recall": det.get("recall"),
        "issue_f1": det.get("f1"),
        "max_abs_dp": fid.get("max_abs_dp"),
        "argmax_agree": fid.get("argmax_agreement"),
        "issue_jaccard": fid.get("issue_jaccard"),
        "delta_ece": fid.get("delta_ece") if meaningful else None,
        "delta_nll": fid.get("delta_nll") if meaningful else None,
        "delta_issue_f1": fid.get("delta_issue_f1") if meaningful else None,
        "bn_mean_err": fid.get("bn_mean_err"),
        "validity": r.validity,
        "error": r.error or "; ".join(r.validity_reasons or []) or _untimed(r),
    }


def flagged_trials(df: pd.DataFrame) -> pd.Series:
    """(trials,) bool: the trials a reader must see listed apart: failed, timed out, out of memory, skipped or
    INVALID (``result`` says which)."""
    return (df.status != "ok") | (df.validity == "INVALID")


def _target(r: TrialRow, target: dict[str, Any] | None, isa: tuple[str, list[str]] | None) -> dict[str, Any]:
    """The job size the answer is for (the run's own where the config names none) and the trial's minutes there, in
    total (``target_min``) and per projected phase (``target_<phase>_min``); the job machine (``target_machine``) and
    the precisions it would not run natively (``target_lacks``); ``harness_share``: the share of the per-image phases'
    steady time there spent outside the runtime's call (:func:`swagbench.bench.measure.steady.harness_share`)."""
    lacks = not_native(trial_precisions(r), isa[1]) if isa else []
    machine = {
        "target_machine": f"{isa[0]} ({', '.join(isa[1]) or 'no avx2'})" if isa else None,
        "target_lacks": ", ".join(lacks) or None,
    }
    if not r.n_examples:
        return {"target_min": None, "run_size": None, "target_size": None, **machine}
    images, folds, samples = target_sizes(r, target)
    projected = target_projection(r, target) or {}
    return {
        "harness_share": harness_share(r.steady or {}, pair_images(images, folds, r.bn_examples)),
        "target_min": projected.get("ensemble"),
        **{f"target_{phase}_min": projected.get(phase) for phase in PROJECTED_PHASES},
        "run_size": size_text(r.n_examples, r.folds, r.samples),
        "target_size": size_text(images, folds, samples),
        **machine,
    }


def trial_precisions(r: TrialRow) -> list[str]:
    """The precisions a trial computed in: its own, and its BatchNorm pass's where that ran another."""
    bn = (r.bn_update or {}).get("precision") if (r.bn_update or {}).get("where") not in (None, "none") else None
    return [r.precision] + ([bn] if bn else [])


def size_text(images: int, folds: int, samples: int) -> str:
    """``50,000 images x 5 folds x 16 samples``."""
    return f"{images:,} images x {folds} folds x {samples} samples"


def _untimed(row: TrialRow) -> str | None:
    """Why a successful trial has no predict throughput (rather than a blank cell nobody can read)."""
    if row.status == "ok" and row.predict_img_per_s is None:
        return (
            "no predict batch was timed: every batch was a first call after its runner was built (warm-up); "
            "use a smaller batch_size or more examples per fold"
        )
    return None


def bn_description(info: dict[str, Any] | None, engine: str | None = None) -> str | None:
    """Where and how a trial's BatchNorm pass ran, for tables: ``backend bf16 cl``, ``eager fp32 (fallback)``, or
    for a hybrid trial its BatchNorm engine's name (``eager bf16 cl``)."""
    if not info:
        return None  # rows recorded before the BatchNorm pass ran in backends
    if info["where"] == "none":
        return "none (no BatchNorm)"
    where = parse_engine(engine)["backend"] if engine and info["where"] == "backend" else info["where"]
    text = f"{where} {info['precision']}" + (" cl" if info.get("layout") == "channels_last" else "")
    return text + (" (fallback)" if info["where"] == "eager" and info.get("reason") else "")


def subset_frame(rows: list[TrialRow], df: pd.DataFrame) -> pd.DataFrame:
    """The BatchNorm subset ladder (``swagbench.bench.answer.subset``) of a run with real labels, smallest first, the
    full-data reference last: each eager fp32 subset trial's BatchNorm images per fold, its summary columns (``df``:
    speedups, calibration vs the given labels, issue Jaccard and the changes against full data), the limits it misses
    and which size a ``bn_examples: auto`` trial chose. Empty for a timing-only run or one without such trials."""
    ref = next((r for r in rows if is_reference_row(r)), None)
    steps = {r.trial_id: step for r in rows if (step := rung(r))}
    if ref is None or not steps or not ref.metrics_meaningful or df.empty:
        return pd.DataFrame()
    choice = next((r.bn_choice for r in rows if r.bn_choice), None)
    part = df[df.trial.isin([*steps, ref.trial_id])].copy()
    full = ref.n_examples * (ref.folds - 1) // ref.folds  # a fold's training part
    images = [steps[t]["images"] if t in steps else full for t in part.trial]
    chosen = "none" if choice is None else choice["chosen"]  # None: auto kept the full data
    part["bn_images"] = images
    part["limits"] = ["; ".join(misses(steps[t])) or "within" if t in steps else "full data" for t in part.trial]
    part["chosen"] = [
        ("chosen" if (n if t in steps else None) == chosen else "") if choice else None
        for t, n in zip(part.trial, images, strict=True)
    ]
    return part.sort_values("bn_images").reset_index(drop=True)


def calibration_frame(rows: list[TrialRow | dict[str, Any]]) -> pd.DataFrame:
    """Long table: trial x ensemble size S -> ``<metric>_given`` and ``<metric>_true`` for ECE, MCE, NLL, Brier and
    accuracy (``_true`` empty where the truth is unknown)."""
    records = []
    for r in map(as_row, rows):
        if not r.metrics_meaningful:
            continue
        truth = r.calibration_labels == "true"
        for point in r.calibration_vs_samples or []:
            rec = {"trial": r.trial_id, "samples": point["samples"]}
            for k in CALIBRATION_KEYS:
                rec[f"{k}_given"] = point.get(f"{k}_given", None if truth else point.get(k))
                rec[f"{k}_true"] = point.get(k) if truth else None
            records.append(rec)
    return pd.DataFrame(records)


def with_ceilings(df: pd.DataFrame, rows: list[TrialRow], ceilings: dict[str, Any]) -> pd.DataFrame:
    """``df`` with each trial's runtime ceilings (``swagbench.bench.measure.ceiling``: the runtime's own throughput,
    same precision, layout and threads, on the plain eval model at the trial's batch, and on the BatchNorm pass's
    statistics graph at the BatchNorm batch, in the engine and precision the pass ran in) and its predict and BatchNorm
    throughput
    as shares of them; unchanged where none was measured."""
    from swagbench.bench.measure.ceiling import ceiling_key, statistics_key

    if df.empty or not ceilings:
        return df

    def rate(key: str | None):  # None: no such pass
        return ceilings.get(key, {}).get("img_per_s")

    rows = list(map(as_row, rows))
    bn_batch = [((r.steady or {}).get("bn_update") or {}).get("batch") for r in rows]
    predict = [rate(ceiling_key(r.backend, r.precision, r.channels_last, r.batch_size)) for r in rows]
    bn = [rate(statistics_key(r, b)) if b else None for r, b in zip(rows, bn_batch, strict=True)]
    df = df.assign(
        ceiling_img_per_s=pd.to_numeric(pd.Series(predict, index=df.index), errors="coerce"),
        bn_ceiling_img_per_s=pd.to_numeric(pd.Series(bn, index=df.index), errors="coerce"),
    )
    df["predict_pct_ceiling"] = df.img_per_s / df.ceiling_img_per_s
    df["bn_pct_ceiling"] = df.bn_img_per_s / df.bn_ceiling_img_per_s
    return df


@dataclass
class ReportData:
    """Everything a report shows, read and built once: the rows, their frames, the run's environment and config."""

    name: str
    rows: list[TrialRow]
    df: pd.DataFrame
    cal: pd.DataFrame
    env: dict[str, Any]
    config_text: str
    target: dict[str, Any] | None = None

    @classmethod
    def of(cls, run, rows: list[TrialRow]) -> ReportData:
        """From a :class:`swagbench.bench.record.rundir.RunDir` and its rows (and the target size its config names)."""
        from swagbench.bench.measure.hardware_profiles import target_isa

        target = run.config_dict().get("target") if run.config_path.is_file() else None
        env = run.read_env()
        isa = target_isa((target or {}).get("isa"), (env.get("cpu") or {}).get("flags"))
        df = with_ceilings(summary_frame(rows, target, isa), rows, run.read_ceilings())
        return cls(run.name, rows, df, calibration_frame(rows), run.read_env(), run.config_text(), target)

    @property
    def reference(self) -> TrialRow | None:
        """The row of the trial every other is judged against (successful eager fp32), if there is one."""
        return next((r for r in self.rows if is_reference_row(r)), None)

    @property
    def flagged(self) -> pd.DataFrame:
        """Failed, skipped or INVALID trials."""
        return self.df[flagged_trials(self.df)] if len(self.df) else self.df

    @property
    def noted(self) -> pd.DataFrame:
        """Successful, VALID trials with a note (e.g. no timed predict batch)."""
        return self.df[~flagged_trials(self.df) & self.df.error.notna()] if len(self.df) else self.df

    @property
    def has_ceilings(self) -> bool:
        """Whether the runtimes' ceilings were measured for this run (``swagbench ceiling``)."""
        return "ceiling_img_per_s" in self.df

    @functools.cached_property
    def subset(self) -> pd.DataFrame:
        """The BatchNorm subset ladder (:func:`subset_frame`; empty where the run has none), built once per report."""
        return subset_frame(self.rows, self.df)

    @property
    def has_quality(self) -> bool:
        """Whether any trial has calibration to show (not a timing-only run, and something succeeded)."""
        return bool(len(self.df)) and bool(self.df.ece_given.notna().any())
