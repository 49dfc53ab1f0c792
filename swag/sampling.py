"""Drawing weights from a SWAG posterior and recomputing BatchNorm statistics."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from swag.errors import PosteriorError
from swag.posterior import Posterior


def sample_parameters(posterior: Posterior, seed: int, scale: float = 0.5, diag_only: bool = False) -> torch.Tensor:
    """Draw one flat parameter vector (P,).

    theta = mean + sqrt(scale) * (sqrt(var) * z1 + D^T z2 / sqrt(K - 1)),
    z1 ~ N(0, I_P), z2 ~ N(0, I_R), with K = ``posterior.max_rank`` (Maddox et al. 2019).
    ``diag_only`` drops the low-rank term; ``scale=0`` returns the SWA mean.
    z1 is drawn before z2 from a CPU generator seeded with ``seed``.
    """
    if scale < 0:
        raise ValueError(f"scale must be >= 0 (got {scale})")
    gen = torch.Generator().manual_seed(int(seed))
    z1 = torch.randn(posterior.num_parameters, generator=gen)
    noise = posterior.variance.sqrt() * z1
    rank = posterior.deviations.shape[0]
    if not diag_only and rank > 0:
        z2 = torch.randn(rank, generator=gen)
        noise = noise + posterior.deviations.t().mv(z2) / (posterior.max_rank - 1) ** 0.5
    return posterior.mean + scale**0.5 * noise


def load_flat_parameters(model: nn.Module, flat: torch.Tensor, posterior: Posterior) -> None:
    """Copy a flat vector into ``model``'s parameters, checking the layout matches."""
    params = list(model.named_parameters())
    names = [n for n, _ in params]
    if names != posterior.param_names:
        raise PosteriorError(
            f"posterior was collected for a different model ({len(posterior.param_names)} parameter tensors, "
            f"model has {len(names)}); use the same --model that trained it"
        )
    offset = 0
    with torch.no_grad():
        for (name, p), shape in zip(params, posterior.param_shapes, strict=True):
            if tuple(p.shape) != tuple(shape):
                raise PosteriorError(
                    f"parameter {name!r} has shape {tuple(p.shape)} in the model but {tuple(shape)} in the "
                    "posterior; use the same --model and dataset shape that trained it"
                )
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n


def recompute_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Reset and recompute BatchNorm running statistics over ``batches`` (torch's update_bn)."""
    update_bn(batches, model)
    model.eval()
