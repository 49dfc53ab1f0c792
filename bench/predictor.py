"""The production step: run a chosen strategy's SWAG ensemble on data, from a run's stored posteriors.

:class:`EnsemblePredictor` takes a run folder (its data, folds and posteriors) and a strategy (a
``recommendation.json``, a trial's settings, or the run's own recommendation) and runs the same per-sample step as a
trial's worker (``swagbench.bench.execute.worker_loop``): for every fold and SWAG sample, draw the weights, recompute
BatchNorm over the fold's training data in the backend, predict. Out of sample, on the run's own data, each example is
predicted by its own fold's samples only (what confident learning needs); on new data, by every fold's samples. Batches
are read from memory-mapped stores and only the (N, C) running mean is held: memory stays flat as N grows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from swagbench.bench.config import RunConfig, TrialConfig, build, load_config
from swagbench.bench.errors import ConfigError, DataError
from swagbench.bench.record.rundir import RunDir

MemberHook = Callable[[int, int, np.ndarray, np.ndarray], None]
"""(fold, sample, example indices (n,), probabilities (n, C)) of every member as it is computed."""


class _Means:
    """The worker's output sink for a predictor: running sums of member probabilities per example."""

    def __init__(self, n: int, classes: int, on_member: MemberHook | None) -> None:
        self.sums = np.zeros((n, classes), dtype=np.float64)
        self.counts = np.zeros(n, dtype=np.int64)
        self.on_member = on_member

    def put(self, sample: int, fold: int, idx: np.ndarray, probs: np.ndarray, _bn_vector) -> None:
        self.sums[idx] += probs
        self.counts[idx] += 1
        if self.on_member is not None:
            self.on_member(fold, sample, idx, probs)

    def flush(self) -> None:
        pass

    def mean(self) -> np.ndarray:
        return (self.sums / np.maximum(self.counts, 1)[:, None]).astype(np.float32)


class EnsemblePredictor:
    """A strategy's SWAG ensemble over a run's posteriors.

    Parameters
    ----------
    run_dir : path
        A finished (or at least trained) run folder.
    strategy : path, dict, TrialConfig or None
        A ``recommendation.json`` (any run's), a trial's settings as a mapping or :class:`TrialConfig`; None: this
        run's own ``recommendation.json``.
    threads : int or None
        Threads per worker (None: the strategy's, else all CPUs). The predictor runs in this process.
    samples : int or None
        SWAG samples per fold (None: the run's); the same seeds as the run's trials, so its first S members
        are theirs.
    """

    def __init__(self, run_dir, strategy=None, threads: int | None = None, samples: int | None = None) -> None:
        self.run = RunDir.existing(run_dir)
        self.config: RunConfig = load_config(self.run.config_path, [f"results_dir={self.run.path.parent}"])
        self.trial = _strategy_trial(self.run, strategy)
        if threads is not None:
            self.trial = dataclasses.replace(self.trial, threads=threads)
        self.samples = self.config.ensemble.samples if samples is None else int(samples)
        if self.samples < 1:
            raise ConfigError(f"samples must be >= 1 (got {self.samples})")
        if self.trial.python is not None:
            raise ConfigError("a strategy with its own python interpreter runs in a swagbench run, not in-process")

    def predict_proba(self, data=None, on_member: MemberHook | None = None) -> np.ndarray:
        """(N, C) float32 ensemble probabilities.

        ``data`` None: the run's own data, out of sample (each example by its own fold's S samples). Otherwise new
        data, predicted by all K x S members: an (N, C, H, W) float32 array normalised as the run's data, or a
        ``data.source`` (image folder, CSV manifest, ``.npz``) decoded with the run's image settings into the cache.
        ``on_member`` sees every member's probabilities as they are computed.
        """
        from swagbench.bench.execute.worker_loop import Batches, _Worker

        worker = _Worker(self._spec())
        classes = worker.spec.num_classes
        read_new, n_new = self._new_data(data, worker) if data is not None else (None, 0)
        if read_new is not None and n_new == 0:  # nothing to predict (its shape was checked): no member is built
            return np.zeros((0, classes), dtype=np.float32)
        means = _Means(n_new if read_new else len(worker.fold_of), classes, on_member)
        worker.outputs = means
        for fold in range(self.config.ensemble.folds):
            part = worker.fold(fold)
            if read_new is not None:
                rows = np.arange(n_new)
                part = dataclasses.replace(
                    part, test_idx=rows, test_batches=Batches(read_new, rows, worker.options.batch_size)
                )
            for s in range(self.samples):
                worker.sample(part, s, {})
        return means.mean()

    def _spec(self):
        from swagbench.bench.execute.trial import RunFacts, base_row, worker_specs

        record = self.run.read_posteriors()
        dataset = self.run.load_data()
        config = dataclasses.replace(
            self.config,
            data_shards=1,
            ensemble=dataclasses.replace(self.config.ensemble, samples=self.samples),
            trials=[self.trial],
        )
        facts = RunFacts.of(dataset, [Path(p) for p in record["paths"]], record["source"])
        trial = dataclasses.replace(self.trial, workers=1)
        row = base_row(config, trial, "predict", self.run, facts)
        (spec,) = worker_specs(config, trial, row, self.run, facts, shared=False)
        return spec

    def _new_data(self, data, worker) -> tuple[Callable[[np.ndarray], Any], int]:
        """A reader of new data's rows (as torch batches) and its size, checked against the run's image shape."""
        import torch

        from swagbench.bench.dataset.store import BatchReader

        if isinstance(data, np.ndarray):
            x, mean, std = data, None, None
            if x.dtype != np.float32:
                raise DataError(f"new data has dtype {x.dtype}; give float32 images normalised as the run's")
        else:
            from swagbench.bench.dataset import data_cache
            from swagbench.bench.dataset.sources import source_store

            settings = dataclasses.replace(self.config.data, source=str(data), max_examples=None, folds=None)
            store = source_store(settings, data_cache(self.config.resolved_cache_dir))
            x, mean, std = store.x, store.meta.mean, store.meta.std
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(worker.x.shape[1:]):
            raise DataError(
                f"new data has images of shape {tuple(x.shape[1:])} but the run's are {tuple(worker.x.shape[1:])}; "
                "decode them with the run's data.image_size and data.channels"
            )
        reader = BatchReader(x, mean, std)

        def read(rows: np.ndarray):  # every batch checked as it is read: a NaN never becomes a probability
            batch = torch.empty((len(rows), *x.shape[1:]), dtype=torch.float32)
            reader.read(rows, out=batch.numpy())
            if not torch.isfinite(batch).all():
                raise DataError(f"new data holds NaN or inf among rows {int(rows[0])}..{int(rows[-1])}; clean it first")
            return batch

        return read, len(x)


def _strategy_trial(run: RunDir, strategy) -> TrialConfig:
    """The trial settings ``strategy`` names (see :class:`EnsemblePredictor`)."""
    from swagbench.bench.config.strategy import read_strategy

    if isinstance(strategy, TrialConfig):
        return strategy
    if strategy is None:
        if not run.recommendation_json.is_file():
            raise ConfigError(f"{run.path} has no recommendation.json (unfinished run); pass a strategy")
        strategy = run.recommendation_json
    settings = strategy if isinstance(strategy, dict) else read_strategy(strategy)
    return build(TrialConfig, settings, "strategy")
