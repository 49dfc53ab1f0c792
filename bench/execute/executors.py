"""Where a trial's worker parts run: one small interface, one class per executor, one registry.

``swagbench.bench.execute.trial`` builds a trial's :class:`~swagbench.bench.execute.worker_loop.TrialSpec` parts and
hands them to the run's executor; it never asks which executor it is. A new executor is a class with this interface (its
own module), one line in :data:`EXECUTORS` and its name in ``swagbench.bench.config.settings.EXECUTOR_NAMES`` (which the
config checks names against and the CLI offers); docs/architecture.md lists what else one may need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from swagbench.bench.execute.worker_loop import TrialSpec
from swagbench.bench.execute.worker_process import WorkerJob, WorkerOutcome, run_workers
from swagbench.bench.record.rundir import TrialDir


class Executor(Protocol):
    """Runs the worker parts of one trial at a time.

    Attributes
    ----------
    shares_files : bool
        Whether workers write the trial's member and BatchNorm-statistics maps themselves (a shared file
        system); if not, the specs carry no map paths and the executor writes what the workers return.
    """

    shares_files: bool

    def refuses(self, python: str | None) -> str | None:
        """Why a trial whose workers need interpreter ``python`` (None: the harness's) cannot run here, or None."""

    def run(
        self,
        specs: list[TrialSpec],
        trial_dir: TrialDir,
        threads: int,
        timeout_s: float,
        python: str | None,
        on_progress: Callable[[int], None],
    ) -> WorkerOutcome:
        """Run ``specs`` (one per worker part, ``threads`` threads each) under one wall-clock limit of
        ``timeout_s`` seconds; ``on_progress`` gets the samples done by all parts together."""

    def close(self) -> None:
        """Release what the executor holds (a Ray connection); called once when the run ends."""


class LocalExecutor:
    """Worker processes on this machine (``python -m swagbench.bench.execute.worker``), inputs and outputs passed as
    files in the
    trial folder; a trial whose workers together exceed ``memory_limit_bytes`` of resident memory is stopped."""

    shares_files = True

    def __init__(self, memory_limit_bytes: int | None = None) -> None:
        self.memory_limit_bytes = memory_limit_bytes

    def refuses(self, python: str | None) -> str | None:
        return None

    def run(self, specs, trial_dir, threads, timeout_s, python, on_progress):
        jobs = []
        for w, spec in enumerate(specs):
            job = WorkerJob(*trial_dir.worker_files(w, len(specs)))
            spec.save(job.spec_path)
            jobs.append(job)
        return run_workers(
            jobs, threads, timeout_s, python=python, on_progress=on_progress, memory_limit_bytes=self.memory_limit_bytes
        )

    def close(self) -> None:
        pass


def _local(config, log) -> LocalExecutor:
    return LocalExecutor(None if config.memory_limit_gb is None else int(config.memory_limit_gb * 1e9))


def _ray(config, log) -> Executor:
    from swagbench.bench.execute.ray_executor import RayExecutor

    return RayExecutor(config.ray_address, config.ray_max_retries, log=log, node_ip=config.ray_node_ip)


# Executor name (as config, CLI and rows spell it) -> factory(run config, log) of that executor.
EXECUTORS: dict[str, Callable] = {"local": _local, "ray": _ray}
