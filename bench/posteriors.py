"""Training stage: one SWAG posterior per cross-validation fold, saved as safetensors.

Posteriors are stored in a *store*: a folder with ``fold{k}.safetensors`` and ``manifest.json``
(the content key, each file's SHA-256, the training seconds). The store is the shared cache
``<cache_dir>/<key>`` keyed by a hash of everything training depends on (data, folds, model,
training config, seeds, torch version), so another run or backend with the same inputs reuses it;
with ``posterior_cache: false`` it is the run's own ``posteriors/`` folder. A store whose files do
not match the manifest (killed mid-write, damaged) is retrained, never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from swagbench.bench.config import RunConfig
from swagbench.bench.dataset import Dataset
from swagbench.bench.dataset.store import file_sha256
from swagbench.bench.errors import ConfigError
from swagbench.bench.record.folds import fold_split
from swagbench.bench.record.seeds import fold_seed

MANIFEST = "manifest.json"


@dataclasses.dataclass
class Posteriors:
    """paths: one file per fold; source: ``trained`` | ``cache`` | ``user``; train_s: training
    seconds (those of the original training when reused); key: content hash (None for user files)."""

    paths: list[Path]
    source: str
    train_s: float
    key: str | None


def posterior_meta(config: RunConfig, dataset: Dataset, fold_of: np.ndarray, fold: int) -> dict[str, str]:
    """Metadata stored with (and checked against) each fold's posterior: what it was trained on, so a posterior
    is never used for other data or another fold split (its held-out examples would leak into training)."""
    return {
        "model": config.model,
        "num_classes": str(dataset.num_classes),
        "in_channels": str(dataset.x.shape[1]),
        "input_hw": f"{dataset.x.shape[2]}x{dataset.x.shape[3]}",
        "dataset": dataset.name,
        "fold": str(fold),
        "folds": str(config.ensemble.folds),
        "data_digest": dataset.digest(dataset.labels),  # before the split: other labels move it too
        "fold_digest": array_digest(fold_of),
    }


def array_digest(*arrays: np.ndarray) -> str:
    """SHA-256 (hex, 24 chars) of arrays' dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for arr in arrays:
        h.update(str((arr.dtype, arr.shape)).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:24]


def content_key(config: RunConfig, dataset: Dataset, fold_of: np.ndarray) -> str:
    """SHA-256 (hex, 24 chars) of everything the trained posteriors depend on."""
    import torch

    h = hashlib.sha256()
    h.update(dataset.digest(dataset.labels, fold_of).encode())
    h.update(
        json.dumps(
            {
                "model": config.model,
                "num_classes": dataset.num_classes,
                "dataset": dataset.name,
                "train": dataclasses.asdict(config.train),
                "seed": config.data.seed,
                "torch": torch.__version__,
                "checkpoint": file_sha256(Path(config.model_checkpoint)) if config.model_checkpoint else None,
            },
            sort_keys=True,
        ).encode()
    )
    return h.hexdigest()[:24]


