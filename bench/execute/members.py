"""A job's members as units of work: which are committed, how the rest are split among workers, and running them.

A member is one (fold, sample) of the ensemble: draw the sample's weights, set BatchNorm over the fold's training
images, predict its held-out ones. Its weights depend only on (seed, fold, sample), so a member computed in any
worker, in any session of the job, is the same member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from swagbench.bench.execute.worker_loop import TrialSpec
from swagbench.bench.execute.worker_process import WorkerJob, WorkerOutcome, run_workers
from swagbench.bench.record.journal import MemberJournal, member_digest
from swagbench.bench.record.rundir import TrialDir

Member = tuple[int, int]  # (fold, sample)


def all_members(folds: int, samples: int) -> list[Member]:
    """Every (fold, sample) of a K x S ensemble, in the order a job computes them."""
    return [(f, s) for f in range(folds) for s in range(samples)]


def audit_members(folds: int, samples: int, count: int) -> list[Member]:
    """The ``count`` members an audit checks: the first sample of each fold, then the second, ... (spread over
    folds: each fold's posterior and data are looked at before any is looked at twice)."""
    return [(k % folds, k // folds) for k in range(min(count, folds * samples))]


def committed(trial_dir: TrialDir, fold_of: np.ndarray) -> set[Member]:
    """The members whose journal line still matches what the maps hold (a member whose rows were changed or lost
    since is recomputed)."""
    entries = MemberJournal(trial_dir.journal).committed()
    if not entries:
        return set()
    members = np.load(trial_dir.members, mmap_mode="r")
    bn_stats = np.load(trial_dir.bn_stats, mmap_mode="r")
    return {
        (fold, sample)
        for (fold, sample), digest in entries.items()
        if member_digest(members, bn_stats, sample, fold, np.flatnonzero(fold_of == fold)) == digest
    }


def tasks_of(members: list[Member]) -> list[list[int]]:
    """``[fold, first_sample, stop_sample]`` tasks covering ``members`` (runs of consecutive samples of a fold)."""
    tasks: list[list[int]] = []
    for fold, sample in members:
        if tasks and tasks[-1][0] == fold and tasks[-1][2] == sample:
            tasks[-1][2] += 1
        else:
            tasks.append([fold, sample, sample + 1])
    return tasks


def split(members: list[Member], workers: int) -> list[list[Member]]:
    """``members`` in order, cut into at most ``workers`` contiguous near-equal parts (none empty)."""
    workers = max(1, min(workers, len(members)))
    bounds = [round(w * len(members) / workers) for w in range(workers + 1)]
    return [members[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False) if hi > lo]


def run_members(
    spec: TrialSpec,
    members: list[Member],
    workers: int,
    trial_dir: TrialDir,
    session: int,
    timeout_per_member_s: float,
    on_progress: Callable[[int], None],
    memory_limit_bytes: int | None = None,
    python: str | None = None,
) -> WorkerOutcome:
    """Compute ``members`` in ``workers`` local worker processes, each committing every member as it finishes it
    (``spec`` carries the job's maps and journal). Each worker may take ``timeout_per_member_s`` per member it has."""
    parts = split(members, workers)
    jobs = []
    for index, part in enumerate(parts):
        job = WorkerJob(*trial_dir.worker_session_files(session, index))
        dataclasses.replace(spec, tasks=tasks_of(part)).save(job.spec_path)
        jobs.append(job)
    threads = int(spec.options["threads"])
    limit = timeout_per_member_s * max(len(p) for p in parts)
    return run_workers(
        jobs, threads, limit, python=python, on_progress=on_progress, memory_limit_bytes=memory_limit_bytes
    )
