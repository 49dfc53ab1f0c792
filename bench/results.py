"""Results store: ``results/<run-id>/results.jsonl`` (one row per trial) and its summaries.

Rows are appended with a single ``write`` on an O_APPEND descriptor followed by fsync, so a
row is either wholly on disk or absent. Each row carries ``row_sha256``, the SHA-256 of its own
canonical JSON without that key: a torn last line (killed mid-write) or a damaged line is detected
on read, reported, and skipped; every other row is kept. A resumed run appends a newer row for a
trial; readers take the last one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import ResultsError
from bench.fidelity import is_reference_row
from bench.metrics import CALIBRATION_KEYS
from bench.row import TrialRow, as_row
from bench.timing import PHASES

ROWS = "results.jsonl"
CHECKSUM = "row_sha256"


def new_run_dir(results_dir: str | Path, name: str) -> Path:
    """Create ``results_dir/<UTC timestamp>-<name>`` and return it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = Path(results_dir) / f"{stamp}-{name}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise ResultsError(
            f"cannot create results directory {path} ({exc.strerror}); pass a writable --results-dir"
        ) from exc
    return path


def read_env(run_dir: str | Path) -> dict[str, Any]:
    """The run's env.json (machine, packages, profile, peak), or {} where a run folder has none."""
    path = Path(run_dir) / "env.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _digest(row: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in row.items() if k != CHECKSUM}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def append_row(run_dir: Path, row: TrialRow | dict[str, Any]) -> None:
    """Append one checksummed JSON row (checked against :class:`bench.row.TrialRow`) to the run's
    results.jsonl atomically and durably."""
    row = as_row(row).to_dict()
    line = json.dumps({**row, CHECKSUM: _digest(row)}, sort_keys=True) + "\n"
    path = run_dir / ROWS
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ResultsError(f"cannot open {path} for writing ({exc.strerror}); pass a writable run directory") from exc
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line  # after a torn line: start a fresh one, leave the fragment to be skipped
        os.write(fd, line.encode())
        os.fsync(fd)
    except OSError as exc:
        raise ResultsError(
            f"cannot write results to {path} ({exc.strerror}); free disk space and resume the run"
        ) from exc
    finally:
        os.close(fd)


def read_rows(run_dir: str | Path, warn=None) -> list[TrialRow]:
    """The latest complete row of every trial, in first-seen order.

    A line that does not parse or fails its checksum (torn by a kill, damaged on disk) is
    skipped and reported through ``warn`` (default: stderr). An intact row that is not of this
    swagbench's schema (a newer version, an unknown field) raises ResultsError: never misread.
    """
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    path = Path(run_dir) / ROWS
    if not path.is_file():
        raise ResultsError(f"{path} does not exist; pass a run directory made by 'swagbench run'")
    try:
        lines = path.read_bytes().decode(errors="replace").splitlines()
    except OSError as exc:
        raise ResultsError(f"cannot read {path} ({exc.strerror}); check the permissions of the run directory") from exc
    rows: dict[str, dict[str, Any]] = {}
    last_line: dict[str, int] = {}  # trial id -> line of its latest intact row
    damaged: list[tuple[int, str | None]] = []  # (line, trial id if it can still be read)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            intact = isinstance(row, dict) and row.get(CHECKSUM) == _digest(row)
        except json.JSONDecodeError:
            row, intact = None, False
        if not intact:
            trial = row.get("trial_id") if isinstance(row, dict) else re.search(r'"trial_id": "([^"]+)"', line)
            damaged.append((number, trial if isinstance(trial, str) or trial is None else trial.group(1)))
            continue
        row.pop(CHECKSUM)
        row = TrialRow.from_dict(row, where=f"{path} line {number}")
        rows[row.trial_id] = row  # a rerun's row replaces the earlier one, in its place
        last_line[row.trial_id] = number
    for number, trial in damaged:
        # Damage matters until its trial has a newer intact row. A torn fragment too short to name its trial
        # was the last row being written; a resume reruns that trial first, so any later intact row means so.
        if trial is not None:
            superseded = last_line.get(trial, 0) > number
        else:
            superseded = any(line > number for line in last_line.values())
        if not superseded:
            warn(f"swagbench: {path} line {number} is torn or damaged; skipped (its trial reruns on --resume)")
    return list(rows.values())