def _store_ok(store: Path, key: str, folds: int) -> dict | None:
    """The store's manifest if it holds ``folds`` intact files for ``key``, else None."""
    try:
        manifest = json.loads((store / MANIFEST).read_text())
        files = manifest["files"]
        if manifest["key"] != key or len(files) != folds:
            return None
        for name, digest in files.items():
            if file_sha256(store / name) != digest:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def obtain_posteriors(
    config: RunConfig,
    dataset: Dataset,
    fold_of: np.ndarray,
    run,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[], None] = lambda: None,
) -> Posteriors:
    """The run's posteriors: the user's files, an intact cached store, or freshly trained ones (in the shared
    cache, or in run folder ``run``'s own store, a :class:`swagbench.bench.record.rundir.RunDir`, when
    ``posterior_cache`` is off)."""
    folds = config.ensemble.folds
    if config.posteriors_dir:  # checked by user_posteriors before the run started
        paths = user_posterior_files(config)
        if paths[0].suffix != ".safetensors":  # reference format: converted once into the run's own store
            paths = [
                import_reference(config, dataset, fold_of, k, path, run.own_posteriors) for k, path in enumerate(paths)
            ]
        return Posteriors(paths, "user", 0.0, None)
    key = content_key(config, dataset, fold_of)
    store = Path(config.resolved_cache_dir) / key if config.posterior_cache else run.own_posteriors
    manifest = _store_ok(store, key, folds)
    if manifest is not None:
        log(f"swagbench: reusing cached posteriors {store} (same data, model, training config and seeds)")
        return Posteriors([store / n for n in manifest["files"]], "cache", float(manifest["train_s"]), key)
    if (store / MANIFEST).exists():
        log(f"swagbench: cached posteriors in {store} are incomplete or damaged; retraining them")
        (store / MANIFEST).unlink()
    paths, train_s = train_posteriors(config, dataset, fold_of, store, on_epoch=on_epoch)
    manifest = {"key": key, "train_s": train_s, "files": {p.name: file_sha256(p) for p in paths}}
    tmp = store / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, store / MANIFEST)  # written last: a store without it is never reused
    return Posteriors(paths, "trained", train_s, key)


REFERENCE_SUFFIXES = (".pt", ".pth")  # the reference implementation's torch.save files


def user_posterior_files(config: RunConfig) -> list[Path]:
    """``posteriors_dir``'s ``fold{k}.safetensors`` (swagbench's) or ``fold{k}.pt`` / ``.pth`` (the reference
    implementation's), k < folds, all of one kind (ConfigError naming what is missing otherwise)."""
    root = Path(config.posteriors_dir)
    if not root.is_dir():
        raise ConfigError(f"posteriors_dir {root} is not a directory; give the folder with fold0.safetensors ...")
    folds = range(config.ensemble.folds)
    for suffix in (".safetensors", *REFERENCE_SUFFIXES):
        paths = [root / f"fold{k}{suffix}" for k in folds]
        if paths[0].is_file():
            missing = [p.name for p in paths if not p.is_file()]
            if missing:
                raise ConfigError(
                    f"posteriors_dir {root} has fold0{suffix} but not {', '.join(missing)}; ensemble.folds="
                    f"{config.ensemble.folds} needs one file per fold"
                )
            return paths
    raise ConfigError(
        f"posteriors_dir {root} has no fold0.safetensors (swagbench's) or fold0.pt (the reference SWAG "
        "implementation's state_dict); name the files fold0, fold1, ... by the fold they were trained without"
    )


# Above this share of parameters with a clamped diagonal variance a user's posterior is reported as degenerate.
COLLAPSED_WARN = 0.5


def checked_posterior(posterior, path: Path, log: Callable[[str], None]):
    """``posterior`` (read from ``path``) when every value is finite (else PosteriorError); a warning through ``log``
    when most of its diagonal variances are clamped (``sq_mean <= mean**2``: what it was trained with collapsed)."""
    from swagbench.swag.io import check_finite

    check_finite(posterior, str(path))
    share = posterior.collapsed_fraction
    if share > COLLAPSED_WARN:
        spread = (
            "only by the low-rank term" if posterior.deviations.shape[0] else "not at all: every sample is the mean"
        )
        log(
            f"swagbench: warning: posterior {path}: {share:.0%} of parameters have sq_mean <= mean^2 (variance clamped "
            f"to zero), so its samples differ {spread}; check how it was trained and saved"
        )
    return posterior


def reference_posterior(config: RunConfig, dataset: Dataset, path: Path, log: Callable[[str], None] = lambda _: None):
    """The reference-format posterior in ``path`` over the run's model, checked to be finite (a degenerate one is
    reported through ``log``)."""
    from swagbench.swag.models import build_model
    from swagbench.swag.reference_format import load_reference_posterior

    model = build_model(config.model, dataset.num_classes, dataset.x.shape[1])
    return checked_posterior(load_reference_posterior(path, model, config.posteriors_max_num_models), path, log)


