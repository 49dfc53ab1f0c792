"""A job's record (``job.json``, ``job.md``) and its finishing step: ``pred_probs.npy``, confident learning,
``label_issues.csv``."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swagbench.bench.answer.confident import find_label_issues
from swagbench.bench.errors import JobFailed
from swagbench.bench.execute.finish import check_probabilities, quality, write_label_issues
from swagbench.bench.progress import duration
from swagbench.bench.record.rundir import RunDir, TrialDir

STRATEGY_KEYS = ("backend", "precision", "channels_last", "threads", "workers", "batch_size", "options", "bn_engine")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class JobRecord:
    """What ``job.json`` holds: the strategy and where it came from, the job's sizes, its status and members done,
    the audit, what ``auto`` chose (pinned for every member), each worker session's phases and wall time, and the
    benchmark's projection for this size where a benchmark run made the strategy."""

    strategy: dict[str, Any]
    strategy_file: str | None
    sizes: dict[str, int]
    members_total: int
    status: str = "running"
    members_done: int = 0
    audit: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    projected: dict[str, Any] | None = None
    price_per_hour: float | None = None
    started_utc: str = field(default_factory=_now)
    finished_utc: str | None = None
    result: dict[str, Any] | None = None

    @classmethod
    def new(cls, config, row, facts, strategy_file) -> JobRecord:
        sizes = {
            "images": facts.n_examples,
            "folds": config.ensemble.folds,
            "samples": config.ensemble.samples,
            "classes": facts.num_classes,
        }
        strategy = {k: getattr(row, k) for k in STRATEGY_KEYS}
        return cls(
            strategy=strategy,
            strategy_file=None if strategy_file is None else str(Path(strategy_file).resolve()),
            sizes=sizes,
            members_total=sizes["folds"] * sizes["samples"],
            projected=projection(strategy_file, sizes, config.audit.members),
        )

    @classmethod
    def load(cls, run: RunDir) -> JobRecord | None:
        stored = run.read_job()
        return None if stored is None else cls(**stored)

    def save(self, run: RunDir, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self, key, value)
        run.write_job(dataclasses.asdict(self))

    def next_session(self) -> int:
        return len(self.sessions)

    def add_session(self, outcome, members: list[tuple[int, int]]) -> None:
        """A worker session's wall time, its workers' phase seconds and the members it was given."""
        phases: dict[str, float] = {}
        images = {"bn_update": 0, "predict": 0}
        for payload in outcome.payloads or []:
            for phase, seconds in payload["phases_s"].items():
                phases[phase] = phases.get(phase, 0.0) + seconds
            images["bn_update"] += payload["bn_images_timed"]
            images["predict"] += payload["images_timed"]
        self.sessions.append(
            {
                "wall_s": outcome.wall_s,
                "members": len(members),
                "status": outcome.status,
                "phases_s": phases,
                "images_timed": images,
                "peak_anon_bytes": outcome.peak_anon_bytes,
            }
        )

    def rates(self) -> dict[str, float | None]:
        """Images per second of each per-image phase over every session, per worker (warm-up calls excluded)."""
        seconds = {p: sum(s["phases_s"].get(p, 0.0) for s in self.sessions) for p in ("bn_update", "predict")}
        images = {p: sum(s["images_timed"][p] for s in self.sessions) for p in ("bn_update", "predict")}
        return {f"{p}_img_per_s": images[p] / seconds[p] if seconds[p] else None for p in seconds}


def projection(strategy_file, sizes: dict[str, int], audit_members: int) -> dict[str, Any] | None:
    """The benchmark's projection of this job, where a benchmark run (the strategy file's folder) recorded the trial:
    the strategy's ensemble at the job's size plus its audit (``audit_members`` members in eager fp32, projected from
    the run's reference trial, and the strategy's setup paid again by the audit's own session), in minutes, and
    which run and trial."""
    if strategy_file is None:
        return None
    from swagbench.bench.answer.fidelity import is_reference_row
    from swagbench.bench.answer.projection import members_seconds, project, session_setup_seconds
    from swagbench.bench.record.row_store import read_rows

    path = Path(strategy_file)
    size = (sizes["images"], sizes["folds"], sizes["samples"])
    try:
        trial_id = json.loads(path.read_text()).get("trial_id")
        rows = [r for r in read_rows(RunDir(path.parent)) if r.status == "ok"]
        row = next(r for r in rows if r.trial_id == trial_id)
        seconds = project(row, *size)
        reference = next((r for r in rows if is_reference_row(r)), None)
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        return None  # a strategy file on its own: nothing to project from
    members = min(audit_members, sizes["folds"] * sizes["samples"])
    audit = None
    if members and reference is not None:
        audit = members_seconds(reference, *size, members) + session_setup_seconds(row, members)
    return {
        "run": str(path.parent),
        "trial_id": trial_id,
        "ensemble_min": seconds["ensemble"] / 60,
        "audit_min": None if audit is None else audit / 60,
        "minutes": (seconds["ensemble"] + (audit or 0.0)) / 60,
        "phases_min": {k: v / 60 for k, v in seconds.items() if k != "ensemble"},
    }


