"""One backend trial of the SWAG ensemble: tasks run in worker processes, the parent finishes.

A trial's work is the (fold, sample) pairs of the ensemble. They are split into contiguous
*tasks* ``[fold, first_sample, stop_sample]`` among the trial's workers (one worker by default;
several with ``workers``), each a separate process with its own thread budget. Everything
crosses the process boundary as files: the spec (JSON) names the dataset (.npz), fold
assignment (.npy), per-fold posteriors (safetensors) and the shared ``member_probs.npy``
(S, N, C) memory map, into which every worker writes only its own (sample, example) cells.
The parent then finishes: ensemble means at S = 1, 2, 4, ..., confident learning, metrics.
A sample's weights depend only on (seed, fold, sample), so any split gives the same members.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.timing import PhaseClock, merge_timings


@dataclass
class TrialSpec:
    """Inputs of one worker (paths are absolute or relative to the worker's cwd).

    tasks: ``[fold, first_sample, stop_sample]`` triples this worker computes. shard / shards:
    this worker predicts only part ``shard`` of ``shards`` equal parts of each fold's held-out
    examples (sampling and the BN update are repeated per shard). members: ``stream`` draws one
    sample's weights at a time; ``hold`` draws all of a task's samples first and keeps them in
    memory. members_path: the shared (S, N, C) map to write into; None returns the member
    probabilities in the payload instead (executors whose workers share no file system). bn_stats_path:
    the shared (S, K, 2, channels) map of every sample's BatchNorm running means and variances (None:
    returned in the payload like the members)."""

    trial_id: str
    backend: str
    options: dict[str, Any]
    model: str
    num_classes: int
    in_channels: int
    data_path: str
    folds_path: str
    posterior_paths: list[str]
    ensemble: dict[str, Any]
    members_path: str | None
    tasks: list[list[int]]
    bn_stats_path: str | None = None
    members: str = "stream"
    shard: int = 0
    shards: int = 1

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> TrialSpec:
        return cls(**json.loads(Path(path).read_text()))


def split_tasks(folds: int, samples: int, workers: int) -> list[list[list[int]]]:
    """Split the folds x samples (fold, sample) pairs, in order, into ``workers`` contiguous
    near-equal parts, each a list of ``[fold, first_sample, stop_sample]`` tasks. (Each part is
    further split by data shard when a run asks for shards: see TrialSpec.)"""
    pairs = folds * samples
    if not 1 <= workers <= pairs:
        raise ValueError(f"workers must be in [1, {pairs}] (folds x samples); got {workers}")
    bounds = [round(w * pairs / workers) for w in range(workers + 1)]
    parts = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        tasks = []
        for fold in range(lo // samples, (hi - 1) // samples + 1):
            first, stop = max(lo - fold * samples, 0), min(hi - fold * samples, samples)
            tasks.append([fold, first, stop])
        parts.append(tasks)
    return parts


def sample_seed(base: int, fold: int, sample: int) -> int:
    """Seed of SWAG sample ``sample`` of fold ``fold``: identical across backends, so they are comparable."""
    return int(base) * 1_000_003 + fold * 10_007 + sample


def fold_seed(base: int, fold: int) -> int:
    """Seed of fold ``fold``'s training (initial weights and SGD order), from the data seed ``base``."""
    return int(base) * 7919 + fold


def bn_subset_seed(base: int, fold: int) -> int:
    """Seed of fold ``fold``'s BatchNorm subset (``bn_examples``), from the ensemble seed ``base``."""
    return int(base) + fold


