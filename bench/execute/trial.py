"""One trial in the parent process: its worker specs, running them on the run's executor, finishing the outputs
into a row (the worker side is ``swagbench.bench.execute.worker_loop``; the finishing step
``swagbench.bench.execute.finish``)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swagbench.backends import BackendOptions
from swagbench.bench.answer.projection import target_sizes
from swagbench.bench.config import RunConfig, TrialConfig
from swagbench.bench.execute.executors import Executor
from swagbench.bench.execute.worker_loop import TrialSpec, split_tasks
from swagbench.bench.measure.hardware_profiles import target_isa
from swagbench.bench.progress import Progress
from swagbench.bench.record.row import TrialRow
from swagbench.bench.record.rundir import RunDir, TrialDir


def trial_workers(config: RunConfig, trial: TrialConfig) -> int:
    return trial.workers or config.workers


def trial_options(config: RunConfig, trial: TrialConfig) -> BackendOptions:
    """The backend options of one worker of ``trial``: threads default to the run's budget split
    evenly among the trial's workers; the target's instruction set where the config names one."""
    target = target_isa(config.target.isa, None)  # None: this machine's
    return BackendOptions(
        precision=trial.precision,
        threads=trial.threads or max(1, config.resolved_threads // trial_workers(config, trial)),
        batch_size=trial.batch_size or config.batch_size,
        channels_last=trial.channels_last,
        extra=dict(trial.options),
        target_isa=None if target is None else target[1],
    )


@dataclass(frozen=True)
class RunFacts:
    """What every trial of a run shares: the data (its memory-mapped file, normalisation, size and name), the
    model's BatchNorm width, where the posteriors are and where they came from, the profile. (``bn_channels``:
    channels over all BatchNorm layers with running statistics, the width of a trial's recorded statistics.)"""

    data_file: Path
    data_mean: list[float] | None
    data_std: list[float] | None
    n_examples: int
    num_classes: int
    in_channels: int
    dataset: str
    bn_channels: int
    posterior_paths: list[Path]
    posterior_source: str
    train_s: float
    profile: str | None

    @classmethod
    def of(
        cls,
        dataset,
        posterior_paths: list[Path],
        posterior_source: str,
        train_s: float = 0.0,
        bn_channels: int = 0,
        profile: str | None = None,
    ) -> RunFacts:
        """The facts of a run over ``dataset`` (a :class:`swagbench.bench.dataset.Dataset`) and its posteriors."""
        return cls(
            data_file=dataset.store.x_path,
            data_mean=dataset.mean,
            data_std=dataset.std,
            n_examples=int(len(dataset.labels)),
            num_classes=dataset.num_classes,
            in_channels=int(dataset.x.shape[1]),
            dataset=dataset.name,
            bn_channels=bn_channels,
            posterior_paths=posterior_paths,
            posterior_source=posterior_source,
            train_s=train_s,
            profile=profile,
        )


def base_row(config: RunConfig, trial: TrialConfig, trial_id: str, run: RunDir, facts: RunFacts) -> TrialRow:
    """The row of ``trial`` before it runs: its settings and the workload (status ``skipped`` until measured)."""
    options = trial_options(config, trial)
    return TrialRow(
        run_id=run.name,
        trial_id=trial_id,
        backend=trial.backend,
        precision=trial.precision,
        channels_last=trial.channels_last,
        threads=options.threads,
        workers=trial_workers(config, trial),
        data_shards=config.data_shards,
        executor=config.executor,
        members=trial.members,
        batch_size=options.batch_size,
        bn_examples=trial.bn_examples or config.ensemble.bn_examples,  # per fold; None: all
        trial_bn_examples=trial.bn_examples,
        bn_engine=trial.bn,
        options=dict(trial.options),
        model=config.model,
        dataset=facts.dataset,
        n_examples=facts.n_examples,
        folds=config.ensemble.folds,
        samples=config.ensemble.samples,
        samples_total=config.ensemble.folds * config.ensemble.samples,
        train_s=facts.train_s,
        profile=facts.profile,
        posterior_source=facts.posterior_source,
        metrics_meaningful=config.metrics_meaningful,
        started_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        status="skipped",
    )


