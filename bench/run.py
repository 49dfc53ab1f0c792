"""A whole benchmark run: data -> folds -> posteriors -> one worker per backend trial -> report.

:func:`execute` opens the run (:func:`new_run` or :func:`resume_run`, two small functions over the same steps), obtains
the posteriors, runs every trial that has no row yet (``swagbench.bench.execute.trial``), gates it against the reference
(``swagbench.bench.answer.fidelity.gate``) and writes the report (``swagbench.bench.report``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swagbench.backends import get_backend
from swagbench.bench.answer.fidelity import gate, is_reference, is_reference_row, tolerances_table
from swagbench.bench.answer.recommend import recommendation
from swagbench.bench.answer.subset import choose as choose_subset
from swagbench.bench.answer.subset import describe as describe_subset
from swagbench.bench.answer.subset import ladder_trials
from swagbench.bench.config import RESUME_FREE, RunConfig, TrialConfig, setting_digests
from swagbench.bench.dataset import Dataset, data_cache, load_dataset
from swagbench.bench.errors import ConfigError, RunInterrupted, Terminated
from swagbench.bench.execute.executors import EXECUTORS, Executor
from swagbench.bench.execute.trial import RunFacts, base_row, repeated, run_one
from swagbench.bench.measure.environment import environment
from swagbench.bench.measure.hardware_profiles import host_mismatch, target_isa
from swagbench.bench.measure.memory import AnonPeak
from swagbench.bench.measure.roofline import measure_peak, roofline
from swagbench.bench.posteriors import obtain_posteriors, user_posteriors
from swagbench.bench.prechecks import ModelFacts, check_model, check_room, check_shards, check_trials, thread_warnings
from swagbench.bench.progress import Progress
from swagbench.bench.record.folds import assign_folds
from swagbench.bench.record.row import TrialRow
from swagbench.bench.record.row_store import append_row, has_rows, read_rows
from swagbench.bench.record.rundir import RunDir
from swagbench.swag.models.registry import resolve_model


@dataclass
class Opened:
    """A run folder ready for trials: its config, data, folds, model facts, env.json and the rows it already has."""

    config: RunConfig
    run: RunDir
    dataset: Dataset
    fold_of: np.ndarray
    model: ModelFacts
    env: dict[str, Any]
    done: dict[str, TrialRow]
    executor: Any = None  # a job's Ray executor (a run opens its executor apart)


def with_reference(trials: list[TrialConfig], log) -> list[TrialConfig]:
    """Put the eager fp32 reference first (adding it if missing): every other trial is judged against it."""
    ref = [t for t in trials if is_reference(t.backend, t.precision, t.channels_last, t.bn_examples, t.bn)]
    if not ref:
        log("swagbench: adding the eager fp32 reference trial (the fidelity gate compares every trial with it)")
        ref = [TrialConfig()]
    return ref[:1] + [t for t in trials if t is not ref[0]]


def with_ladder(config: RunConfig, fold_of: np.ndarray, log) -> RunConfig:
    """``config`` with the BatchNorm subset ladder's trials where a trial asks for ``bn_examples: auto``
    (:func:`swagbench.bench.answer.subset.ladder_trials`), stored with the run so that a resume runs the same. A
    timing-only run has no calibration to choose by: no ladder, and ``auto`` keeps the full data."""
    train_size = int(min((fold_of != f).sum() for f in np.unique(fold_of)))
    ladder = config.ensemble.bn_ladder if config.metrics_meaningful else []
    trials = ladder_trials(config.trials, ladder, train_size, lambda n: TrialConfig(bn_examples=n))
    added = [t.bn_examples for t in trials if t not in config.trials]
    if added:
        log(
            "swagbench: bn_examples auto: adding the subset ladder, eager fp32 from "
            + ", ".join(f"{n:,}" for n in added)
            + " BatchNorm images per fold (against the full-data reference; the smallest within the limits is kept)"
        )
    return dataclasses.replace(config, trials=trials)


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
    failed, timed-out and skipped ones when ``retry_failed``). ``profile`` (see swagbench.bench.measure.profiles)
    is recorded in env.json with whether this host matches it.
    """
    check_trials(config)
    for warning in thread_warnings(config):
        log(f"swagbench: warning: {warning}")
    config = dataclasses.replace(config, trials=with_reference(config.trials, log))
    run_dirs: list[Path] = []  # the run folder, once there is one (for the resume hint on Ctrl-C)
    try:
        with contextlib.ExitStack() as held:  # the run folder's lock, released however this ends
            parent = held.enter_context(AnonPeak())  # the harness's own anonymous memory, recorded per trial
            if resume is None:
                opened = new_run(config, profile, log, run_dirs.append, held)
            else:
                opened = resume_run(config, RunDir(resume), retry_failed, log, run_dirs.append, held)
            facts = obtain(opened, log)
            executor = held.enter_context(contextlib.closing(EXECUTORS[config.executor](opened.config, log)))
            run_trials(opened, facts, executor, log, parent)
            if opened.config.ceiling_s:
                from swagbench.bench.measure.ceiling import measure

                seconds = opened.config.ceiling_s
                log(
                    f"swagbench: each runtime's own ceiling on this model, {seconds:g} s each (ceiling_s=0 skips; "
                    "the runtimes' own output in ceiling.log)"
                )
                measure(opened.run.path, seconds, log=log)
            return finish_run(opened.run, log)
    except KeyboardInterrupt as exc:
        if run_dirs:
            raise RunInterrupted(run_dirs[0], terminated=isinstance(exc, Terminated)) from None
        raise


