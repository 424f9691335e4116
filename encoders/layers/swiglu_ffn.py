"""SwiGLU feed-forward network (Shazeer 2020, "GLU Variants Improve Transformer"), used by ViT-g/14."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def swiglu_hidden_features(hidden_features: int) -> int:
    """DINOv2's SwiGLU width: 2/3 of the MLP width, rounded up to a multiple of 8.

    ``(int(hidden * 2 / 3) + 7) // 8 * 8``; for ViT-g/14 (``hidden = 4 * 1536``) this is 4096.
    """
    return (int(hidden_features * 2 / 3) + 7) // 8 * 8


class SwiGLUFFN(nn.Module):
    """``w3(silu(x1) * x2)`` with ``[x1, x2] = w12(x)`` (official keys ``w12``, ``w3``).

    ``(B, N, D) -> (B, N, D_out)``. The hidden width is ``swiglu_hidden_features(hidden_features)``,
    as in the official ``SwiGLUFFNFused``, so official ViT-g/14 checkpoints load.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: type[nn.Module] | None = None,
        drop: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        del act_layer, drop  # accepted for signature compatibility with Mlp; SwiGLU fixes its activation
        out_features = out_features or in_features
        hidden = swiglu_hidden_features(hidden_features or in_features)
        self.w12 = nn.Linear(in_features, 2 * hidden, bias=bias)
        self.w3 = nn.Linear(hidden, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)
