"""SWAG moments (Maddox et al. 2019, Alg. 1) collected from SGD iterates.

Parameters are flattened in ``model.named_parameters()`` order; BatchNorm buffers are
not part of the posterior (they are recomputed per sample, see ``swagbench.swag.sampling``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Posterior:
    """A SWAG posterior over a model's parameters.

    Attributes
    ----------
    mean : torch.Tensor
        (P,) first moment of the collected iterates.
    sq_mean : torch.Tensor
        (P,) second (uncentred) moment.
    deviations : torch.Tensor
        (R, P) the last R = min(n_models, max_rank) deviations w_i - mean_i.
    max_rank : int
        K in the paper; the low-rank term is scaled by 1/sqrt(K - 1).
    n_models : int
        Number of iterates collected.
    param_names, param_shapes : list
        Layout of the flat vector: the model's parameter names and shapes, in order.
    meta : dict of str
        Free-form string metadata (architecture, classes, input shape, fold, data digests, ...).
    """

    mean: torch.Tensor
    sq_mean: torch.Tensor
    deviations: torch.Tensor
    max_rank: int
    n_models: int
    param_names: list[str]
    param_shapes: list[tuple[int, ...]]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def variance(self) -> torch.Tensor:
        """Diagonal variance sq_mean - mean**2, clamped at 1e-30 as in the reference code."""
        return torch.clamp(self.sq_mean - self.mean**2, min=1e-30)

    @property
    def num_parameters(self) -> int:
        return int(self.mean.numel())

    @property
    def collapsed_fraction(self) -> float:
        """The share of parameters whose diagonal variance ``sq_mean - mean**2`` is not positive (clamped: the
        diagonal term never moves them). Near 1, samples differ only by the low-rank term, or not at all."""
        return float((self.sq_mean - self.mean**2 <= 0).float().mean()) if self.num_parameters else 0.0


def flatten_parameters(model: nn.Module) -> torch.Tensor:
    """Concatenate all parameters of ``model`` into one detached float32 vector (P,)."""
    return torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])


class SwagCollector:
    """Accumulates SWAG moments from successive weight snapshots of one model.

    Call :meth:`collect` at each SWAG snapshot point (e.g. end of an epoch at the SWA
    learning rate); :meth:`posterior` returns the result.
    """

    def __init__(self, model: nn.Module, max_rank: int = 20) -> None:
        if max_rank < 2:
            raise ValueError(f"max_rank must be >= 2 (got {max_rank}); the low-rank term divides by K-1")
        self.max_rank = max_rank
        self.param_names = [n for n, _ in model.named_parameters()]
        self.param_shapes = [tuple(p.shape) for _, p in model.named_parameters()]
        size = sum(p.numel() for p in model.parameters())
        self.mean = torch.zeros(size)
        self.sq_mean = torch.zeros(size)
        self._deviations: list[torch.Tensor] = []
        self.n_models = 0

    def collect(self, model: nn.Module) -> None:
        """Add the current weights of ``model`` as one iterate."""
        w = flatten_parameters(model)
        if w.numel() != self.mean.numel():
            raise ValueError(f"model has {w.numel()} parameters, collector expects {self.mean.numel()}")
        n = self.n_models
        self.mean = self.mean * (n / (n + 1)) + w / (n + 1)
        self.sq_mean = self.sq_mean * (n / (n + 1)) + w**2 / (n + 1)
        # Deviation from the *updated* mean, as in the reference implementation.
        self._deviations.append(w - self.mean)
        if len(self._deviations) > self.max_rank:
            self._deviations.pop(0)
        self.n_models += 1

    def posterior(self, meta: dict[str, str] | None = None) -> Posterior:
        if self.n_models == 0:
            raise ValueError("no SWAG iterates were collected; increase epochs after swa_start")
        devs = torch.stack(self._deviations) if self._deviations else torch.zeros(0, self.mean.numel())
        return Posterior(
            mean=self.mean.clone(),
            sq_mean=self.sq_mean.clone(),
            deviations=devs,
            max_rank=self.max_rank,
            n_models=self.n_models,
            param_names=list(self.param_names),
            param_shapes=list(self.param_shapes),
            meta=dict(meta or {}),
        )


def synthesize_posterior(model: nn.Module, max_rank: int = 20, rel_std: float = 0.01, seed: int = 0) -> Posterior:
    """A stand-in posterior around ``model``'s current weights, for timing-only runs.

    mean = current weights; per-parameter std = ``rel_std`` * |w| (+1e-8); ``max_rank`` random
    deviation columns of the same scale. It has the size and layout of a real posterior, so
    sampling, BN updates and inference cost the same, but its predictions mean nothing.
    """
    gen = torch.Generator().manual_seed(int(seed))
    mean = flatten_parameters(model)
    std = rel_std * mean.abs() + 1e-8
    return Posterior(
        mean=mean,
        sq_mean=mean**2 + std**2,
        deviations=torch.randn(max_rank, mean.numel(), generator=gen) * std,
        max_rank=max_rank,
        n_models=max_rank,
        param_names=[n for n, _ in model.named_parameters()],
        param_shapes=[tuple(p.shape) for p in model.parameters()],
        meta={"synthesized": "true"},
    )
