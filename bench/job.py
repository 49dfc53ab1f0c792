"""``swagbench job``: the user's whole ensemble with one strategy, at the job's own size, member by member.

What a benchmark run answers is run here on all of the data: the same data store, folds, posteriors and per-sample
step, one strategy (a ``recommendation.json`` or one ``--backends`` engine) and no reference trial. In its place an
audit computes ``audit.members`` members in both eager fp32 and the strategy and gates them with the strategy's
tolerances before the hours start. Every (fold, sample) member is committed as soon as it is computed (its rows
written and flushed, then journaled: ``swagbench.bench.record.journal``), so a kill of any process costs only the
members in flight and ``--resume`` computes only the rest; members depend only on (seed, fold, sample), so the
resumed job's ``pred_probs.npy`` is bit-identical to an uninterrupted one's.

The job folder is a run folder (config, data, folds and posteriors as a run records them) with ``pred_probs.npy``
(N, C), ``label_issues.csv``, ``job.json`` and ``job.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from swagbench.backends import BackendOptions
from swagbench.bench.answer.auto import resolved_options
from swagbench.bench.answer.fidelity import audit_verdict, member_fidelity
from swagbench.bench.config import RunConfig
from swagbench.bench.errors import ConfigError, JobFailed, RunInterrupted, Terminated
from swagbench.bench.execute.members import all_members, audit_members, committed, run_members
from swagbench.bench.execute.trial import RunFacts, base_row, open_outputs, worker_specs
from swagbench.bench.job_record import JobRecord, finish_job
from swagbench.bench.progress import MemberProgress
from swagbench.bench.record.journal import MemberJournal
from swagbench.bench.record.rundir import RunDir, TrialDir
from swagbench.bench.run import Opened, check_unchanged, new_run, obtain

AUDIT_ID = "audit-eager-fp32"


def check_job(config: RunConfig) -> None:
    """What a job needs beyond a run's checks: exactly one strategy, no data shards."""
    if len(config.trials) != 1:
        raise ConfigError(
            f"a job runs exactly one strategy, got {len(config.trials)} trials; give --strategy RUN/recommendation.json"
            " or --backends with one engine (e.g. --backends openvino:bf16)"
        )
    if config.data_shards != 1:
        raise ConfigError("a job's units of work are whole members: data_shards must be 1")
    if config.trials[0].bn_examples == "auto":
        raise ConfigError(
            "bn_examples auto is chosen by a benchmark run's subset ladder: give the size (trial bn_examples=N) or "
            "--strategy RUN/recommendation.json, which holds the size the run chose"
        )
    if any(v == "auto" for v in config.trials[0].options.values()) and config.audit.members == 0:
        raise ConfigError(
            "an option left to auto is chosen on the audit's first member: keep audit.members >= 1 or give its value"
        )


def job(
    config: RunConfig,
    log=print,
    resume: Path | None = None,
    strategy_file: str | Path | None = None,
    profile: dict[str, Any] | None = None,
) -> Path:
    """Run (or with ``resume``, finish) the job ``config`` describes; return its folder."""
    check_job(config)
    folder: list[Path] = []
    try:
        with contextlib.ExitStack() as held:
            ray = held.enter_context(contextlib.closing(_ray(config, log))) if config.executor == "ray" else None
            if ray is not None:  # sized to the cluster's nodes, refused at once where no node can hold a task
                config = dataclasses.replace(config, threads=config.threads or min(ray.node_cpus(), default=1))
                ray.check_fits(config.resolved_threads)
            opened = _open(config, resume, profile, log, folder.append, held)
            opened.executor = ray
            facts = obtain(opened, log, peak=False)
            return _run(opened, facts, strategy_file, log)
    except KeyboardInterrupt as exc:
        if folder:
            raise RunInterrupted(folder[0], terminated=isinstance(exc, Terminated), command="job") from None
        raise


def _ray(config: RunConfig, log):
    from swagbench.bench.execute.ray_executor import RayExecutor

    return RayExecutor(config.ray_address, config.ray_max_retries, log=log, node_ip=config.ray_node_ip)


