"""Posteriors written by the reference SWAG implementation (Maddox et al., github.com/wjmaddox/swa_gaussian).

Its ``SWAG`` module wraps the network as ``base`` and turns every parameter ``<p>`` into buffers ``<p>_mean``,
``<p>_sq_mean`` and, unless ``no_cov_mat``, ``<p>_cov_mat_sqrt`` (one row per stored deviation w_i - mean_i,
``numel(p)`` columns), beside ``n_models``; ``run_swag.py`` saves ``{"epoch", "state_dict"}``. Its
``sample_fullrank`` draws

    theta = mean + sqrt(scale) * (sqrt(clamp(sq_mean - mean^2, 1e-30)) * z1 + D^T z2 / sqrt(K - 1))

with ``K = max_num_models``, a constructor argument the file does not store; here K defaults to the number of stored
deviation rows (``min(n_models, max_num_models)``: the same once collection filled the window) and may be given.
:class:`swagbench.swag.sampling.Sampler` draws the same formula (from its own seeded generator, not torch's global one).
The BatchNorm buffers under ``base`` are ignored: every sample's statistics are recomputed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from swagbench.swag.checkpoint import key_diff, read_tensors, unwrap
from swagbench.swag.errors import PosteriorError
from swagbench.swag.posterior import Posterior

SUFFIXES = ("_mean", "_sq_mean", "_cov_mat_sqrt")


def _strip_base(state: dict) -> dict:
    """The SWAG module's keys without its ``base.`` prefix (a state_dict of the wrapped network alone has none)."""
    if any(k.startswith("base.") for k in state):
        return {k[len("base.") :]: v for k, v in state.items() if k.startswith("base.")} | (
            {"n_models": state["n_models"]} if "n_models" in state else {}
        )
    return state


def load_reference_posterior(path: str | Path, model: nn.Module, max_num_models: int | None = None) -> Posterior:
    """The posterior in reference-format file ``path`` over ``model``'s parameters (named_parameters order).

    ``max_num_models``: K of the low-rank term's divisor sqrt(K - 1) (None: the number of stored deviation rows).
    Diagonal-only files (``no_cov_mat=True``: no ``_cov_mat_sqrt``) give a posterior without deviations. Raises
    PosteriorError for an unreadable or unsafe file and for missing, unexpected or mis-shaped parameters.
    """
    state = _strip_base(unwrap(read_tensors(path, "posterior file")))
    params = dict(model.named_parameters())
    stored = {k[: -len("_sq_mean")] for k in state if k.endswith("_sq_mean")}
    expected = {name: tuple(p.shape) for name, p in params.items()}
    # a parameter counts as stored when both its moments are (BatchNorm's running_mean ends in _mean too)
    got = {name: tuple(state[f"{name}_mean"].shape) for name in stored if f"{name}_mean" in state}
    diff = key_diff(expected, got)
    if diff:
        raise PosteriorError(
            f"posterior file {path} (reference SWAG format) does not fit the model's parameters ({diff}); use the "
            "model it was collected on (and its num_classes / input channels)"
        )
    odd = [n for n, p in params.items() if state[f"{n}_sq_mean"].numel() != p.numel()]
    if odd:
        raise PosteriorError(f"posterior file {path}: {odd[0]}_sq_mean has another size than the parameter; damaged")
    with_cov = [f"{name}_cov_mat_sqrt" in state for name in params]
    if any(with_cov) and not all(with_cov):
        raise PosteriorError(f"posterior file {path} has _cov_mat_sqrt for some parameters only; it is damaged")
    mean = torch.cat([state[f"{n}_mean"].reshape(-1).float() for n in params])
    sq_mean = torch.cat([state[f"{n}_sq_mean"].reshape(-1).float() for n in params])
    deviations = torch.zeros(0, mean.numel())
    if all(with_cov):
        rows = {int(state[f"{n}_cov_mat_sqrt"].shape[0]) for n in params}
        columns_ok = all(state[f"{n}_cov_mat_sqrt"].shape[-1] == p.numel() for n, p in params.items())
        if len(rows) != 1 or not columns_ok:
            raise PosteriorError(f"posterior file {path}: the _cov_mat_sqrt blocks disagree in shape; it is damaged")
        (rank,) = rows
        if rank:  # zero rows: the file stores no deviation yet, a diagonal-only posterior
            deviations = torch.cat([state[f"{n}_cov_mat_sqrt"].reshape(rank, -1).float() for n in params], dim=1)
    rank = deviations.shape[0]
    k = rank if max_num_models is None else int(max_num_models)
    if rank and k < 2:
        raise PosteriorError(
            f"posterior file {path} stores {rank} deviation row(s) and the divisor sqrt(K - 1) needs K >= 2; set "
            "posteriors_max_num_models to the reference run's --max_num_models, or ensemble.diag_only=true"
        )
    n_models = int(state["n_models"].reshape(-1)[0]) if "n_models" in state else rank
    return Posterior(
        mean=mean,
        sq_mean=sq_mean,
        deviations=deviations,
        max_rank=max(k, 2),
        n_models=n_models,
        param_names=list(params),
        param_shapes=[tuple(p.shape) for p in params.values()],
        meta={"format_source": "reference-swag", "source_file": str(Path(path).resolve())},
    )