def bn_subset(train_idx: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """The training examples whose statistics set BatchNorm: all, or a seeded sorted subset of ``n``."""
    if n is None or n >= len(train_idx):
        return train_idx
    return np.sort(np.random.default_rng(seed).choice(train_idx, size=n, replace=False))


def _batches(x, size: int):
    return [x[i : i + size] for i in range(0, x.shape[0], size)]


def run_tasks(spec: TrialSpec, progress: Callable[[int, int], None] = lambda done, total: None) -> dict[str, Any]:
    """Compute this worker's tasks into the shared member map; return timings (JSON-able).

    Per (fold, sample), all in the backend: draw the weights into the model (``sample``), bind them to the
    backend's statistics runner (``prepare``), compute BatchNorm statistics over the fold's BN batches and
    load their update_bn average into the model (``bn_update``), bind weights and statistics to the
    inference runner (``prepare``), predict the fold's held-out examples (``predict``). The first call per
    batch shape after a runner was built is timed apart as ``warmup``. A backend that cannot compute
    statistics gets them from eager fp32, recorded in ``bn_update``.
    """
    import psutil
    import torch

    from backends import BackendOptions, get_backend
    from bench.folds import fold_split
    from bench.memory import peak_rss_bytes
    from swag.batchnorm import StatisticsAccumulator, load_statistics, statistics_vector
    from swag.io import load_posterior
    from swag.models import build_model
    from swag.sampling import Sampler, load_flat_parameters

    start_wall = time.time()
    options = BackendOptions(**spec.options)
    torch.set_num_threads(options.threads)
    backend = get_backend(spec.backend)
    backend.check(options)

    with np.load(spec.data_path, allow_pickle=False) as f:
        x_all = torch.from_numpy(f["x"])
    fold_of = np.load(spec.folds_path)
    members = np.load(spec.members_path, mmap_mode="r+") if spec.members_path else None
    bn_stats = np.load(spec.bn_stats_path, mmap_mode="r+") if spec.bn_stats_path else None
    returned: list[tuple[int, np.ndarray, np.ndarray]] = []  # (sample, example indices, probs)
    returned_bn: list[tuple[int, int, np.ndarray]] = []  # (sample, fold, statistics vector)
    clock = PhaseClock()
    baseline_rss = psutil.Process().memory_info().rss
    total = sum(stop - first for _, first, stop in spec.tasks)
    expect = {"model": spec.model, "num_classes": spec.num_classes}
    swap = backend.can_swap(options)
    seed, scale, diag = spec.ensemble["seed"], float(spec.ensemble["scale"]), bool(spec.ensemble["diag_only"])

    # One model and (for swap-capable backends) one prepared runner serve every fold: a sample
    # overwrites all parameters and recomputes all BN statistics, so no state carries over.
    model = build_model(spec.model, spec.num_classes, spec.in_channels).requires_grad_(False).eval()
    statistics = StatisticsStep(backend, options)
    runner, fresh_predict, done, loop_start = None, set(), 0, time.time()
    for fold, first, stop in spec.tasks:
        posterior = load_posterior(spec.posterior_paths[fold], expect=expect)
        sampler = Sampler(posterior, scale, diag)
        theta = torch.empty(posterior.num_parameters)
        train_idx, test_idx = fold_split(fold_of, fold)
        test_idx = np.array_split(test_idx, spec.shards)[spec.shard]
        bn_idx = bn_subset(train_idx, spec.ensemble.get("bn_examples"), bn_subset_seed(seed, fold))
        bn_batches = _batches(x_all[bn_idx], int(spec.ensemble["bn_batch_size"]))
        test_batches = _batches(x_all[test_idx], options.batch_size)
        held = {}
        if spec.members == "hold":
            with clock("sample"):
                held = {s: sampler.draw(sample_seed(seed, fold, s)) for s in range(first, stop)}
        for s in range(first, stop):
            clock.start_sample()
            with clock("sample"):
                flat = held.pop(s) if held else sampler.draw(sample_seed(seed, fold, s), out=theta)
                load_flat_parameters(model, flat, posterior)
            with clock("prepare"):
                statistics.bind(model, bn_batches[0])
            accumulator = StatisticsAccumulator()
            for batch in bn_batches:
                with clock.call("bn_update", statistics.fresh, batch.shape[0]):
                    accumulator.add(statistics.runner(batch))
            with clock("bn_update"):
                load_statistics(model, accumulator.result(), accumulator.batches)
            with clock("prepare"):
                if runner is None or not swap:
                    if runner is None or backend.prepare_compiles(options):
                        fresh_predict = set()
                    runner = backend.prepare(model, test_batches[0], options, calibration=bn_batches)
                else:
                    runner = backend.update(runner, model, options, calibration=bn_batches)
            member = []
            for batch in test_batches:
                with clock.call("predict", fresh_predict, batch.shape[0]):
                    member.append(torch.softmax(runner(batch).float(), dim=1).numpy())
            p = np.concatenate(member)
            if p.shape != (len(test_idx), spec.num_classes):
                raise RuntimeError(f"backend returned shape {p.shape}, expected {(len(test_idx), spec.num_classes)}")
            vector = statistics_vector(model)
            if members is not None:
                members[s, test_idx] = p
                bn_stats[s, fold] = vector
            else:
                returned.append((s, test_idx, p))
                returned_bn.append((s, fold, vector))
            clock.end_sample(fold, s)
            done += 1
            progress(done, total)
        del posterior, sampler
    loop_end = time.time()
    info = dict(getattr(runner, "info", {}))
    del runner, model
    for array in (members, bn_stats):
        if array is not None:
            array.flush()
    return {
        "member_rows": returned,
        "bn_rows": returned_bn,
        "strategy": "swap_weights" if swap else "reprepare",
        "backend_info": info,
        "bn_update": statistics.info,
        **clock.payload(start_wall, loop_start, loop_end),
        "threads": torch.get_num_threads(),
        "versions": backend.versions(),
        "baseline_rss_bytes": int(baseline_rss),
        "peak_rss_bytes": peak_rss_bytes(),
    }


class StatisticsStep:
    """The trial's statistics runner: the backend's own, or eager fp32 where the backend cannot (recorded)."""

    def __init__(self, backend, options) -> None:
        self.backend, self.options = backend, options
        self.runner, self.fresh = None, set()
        self.info: dict[str, Any] = {}

    def bind(self, model, example) -> None:
        """Build the runner (first sample) or move it to the weights now in ``model``."""
        from backends.eager import native_statistics
        from swag.batchnorm import StatisticsUnsupported

        if self.runner is None:
            try:
                self.runner = self.backend.statistics(model, example, self.options)
                self.info = {"where": "backend", **getattr(self.runner, "info", {})}
            except StatisticsUnsupported as exc:
                reference = dataclasses.replace(self.options, precision="fp32", channels_last=False, extra={})
                self.runner = native_statistics(model, reference)
                self.info = {"where": "eager", **self.runner.info, "reason": str(exc)}
            self.fresh = set()
        elif self.info["where"] == "backend":
            self.runner = self.backend.update_statistics(self.runner, model, example, self.options)


def check_probabilities(probs: np.ndarray, what: str) -> None:
    """Raise ValueError unless every row of ``probs`` (N, C) is finite, in [0, 1] and sums to 1 (within
    float32 rounding): a trial whose outputs are not probabilities must fail, never become a result."""
    if not np.isfinite(probs).all():
        raise ValueError(f"{what}: the backend produced non-finite probabilities (NaN or inf)")
    sums = probs.sum(axis=1, dtype=np.float64)
    if probs.min() < 0 or probs.max() > 1 or np.abs(sums - 1).max() > 1e-3:
        raise ValueError(f"{what}: probabilities outside [0, 1] or not summing to 1 (worst sum {sums.min():.4g})")


def finish_trial(
    out_dir: Path, data_path: Path, members_path: Path, cleanlab: dict[str, Any], parts: list[dict[str, Any]]
) -> dict[str, Any]:
    """Merge the workers' timings and turn the member probabilities into the trial's results.

    Writes ``probs.npy`` (N, C) ensemble probabilities, ``label_issues.npy``, ``label_quality.npy``
    and ``predict_batch_s.npy`` (raw per-batch predict seconds of all workers) into ``out_dir``.
    ``ensemble_s`` is wall-clock: first worker's loop start to last worker's loop end (worker
    start-up and imports excluded, as a long-lived service would not pay them), plus confident
    learning. ``phases_s`` are worker-seconds summed over workers; with one worker their sum is
    the ensemble time.
    """
    from bench.confident import find_label_issues
    from bench.metrics import calibration, detection_scores, sample_checkpoints

    with np.load(data_path, allow_pickle=False) as f:
        labels = f["y"]
        true_labels = f["y_true"] if "y_true" in f.files else None
    members = np.load(members_path, mmap_mode="r")
    samples = members.shape[0]
    checkpoints = sample_checkpoints(samples)
    running = np.zeros(members.shape[1:], dtype=np.float64)
    ckpt_probs = {}
    for s in range(samples):  # streamed: one (N, C) member in memory at a time
        check_probabilities(members[s], f"SWAG sample {s}")
        running += members[s]
        if s + 1 in checkpoints:
            ckpt_probs[s + 1] = running / (s + 1)
    del members

    timing = merge_timings(parts)
    probs = ckpt_probs[samples]
    t0 = time.perf_counter()
    issues, quality = find_label_issues(labels, probs, cleanlab["filter_by"], cleanlab["quality_method"])
    timing["phases_s"]["confident_learning"] = time.perf_counter() - t0
    timing["ensemble_s"] += timing["phases_s"]["confident_learning"]

    # Calibration against the given labels (the headline, see bench.metrics.HEADLINE_LABELS) and against the
    # true labels when they are known (injected noise).
    eval_labels = labels if true_labels is None else true_labels
    bt = timing.pop("predict_batch_s")
    np.save(out_dir / "probs.npy", probs.astype(np.float32))
    np.save(out_dir / "label_issues.npy", issues)
    np.save(out_dir / "label_quality.npy", quality)
    np.save(out_dir / "predict_batch_s.npy", bt)
    first = parts[0]
    return {
        "strategy": first["strategy"],
        "backend_info": first["backend_info"],
        **timing,
        "images_predicted": int(len(labels) * samples),
        "bn_update": first["bn_update"],
        "calibration_labels": "given" if true_labels is None else "true",
        "calibration": calibration(probs, eval_labels),
        "calibration_given": calibration(probs, labels),
        "calibration_vs_samples": [
            {
                "samples": s,
                **calibration(ckpt_probs[s], eval_labels),
                **{f"{k}_given": v for k, v in calibration(ckpt_probs[s], labels).items()},
            }
            for s in checkpoints
        ],
        "label_issues": None if true_labels is None else detection_scores(issues, labels != true_labels),
        "n_label_issues_found": int(issues.sum()),
        "threads": first["threads"],
        "versions": first["versions"],
        "baseline_rss_bytes": first["baseline_rss_bytes"],
    }