def new_run(config: RunConfig, profile, log, on_run_dir, held: contextlib.ExitStack, what: str = "run") -> Opened:
    """Check everything, then create and lock the run folder (``what``: a run's or a job's) and store config,
    environment, data and folds."""
    resolve_model(config.model)  # a bad model spec fails before any data is read
    target_isa(config.target.isa, None)  # so does a target.isa naming an unknown profile
    RunDir.check_writable(Path(config.results_dir), "results_dir")
    RunDir.check_writable(data_cache(config.resolved_cache_dir), "cache_dir")  # data stores live there
    dataset = load_dataset(config.data, config.resolved_cache_dir, log)
    ens = config.ensemble
    fold_of = assign_folds(config.data.folds, dataset, ens.folds, ens.seed, config.data.source, log)
    check_shards(config, fold_of)
    model = check_model(config, dataset)
    for note in model.bn_notes:
        log(f"swagbench: note: BatchNorm: {note}")
    check_room(config, dataset, model)
    config = with_ladder(absolute_paths(config), fold_of, log)
    if config.posteriors_dir:
        user_posteriors(config, dataset, fold_of, log)
    env = {"profile": None if profile is None else {**profile, "host_mismatch": host_mismatch(profile)}}
    env.update(environment(config.resolved_threads))

    def fill(run: RunDir) -> None:
        run.write_config(config.to_dict())
        run.write_settings(setting_digests(config))
        run.write_env(env)
        run.write_tolerances(tolerances_table())
        run.save_data(dataset)
        run.save_folds(fold_of)

    run = RunDir.create(config.results_dir, config.name, fill)
    on_run_dir(run.path)
    held.enter_context(run.lock())
    log(f"swagbench: {what} directory {run.path}")
    return Opened(config, run, dataset, fold_of, model, env, {})


def resume_run(config: RunConfig, run: RunDir, retry_failed: bool, log, on_run_dir, held) -> Opened:
    """Lock an existing run folder, check its settings are those it was made with, and read back its data, folds,
    environment and recorded rows."""
    on_run_dir(run.path)
    held.enter_context(run.lock())
    check_unchanged(run, config)
    dataset = run.load_data(rebuild=lambda: load_dataset(config.data, config.resolved_cache_dir, log))
    fold_of = run.load_folds()
    check_shards(config, fold_of)
    model = check_model(config, dataset)
    env = run.read_env()
    # A run killed while training has no rows yet: it resumes from training.
    done = {r.trial_id: r for r in read_rows(run, warn=log)} if has_rows(run) else {}
    if retry_failed:
        done = {k: r for k, r in done.items() if r.status == "ok"}
    left = len(config.trials) - len(done)
    log(
        f"swagbench: resuming {run.path}: {len(done)} of {len(config.trials)} trials recorded"
        + (f", running the other {left}" if left else "; nothing left to run, rebuilding the summary")
    )
    return Opened(config, run, dataset, fold_of, model, env, done)


