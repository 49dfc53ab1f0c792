"""A whole benchmark run: data -> folds -> posteriors -> one worker per backend trial -> summary."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from backends import BackendOptions, get_backend
from bench.config import RunConfig, TrialConfig
from bench.dataset import Dataset, load_dataset, make_folds
from bench.envinfo import environment
from bench.errors import DataError
from bench.fidelity import compare, is_reference, tolerances_table, verdict
from bench.posteriors import train_posteriors
from bench.report import build_report
from bench.results import append_row, new_run_dir
from bench.runner import run_worker
from bench.trial import TrialSpec
from swag.models import build_model


def trial_options(config: RunConfig, trial: TrialConfig) -> BackendOptions:
    return BackendOptions(
        precision=trial.precision,
        threads=trial.threads or config.resolved_threads,
        batch_size=trial.batch_size or config.batch_size,
        channels_last=trial.channels_last,
        extra=dict(trial.options),
    )


def check_trials(config: RunConfig) -> None:
    """Fail before any work on unknown backends or impossible options (raises a USER_ERRORS type)."""
    for trial in config.trials:
        get_backend(trial.backend).check(trial_options(config, trial))


def check_model(config: RunConfig, dataset: Dataset) -> None:
    """Build the model and run two examples through it, so a bad spec fails before any work."""
    import torch

    model = build_model(config.model, dataset.num_classes, dataset.x.shape[1]).eval()
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(dataset.x[:2]))
    except RuntimeError as exc:
        raise DataError(
            f"model {config.model!r} cannot take inputs of shape {dataset.x.shape[1:]} ({exc}); "
            "use a model that fits the data"
        ) from exc
    if tuple(out.shape) != (2, dataset.num_classes):
        raise DataError(
            f"model {config.model!r} returns shape {tuple(out.shape)[1:]} per example, "
            f"expected ({dataset.num_classes},) logits"
        )


def with_reference(trials: list[TrialConfig], log) -> list[TrialConfig]:
    """Put the eager fp32 reference first (adding it if missing): every other trial is judged against it."""
    ref = [t for t in trials if is_reference(t.backend, t.precision, t.channels_last)]
    if not ref:
        log("swagbench: adding the eager fp32 reference trial (the fidelity gate compares every trial with it)")
        ref = [TrialConfig()]
    return ref[:1] + [t for t in trials if t is not ref[0]]


def execute(config: RunConfig, log=print) -> Path:
    """Run everything ``config`` asks for; return the run directory."""
    check_trials(config)
    config = dataclasses.replace(config, trials=with_reference(config.trials, log))
    dataset = load_dataset(config.data)
    fold_of = make_folds(dataset.labels, config.ensemble.folds, config.ensemble.seed)
    check_model(config, dataset)
    run_dir = new_run_dir(config.results_dir, config.name)
    log(f"swagbench: run directory {run_dir}")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    (run_dir / "env.json").write_text(json.dumps(environment(config.resolved_threads), indent=2))
    (run_dir / "tolerances.json").write_text(json.dumps(tolerances_table(), indent=2))
    dataset.save(run_dir / "data.npz")
    np.save(run_dir / "folds.npy", fold_of)

    with tqdm(total=config.ensemble.folds * config.train.epochs, desc="train SWAG posteriors", unit="epoch") as bar:
        paths, train_s = train_posteriors(config, dataset, fold_of, run_dir / "posteriors", on_epoch=bar.update)
    log(f"swagbench: trained {len(paths)} posteriors in {train_s / 60:.2f} min")
    if not config.metrics_meaningful:
        log(
            "swagbench: timing-only run (synthetic data or posterior): calibration and label metrics are not meaningful"
        )

    reference = None
    for i, trial in enumerate(config.trials):
        trial_id = f"{i:02d}-{trial.label}"
        options = trial_options(config, trial)
        base = {
            "run_id": run_dir.name,
            "trial_id": trial_id,
            "backend": trial.backend,
            "precision": trial.precision,
            "channels_last": trial.channels_last,
            "threads": options.threads,
            "batch_size": options.batch_size,
            "options": dict(trial.options),
            "model": config.model,
            "dataset": dataset.name,
            "n_examples": int(len(dataset.labels)),
            "folds": config.ensemble.folds,
            "samples": config.ensemble.samples,
            "samples_total": config.ensemble.folds * config.ensemble.samples,
            "train_s": train_s,
            "metrics_meaningful": config.metrics_meaningful,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        ok, reason = get_backend(trial.backend).available()
        if not ok:
            log(f"swagbench: skipping {trial_id}: {reason}")
            append_row(run_dir, {**base, "status": "skipped", "error": reason})
            continue
        python = trial.python or get_backend(trial.backend).python()
        row = run_one(config, dataset, run_dir, paths, trial.backend, options, {**base, "python": python})
        if (
            reference is None
            and row["status"] == "ok"
            and is_reference(trial.backend, trial.precision, trial.channels_last)
        ):
            reference = row
        append_row(run_dir, gate(row, reference, run_dir))
    report = build_report(run_dir)
    log((run_dir / "summary.md").read_text())
    log(f"swagbench: results in {run_dir} (results.jsonl, summary.csv, summary.md, charts, {report.name})")
    return run_dir


def gate(row: dict[str, Any], reference: dict[str, Any] | None, run_dir: Path) -> dict[str, Any]:
    """Add ``fidelity`` and ``validity`` (VALID / INVALID / UNCHECKED) to a finished trial's row."""
    if row["status"] != "ok":
        return row
    if reference is None:
        return {**row, "validity": "UNCHECKED", "validity_reasons": ["no successful eager fp32 reference trial"]}
    trials = run_dir / "trials"
    fidelity = compare(trials / reference["trial_id"], trials / row["trial_id"], reference, row)
    validity, reasons = verdict(fidelity, row["precision"], check_decisions=row.get("metrics_meaningful", True))
    return {**row, "fidelity": fidelity, "validity": validity, "validity_reasons": reasons}


