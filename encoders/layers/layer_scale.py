"""LayerScale: a learned per-channel gain on each residual branch (Touvron et al. 2021, CaiT)."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """``x * gamma`` with ``gamma`` initialised to ``init_values`` (official key ``gamma``)."""

    def __init__(self, dim: int, init_values: float = 1e-5):
        super().__init__()
        self.init_values = init_values
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gamma, self.init_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