def import_reference(
    config: RunConfig, dataset: Dataset, fold_of: np.ndarray, fold: int, path: Path, store: Path
) -> Path:
    """Write fold ``fold``'s reference-format posterior as a swagbench posterior file in ``store`` (the run's own
    posteriors folder), with the metadata of this run's data and folds (``data.folds``) and its source file's
    SHA-256; return its path."""
    from swagbench.swag.io import save_posterior

    posterior = reference_posterior(config, dataset, path)
    posterior.meta.update(posterior_meta(config, dataset, fold_of, fold))
    posterior.meta.update({"source_sha256": file_sha256(path), "max_num_models": str(posterior.max_rank)})
    return save_posterior(posterior, store / f"fold{fold}.safetensors")


def user_posteriors(
    config: RunConfig, dataset: Dataset, fold_of: np.ndarray, log: Callable[[str], None] = print
) -> list[Path]:
    """Check the posteriors in ``posteriors_dir`` fully before any trial runs. swagbench's own files: the model,
    the data and fold split they were trained on, that their tensors hold exactly the model's parameters, and that
    every value is finite. Reference-format files: that ``data.folds`` says which examples each was trained on,
    that their parameters are exactly the model's, and that every value is finite. A degenerate posterior (most
    variances clamped) is a warning through ``log``."""
    from swagbench.swag.io import load_posterior
    from swagbench.swag.models import build_model
    from swagbench.swag.sampling import check_layout

    paths = user_posterior_files(config)
    if paths[0].suffix != ".safetensors":
        if config.data.folds is None:
            raise ConfigError(
                "posteriors from the reference SWAG implementation need data.folds (an .npy of each example's fold, "
                "or the manifest's fold column): which examples each fold's posterior was trained without"
            )
        for path in paths:
            reference_posterior(config, dataset, path, log)
        return paths
    model = build_model(config.model, dataset.num_classes, dataset.x.shape[1])
    for k, path in enumerate(paths):
        expect = {
            key: value
            for key, value in posterior_meta(config, dataset, fold_of, k).items()
            if key not in ("dataset", "input_hw")  # names and sizes are checked through the digests
        }
        posterior = load_posterior(path, expect=expect)  # PosteriorError names the file and the fix
        check_layout(model, posterior, f"posterior {path}")
        checked_posterior(posterior, path, log)
    return paths


def train_posteriors(
    config: RunConfig,
    dataset: Dataset,
    fold_of: np.ndarray,
    out_dir: Path,
    on_epoch: Callable[[], None] = lambda: None,
) -> tuple[list[Path], float]:
    """Train a SWAG posterior on every fold's training part (noisy labels); return (paths, seconds)."""
    import torch

    from swagbench.swag.io import check_finite, save_posterior
    from swagbench.swag.models import build_model
    from swagbench.swag.training import train_swag

    torch.set_num_threads(config.resolved_threads)
    y = torch.from_numpy(dataset.labels)
    paths, start = [], time.perf_counter()
    for fold in range(config.ensemble.folds):
        train = fold_split(fold_of, fold)[0]

        def rows(idx: torch.Tensor, train=train) -> torch.Tensor:  # streamed from the memory-mapped data
            return dataset.tensor(train[idx.numpy()])

        seed = fold_seed(config.data.seed, fold)
        torch.manual_seed(seed)
        model = build_model(config.model, dataset.num_classes, dataset.x.shape[1], config.model_checkpoint)
        labels = y[torch.from_numpy(train)]
        posterior = train_swag(model, rows, labels, config.train, seed=seed, on_epoch=lambda _e: on_epoch())
        check_finite(posterior, f"of fold {fold} (just trained)")
        posterior.meta.update(posterior_meta(config, dataset, fold_of, fold))
        paths.append(save_posterior(posterior, out_dir / f"fold{fold}.safetensors"))
    return paths, time.perf_counter() - start