def check_unchanged(run: RunDir, config: RunConfig, command: str = "run") -> None:
    """Refuse to resume a run whose settings differ from those it was created with (an edited config.yaml):
    its recorded trials were made, and would be judged, under the old ones."""
    recorded = run.read_settings()
    if recorded is None:
        return  # made before settings were recorded: nothing to compare with
    now = setting_digests(config)
    defaults = setting_digests(RunConfig())  # a setting added since the run was made: it ran at its default
    changed = sorted(k for k in recorded.keys() | now.keys() if recorded.get(k, defaults.get(k)) != now.get(k))
    if changed:
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        raise ConfigError(
            f"{run.config_path} differs from the settings the run was made with ({shown}); a run's settings are fixed "
            f"when it is created: undo the edit, or start a new run with the new settings "
            f"(only {', '.join(RESUME_FREE[2:])} may change on resume: swagbench {command} --resume DIR timeout_s=...)"
        )


def obtain(opened: Opened, log, peak: bool = True) -> RunFacts:
    """The run's posteriors (trained, cached or the user's) and, once per run, the machine's peak GFLOP/s (which a
    job, with no roofline to draw, does not measure)."""
    config, run, dataset = opened.config, opened.run, opened.dataset
    with Progress(
        config.ensemble.folds * config.train.epochs, "train SWAG posteriors", "epoch", quiet_until_update=True
    ) as bar:  # silent when cached posteriors are reused
        posteriors = obtain_posteriors(config, dataset, opened.fold_of, run, log=log, on_epoch=bar.update)
    run.write_posteriors({**dataclasses.asdict(posteriors), "paths": [str(p.resolve()) for p in posteriors.paths]})
    if posteriors.source == "trained":
        took = f"{posteriors.train_s:.1f} s" if posteriors.train_s < 60 else f"{posteriors.train_s / 60:.1f} min"
        log(f"swagbench: trained {len(posteriors.paths)} posteriors in {took}")
    if peak and "peak" not in opened.env:  # once per run, on the run's thread budget, after training warmed the CPU
        log("swagbench: measuring this machine's peak GFLOP/s (matmul and conv, fp32/bf16/int8)")
        opened.env["peak"] = measure_peak(config.resolved_threads)
        run.write_env(opened.env)
    if not config.metrics_meaningful:
        log(
            "swagbench: timing-only run (synthetic data or posterior): calibration and label metrics are not meaningful"
        )
    return RunFacts.of(
        dataset,
        posteriors.paths,
        posteriors.source,
        train_s=posteriors.train_s,
        bn_channels=opened.model.bn_channels,
        profile=(opened.env.get("profile") or {}).get("name"),
    )


def run_trials(opened: Opened, facts: RunFacts, executor: Executor, log, parent: AnonPeak) -> None:
    """Run, gate and record every trial without a row; the reference (first) gates the others. ``parent``
    samples the harness's anonymous memory, recorded in each row."""
    config, run = opened.config, opened.run
    reference = next((r for r in opened.done.values() if is_reference_row(r)), None)
    new_reference, recorded = False, dict(opened.done)
    for i, trial in enumerate(config.trials):
        trial_id = f"{i:02d}-{trial.label}"
        if trial_id in opened.done:
            continue
        choice = None
        if trial.bn_examples == "auto":  # the ladder ran before it (swagbench.bench.answer.subset)
            choice = choose_subset(recorded.values(), config.metrics_meaningful)
            log(f"swagbench: {trial_id}: {describe_subset(choice)}")
            trial = dataclasses.replace(trial, bn_examples=choice["chosen"])
        row = base_row(config, trial, trial_id, run, facts)
        row = trial_row(opened, facts, trial, dataclasses.replace(row, bn_choice=choice), executor, log)
        row = dataclasses.replace(row, parent_peak_anon_bytes=parent.peak)
        if reference is None and is_reference_row(row):
            reference, new_reference = row, True
        recorded[trial_id] = gate(row, reference, run)
        append_row(run, recorded[trial_id])
    if new_reference:  # trials recorded before it (without a reference, or against an earlier one): judge them now
        regate(opened, reference, log)