def _open(config: RunConfig, resume: Path | None, profile, log, on_dir, held) -> Opened:
    if resume is None:
        return new_run(config, profile, log, on_dir, held, what="job")
    run = RunDir.existing(resume)
    if run.read_job() is None:
        raise ConfigError(f"{run.path} is not a job folder (no job.json); resume a run with swagbench run --resume")
    on_dir(run.path)
    held.enter_context(run.lock())
    check_unchanged(run, config, "job")  # data, folds, posteriors, strategy, S and K: a resume refuses any change
    from swagbench.bench.dataset import load_dataset
    from swagbench.bench.prechecks import check_model

    dataset = run.load_data(rebuild=lambda: load_dataset(config.data, config.resolved_cache_dir, log))
    fold_of = run.load_folds()
    log(f"swagbench: resuming job {run.path}")
    return Opened(config, run, dataset, fold_of, check_model(config, dataset), run.read_env(), {})


def _run(opened: Opened, facts: RunFacts, strategy_file, log) -> Path:
    config, run = opened.config, opened.run
    trial = config.trials[0]
    row = base_row(config, trial, f"00-{trial.label}", run, facts)
    trial_dir = run.trial(row.trial_id)
    record = JobRecord.load(run) or JobRecord.new(config, row, facts, strategy_file)
    if not trial_dir.members.is_file():
        trial_dir.path.mkdir(parents=True, exist_ok=True)
        open_outputs(trial_dir, config, facts)
    (spec,) = worker_specs(dataclasses.replace(config, workers=1), trial, row, run, facts, shared=True)
    spec = dataclasses.replace(spec, journal_path=str(trial_dir.journal.resolve()), steady=None)
    if record.options is not None:  # what auto chose on the job's first members, pinned for every later one
        spec = dataclasses.replace(spec, options={**spec.options, "extra": record.options})
    members = all_members(config.ensemble.folds, config.ensemble.samples)
    done = committed(trial_dir, opened.fold_of)
    log(
        f"swagbench: job of {facts.n_examples:,} images x {config.ensemble.folds} folds x {config.ensemble.samples} "
        f"samples with {row.backend} {row.precision}: {len(done)} of {len(members)} members committed"
    )
    record.save(run, status="running", done=len(done))
    if record.audit is None:
        spec = _audit(opened, facts, spec, record, trial_dir, log)
        done = committed(trial_dir, opened.fold_of)
    pending = [m for m in members if m not in done]
    if pending:
        _compute(opened, spec, record, trial_dir, pending, len(done), log)
    done = committed(trial_dir, opened.fold_of)
    if len(done) < len(members):
        raise JobFailed(f"{len(members) - len(done)} members are not committed; resume with swagbench job --resume")
    return finish_job(opened, record, trial_dir, log)


