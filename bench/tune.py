"""``swagbench tune RUN``: the cheapest VALID combination of per-phase engines for the target job, verified.

A run measured each trial's BatchNorm pass and its predict side (sampling, data, setup, predict, confident learning)
separately. Projected to the run's target (``swagbench.bench.answer.projection``), the cheapest BatchNorm engine and the
cheapest predict engine among the run's successful VALID trials may be different trials: then a *hybrid* trial (``bn:``
beside ``backend:``) combines them. Only VALID trials are components; the combination itself is run (beside the eager
fp32 reference, on the run's own data, folds and posteriors) and gated like any trial before it is recommended, so a
pair that is only valid apart is caught.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from swagbench.bench.answer.projection import project, target_sizes
from swagbench.bench.config import TrialConfig, load_config
from swagbench.bench.errors import ConfigError
from swagbench.bench.progress import duration
from swagbench.bench.record.row import TrialRow
from swagbench.bench.record.rundir import RunDir


@dataclass(frozen=True)
class Plan:
    """The composed strategy: ``trial`` (a hybrid where ``bn_from`` and ``predict_from`` differ), the trials its
    parts come from, and the projected minutes at the target of each part and of the whole."""

    trial: TrialConfig
    bn_from: str
    predict_from: str
    bn_min: float
    predict_min: float
    size: tuple[int, int, int]

    @property
    def minutes(self) -> float:
        return self.bn_min + self.predict_min


def bn_engine_of(row: TrialRow) -> str | None:
    """The engine that ran ``row``'s BatchNorm pass as a ``bn:`` spec (None where the model has no BatchNorm)."""
    info = row.bn_update or {}
    if row.bn_engine:
        return row.bn_engine
    if info.get("where") == "eager":  # the backend could not: eager fp32 ran it
        return "eager"
    if info.get("where") == "none":
        return None
    return f"{row.backend}:{row.precision}" + (":cl" if row.channels_last else "")


def compose(rows: list[TrialRow], target: dict | None) -> Plan:
    """The cheapest VALID BatchNorm engine and predict engine at ``target`` (ConfigError where nothing is VALID)."""
    valid = [r for r in rows if r.status == "ok" and r.validity == "VALID" and r.sample_phases_s]
    if not valid:
        raise ConfigError("the run has no successful VALID trial with per-sample timings to compose a strategy from")
    size = target_sizes(valid[0], target)
    costs = {}
    for r in valid:
        phases = project(r, *size)
        costs[r.trial_id] = (phases["bn_update"] / 60, (phases["ensemble"] - phases["bn_update"]) / 60)
    with_bn = [r for r in valid if r.trial_bn_examples is None and bn_engine_of(r) is not None]
    bn_row = min(with_bn, key=lambda r: costs[r.trial_id][0]) if with_bn else None
    pred_row = min(valid, key=lambda r: costs[r.trial_id][1])
    engine = bn_engine_of(bn_row) if bn_row else None
    own = bn_engine_of(pred_row)
    trial = TrialConfig(
        backend=pred_row.backend,
        precision=pred_row.precision,
        channels_last=pred_row.channels_last,
        batch_size=pred_row.batch_size,
        members=pred_row.members,
        options=dict(pred_row.options),
        bn_examples=pred_row.trial_bn_examples,
        bn=engine if engine != own else None,
    )
    source = bn_row if trial.bn else pred_row
    return Plan(trial, source.trial_id, pred_row.trial_id, costs[source.trial_id][0], costs[pred_row.trial_id][1], size)


def tune(run_dir, verify: bool = True, log=print):
    """Compose the plan for run ``run_dir``'s target, print it and (``verify``) run it beside the reference in a new
    run folder next to it, whose recommendation.json then holds the verified answer; returns that folder (None where
    nothing was run: not verifying, or no hybrid beats the run's own trials)."""
    from swagbench.bench.report import load
    from swagbench.bench.run import execute

    run = RunDir.existing(run_dir)
    data = load(run)
    plan = compose(data.rows, data.target)
    images, folds, samples = plan.size
    log(
        f"swagbench: tune: for {images:,} images x {folds} folds x {samples} samples (projected): BatchNorm pass as in "
        f"{plan.bn_from} ({duration(plan.bn_min * 60)}), the rest as in {plan.predict_from} "
        f"({duration(plan.predict_min * 60)}): "
        f"{duration(plan.minutes * 60)}; trial {plan.trial.label}"
    )
    if not plan.trial.bn:
        log(
            f"swagbench: tune: {plan.predict_from} is already the cheapest in both parts, so there is nothing to "
            f"compose: the run's recommendation ({run.recommendation_json}) stands"
        )
        return None
    if not verify:
        return None
    config = load_config(run.config_path, [f"results_dir={run.path.parent}"])
    config = dataclasses.replace(config, name=f"{config.name}-tuned", trials=[plan.trial])
    log("swagbench: tune: verifying it beside the eager fp32 reference on the run's data, folds and posteriors")
    return execute(config, log=log)