def summary_frame(rows: list[TrialRow | dict[str, Any]]) -> pd.DataFrame:
    """One flat row per trial: minutes per phase, throughput, memory, calibration, detection, speedup.

    ``ensemble_min`` is the per-trial wall-clock cost (sample + BN update + prepare + warm-up +
    predict over all workers, then confident learning); phase minutes are worker-minutes summed
    over a trial's workers; ``train_min`` is shared by all trials of the run and listed apart.
    ``speedup`` is eager-fp32 ensemble_min divided by this trial's; ``predict_speedup`` the
    same for steady-state predict throughput (img/s).
    """
    records = []
    for r in map(as_row, rows):
        phases = r.phases_s or {}
        meaningful = r.metrics_meaningful  # timing-only runs: never show their quality numbers
        # calibration: vs the true labels when known; calibration_given: vs the given labels (the headline)
        cal = (r.calibration or {}) if meaningful and r.calibration_labels == "true" else {}
        given = (r.calibration_given or {}) if meaningful else {}
        repeats = r.ensemble_s_repeats or ([r.ensemble_s] if r.ensemble_s is not None else [])
        det = (r.label_issues or {}) if meaningful else {}
        fid = r.fidelity or {}
        roof = r.roofline or {}
        roof_bn = r.roofline_bn or {}
        worker_s = sum(v for k, v in phases.items() if k != "confident_learning")
        samples = r.samples_total or 0
        workers = r.workers
        rec = {
            "trial": r.trial_id,
            "is_reference": is_reference_row(r),
            "backend": r.backend,
            "precision": r.precision,
            "channels_last": r.channels_last,
            "strategy": r.strategy,
            "threads": r.threads,
            "workers": workers,
            "plan": f"{workers}x{r.threads}",
            "members": r.members,
            "bn": bn_description(r.bn_update),
            "bn_examples": r.bn_examples,
            "batch": r.batch_size,
            "status": r.status,
            "result": r.validity if r.status == "ok" else r.status,
            "metrics": "meaningful" if meaningful else "not meaningful (timing-only)",
            "ensemble_min": r.ensemble_s / 60 if r.ensemble_s is not None else None,
            "repeats": len(repeats) or None,
            "ensemble_min_lo": min(repeats) / 60 if repeats else None,
            "ensemble_min_hi": max(repeats) / 60 if repeats else None,
            "ensemble_spread": (max(repeats) - min(repeats)) / r.ensemble_s if len(repeats) > 1 else None,
            "train_min": r.train_s / 60,
        }
        rec.update({f"{p}_min": phases[p] / 60 if p in phases else None for p in PHASES})
        rec.update(
            {
                "img_per_s": r.predict_img_per_s,
                "gflops": roof.get("achieved_gflops"),
                "pct_of_peak": roof.get("pct_of_peak"),
                "prepare_s_per_sample": phases["prepare"] / samples if phases and samples else None,
                "sample_prepare_share": (phases["sample"] + phases["prepare"]) / worker_s if worker_s else None,
                "bn_img_per_s": r.bn_img_per_s,
                **setup_costs(r.sample_phases_s or []),
                "bn_pct_of_peak": roof_bn.get("pct_of_peak"),
                "peak_rss_gb": r.peak_rss_bytes / 1e9 if r.peak_rss_bytes else None,
                "rss_growth_gb": r.rss_growth_bytes / 1e9 if r.rss_growth_bytes is not None else None,
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
        )
        records.append(rec)
    df = pd.DataFrame(records)
    if df.empty:
        return df
    # The reference is the first such row, as the run's fidelity gate took it (bench.run); another eager fp32
    # trial (say with another thread plan) is a strategy like any other.
    df["is_reference"] = df.index == (df.index[df.is_reference][0] if df.is_reference.any() else -1)
    ref = df[df.is_reference]
    df["speedup"] = ref.ensemble_min.iloc[0] / df.ensemble_min if len(ref) else None
    df["predict_speedup"] = df.img_per_s / ref.img_per_s.iloc[0] if len(ref) else None
    return df


def flagged_trials(df: pd.DataFrame) -> pd.Series:
    """(trials,) bool: the trials a reader must see listed apart: failed, timed out, out of memory, skipped or
    INVALID (``result`` says which)."""
    return (df.status != "ok") | (df.validity == "INVALID")


def setup_costs(sample_phases: list) -> dict[str, float | None]:
    """Prepare + warm-up seconds split by when they are paid, from a row's ``sample_phases_s``:
    ``first_setup_s`` by the trial's first sample (exports, compilation: once per trial and worker),
    ``fold_setup_s`` by each further fold's first sample (median; int8 calibration), ``sample_setup_s`` by every
    other sample (median; binding, re-preparing). None where the trial had no such sample."""
    cost = [(fold, sample, p["prepare"] + p["warmup"]) for fold, sample, p in sample_phases]
    folds = [c for i, (_, s, c) in enumerate(cost) if s == 0 and i > 0]
    later = [c for _, s, c in cost if s > 0]
    return {
        "first_setup_s": cost[0][2] if cost else None,
        "fold_setup_s": float(np.median(folds)) if folds else None,
        "sample_setup_s": float(np.median(later)) if later else None,
    }


def _untimed(row: TrialRow) -> str | None:
    """Why a successful trial has no predict throughput (rather than a blank cell nobody can read)."""
    if row.status == "ok" and row.predict_img_per_s is None:
        return (
            "no predict batch was timed: every batch was a first call after its runner was built (warm-up); "
            "use a smaller batch_size or more examples per fold"
        )
    return None


def bn_description(info: dict[str, Any] | None) -> str | None:
    """Where and how a trial's BatchNorm pass ran, for tables: ``backend bf16 cl`` or ``eager fp32 (fallback)``."""
    if not info:
        return None  # rows recorded before the BatchNorm pass ran in backends
    text = f"{info['where']} {info['precision']}" + (" cl" if info.get("layout") == "channels_last" else "")
    return text + (" (fallback)" if info["where"] == "eager" and info.get("reason") else "")


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


def write_summary(run_dir: Path, rows: list[dict[str, Any]] | None = None) -> str:
    """Write summary.csv and summary.md for the run (from ``rows`` if given); return the Markdown text.

    summary.md ends with the recommendation (:func:`bench.recommend.recommendation`)."""
    from bench import tables
    from bench.metrics import HEADLINE_LABELS, HEADLINE_WHY
    from bench.recommend import recommendation

    rows = read_rows(run_dir) if rows is None else rows
    df = summary_frame(rows)
    df.to_csv(run_dir / "summary.csv", index=False)
    parts = [f"# swagbench run {run_dir.name}", ""]
    if df.empty:
        parts += ["(no trials)", ""]
    else:
        first = rows[0]
        parts += [
            f"{first.get('dataset')} ({first.get('n_examples')} images), model {first.get('model')}, "
            f"{first.get('folds')} folds x {first.get('samples')} SWAG samples"
            + (
                "; timing-only: calibration and label metrics not meaningful"
                if not first.get("metrics_meaningful", True)
                else ""
            ),
            "",
            "## Trials (speedup = eager fp32 ensemble min / this; spread = (max - min) / median over repeats; "
            "fidelity vs eager fp32 on the same samples)",
            "",
            tables.markdown(df, tables.OVERVIEW),
            "",
            "## Minutes per phase (train is shared by all trials), and when prepare + warm-up are paid (seconds: the "
            "trial's first sample, each further fold's first, every other sample)",
            "",
            tables.markdown(df, tables.PHASE_TABLE),
        ]
        if df.ece_given.notna().any():
            parts += [
                "",
                f"## Calibration (headline: vs the {HEADLINE_LABELS} labels, because {HEADLINE_WHY}; vs the true "
                "labels beside it) and label-issue detection (vs the injected truth)",
                "",
                tables.markdown(df, tables.QUALITY),
            ]
        flagged = df[flagged_trials(df)]
        if len(flagged):
            parts += ["", "## Failed, skipped or INVALID", ""]
            parts += [f"- {t.trial}: {t.result}: {t.error}" for t in flagged.itertuples()]
        noted = df[~flagged_trials(df) & df.error.notna()]
        if len(noted):
            parts += ["", "## Notes", ""] + [f"- {t.trial}: {t.error}" for t in noted.itertuples()]
        cal = calibration_frame(rows)
        for metric, title in (("ece", "ECE"), ("nll", "NLL"), ("brier", "Brier score")) if len(cal) else ():
            parts += [
                "",
                f"## {title} vs number of SWAG samples S per fold: vs given labels (vs true labels)",
                "",
                tables.by_samples(cal, metric).to_markdown(index=False, disable_numparse=True),
            ]
    parts += ["", "## Recommendation", "", recommendation(df)]
    text = "\n".join(parts) + "\n"
    (run_dir / "summary.md").write_text(text)
    return text
