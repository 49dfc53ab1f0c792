"""Posterior files: safetensors tensors (mean, sq_mean, deviations) + string metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from swagbench.checked import not_a_file
from swagbench.swag.errors import PosteriorError
from swagbench.swag.posterior import Posterior

FORMAT = "swagbench-posterior-v1"
LAYOUT_KEYS = ("format", "max_rank", "n_models", "param_names", "param_shapes")
# Why a metadata mismatch matters, for the keys whose name alone does not say it.
MISMATCH_HINTS = {
    "fold_digest": "it was trained on another fold assignment (ensemble.folds, ensemble.seed or the data differ), "
    "so some examples this run holds out were in its training data",
    "data_digest": "it was trained on other images or labels",
}


def save_posterior(posterior: Posterior, path: str | Path) -> Path:
    """Write ``posterior`` to ``path`` (safetensors); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        **posterior.meta,
        "format": FORMAT,
        "max_rank": str(posterior.max_rank),
        "n_models": str(posterior.n_models),
        "param_names": json.dumps(posterior.param_names),
        "param_shapes": json.dumps([list(s) for s in posterior.param_shapes]),
    }
    tensors = {
        "mean": posterior.mean.contiguous(),
        "sq_mean": posterior.sq_mean.contiguous(),
        "deviations": posterior.deviations.contiguous(),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())  # on disk before it takes the final name: a crash leaves no truncated file
    tmp.replace(path)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """Return the string metadata of a posterior file without loading its tensors."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise PosteriorError(f"posterior file {path} is corrupt or not safetensors ({exc}); retrain it") from exc


def load_posterior(path: str | Path, expect: dict[str, str] | None = None) -> Posterior:
    """Load a posterior; ``expect`` lists metadata values (e.g. architecture) that must match."""
    path = _existing(path)
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise PosteriorError(f"{path} is not a swagbench posterior (format={meta.get('format')!r}); retrain it")
    for key, value in (expect or {}).items():
        if meta.get(key) is None:
            raise PosteriorError(
                f"posterior {path} does not record {key}, so it cannot be checked against this run; "
                "retrain it with this swagbench version"
            )
        if meta.get(key) != str(value):
            why = MISMATCH_HINTS.get(key, f"it has {key}={meta.get(key)!r} but this run needs {key}={value!r}")
            raise PosteriorError(f"posterior {path} does not fit this run: {why}; retrain it or use a matching config")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise PosteriorError(f"posterior file {path} is corrupt ({exc}); retrain it") from exc
    missing = {"mean", "sq_mean", "deviations"} - tensors.keys()
    if missing:
        raise PosteriorError(f"posterior file {path} lacks tensors {sorted(missing)}; retrain it")
    extra = {k: v for k, v in meta.items() if k not in LAYOUT_KEYS}
    post = Posterior(
        mean=tensors["mean"],
        sq_mean=tensors["sq_mean"],
        deviations=tensors["deviations"],
        max_rank=int(meta["max_rank"]),
        n_models=int(meta["n_models"]),
        param_names=json.loads(meta["param_names"]),
        param_shapes=[tuple(s) for s in json.loads(meta["param_shapes"])],
        meta=extra,
    )
    size = sum(_prod(s) for s in post.param_shapes)
    if post.mean.numel() != size or post.sq_mean.shape != post.mean.shape or post.deviations.shape[-1] != size:
        raise PosteriorError(f"posterior file {path} has inconsistent tensor shapes; retrain it")
    return post


def check_finite(posterior: Posterior, where: str) -> None:
    """Raise PosteriorError naming ``where`` and the tensor if any of the posterior's values is NaN or inf
    (a damaged file, or training that diverged): a sample drawn from it would be garbage."""
    import torch

    for name in ("mean", "sq_mean", "deviations"):
        bad = int((~torch.isfinite(getattr(posterior, name))).sum())
        if bad:
            raise PosteriorError(
                f"posterior {where}: tensor {name!r} holds {bad} non-finite value(s) (NaN or inf): the file is "
                "damaged or its training diverged; retrain it (lower train.lr if training diverges)"
            )


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _existing(path: str | Path) -> Path:
    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise PosteriorError(f"posterior file {path} {problem}; run training first (swagbench run)")
    return path