def run_one(
    config: RunConfig,
    dataset: Dataset,
    run_dir: Path,
    posterior_paths: list[Path],
    backend: str,
    options: BackendOptions,
    base: dict[str, Any],
) -> dict[str, Any]:
    """Run one trial in a worker and turn its outcome into a result row (``base`` + measurements)."""
    trial_id = base["trial_id"]
    trial_dir = run_dir / "trials" / trial_id
    trial_dir.mkdir(parents=True)
    spec = TrialSpec(
        trial_id=trial_id,
        backend=backend,
        options=dataclasses.asdict(options),
        model=config.model,
        num_classes=dataset.num_classes,
        in_channels=int(dataset.x.shape[1]),
        data_path=str((run_dir / "data.npz").resolve()),
        folds_path=str((run_dir / "folds.npy").resolve()),
        posterior_paths=[str(p.resolve()) for p in posterior_paths],
        ensemble=dataclasses.asdict(config.ensemble),
        cleanlab=dataclasses.asdict(config.cleanlab),
        out_dir=str(trial_dir.resolve()),
    )
    spec.save(trial_dir / "spec.json")
    with tqdm(total=base["samples_total"], desc=trial_id, unit="sample") as bar:
        outcome = run_worker(
            trial_dir / "spec.json",
            trial_dir / "result.json",
            options.threads,
            config.timeout_s,
            trial_dir / "worker.log",
            python=base["python"],
            on_progress=lambda done, _total: bar.update(done - bar.n),
        )
    row = {
        **base,
        "status": outcome.status,
        "error": outcome.error,
        "wall_s": outcome.wall_s,
        "peak_rss_bytes": outcome.peak_rss_bytes,
    }
    if outcome.payload:
        payload = {k: v for k, v in outcome.payload.items() if k != "ok"}
        payload.pop("peak_rss_bytes", None)  # outcome.peak_rss_bytes already combines it with the polled one
        row.update(payload)
        if outcome.peak_rss_bytes is not None:
            row["rss_growth_bytes"] = outcome.peak_rss_bytes - payload["baseline_rss_bytes"]
    return row