def worker_specs(config: RunConfig, trial: TrialConfig, row: TrialRow, run: RunDir, facts: RunFacts, shared: bool):
    """One :class:`~swagbench.bench.execute.worker_loop.TrialSpec` per worker part: the trial's task split times the
    run's data shards.
    ``shared``: the executor's workers write the trial's maps themselves (else the specs carry no map paths)."""
    trial_dir = run.trial(row.trial_id)
    shards = config.data_shards
    # the job the target names, the run's own size where it leaves one unset (what an option left to auto is chosen for)
    job = dict(zip(("images", "folds", "samples"), target_sizes(row, dataclasses.asdict(config.target)), strict=True))
    parts = [
        (tasks, shard)
        for tasks in split_tasks(config.ensemble.folds, config.ensemble.samples, row.workers)
        for shard in range(shards)
    ]
    return [
        TrialSpec(
            trial_id=row.trial_id,
            backend=trial.backend,
            options=dataclasses.asdict(trial_options(config, trial)),
            model=config.model,
            num_classes=facts.num_classes,
            in_channels=facts.in_channels,
            data_path=str(facts.data_file.resolve()),
            data_mean=facts.data_mean,
            data_std=facts.data_std,
            folds_path=str(run.folds_path.resolve()),
            posterior_paths=[str(p.resolve()) for p in facts.posterior_paths],
            ensemble={**dataclasses.asdict(config.ensemble), "bn_examples": row.bn_examples},
            members_path=str(trial_dir.members.resolve()) if shared else None,
            bn_stats_path=str(trial_dir.bn_stats.resolve()) if shared else None,
            tasks=tasks,
            bn_backend=trial.bn_engine.backend if trial.bn_engine else None,
            bn_options=dataclasses.asdict(trial_options(config, trial.bn_engine)) if trial.bn_engine else None,
            steady=dataclasses.asdict(config.steady),
            target=job,
            members=trial.members,
            shard=shard,
            shards=shards,
        )
        for tasks, shard in parts
    ]


def open_outputs(trial_dir: TrialDir, config: RunConfig, facts: RunFacts) -> None:
    """Create the trial's (S, N, C) member map and (S, K, 2, channels) BatchNorm-statistics map."""
    samples = config.ensemble.samples
    shapes = {
        trial_dir.members: (samples, facts.n_examples, facts.num_classes),
        trial_dir.bn_stats: (samples, config.ensemble.folds, 2, facts.bn_channels),
    }
    for path, shape in shapes.items():
        np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape).flush()


def run_one(
    config: RunConfig, trial: TrialConfig, row: TrialRow, run: RunDir, facts: RunFacts, executor: Executor, dataset
) -> TrialRow:
    """Run one trial's worker parts on the run's ``executor`` (see ``swagbench.bench.execute.executors``), finish it
    with the run's
    ``dataset`` (labels, class names, paths), and return ``row`` with the outcome and the measurements."""
    from swagbench.bench.execute.finish import finish_trial

    trial_dir = run.trial(row.trial_id).reset()  # empties what an interrupted attempt left
    open_outputs(trial_dir, config, facts)
    specs = worker_specs(config, trial, row, run, facts, executor.shares_files)
    shards = config.data_shards
    with Progress(row.samples_total, row.trial_id, "sample") as bar:
        outcome = executor.run(
            specs,
            trial_dir,
            row.threads,
            config.timeout_s,
            row.python,
            on_progress=lambda done: bar.update_to(done // shards),  # samples, counted once per shard
        )
    row = dataclasses.replace(
        row,
        status=outcome.status,
        error=outcome.error,
        wall_s=outcome.wall_s,
        peak_rss_bytes=outcome.peak_rss_bytes,
        peak_anon_bytes=outcome.peak_anon_bytes,
    )
    if not outcome.payloads:
        return row
    try:
        measured = finish_trial(trial_dir, dataset, dataclasses.asdict(config.cleanlab), outcome.payloads)
    except Exception as exc:  # e.g. cleanlab rejecting degenerate probabilities: a failed trial, not a crash
        return dataclasses.replace(row, status="failed", error=f"finishing the trial: {type(exc).__name__}: {exc}")
    if outcome.peak_rss_bytes is not None:
        measured["rss_growth_bytes"] = outcome.peak_rss_bytes - sum(p["baseline_rss_bytes"] for p in outcome.payloads)
    return dataclasses.replace(row, **measured)


def repeated(repeats: int, attempt) -> TrialRow:
    """Run ``attempt`` (one trial, returning its row) ``repeats`` times; the row of the median whole-ensemble
    time, with every repeat's time in ``ensemble_s_repeats`` and the highest peak memory. A repeat that does not
    succeed ends the trial with its row. Every repeat evaluates the same samples (same seeds); the trial folder
    keeps the last repeat's outputs, which the fidelity gate judges, equal to the median repeat's up to the
    runtime's own run-to-run nondeterminism."""
    rows = []
    for _ in range(repeats):
        row = attempt()
        if row.status != "ok":
            return row
        rows.append(row)
    if repeats == 1:
        return rows[0]
    median = sorted(rows, key=lambda r: r.ensemble_s)[(repeats - 1) // 2]
    peaks = [r.peak_rss_bytes for r in rows if r.peak_rss_bytes is not None]
    return dataclasses.replace(
        median, ensemble_s_repeats=[r.ensemble_s for r in rows], peak_rss_bytes=max(peaks) if peaks else None
    )