def _audit(opened: Opened, facts: RunFacts, spec, record: JobRecord, trial_dir: TrialDir, log):
    """Compute the audit's members in eager fp32 and in the strategy (committed as the job's), gate them; an
    INVALID audit stops the job. Returns the spec with what ``auto`` chose pinned."""
    config, run = opened.config, opened.run
    count = config.audit.members
    if count == 0:
        log("swagbench: audit skipped (audit.members=0): nothing checks the strategy against eager fp32")
        record.audit = {"members": 0, "verdict": "SKIPPED", "reasons": ["audit.members=0"]}
        record.save(run)
        return spec
    chosen = audit_members(config.ensemble.folds, config.ensemble.samples, count)
    log(f"swagbench: audit: {len(chosen)} member(s) in eager fp32 and in the strategy, before the ensemble")
    reference = run.trial(AUDIT_ID)
    reference.reset()
    open_outputs(reference, config, facts)
    eager = BackendOptions(threads=spec.options["threads"], batch_size=spec.options["batch_size"])
    ref_spec = dataclasses.replace(
        spec,
        trial_id=AUDIT_ID,
        backend="eager",
        options=dataclasses.asdict(eager),
        bn_backend=None,
        bn_options=None,
        members_path=str(reference.members.resolve()),
        bn_stats_path=str(reference.bn_stats.resolve()),
        journal_path=None,
    )
    start = time.perf_counter()
    outcomes = [_session(opened, s, chosen, d, record, log) for s, d in ((ref_spec, reference), (spec, trial_dir))]
    seconds = time.perf_counter() - start
    payload = outcomes[1].payloads[0]
    if payload.get("auto"):
        record.options = resolved_options(spec.options["extra"], payload["auto"])
        spec = dataclasses.replace(spec, options={**spec.options, "extra": record.options})
        log(f"swagbench: auto chose {record.options} for this job's size; every member uses it")
    maps = [{k: np.load(getattr(d, k), mmap_mode="r") for k in ("members", "bn_stats")} for d in (reference, trial_dir)]
    fidelity = member_fidelity(*maps, chosen, opened.fold_of)
    precision = record.strategy["precision"]
    verdict, reasons = audit_verdict(fidelity, precision, check_decisions=config.metrics_meaningful)
    record.audit = {
        "members": len(chosen),
        "verdict": verdict,
        "reasons": reasons,
        "fidelity": fidelity,
        "seconds": seconds,
        "eager_seconds": outcomes[0].wall_s,
    }
    record.save(run, status="running" if verdict == "VALID" else "audit failed")
    shown = f"max |dp| {fidelity['max_abs_dp']:.2g}, BN mean error {fidelity['bn_mean_err']:.2g} std"
    log(f"swagbench: audit {verdict} ({shown}; {seconds:.1f} s)")
    if verdict != "VALID":
        raise JobFailed(f"the audit found the strategy INVALID against eager fp32 ({'; '.join(reasons)})")
    return spec


def _session(opened: Opened, spec, members, trial_dir: TrialDir, record: JobRecord, log, progress=None):
    """One worker session over ``members``; a failed session stops the job (committed members are kept)."""
    config = opened.config
    session = record.next_session()
    on_progress = progress or (lambda done: None)
    if opened.executor is not None:  # Ray: a task per member, committed by this driver as it returns
        journal = MemberJournal(spec.journal_path) if spec.journal_path else None
        tasks = [
            dataclasses.replace(spec, tasks=[[f, s, s + 1]], members_path=None, bn_stats_path=None, journal_path=None)
            for f, s in members
        ]
        threads, limit_s = int(spec.options["threads"]), config.timeout_s * len(members)
        outcome = opened.executor.run(tasks, trial_dir, threads, limit_s, on_progress=on_progress, journal=journal)
    else:
        limit = None if config.memory_limit_gb is None else int(config.memory_limit_gb * 1e9)
        outcome = run_members(
            spec,
            members,
            config.workers,
            trial_dir,
            session,
            config.timeout_s,
            on_progress=on_progress,
            memory_limit_bytes=limit,
            python=config.trials[0].python,
        )
    if trial_dir.path.name != AUDIT_ID:
        record.add_session(outcome, members)
        record.save(opened.run)
    if outcome.status != "ok":
        raise JobFailed(f"a worker stopped ({outcome.status}: {outcome.error}); committed members are kept")
    return outcome


def _compute(opened: Opened, spec, record: JobRecord, trial_dir: TrialDir, pending, already: int, log) -> None:
    config = opened.config
    total = config.ensemble.folds * config.ensemble.samples
    images = member_images(opened)
    with MemberProgress(total, already, images, record.price_per_hour, log) as progress:
        _session(opened, spec, pending, trial_dir, record, log, progress=lambda n: progress.update(already + n))


def member_images(opened: Opened) -> float:
    """Images one member reads on average: its fold's BatchNorm images plus its held-out ones."""
    n, folds = len(opened.fold_of), opened.config.ensemble.folds
    bn = opened.config.trials[0].bn_examples or opened.config.ensemble.bn_examples
    per_fold_train = n * (folds - 1) / folds
    return (min(bn, per_fold_train) if bn else per_fold_train) + n / folds