def regate(opened: Opened, reference: TrialRow, log) -> None:
    """Gate every successful recorded trial again against ``reference`` and record its new verdict."""
    for row in opened.done.values():
        if row.status == "ok" and row.trial_id != reference.trial_id:
            judged = gate(row, reference, opened.run)
            if (judged.validity, judged.fidelity) != (row.validity, row.fidelity):
                log(f"swagbench: {row.trial_id}: {row.validity} -> {judged.validity} against the new reference")
                append_row(opened.run, judged)


def trial_row(opened: Opened, facts: RunFacts, trial: TrialConfig, row: TrialRow, executor: Executor, log) -> TrialRow:
    """Run one trial (``repeats`` times) and return its row: ``skipped`` with the reason where its backend is
    unavailable or the executor cannot run it, else measured, with its roofline."""
    backend = get_backend(trial.backend)
    ok, reason = backend.available()
    if ok and trial.bn_engine is not None:  # a hybrid needs its BatchNorm engine too
        ok, reason = get_backend(trial.bn_engine.backend).available()
        reason = reason if ok else f"its BatchNorm engine {trial.bn}: {reason}"
    python = trial.python or backend.python()
    if ok:
        reason = executor.refuses(python)
    if not ok or reason:
        log(f"swagbench: skipping {row.trial_id}: {reason}")
        return dataclasses.replace(row, error=reason)
    row = dataclasses.replace(row, python=python)
    attempt = functools.partial(run_one, opened.config, trial, row, opened.run, facts, executor, opened.dataset)
    row = repeated(opened.config.repeats, attempt)
    if row.status != "ok":
        return row
    peak, gflop = opened.env["peak"], opened.model.gflop
    bn_precision = (row.bn_update or {}).get("precision", trial.precision)
    return dataclasses.replace(
        row,
        roofline=roofline(gflop, row.predict_img_per_s, trial.precision, peak),
        roofline_bn=roofline(gflop, row.bn_img_per_s, bn_precision, peak),
    )


def finish_run(run: RunDir, log) -> Path:
    """Write the report (frames built once), print summary.md and end with the recommendation."""
    from swagbench.bench.report import build_report, load
    from swagbench.bench.report.sections import issues_line

    data = load(run, warn=log)
    reference = data.reference
    if reference is not None:  # the job's output: the label issues, from the reference trial's probabilities
        shutil.copyfile(run.trial(reference.trial_id).label_issues_csv, run.label_issues_csv)
    report = build_report(run, data)
    log(run.summary_md.read_text())
    log(f"swagbench: results in {run.path} (results.jsonl, summary.csv, summary.md, charts, {report.name})")
    if reference is not None:
        log(f"swagbench: {issues_line(reference, run.label_issues_csv)}")
    log(f"swagbench: the recommended strategy as data (--strategy, api.predictor): {run.recommendation_json}")
    if run.read_recommendation().get("strategy"):
        source = run.config_dict()["data"]["source"]
        log(
            f"swagbench: run it on all of your data: swagbench job --strategy {run.recommendation_json} "
            f"data.source={source} model={run.config_dict()['model']} (add your posteriors_dir=, data.folds=)"
        )
    log(f"swagbench: recommendation: {recommendation(data.df)}")
    return run.path


def absolute_paths(config: RunConfig) -> RunConfig:
    """``config`` with the folders it names outside the run made absolute, so the stored config means the same
    from any working directory (the results folder itself is the run folder's parent when resumed)."""
    absolute: dict[str, Any] = {
        key: str(Path(getattr(config, key)).resolve())
        for key in ("cache_dir", "posteriors_dir", "model_checkpoint")
        if getattr(config, key) is not None
    }
    trials = [dataclasses.replace(t, python=str(Path(t.python).absolute())) if t.python else t for t in config.trials]
    data = config.data
    if data.folds is not None and data.folds.endswith(".npy"):
        data = dataclasses.replace(data, folds=str(Path(data.folds).resolve()))
    return dataclasses.replace(config, **absolute, data=data, trials=trials)
