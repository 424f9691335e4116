"""Stochastic depth (Huang et al. 2016): drop whole residual branches per sample during training."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Zero the residual ``x`` for a random subset of samples and rescale the rest by ``1/(1-p)``."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    return x * random_tensor.div_(keep_prob)


class DropPath(nn.Module):
    """Module form of :func:`drop_path`."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)


def drop_add_residual_stochastic_depth(
    x: torch.Tensor, residual_func: Callable[[torch.Tensor], torch.Tensor], sample_drop_ratio: float = 0.0
) -> torch.Tensor:
    """``x + residual_func(x)`` evaluated on a random subset of the batch only.

    DINOv2's efficient stochastic depth for high drop rates: the residual branch runs on
    ``B * (1 - ratio)`` samples (saving that compute), its output is scaled by ``B / subset``
    and added back to those samples; the others pass through unchanged. ``(B, N, D) -> (B, N, D)``.
    """
    b = x.shape[0]
    subset = max(int(b * (1 - sample_drop_ratio)), 1)
    brange = torch.randperm(b, device=x.device)[:subset]
    residual = residual_func(x[brange])
    scale = b / subset
    return torch.index_add(x.flatten(1), 0, brange, residual.flatten(1).to(x.dtype), alpha=scale).view_as(x)
