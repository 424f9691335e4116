"""A pre-norm transformer block with LayerScale and stochastic depth (as in DINOv2)."""

from __future__ import annotations

import torch
from torch import nn

from encoders.layers.attention import Attention
from encoders.layers.drop_path import DropPath, drop_add_residual_stochastic_depth
from encoders.layers.layer_scale import LayerScale
from encoders.layers.mlp import Mlp


class Block(nn.Module):
    """``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``. ``(B, N, D) -> (B, N, D)``.

    Official key names: ``norm1, attn, ls1, norm2, mlp, ls2``. With ``drop_path > 0.1`` during training
    the residual branches run on a random subset of the batch (DINOv2's efficient stochastic depth);
    for smaller rates per-sample :class:`DropPath` is used.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        init_values: float | None = None,
        drop_path: float = 0.0,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        ffn_layer: type[nn.Module] = Mlp,
        use_sdpa: bool = True,
    ):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            proj_bias=proj_bias,
            attn_drop=attn_drop,
            proj_drop=drop,
            use_sdpa=use_sdpa,
        )
        self.ls1 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = ffn_layer(
            in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer, drop=drop, bias=ffn_bias
        )
        self.ls2 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.sample_drop_ratio = drop_path

    def _attn_residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.ls1(self.attn(self.norm1(x)))

    def _ffn_residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.ls2(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.sample_drop_ratio > 0.1:
            x = drop_add_residual_stochastic_depth(x, self._attn_residual, self.sample_drop_ratio)
            return drop_add_residual_stochastic_depth(x, self._ffn_residual, self.sample_drop_ratio)
        x = x + self.drop_path1(self._attn_residual(x))
        return x + self.drop_path2(self._ffn_residual(x))
