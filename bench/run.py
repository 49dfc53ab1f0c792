"""A whole benchmark run: data -> folds -> posteriors -> one worker per backend trial -> summary."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from backends import BackendOptions, get_backend
from bench.config import RunConfig, TrialConfig
from bench.dataset import Dataset, load_dataset
from bench.envinfo import environment
from bench.errors import ConfigError, DataError, ResultsError, RunInterrupted
from bench.executors import EXECUTORS, Executor
from bench.fidelity import compare, is_reference, is_reference_row, tolerances_table, verdict
from bench.folds import make_folds
from bench.posteriors import obtain_posteriors, user_posteriors
from bench.profile import host_mismatch
from bench.progress import Progress
from bench.recommend import recommendation
from bench.report import build_report
from bench.results import ROWS, append_row, new_run_dir, read_rows, summary_frame
from bench.roofline import gflop_per_image, measure_peak, roofline
from bench.trial import TrialSpec, finish_trial, split_tasks
from swag.models import build_model


def trial_workers(config: RunConfig, trial: TrialConfig) -> int:
    return trial.workers or config.workers


def trial_options(config: RunConfig, trial: TrialConfig) -> BackendOptions:
    """The backend options of one worker of ``trial``: threads default to the run's budget split
    evenly among the trial's workers."""
    return BackendOptions(
        precision=trial.precision,
        threads=trial.threads or max(1, config.resolved_threads // trial_workers(config, trial)),
        batch_size=trial.batch_size or config.batch_size,
        channels_last=trial.channels_last,
        extra=dict(trial.options),
    )


def check_trials(config: RunConfig) -> None:
    """Fail before any work on unknown backends or impossible options (raises a USER_ERRORS type)."""
    for trial in config.trials:
        get_backend(trial.backend).check(trial_options(config, trial))


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """gflop: GFLOPs of one forward pass per image (roofline); bn_channels: channels over all BatchNorm
    layers with running statistics (the width of a trial's recorded statistics)."""

    gflop: float
    bn_channels: int


def check_model(config: RunConfig, dataset: Dataset) -> ModelFacts:
    """Build the model and run two examples through it, so a bad spec fails before any work."""
    import torch

    from swag.batchnorm import bn_layers

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
    channels = sum(bn.num_features for _, bn in bn_layers(model))
    return ModelFacts(gflop_per_image(model, torch.from_numpy(dataset.x[:1])), channels)


def with_reference(trials: list[TrialConfig], log) -> list[TrialConfig]:
    """Put the eager fp32 reference first (adding it if missing): every other trial is judged against it."""
    ref = [t for t in trials if is_reference(t.backend, t.precision, t.channels_last, t.bn_examples)]
    if not ref:
        log("swagbench: adding the eager fp32 reference trial (the fidelity gate compares every trial with it)")
        ref = [TrialConfig()]
    return ref[:1] + [t for t in trials if t is not ref[0]]


def execute(
    config: RunConfig,
    log=print,
    resume: Path | None = None,
    retry_failed: bool = False,
    profile: dict[str, Any] | None = None,
) -> Path:
    """Run everything ``config`` asks for; return the run directory.

    With ``resume`` (a run directory) the run continues there: the stored data and folds are
    reused, posteriors come from the cache, and only trials without a recorded row run (also
    failed, timed-out and skipped ones when ``retry_failed``). ``profile`` (see bench.profiles)
    is recorded in env.json with whether this host matches it.
    """
    check_trials(config)
    config = dataclasses.replace(config, trials=with_reference(config.trials, log))
    run_dirs: list[Path] = []  # the run folder, once there is one (for the resume hint on Ctrl-C)
    try:
        return _execute(config, log, resume, retry_failed, profile, run_dirs.append)
    except KeyboardInterrupt:
        if run_dirs:
            raise RunInterrupted(run_dirs[0]) from None
        raise


def _execute(config: RunConfig, log, resume, retry_failed: bool, profile, on_run_dir) -> Path:
    with contextlib.ExitStack() as held:  # the run folder's lock, released however this ends
        if resume is None:
            dataset = load_dataset(config.data)
            fold_of = make_folds(dataset.labels, config.ensemble.folds, config.ensemble.seed)
            facts = check_model(config, dataset)
            config = absolute_paths(config)
            check_writable(Path(config.results_dir), "results_dir")
            if config.posteriors_dir:
                user_posteriors(config, dataset, fold_of)
            elif config.posterior_cache:
                check_writable(Path(config.resolved_cache_dir), "cache_dir")
            run_dir = new_run_dir(config.results_dir, config.name)
            on_run_dir(run_dir)
            held.enter_context(lock_run_dir(run_dir))
            log(f"swagbench: run directory {run_dir}")
            (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
            env = {
                "profile": None if profile is None else {**profile, "host_mismatch": host_mismatch(profile)},
                **environment(config.resolved_threads),
            }
            (run_dir / "env.json").write_text(json.dumps(env, indent=2))
            (run_dir / "tolerances.json").write_text(json.dumps(tolerances_table(), indent=2))
            dataset.save(run_dir / "data.npz")
            np.save(run_dir / "folds.npy", fold_of)
            done: dict[str, dict[str, Any]] = {}
        else:
            run_dir = Path(resume)
            on_run_dir(run_dir)
            held.enter_context(lock_run_dir(run_dir))
            dataset = Dataset.load(run_dir / "data.npz")
            fold_of = np.load(run_dir / "folds.npy")
            facts = check_model(config, dataset)
            env = json.loads((run_dir / "env.json").read_text())
            # A run killed while training has no rows yet: it resumes from training.
            recorded = read_rows(run_dir, warn=log) if (run_dir / ROWS).is_file() else []
            done = {r["trial_id"]: r for r in recorded}
            if retry_failed:
                done = {k: r for k, r in done.items() if r["status"] == "ok"}
            left = len(config.trials) - len(done)
            log(
                f"swagbench: resuming {run_dir}: {len(done)} of {len(config.trials)} trials recorded"
                + (f", running the other {left}" if left else "; nothing left to run, rebuilding the summary")
            )

        with Progress(
            config.ensemble.folds * config.train.epochs, "train SWAG posteriors", "epoch", quiet_until_update=True
        ) as bar:  # silent when cached posteriors are reused
            posteriors = obtain_posteriors(config, dataset, fold_of, run_dir, log=log, on_epoch=bar.update)
        (run_dir / "posteriors.json").write_text(
            json.dumps(
                {**dataclasses.asdict(posteriors), "paths": [str(p.resolve()) for p in posteriors.paths]}, indent=2
            )
        )
        if posteriors.source == "trained":
            took = f"{posteriors.train_s:.1f} s" if posteriors.train_s < 60 else f"{posteriors.train_s / 60:.1f} min"
            log(f"swagbench: trained {len(posteriors.paths)} posteriors in {took}")
        if "peak" not in env:  # once per run, on the run's thread budget, after training has warmed the CPU
            log("swagbench: measuring this machine's peak GFLOP/s (matmul and conv, fp32/bf16/int8)")
            env["peak"] = measure_peak(config.resolved_threads)
            (run_dir / "env.json").write_text(json.dumps(env, indent=2))
        if not config.metrics_meaningful:
            log(
                "swagbench: timing-only run (synthetic data or posterior): "
                "calibration and label metrics are not meaningful"
            )

        smallest_fold = int(np.bincount(fold_of).min())
        if config.data_shards > smallest_fold:
            raise DataError(
                f"data_shards={config.data_shards} but the smallest fold holds {smallest_fold} examples; "
                f"use at most {smallest_fold} shards"
            )
        executor = held.enter_context(contextlib.closing(EXECUTORS[config.executor](config, log)))
        reference = next((r for r in done.values() if is_reference_row(r)), None)
        for i, trial in enumerate(config.trials):
            trial_id = f"{i:02d}-{trial.label}"
            if trial_id in done:
                continue
            options = trial_options(config, trial)
            base = {
                "run_id": run_dir.name,
                "trial_id": trial_id,
                "backend": trial.backend,
                "precision": trial.precision,
                "channels_last": trial.channels_last,
                "threads": options.threads,
                "workers": trial_workers(config, trial),
                "data_shards": config.data_shards,
                "executor": config.executor,
                "members": trial.members,
                "batch_size": options.batch_size,
                "bn_examples": trial.bn_examples or config.ensemble.bn_examples,  # per fold; None: all
                "trial_bn_examples": trial.bn_examples,
                "options": dict(trial.options),
                "model": config.model,
                "dataset": dataset.name,
                "n_examples": int(len(dataset.labels)),
                "folds": config.ensemble.folds,
                "samples": config.ensemble.samples,
                "samples_total": config.ensemble.folds * config.ensemble.samples,
                "train_s": posteriors.train_s,
                "profile": (env.get("profile") or {}).get("name"),
                "posterior_source": posteriors.source,
                "metrics_meaningful": config.metrics_meaningful,
                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            ok, reason = get_backend(trial.backend).available()
            if not ok:
                log(f"swagbench: skipping {trial_id}: {reason}")
                append_row(run_dir, {**base, "status": "skipped", "error": reason})
                continue
            python = trial.python or get_backend(trial.backend).python()
            reason = executor.refuses(python)
            if reason:
                log(f"swagbench: skipping {trial_id}: {reason}")
                append_row(run_dir, {**base, "status": "skipped", "error": reason})
                continue
            attempt = functools.partial(
                run_one,
                config,
                dataset,
                run_dir,
                posteriors.paths,
                trial,
                options,
                {**base, "python": python},
                facts,
                executor,
            )
            row = repeated(config.repeats, attempt)
            if row["status"] == "ok":
                row["roofline"] = roofline(facts.gflop, row["predict_img_per_s"], trial.precision, env["peak"])
                bn_precision = (row.get("bn_update") or {}).get("precision", trial.precision)
                row["roofline_bn"] = roofline(facts.gflop, row["bn_img_per_s"], bn_precision, env["peak"])
            if reference is None and is_reference_row(row):
                reference = row
            append_row(run_dir, gate(row, reference, run_dir))
        report = build_report(run_dir)
        log((run_dir / "summary.md").read_text())
        log(f"swagbench: results in {run_dir} (results.jsonl, summary.csv, summary.md, charts, {report.name})")
        log(f"swagbench: recommendation: {recommendation(summary_frame(read_rows(run_dir, warn=log)))}")
        return run_dir


def repeated(repeats: int, attempt) -> dict[str, Any]:
    """Run ``attempt`` (one trial, returning its row) ``repeats`` times; the row of the median whole-ensemble
    time, with every repeat's time in ``ensemble_s_repeats`` and the highest peak memory. A repeat that does not
    succeed ends the trial with its row. Every repeat evaluates the same samples (same seeds); the trial folder
    keeps the last repeat's outputs, which the fidelity gate judges, equal to the median repeat's up to the
    runtime's own run-to-run nondeterminism."""
    rows = []
    for _ in range(repeats):
        row = attempt()
        if row["status"] != "ok":
            return row
        rows.append(row)
    if repeats == 1:
        return rows[0]
    times = [r["ensemble_s"] for r in rows]
    median = sorted(rows, key=lambda r: r["ensemble_s"])[(repeats - 1) // 2]
    peaks = [r["peak_rss_bytes"] for r in rows if r.get("peak_rss_bytes") is not None]
    return {**median, "ensemble_s_repeats": times, "peak_rss_bytes": max(peaks) if peaks else None}


def absolute_paths(config: RunConfig) -> RunConfig:
    """``config`` with the folders it names outside the run made absolute, so the stored config means the same
    from any working directory (the results folder itself is the run folder's parent when resumed)."""
    absolute: dict[str, Any] = {
        key: str(Path(getattr(config, key)).resolve())
        for key in ("cache_dir", "posteriors_dir")
        if getattr(config, key) is not None
    }
    trials = [dataclasses.replace(t, python=str(Path(t.python).absolute())) if t.python else t for t in config.trials]
    return dataclasses.replace(config, **absolute, trials=trials)


def check_writable(folder: Path, setting: str) -> None:
    """Raise ConfigError naming ``setting`` unless ``folder`` can be created and written (before any run folder
    exists, so a bad setting leaves nothing half-made)."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{setting} {folder} is not writable ({exc.strerror or exc}); set {setting} to a writable folder"
            + {"cache_dir": " or posterior_cache=false", "results_dir": " (--results-dir)"}.get(setting, "")
        ) from exc


def lock_run_dir(run_dir: Path):
    """Hold an exclusive lock on the run folder (released when the returned file closes or the
    process dies), so two processes never append to one results.jsonl."""
    import fcntl

    if not (run_dir / "config.yaml").is_file() and any(run_dir.iterdir()):
        raise ResultsError(f"{run_dir} is not a swagbench run directory (no config.yaml); pass results/<run-id>")
    handle = open(run_dir / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ResultsError(f"another swagbench process is writing {run_dir}; wait for it or stop it first") from None
    return handle


def gate(row: dict[str, Any], reference: dict[str, Any] | None, run_dir: Path) -> dict[str, Any]:
    """Add ``fidelity`` and ``validity`` (VALID / INVALID / UNCHECKED) to a finished trial's row."""
    if row["status"] != "ok":
        return row
    if reference is None:
        return {**row, "validity": "UNCHECKED", "validity_reasons": ["no successful eager fp32 reference trial"]}
    trials = run_dir / "trials"
    fidelity = compare(trials / reference["trial_id"], trials / row["trial_id"], reference, row)
    validity, reasons = verdict(
        fidelity,
        row["precision"],
        check_decisions=row.get("metrics_meaningful", True),
        bn_subset=row.get("bn_examples") != reference.get("bn_examples"),
    )
    return {**row, "fidelity": fidelity, "validity": validity, "validity_reasons": reasons}


def run_one(
    config: RunConfig,
    dataset: Dataset,
    run_dir: Path,
    posterior_paths: list[Path],
    trial: TrialConfig,
    options: BackendOptions,
    base: dict[str, Any],
    facts: ModelFacts,
    executor: Executor,
) -> dict[str, Any]:
    """Run one trial's worker parts on the run's ``executor`` (see ``bench.executors``), finish it,
    and turn the outcome into a result row (``base`` + measurements)."""
    trial_id = base["trial_id"]
    trial_dir = run_dir / "trials" / trial_id
    shutil.rmtree(trial_dir, ignore_errors=True)  # left over from an interrupted attempt
    trial_dir.mkdir(parents=True)
    members_path = trial_dir / "member_probs.npy"
    bn_stats_path = trial_dir / "bn_stats.npy"
    n, c, samples = len(dataset.labels), dataset.num_classes, config.ensemble.samples
    np.lib.format.open_memmap(members_path, mode="w+", dtype=np.float32, shape=(samples, n, c)).flush()
    shape = (samples, config.ensemble.folds, 2, facts.bn_channels)
    np.lib.format.open_memmap(bn_stats_path, mode="w+", dtype=np.float32, shape=shape).flush()
    shards = config.data_shards
    parts = [
        (tasks, shard)
        for tasks in split_tasks(config.ensemble.folds, samples, base["workers"])
        for shard in range(shards)
    ]
    specs = [
        TrialSpec(
            trial_id=trial_id,
            backend=trial.backend,
            options=dataclasses.asdict(options),
            model=config.model,
            num_classes=c,
            in_channels=int(dataset.x.shape[1]),
            data_path=str((run_dir / "data.npz").resolve()),
            folds_path=str((run_dir / "folds.npy").resolve()),
            posterior_paths=[str(p.resolve()) for p in posterior_paths],
            ensemble={**dataclasses.asdict(config.ensemble), "bn_examples": base["bn_examples"]},
            members_path=str(members_path.resolve()) if executor.shares_files else None,
            bn_stats_path=str(bn_stats_path.resolve()) if executor.shares_files else None,
            tasks=tasks,
            members=trial.members,
            shard=shard,
            shards=shards,
        )
        for tasks, shard in parts
    ]
    with Progress(base["samples_total"], trial_id, "sample") as bar:
        progress = lambda done: bar.update_to(done // shards)  # noqa: E731 (samples, counted once per shard)
        outcome = executor.run(
            specs,
            trial_dir,
            members_path,
            bn_stats_path,
            options.threads,
            config.timeout_s,
            base["python"],
            on_progress=progress,
        )
    row = {
        **base,
        "status": outcome.status,
        "error": outcome.error,
        "wall_s": outcome.wall_s,
        "peak_rss_bytes": outcome.peak_rss_bytes,
    }
    if outcome.payloads:
        try:
            payload = finish_trial(
                trial_dir, run_dir / "data.npz", members_path, dataclasses.asdict(config.cleanlab), outcome.payloads
            )
        except Exception as exc:  # e.g. cleanlab rejecting degenerate probabilities: a failed trial, not a crash
            return {**row, "status": "failed", "error": f"finishing the trial: {type(exc).__name__}: {exc}"}
        row.update(payload)
        if outcome.peak_rss_bytes is not None:
            row["rss_growth_bytes"] = outcome.peak_rss_bytes - sum(p["baseline_rss_bytes"] for p in outcome.payloads)
    return row
