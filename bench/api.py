"""swagbench from Python (a notebook, a job): run a benchmark and get the run back; predict with its answer.

    from swagbench.bench import api

    run = api.run(overrides=["data.source=photos", "ensemble.samples=4"], backends="eager,eager:bf16:cl")
    run.summary                 # one row per trial (pandas), as summary.csv
    run.recommendation          # recommendation.json as a dict: the winning strategy, its speedup, its cost
    run.label_issues            # label_issues.csv (pandas): every example, worst label quality first
    probs = api.predictor(run).predict_proba("new_photos/")   # the winner, on new data, from the stored posteriors

:func:`run` is ``swagbench run`` (the same code, the same rows); user mistakes raise
:class:`swagbench.bench.errors.SwagbenchError` subclasses with the CLI's one-line messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from swagbench.bench.record.rundir import RunDir

__all__ = ["Run", "open_run", "predictor", "run"]


@dataclass
class Run:
    """A run folder and what it found (read when first asked for)."""

    path: Path

    @cached_property
    def summary(self) -> pd.DataFrame:
        """One row per trial: minutes per phase, speedups, memory, calibration, fidelity, verdict."""
        from swagbench.bench.report import load

        return load(self.path).df

    @property
    def recommendation(self) -> dict[str, Any]:
        """recommendation.json: ``strategy`` (trial settings, None if nothing is recommended), ``measured``
        (speedup, calibration cost, the size it was measured at), ``ties`` and ``answer`` (the sentence)."""
        return json.loads(RunDir(self.path).recommendation_json.read_text())

    @property
    def label_issues(self) -> pd.DataFrame:
        """label_issues.csv: every example with its given and suggested label and label quality, worst first."""
        return pd.read_csv(RunDir(self.path).label_issues_csv)


def run(
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    backends: str | None = None,
    strategy: str | Path | None = None,
    profile: str | None = None,
    resume: str | Path | None = None,
    log=print,
) -> Run:
    """Run a benchmark as ``swagbench run`` would with ``--config config``, ``key=value`` ``overrides``,
    ``--backends``, ``--strategy`` (a recommendation.json) and ``--profile``; or finish run folder ``resume``.
    ``log`` gets every line the CLI would print."""
    from swagbench.bench.config import load_config
    from swagbench.bench.measure.hardware_profiles import load_profile, profile_overrides
    from swagbench.bench.run import execute

    if resume is not None:
        stored = RunDir.existing(resume)
        cfg = load_config(stored.config_path, [f"results_dir={stored.path.parent}"])
        return Run(execute(cfg, log=log, resume=stored.path))
    prof = load_profile(profile) if profile else None
    cfg = load_config(config, overrides, backends, base=profile_overrides(prof) if prof else None, strategy=strategy)
    return Run(execute(cfg, log=log, profile=prof))


def open_run(path: str | Path) -> Run:
    """A run made earlier (``results/<run-id>``)."""
    return Run(RunDir.existing(path).path)


def predictor(run_or_path: Run | str | Path, strategy=None, threads: int | None = None, samples: int | None = None):
    """An :class:`swagbench.bench.predictor.EnsemblePredictor` over a run's posteriors with ``strategy`` (default: the
    run's
    recommendation)."""
    from swagbench.bench.predictor import EnsemblePredictor

    path = run_or_path.path if isinstance(run_or_path, Run) else run_or_path
    return EnsemblePredictor(path, strategy, threads=threads, samples=samples)
