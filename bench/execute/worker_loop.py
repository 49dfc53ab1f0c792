"""A trial's work in its worker processes: the spec a worker gets and the loop it runs (parent side:
swagbench.bench.execute.trial).

A trial's work is the (fold, sample) pairs of the ensemble. They are split into contiguous
*tasks* ``[fold, first_sample, stop_sample]`` among the trial's workers (one worker by default;
several with ``workers``), each a separate process with its own thread budget. Everything
crosses the process boundary as files: the spec (JSON) names the dataset (.npz), fold
assignment (.npy), per-fold posteriors (safetensors) and the shared ``member_probs.npy``
(S, N, C) memory map, into which every worker writes only its own (sample, example) cells.
A sample's weights depend only on (seed, fold, sample), so any split gives the same members.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swagbench.bench.measure.timing import PhaseClock
from swagbench.bench.record.seeds import bn_subset, bn_subset_seed, sample_seed


@dataclass
class TrialSpec:
    """Inputs of one worker (paths are absolute or relative to the worker's cwd).

    data_path: the run's memory-mapped (N, C, H, W) data (``x.npy`` of its store), read batch by batch; data_mean /
    data_std: the normalisation of uint8 pixels (None: the store holds normalised float32). tasks: ``[fold,
    first_sample, stop_sample]`` triples this worker computes. shard / shards: this worker predicts only part ``shard``
    of ``shards`` equal parts of each fold's held-out examples (sampling and the BN update are repeated per shard).
    members: ``stream`` draws one sample's weights at a time; ``hold`` draws all of a task's samples first and keeps
    them in memory. members_path: the shared (S, N, C) map to write into; None returns the member probabilities in the
    payload instead (executors whose workers share no file system). bn_stats_path: the shared (S, K, 2, channels) map of
    every sample's BatchNorm running means and variances (None: returned in the payload like the members). bn_backend /
    bn_options: a hybrid trial's BatchNorm engine and its options (None: the trial's own). steady: the run's
    :class:`swagbench.bench.config.SteadyConfig` as a mapping (None: no steady-state measurement, see
    ``swagbench.bench.measure.steady``). target: the job's images, folds and samples, for
    an option left to ``auto`` (``swagbench.bench.answer.auto``). journal_path: a job's member journal: each member
    is committed (written, flushed, journaled: ``swagbench.bench.record.journal``) as soon as it is computed."""

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
    bn_backend: str | None = None
    bn_options: dict[str, Any] | None = None
    steady: dict[str, Any] | None = None
    target: dict[str, int] | None = None
    data_mean: list[float] | None = None
    data_std: list[float] | None = None
    members: str = "stream"
    shard: int = 0
    shards: int = 1
    journal_path: str | None = None

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


class Batches:
    """A fold's batches, read on demand from the memory-mapped data: never the fold's slice in memory. Iterating
    reads every batch afresh; a batch asked for by index (an example batch, int8 calibration's first few) is
    kept, so those stay the same objects for the fold (a backend recognises a new fold by a new sequence)."""

    def __init__(self, read: Callable[[np.ndarray], Any], rows: np.ndarray, size: int) -> None:
        self.read, self.rows, self.size = read, rows, size
        self.kept: dict[int, Any] = {}

    def __len__(self) -> int:
        return -(-len(self.rows) // self.size)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = i + len(self) if i < 0 else i
        if not 0 <= i < len(self):
            raise IndexError(i)
        if i not in self.kept:
            self.kept[i] = self.read(self.rows[i * self.size : (i + 1) * self.size])
        return self.kept[i]

    def __iter__(self):
        for i in range(len(self)):
            yield self.read(self.rows[i * self.size : (i + 1) * self.size])


@dataclass
class _Outputs:
    """Where a worker's results go: the shared maps, or lists returned in the payload."""

    members: Any
    bn_stats: Any
    journal: Any = None  # a job's MemberJournal: every member committed as it is put
    member_rows: list = dataclasses.field(default_factory=list)  # (sample, example indices, probs)
    bn_rows: list = dataclasses.field(default_factory=list)  # (sample, fold, statistics vector)

    @classmethod
    def open(cls, spec: TrialSpec) -> _Outputs:
        from swagbench.bench.record.journal import MemberJournal

        def mapped(path):
            return np.load(path, mmap_mode="r+") if path else None

        journal = MemberJournal(spec.journal_path) if spec.journal_path and spec.members_path else None
        return cls(mapped(spec.members_path), mapped(spec.bn_stats_path), journal)

    def put(self, sample: int, fold: int, test_idx: np.ndarray, probs: np.ndarray, vector: np.ndarray) -> None:
        if self.journal is not None:
            from swagbench.bench.record.journal import commit

            commit(self.members, self.bn_stats, self.journal, sample, fold, test_idx, probs, vector)
        elif self.members is not None:
            self.members[sample, test_idx] = probs
            self.bn_stats[sample, fold] = vector
        else:
            self.member_rows.append((sample, test_idx, probs))
            self.bn_rows.append((sample, fold, vector))

    def flush(self) -> None:
        for array in (self.members, self.bn_stats):
            if array is not None:
                array.flush()


@dataclass
class _Fold:
    """One fold's inputs in a worker: its posterior sampler and its BN and held-out batches."""

    fold: int
    sampler: Any
    posterior: Any
    test_idx: np.ndarray
    bn_batches: Batches
    test_batches: Batches


class _Worker:
    """The per-sample step of one worker, all in the backend (see :func:`run_tasks`)."""

    def __init__(self, spec: TrialSpec) -> None:
        import torch

        from swagbench.backends import BackendOptions, get_backend
        from swagbench.swag.models import build_model

        self.spec = spec
        self.options = BackendOptions(**spec.options)
        torch.set_num_threads(self.options.threads)
        self.backend = get_backend(spec.backend)
        self.backend.check(self.options)
        from swagbench.bench.dataset.store import BatchReader

        self.x = np.load(spec.data_path, mmap_mode="r", allow_pickle=False)
        self.reader = BatchReader(self.x, spec.data_mean, spec.data_std)
        self.fold_of = np.load(spec.folds_path, allow_pickle=False)
        self.outputs = _Outputs.open(spec)
        self.clock = PhaseClock()
        self.swap = self.backend.can_swap(self.options)
        ensemble = spec.ensemble
        self.seed, self.scale, self.diag = ensemble["seed"], float(ensemble["scale"]), bool(ensemble["diag_only"])
        # One model and (for swap-capable backends) one prepared runner serve every fold: a sample
        # overwrites all parameters and recomputes all BN statistics, so no state carries over.
        self.model = build_model(spec.model, spec.num_classes, spec.in_channels).requires_grad_(False).eval()
        self.bn_model = self.model  # the module the BatchNorm engine runs (and may convert, e.g. to channels_last)
        if spec.bn_backend:  # a hybrid: the BatchNorm pass in another engine, on a module of its own, so that
            # what one engine does to its module (memory format, a graph bound to its tensors) never reaches the other
            bn_backend, bn_options = get_backend(spec.bn_backend), BackendOptions(**spec.bn_options)
            bn_backend.check(bn_options)
            self.statistics = StatisticsStep(bn_backend, bn_options)
            self.bn_model = build_model(spec.model, spec.num_classes, spec.in_channels).requires_grad_(False).eval()
        else:
            self.statistics = StatisticsStep(self.backend, self.options)
        self.runner, self.fresh_predict = None, set()
        self.variants, self.auto = self.backend.variants(self.options), None

    def fold(self, fold: int) -> _Fold:
        """Load fold ``fold``'s posterior and cut its BN and held-out batches (this worker's shard)."""
        import torch

        from swagbench.bench.record.folds import fold_split
        from swagbench.swag.io import load_posterior
        from swagbench.swag.sampling import Sampler

        spec = self.spec
        posterior = load_posterior(
            spec.posterior_paths[fold], expect={"model": spec.model, "num_classes": spec.num_classes}
        )
        self.theta = torch.empty(posterior.num_parameters)
        train_idx, test_idx = fold_split(self.fold_of, fold)
        test_idx = np.array_split(test_idx, spec.shards)[spec.shard]
        bn_idx = bn_subset(train_idx, spec.ensemble.get("bn_examples"), bn_subset_seed(self.seed, fold))
        return _Fold(
            fold,
            Sampler(posterior, self.scale, self.diag),
            posterior,
            test_idx,
            Batches(self.read, bn_idx, int(spec.ensemble["bn_batch_size"])),
            Batches(self.read, test_idx, self.options.batch_size),
        )

    def read(self, rows: np.ndarray):
        """Examples ``rows`` of the memory-mapped data as a normalised float32 tensor (timed as ``data``)."""
        with self.clock("data"):
            return self.read_untimed(rows)

    def read_untimed(self, rows: np.ndarray):
        import torch

        batch = torch.empty((len(rows), *self.x.shape[1:]), dtype=torch.float32)  # torch-aligned memory
        self.reader.read(rows, out=batch.numpy())
        return batch

    def steady(self, data: _Fold, settings: dict[str, Any]) -> dict[str, Any]:
        """Seconds per image of full batches of the BatchNorm pass and of predict on the warm runners, as the
        run's own steps call them (:mod:`swagbench.bench.measure.steady`), and of the per-batch work around the
        runtime's call (``read_s_per_image``: reading and normalising the batch; ``post_s_per_image``: adding its
        statistics, or softmax); outputs discarded, nothing timed on the clock."""
        from swagbench.bench.measure.steady import full_rows, harness_seconds, time_calls
        from swagbench.swag.batchnorm import StatisticsAccumulator

        least = (int(settings["batches"]), float(settings["seconds"]))
        out = {}
        if self.statistics.runner is not None:
            size, accumulator = data.bn_batches.size, StatisticsAccumulator()
            rows = full_rows(data.bn_batches.rows, size)
            batch = self.read_untimed(rows)
            out["bn_update"] = time_calls(lambda b: accumulator.add(self.statistics.runner(b)), batch, size, *least)
            statistics = self.statistics.runner(batch)
            out["bn_update"]["read_s_per_image"] = harness_seconds(self.read_untimed, rows, size)
            out["bn_update"]["post_s_per_image"] = harness_seconds(accumulator.add, statistics, size)
        size = self.options.batch_size
        rows = full_rows(data.test_batches.rows, size)
        batch = self.read_untimed(rows)
        out["predict"] = time_calls(lambda b: probabilities(self.runner(b)), batch, size, *least)
        logits = self.runner(batch)
        out["predict"]["read_s_per_image"] = harness_seconds(self.read_untimed, rows, size)
        out["predict"]["post_s_per_image"] = harness_seconds(probabilities, logits, size)
        return out

    def sample(self, data: _Fold, s: int, held: dict) -> None:
        """Draw sample ``s`` of the fold, set BatchNorm over the fold's BN batches, predict its held-out part."""
        from swagbench.swag.batchnorm import StatisticsAccumulator, load_statistics, statistics_vector
        from swagbench.swag.sampling import load_flat_parameters

        clock, model = self.clock, self.model
        clock.start_sample()
        with clock("sample"):
            flat = held.pop(s) if held else data.sampler.draw(sample_seed(self.seed, data.fold, s), out=self.theta)
            load_flat_parameters(model, flat, data.posterior)
            if self.bn_model is not model:
                load_flat_parameters(self.bn_model, flat, data.posterior)
        with clock("prepare"):
            if self.variants:
                self.choose_variant(data)
            self.statistics.bind(self.bn_model, data.bn_batches)
        if self.statistics.runner is not None:  # None: the model has no BatchNorm layer to set
            accumulator = StatisticsAccumulator()
            for batch in data.bn_batches:
                with clock.call("bn_update", self.statistics.fresh, batch.shape[0]):
                    accumulator.add(self.statistics.runner(batch))
            with clock("bn_update"):
                load_statistics(model, accumulator.result(), accumulator.batches)
        with clock("prepare"):
            self.bind_runner(data.bn_batches, data.test_batches[0])
        probs = self.predict(data.test_batches)
        if probs.shape != (len(data.test_idx), self.spec.num_classes):
            expected = (len(data.test_idx), self.spec.num_classes)
            raise RuntimeError(f"backend returned shape {probs.shape}, expected {expected}")
        self.outputs.put(s, data.fold, data.test_idx, probs, statistics_vector(model))
        clock.end_sample(data.fold, s)

    def choose_variant(self, data: _Fold) -> None:
        """Options left to ``auto``: build every candidate on this (the first) sample, time its rebind and full
        batches of both phases (predict once per distinct predict graph), and keep the cheapest per (fold, sample)
        pair at the target (:mod:`swagbench.bench.answer.auto`)."""
        from swagbench.bench.answer.auto import choose, pair_images, record
        from swagbench.bench.measure.steady import full_rows

        option, candidates = self.variants
        self.variants, hybrid = None, self.spec.bn_backend is not None
        least = (
            (max(int(self.spec.steady["batches"]), 2), float(self.spec.steady["seconds"]))
            if self.spec.steady
            else (2, 0.0)
        )
        bn_batch = self.read_untimed(full_rows(data.bn_batches.rows, data.bn_batches.size))
        test_batch = self.read_untimed(full_rows(data.test_batches.rows, self.options.batch_size))
        predicted: dict[str, dict[str, float]] = {}  # per distinct predict graph (Backend.predict_options)
        measured = {}
        for name, options in candidates.items():
            measured[name] = self._measure_bn(options, data, None if hybrid else bn_batch, least)
            key = repr(self.backend.predict_options(options))
            if key not in predicted:
                predicted[key] = self._measure_predict(options, data, test_batch, least)
            measured[name]["rebind_s"] += predicted[key]["rebind_s"]
            measured[name]["predict_s_per_image"] = predicted[key]["predict_s_per_image"]
        gc.collect()  # the candidates' graphs go before the chosen one is built again
        target = self.spec.target  # set by swagbench.bench.execute.trial.worker_specs for every trial and the predictor
        per_pair = pair_images(target["images"], target["folds"], self.spec.ensemble.get("bn_examples"))
        chosen, cost = choose(measured, per_pair)
        values = {k: v for k, v in candidates[chosen].extra.items() if self.options.extra.get(k) != v}
        self.options = candidates[chosen]
        self.auto = record(option, chosen, values, measured, cost, target)
        self.swap = self.backend.can_swap(self.options)
        if not hybrid:
            self.statistics = StatisticsStep(self.backend, self.options)

    def _measure_bn(self, options, data: _Fold, bn_batch, least) -> dict[str, float]:
        """One candidate's BatchNorm pass (where ``bn_batch``): its rebind seconds and seconds per image of a full
        batch."""
        from swagbench.bench.measure.steady import time_calls

        measured = {"rebind_s": 0.0}
        if bn_batch is not None:
            step = StatisticsStep(self.backend, options)
            step.bind(self.bn_model, data.bn_batches)
            if step.runner is not None:
                t0 = time.perf_counter()
                step.bind(self.bn_model, data.bn_batches)
                measured["rebind_s"] += time.perf_counter() - t0
                rate = time_calls(step.runner, bn_batch, len(bn_batch), *least)
                measured["bn_update_s_per_image"] = rate["s_per_image"]
        return measured

    def _measure_predict(self, options, data: _Fold, test_batch, least) -> dict[str, float]:
        """One candidate's predict graph: its rebind seconds and seconds per image of a full batch."""
        from swagbench.bench.measure.steady import time_calls

        backend, example = self.backend, data.test_batches[0]
        runner = backend.prepare(self.model, example, options, calibration=data.bn_batches)
        t0 = time.perf_counter()
        if backend.can_swap(options):
            runner = backend.update(runner, self.model, options, calibration=data.bn_batches)
        else:
            runner = backend.prepare(self.model, example, options, calibration=data.bn_batches)
        rebind_s = time.perf_counter() - t0
        rate = time_calls(lambda b: probabilities(runner(b)), test_batch, len(test_batch), *least)
        return {"rebind_s": rebind_s, "predict_s_per_image": rate["s_per_image"]}

    def bind_runner(self, bn_batches: Batches, example) -> None:
        """Build the inference runner (first sample, or every sample where it cannot swap) or swap weights in."""
        backend, options = self.backend, self.options
        if self.runner is None or not self.swap:
            if self.runner is None or backend.prepare_compiles(options):
                self.fresh_predict = set()
            self.runner = backend.prepare(self.model, example, options, calibration=bn_batches)
        else:
            self.runner = backend.update(self.runner, self.model, options, calibration=bn_batches)

    def predict(self, batches: Batches) -> np.ndarray:

        member = []
        for batch in batches:
            with self.clock.call("predict", self.fresh_predict, batch.shape[0]):
                member.append(probabilities(self.runner(batch)))
        return np.concatenate(member)


def probabilities(logits) -> np.ndarray:
    """Softmax over the classes of a runner's (B, C) logits, in float32 NumPy. Not torch's: even on a (128, 10)
    tensor it wakes torch's OpenMP threads, which then spin and take the cores from a graph runtime's next call
    (OpenVINO bf16 predicted at 28,000 img/s with it, 50,000 without, on 2 cores)."""
    x = logits.float().numpy()
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run_tasks(spec: TrialSpec, progress: Callable[[int, int], None] = lambda done, total: None) -> dict[str, Any]:
    """Compute this worker's tasks into the shared member map; return timings (JSON-able).

    Per (fold, sample), all in the backend: draw the weights into the model (``sample``), bind them to the
    backend's statistics runner (``prepare``), compute BatchNorm statistics over the fold's BN batches and
    load their update_bn average into the model (``bn_update``), bind weights and statistics to the
    inference runner (``prepare``), predict the fold's held-out examples (``predict``). The first call per
    batch shape after a runner was built is timed apart as ``warmup``. A backend that cannot compute
    statistics gets them from eager fp32, recorded in ``bn_update``.
    """
    from swagbench.bench.measure.memory import AnonPeak, fix_mmap_threshold

    fix_mmap_threshold()
    start_wall = time.time()
    with AnonPeak() as anon:
        worker = _Worker(spec)
        payload = _loop(worker, spec, progress, start_wall)
    return {**payload, "peak_anon_bytes": anon.peak}


def _loop(worker: _Worker, spec: TrialSpec, progress, start_wall: float) -> dict[str, Any]:
    import psutil
    import torch

    from swagbench.bench.measure.memory import peak_rss_bytes

    baseline_rss = psutil.Process().memory_info().rss
    total = sum(stop - first for _, first, stop in spec.tasks)
    done, loop_start, data = 0, time.time(), None
    for fold, first, stop in spec.tasks:
        data = None  # the previous fold's posterior is freed before the next one loads
        data = worker.fold(fold)
        held = {}
        if spec.members == "hold":
            with worker.clock("sample"):
                held = {s: data.sampler.draw(sample_seed(worker.seed, fold, s)) for s in range(first, stop)}
        for s in range(first, stop):
            worker.sample(data, s, held)
            done += 1
            progress(done, total)
    loop_end = time.time()
    steady = worker.steady(data, spec.steady) if spec.steady and spec.steady["batches"] and data else None
    del data
    info = dict(getattr(worker.runner, "info", {}))
    worker.runner = worker.model = worker.bn_model = None
    worker.outputs.flush()
    return {
        "member_rows": worker.outputs.member_rows,
        "bn_rows": worker.outputs.bn_rows,
        "strategy": "swap_weights" if worker.swap else "reprepare",
        "backend_info": info,
        "bn_update": worker.statistics.info,
        "steady": steady,
        "auto": worker.auto,
        **worker.clock.payload(start_wall, loop_start, loop_end),
        "threads": torch.get_num_threads(),
        "versions": worker.backend.versions(),
        "baseline_rss_bytes": int(baseline_rss),
        "peak_rss_bytes": peak_rss_bytes(),
    }


class StatisticsStep:
    """The trial's statistics runner: the backend's own, or eager fp32 where the backend cannot (recorded)."""

    def __init__(self, backend, options) -> None:
        self.backend, self.options = backend, options
        self.runner, self.fresh = None, set()
        self.info: dict[str, Any] = {}

    def bind(self, model, batches) -> None:
        """Build the runner (first sample) or move it to the weights now in ``model``; ``batches``: the fold's BN
        batches (the first is the example; an int8 pass calibrates on them)."""
        from swagbench.backends.torch_helpers import native_statistics
        from swagbench.swag.batchnorm import StatisticsUnsupported, batchnorm_facts

        example = batches[0]
        if not self.info:  # the trial's first sample
            facts = batchnorm_facts(model, example[:2])
            notes = {"notes": facts.notes()} if facts.notes() else {}
            if not facts.layers:
                self.info = {"where": "none", "precision": self.options.precision, **notes}
                return
            try:
                self.runner = self.backend.statistics(model, example, self.options, batches)
                self.info = {"where": "backend", **getattr(self.runner, "info", {}), **notes}
            except StatisticsUnsupported as exc:
                reference = dataclasses.replace(self.options, precision="fp32", channels_last=False, extra={})
                self.runner = native_statistics(model, reference)
                self.info = {"where": "eager", **self.runner.info, "reason": str(exc), **notes}
            self.fresh = set()
        elif self.info["where"] == "backend":
            self.runner = self.backend.update_statistics(self.runner, model, example, self.options, batches)
