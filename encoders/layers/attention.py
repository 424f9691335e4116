"""Multi-head self-attention through ``F.scaled_dot_product_attention`` (Vaswani et al. 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (official key names ``qkv``, ``proj``).

    ``(B, N, D) -> (B, N, D)``. ``use_sdpa=False`` selects the plain matmul-softmax path,
    kept only as a reference for tests and benchmarks.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        use_sdpa: bool = True,
    ):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"embed_dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)
        self.use_sdpa = use_sdpa

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, H, N, Dh)
        dropout_p = self.attn_drop if self.training else 0.0
        if self.use_sdpa:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, H, N, N)
            attn = F.dropout(attn.softmax(dim=-1), p=dropout_p, training=self.training)
            x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, D)
        return self.proj_drop(self.proj(x))
