"""Posterior files in the reference SWAG implementation's layout (wjmaddox/swa_gaussian), written here for tests.

The reference ``SWAG`` module keeps, under ``base.``, three buffers per parameter (``<p>_mean``, ``<p>_sq_mean``
and, with a covariance, ``<p>_cov_mat_sqrt`` of shape (rows, numel)), the network's other buffers (BatchNorm
running statistics), and ``n_models``; moments are running means over the collected iterates and each stored
row is the iterate minus the *updated* mean, keeping the last ``max_num_models`` rows. ``run_swag.py`` saves
``{"epoch": ..., "state_dict": ...}``. (Checked against the reference class's own output: see the issue-20 note.)
"""

from __future__ import annotations

import torch
from torch import nn


def reference_state_dict(model: nn.Module, iterates: list[dict], max_num_models: int, covariance: bool = True) -> dict:
    """The state_dict a reference ``SWAG(model)`` holds after collecting ``iterates`` (parameter dicts by name)."""
    state: dict = {}
    n = 0
    for name, p in model.named_parameters():
        mean = torch.zeros_like(p)
        sq = torch.zeros_like(p)
        rows = torch.zeros(0, p.numel())
        for k, it in enumerate(iterates):
            w = it[name].detach().float()
            mean = mean * k / (k + 1) + w / (k + 1)
            sq = sq * k / (k + 1) + w**2 / (k + 1)
            rows = torch.cat([rows, (w - mean).reshape(1, -1)])[-max_num_models:]
        state[f"base.{name}_mean"] = mean
        state[f"base.{name}_sq_mean"] = sq
        if covariance:
            state[f"base.{name}_cov_mat_sqrt"] = rows
        n = len(iterates)
    for name, buf in model.named_buffers():
        state[f"base.{name}"] = buf.clone()  # BatchNorm statistics: stored, and ignored by the reader
    state["n_models"] = torch.tensor([n], dtype=torch.long)
    return state


def sgd_iterates(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int = 0) -> list[dict]:
    """``steps`` SGD iterates of ``model`` on (x, y): a small, real trajectory to collect moments from."""
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        out.append({k: v.detach().clone() for k, v in model.named_parameters()})
    return out
