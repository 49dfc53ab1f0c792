"""One backend trial of the SWAG ensemble, run inside a worker process.

Everything crosses the process boundary as files: the spec (JSON) names the dataset
(.npz), fold assignment (.npy) and per-fold posteriors (safetensors); results come back
as JSON plus .npy arrays in the trial directory. No state is shared with the parent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PHASES = ("sample", "bn_update", "prepare", "warmup", "predict", "confident_learning")


@dataclass
class TrialSpec:
    """Inputs of one trial (paths are absolute or relative to the worker's cwd)."""

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
    cleanlab: dict[str, Any]
    out_dir: str
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> TrialSpec:
        return cls(**json.loads(Path(path).read_text()))


def sample_seed(base: int, fold: int, sample: int) -> int:
    """Seed of SWAG sample ``sample`` of fold ``fold``: identical across backends, so they are comparable."""
    return int(base) * 1_000_003 + fold * 10_007 + sample


def bn_subset(train_idx: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """The training examples whose statistics set BatchNorm: all, or a seeded sorted subset of ``n``."""
    if n is None or n >= len(train_idx):
        return train_idx
    return np.sort(np.random.default_rng(seed).choice(train_idx, size=n, replace=False))


def _batches(x, size: int):
    return [x[i : i + size] for i in range(0, x.shape[0], size)]


def run_trial(spec: TrialSpec, progress: Callable[[int, int], None] = lambda done, total: None) -> dict[str, Any]:
    """Run the ensemble for one backend and return the result payload (JSON-able).

    Writes ``probs.npy`` (N, C) ensemble probabilities, ``member_probs.npy`` (S, N, C) per-sample
    probabilities (memory-mapped, streamed), ``label_issues.npy``, ``label_quality.npy`` and
    ``predict_batch_s.npy`` (raw per-batch predict seconds) into ``spec.out_dir``.
    """
    import psutil
    import torch

    from backends import BackendOptions, get_backend
    from bench.confident import find_label_issues
    from bench.config import CleanlabConfig
    from bench.dataset import fold_split
    from bench.memory import peak_rss_bytes
    from bench.metrics import calibration, detection_scores, sample_checkpoints
    from swag.io import load_posterior
    from swag.models import build_model
    from swag.sampling import load_flat_parameters, recompute_batchnorm, sample_parameters

    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = BackendOptions(**spec.options)
    torch.set_num_threads(options.threads)
    backend = get_backend(spec.backend)
    backend.check(options)

    with np.load(spec.data_path, allow_pickle=False) as f:
        x_all = torch.from_numpy(f["x"])
        labels = f["y"]
        true_labels = f["y_true"] if "y_true" in f.files else None
    fold_of = np.load(spec.folds_path)
    n, c = len(labels), spec.num_classes
    samples = int(spec.ensemble["samples"])
    checkpoints = sample_checkpoints(samples)
    ckpt_probs = {s: np.zeros((n, c), dtype=np.float64) for s in checkpoints}
    members = np.lib.format.open_memmap(out / "member_probs.npy", mode="w+", dtype=np.float32, shape=(samples, n, c))
    phases = dict.fromkeys(PHASES, 0.0)
    batch_times: list[float] = []
    predicted = 0  # images timed in predict (warm-up calls excluded)
    baseline_rss = psutil.Process().memory_info().rss
    total = len(spec.posterior_paths) * samples
    expect = {"model": spec.model, "num_classes": spec.num_classes}
    swap = backend.can_swap(options)
    strategy = "swap_weights" if swap else "reprepare"
    info: dict[str, Any] = {}

    # One model and (for swap-capable backends) one prepared runner serve every fold: a sample
    # overwrites all parameters and recomputes all BN statistics, so no state carries over.
    model = build_model(spec.model, spec.num_classes, spec.in_channels).requires_grad_(False)
    runner = None
    for fold, post_path in enumerate(spec.posterior_paths):
        posterior = load_posterior(post_path, expect=expect)
        train_idx, test_idx = fold_split(fold_of, fold)
        bn_idx = bn_subset(train_idx, spec.ensemble.get("bn_examples"), int(spec.ensemble["seed"]) + fold)
        bn_batches = _batches(x_all[bn_idx], int(spec.ensemble["bn_batch_size"]))
        test_batches = _batches(x_all[test_idx], options.batch_size)
        running = np.zeros((len(test_idx), c), dtype=np.float64)
        for s in range(samples):
            t0 = time.perf_counter()
            flat = sample_parameters(
                posterior,
                sample_seed(spec.ensemble["seed"], fold, s),
                float(spec.ensemble["scale"]),
                bool(spec.ensemble["diag_only"]),
            )
            load_flat_parameters(model, flat, posterior)
            t1 = time.perf_counter()
            recompute_batchnorm(model, bn_batches)
            t2 = time.perf_counter()
            if runner is None or not swap:
                runner = backend.prepare(model, test_batches[0], options, calibration=bn_batches)
            else:
                runner = backend.update(runner, model, options, calibration=bn_batches)
            t3 = time.perf_counter()
            # The first call per batch shape after the runner changed (compilation, session
            # initialisation, caches) is timed as warm-up, apart from predict; its output is used.
            warm, member, fresh = 0.0, [], set()
            for batch in test_batches:
                b0 = time.perf_counter()
                member.append(torch.softmax(runner(batch).float(), dim=1).numpy())
                dt = time.perf_counter() - b0
                if batch.shape[0] not in fresh:
                    fresh.add(batch.shape[0])
                    warm += dt
                else:
                    batch_times.append(dt)
                    predicted += batch.shape[0]
            t5 = time.perf_counter()
            p = np.concatenate(member)
            if p.shape != running.shape:
                raise RuntimeError(f"backend returned shape {p.shape}, expected {running.shape}")
            members[s, test_idx] = p
            running += p
            if s + 1 in ckpt_probs:
                ckpt_probs[s + 1][test_idx] = running / (s + 1)
            for name, dt in zip(
                ("sample", "bn_update", "prepare", "warmup", "predict"),
                (t1 - t0, t2 - t1, t3 - t2, warm, t5 - t3 - warm),
                strict=True,
            ):
                phases[name] += dt
            progress(fold * samples + s + 1, total)
        del posterior
    info = dict(getattr(runner, "info", {}))
    del runner, model
    members.flush()
    del members

    probs = ckpt_probs[samples]
    t0 = time.perf_counter()
    issues, quality = find_label_issues(labels, probs, CleanlabConfig(**spec.cleanlab))
    phases["confident_learning"] = time.perf_counter() - t0

    # Calibration is judged against the true labels when known (injected noise), and always
    # also against the given labels, which are all a real user has.
    eval_labels = labels if true_labels is None else true_labels
    np.save(out / "probs.npy", probs.astype(np.float32))
    np.save(out / "label_issues.npy", issues)
    np.save(out / "label_quality.npy", quality)
    np.save(out / "predict_batch_s.npy", np.asarray(batch_times))
    bt = np.asarray(batch_times)
    return {
        "strategy": strategy,
        "backend_info": info,
        "phases_s": phases,
        "images_predicted": int(n * samples),
        "images_timed": predicted,
        "predict_img_per_s": float(predicted / phases["predict"]) if phases["predict"] > 0 and predicted else None,
        "predict_batch_ms": {
            "median": float(np.median(bt) * 1e3),
            "p90": float(np.percentile(bt, 90) * 1e3),
            "count": len(bt),
        }
        if len(bt)
        else None,  # every batch was a first call after prepare (tiny folds)
        "calibration_labels": "given" if true_labels is None else "true",
        "calibration": calibration(probs, eval_labels),
        "calibration_given": calibration(probs, labels),
        "calibration_vs_samples": [{"samples": s, **calibration(ckpt_probs[s], eval_labels)} for s in checkpoints],
        "label_issues": None if true_labels is None else detection_scores(issues, labels != true_labels),
        "n_label_issues_found": int(issues.sum()),
        "threads": torch.get_num_threads(),
        "versions": backend.versions(),
        "baseline_rss_bytes": int(baseline_rss),
        "peak_rss_bytes": peak_rss_bytes(),
    }