def pred_probs(members_path: Path, fold_of: np.ndarray, samples: int) -> np.ndarray:
    """(N, C) float32: each example's mean over its own fold's S members, summed in sample order in float64 (the
    same bits however the members were computed), one fold at a time from the memory map."""
    members = np.load(members_path, mmap_mode="r")
    out = np.empty(members.shape[1:], dtype=np.float32)
    for fold in np.unique(fold_of):
        rows = np.flatnonzero(fold_of == fold)
        total = np.zeros((len(rows), members.shape[2]), dtype=np.float64)
        for s in range(samples):
            total += members[s, rows]
        out[rows] = total / samples
    return out


def finish_job(opened, record: JobRecord, trial_dir: TrialDir, log) -> Path:
    """Every member is committed: write pred_probs.npy, find the label issues, and record the job."""
    config, run, dataset = opened.config, opened.run, opened.dataset
    probs = pred_probs(trial_dir.members, opened.fold_of, config.ensemble.samples)
    try:
        check_probabilities(probs, "the job's ensemble")
    except ValueError as exc:
        record.save(run, status="failed")
        raise JobFailed(str(exc)) from None
    tmp = run.pred_probs.with_name(run.pred_probs.stem + ".tmp.npy")
    np.save(tmp, probs)
    tmp.replace(run.pred_probs)
    start = time.perf_counter()
    issues, label_quality = find_label_issues(
        dataset.labels, probs, config.cleanlab.filter_by, config.cleanlab.quality_method
    )
    write_label_issues(run.label_issues_csv, dataset, probs, issues, label_quality)
    measured = quality({config.ensemble.samples: probs}, dataset.labels, dataset.true_labels, issues)
    result = {
        "confident_learning_s": time.perf_counter() - start,
        "n_label_issues_found": int(issues.sum()),
        **{k: measured[k] for k in ("calibration_labels", "calibration", "calibration_given", "label_issues")},
        **record.rates(),
        "wall_min": sum(s["wall_s"] for s in record.sessions) / 60,
        "total_min": job_minutes(record, time.perf_counter() - start),
        "phases_min": {p: sum(s["phases_s"].get(p, 0.0) for s in record.sessions) / 60 for p in _phases(record)},
    }
    record.save(run, status="done", members_done=record.members_total, finished_utc=_now(), result=result)
    run.job_md.write_text(job_markdown(record))
    log(run.job_md.read_text())
    log(f"swagbench: pred_probs.npy ({probs.shape[0]:,} x {probs.shape[1]}, out of sample) in {run.path}")
    log(f"swagbench: label issues: {int(issues.sum()):,} found; every image, worst first, in {run.label_issues_csv}")
    return run.path


def job_minutes(record: JobRecord, confident_learning_s: float) -> float:
    """What the job cost in wall-clock minutes, as its projection counts it: every worker session (the audit's eager
    fp32 one included) and confident learning; start-up (opening the data, loading posteriors) is not counted."""
    sessions = sum(s["wall_s"] for s in record.sessions) + (record.audit or {}).get("eager_seconds", 0.0)
    return (sessions + confident_learning_s) / 60


def _phases(record: JobRecord) -> list[str]:
    return sorted({p for s in record.sessions for p in s["phases_s"]})


def job_markdown(record: JobRecord) -> str:
    """``job.md``: the job in a few lines."""
    sizes, result, audit = record.sizes, record.result or {}, record.audit or {}
    strategy = record.strategy
    lines = [
        "# swagbench job",
        "",
        f"- strategy: {strategy['backend']} {strategy['precision']}"
        + (" channels_last" if strategy["channels_last"] else "")
        + (f", options {record.options or strategy['options']}" if record.options or strategy["options"] else "")
        + (f" (from {record.strategy_file})" if record.strategy_file else ""),
        f"- size: {sizes['images']:,} images x {sizes['folds']} folds x {sizes['samples']} samples "
        f"({record.members_total} members), {sizes['classes']} classes",
        f"- status: {record.status}, {record.members_done} of {record.members_total} members",
        f"- audit: {audit.get('verdict', 'not run')}"
        + (f" on {audit['members']} member(s), {audit['seconds']:.1f} s" if audit.get("seconds") is not None else ""),
        f"- wall time: {duration(result.get('wall_min', 0) * 60)} over {len(record.sessions)} session(s)",
    ]
    for phase, label in (("bn_update", "BatchNorm pass"), ("predict", "predict")):
        rate = result.get(f"{phase}_img_per_s")
        if rate:
            lines.append(f"- {label}: {rate:,.0f} img/s per worker")
    if record.projected:
        projected, audit = record.projected, record.projected.get("audit_min")
        lines.append(
            f"- the benchmark projected {duration(projected['minutes'] * 60)} for this size"
            + (f", its audit {duration(audit * 60)} of it" if audit else "")
            + (f"; the job took {duration(result['total_min'] * 60)}" if "total_min" in result else "")
            + f" ({projected['run']}, trial {projected['trial_id']})"
        )
    if "n_label_issues_found" in result:
        lines.append(f"- label issues found: {result['n_label_issues_found']:,} (label_issues.csv)")
    return "\n".join(lines) + "\n"
