"""SGD training with SWAG moment collection (Maddox et al. 2019, Sec. 3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from swagbench.swag.posterior import Posterior, SwagCollector, synthesize_posterior


@dataclass(frozen=True)
class TrainConfig:
    """SGD + SWAG schedule.

    Attributes
    ----------
    epochs : int
        Total epochs; SWAG collects from epoch ``swa_start`` (0-based) on.
    lr, swa_lr : float
        Initial learning rate, decaying linearly to ``swa_lr`` between 50% and 90% of ``swa_start`` (the
        reference schedule), then staying at ``swa_lr``.
    momentum, weight_decay : float
        SGD's.
    batch_size : int
        Training images per SGD step.
    snapshots_per_epoch : int
        SWAG snapshots per epoch in the collection phase (evenly spaced).
    max_rank : int
        K, the rank of the deviation matrix D.
    synthesize : bool
        Skip SGD and synthesise a posterior around the initial weights (timing-only runs; calibration and
        label metrics are then not meaningful).
    """

    epochs: int = 10
    swa_start: int = 5
    lr: float = 0.05
    swa_lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    snapshots_per_epoch: int = 3
    max_rank: int = 20
    synthesize: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.swa_start < self.epochs:
            raise ValueError(f"train.swa_start must be in [0, epochs) (got {self.swa_start}, epochs={self.epochs})")
        if self.snapshots_per_epoch < 1:
            raise ValueError(f"train.snapshots_per_epoch must be >= 1 (got {self.snapshots_per_epoch})")
        if self.max_rank < 2:
            raise ValueError(f"train.max_rank must be >= 2 (got {self.max_rank})")
        if not self.lr > 0 or not self.swa_lr >= 0:
            raise ValueError(f"train.lr must be > 0 and train.swa_lr >= 0 (got lr={self.lr}, swa_lr={self.swa_lr})")
        if self.batch_size < 2:
            raise ValueError(f"train.batch_size must be >= 2 for BatchNorm (got {self.batch_size})")

    def learning_rate(self, epoch: int) -> float:
        t = epoch / max(self.swa_start, 1)
        ratio = self.swa_lr / self.lr
        if epoch >= self.swa_start or t >= 0.9:
            factor = ratio
        elif t <= 0.5:
            factor = 1.0
        else:
            factor = 1.0 - (1.0 - ratio) * (t - 0.5) / 0.4
        return self.lr * factor


def train_swag(
    model: nn.Module,
    x: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    config: TrainConfig,
    seed: int,
    on_epoch: Callable[[int], None] | None = None,
) -> Posterior:
    """Train ``model`` on (x, y) with SGD and return its SWAG posterior.

    x: (N, C, H, W) float32, or a function from example positions (a LongTensor) to those examples (streaming
    them from a file); y: (N,) int64 labels (possibly noisy). With ``config.synthesize`` no training happens (see
    :func:`swagbench.swag.posterior.synthesize_posterior`).
    """
    if config.synthesize:
        return synthesize_posterior(model, max_rank=config.max_rank, seed=seed)
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    collector = SwagCollector(model, max_rank=config.max_rank)
    loss_fn = nn.CrossEntropyLoss()
    rows = x if callable(x) else x.__getitem__
    n = y.shape[0]
    steps = max(n // config.batch_size, 1)  # drop the last partial batch (BatchNorm needs >1)
    snap_at = {round((i + 1) * steps / config.snapshots_per_epoch) - 1 for i in range(config.snapshots_per_epoch)}
    for epoch in range(config.epochs):
        for group in opt.param_groups:
            group["lr"] = config.learning_rate(epoch)
        model.train()
        order = torch.randperm(n, generator=gen)
        for step in range(steps):
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(rows(idx)), y[idx]).backward()
            opt.step()
            if epoch >= config.swa_start and step in snap_at:
                collector.collect(model)
        if on_epoch is not None:
            on_epoch(epoch)
    return collector.posterior()
