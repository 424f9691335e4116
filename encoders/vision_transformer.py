"""The DINOv2 Vision Transformer backbone, numerically the same model as the official one.

Reference: Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision";
Darcet et al. 2024, "Vision Transformers Need Registers". State-dict keys and shapes follow
``facebookresearch/dinov2`` (``block_chunks=0``) so official checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from encoders.layers import Block, LayerScale, Mlp, PatchEmbed, SwiGLUFFN

FFNLayer = Literal["mlp", "swiglu", "swiglufused", "identity"]
FeatureDict = dict[str, torch.Tensor | None]


def run_blocks(blocks: Sequence[nn.Module], tokens: torch.Tensor) -> torch.Tensor:
    """Run ``blocks`` in order on ``tokens`` ``(B, T, D)``. ``-> (B, T, D)``."""
    for blk in blocks:
        tokens = blk(tokens)
    return tokens


def features_dict(
    norm: nn.Module, x_prenorm: torch.Tensor, num_register_tokens: int, masks: torch.Tensor | None
) -> FeatureDict:
    """The backbone's feature dict from the last block's output ``x_prenorm`` ``(B, 1 + R + N, D)``.

    Token order is cls, ``R`` registers, ``N`` patches (Darcet et al. 2024); ``norm`` is the final norm.
    The one place that defines the dict, shared by :class:`DinoVisionTransformer` and any module that
    finishes its forward pass from cached tokens (``techniques.rl_navigation.target_encoder.TopBlocks``).
    """
    x_norm = norm(x_prenorm)
    r = num_register_tokens
    return {
        "x_norm_clstoken": x_norm[:, 0],  # (B, D)
        "x_norm_regtokens": x_norm[:, 1 : r + 1],  # (B, R, D)
        "x_norm_patchtokens": x_norm[:, r + 1 :],  # (B, N, D)
        "x_prenorm": x_prenorm,  # (B, 1 + R + N, D)
        "masks": masks,
    }


class _IdentityFFN(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


_FFN_LAYERS: dict[str, type[nn.Module]] = {
    "mlp": Mlp,
    "swiglu": SwiGLUFFN,
    "swiglufused": SwiGLUFFN,  # the official fused variant has the same keys, widths and maths
    "identity": _IdentityFFN,
}


class DinoVisionTransformer(nn.Module):
    """ViT backbone with cls token, optional register tokens, mask token and interpolated positions.

    Token layout: ``[cls, reg_1..reg_R, patch_1..patch_N]``; the learned positional embedding covers
    cls + an ``img_size/patch_size`` square grid and is bicubically resized to the input's grid.
    Register tokens get no positional embedding (Darcet et al. 2024).

    Args:
        img_size: side of the image the positional grid was learned for (518 for the hub models).
        patch_size: patch side in pixels (14 for DINOv2).
        in_chans: input channels.
        embed_dim: token width ``D``.
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: FFN hidden width = ``mlp_ratio * D`` (SwiGLU then takes 2/3 of it, rounded to 8).
        qkv_bias, proj_bias, ffn_bias: biases of the attention and FFN projections.
        drop_path_rate: stochastic-depth rate (of the last block, linear from 0 unless uniform).
        drop_path_uniform: use ``drop_path_rate`` in every block.
        init_values: LayerScale initial value; ``None`` disables LayerScale (no ``ls*.gamma`` keys).
        ffn_layer: ``"mlp"`` or ``"swiglufused"`` (``"swiglu"`` is an alias) or ``"identity"``.
        num_register_tokens: number of register tokens ``R``.
        interpolate_antialias: antialias flag of the bicubic positional interpolation.
        interpolate_offset: if non-zero, interpolate with scale factor ``(new + offset) / old``
            (the official DINOv2 trick); if 0, interpolate to the exact output size.
        use_sdpa: attention through ``F.scaled_dot_product_attention`` (default) or the plain
            matmul-softmax reference path.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        drop_path_rate: float = 0.0,
        drop_path_uniform: bool = False,
        init_values: float | None = None,
        ffn_layer: FFNLayer = "mlp",
        num_register_tokens: int = 0,
        interpolate_antialias: bool = False,
        interpolate_offset: float = 0.1,
        use_sdpa: bool = True,
    ):
        super().__init__()
        if ffn_layer not in _FFN_LAYERS:
            raise ValueError(f"unknown ffn_layer {ffn_layer!r}; choose one of {sorted(_FFN_LAYERS)}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if num_register_tokens < 0:
            raise ValueError(f"num_register_tokens must be >= 0, got {num_register_tokens}")
        norm_layer = partial(nn.LayerNorm, eps=1e-6)

        self.num_features = self.embed_dim = embed_dim
        self.num_tokens = 1
        self.n_blocks = depth
        self.num_heads = num_heads
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset

        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + self.num_tokens, embed_dim))
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim)) if num_register_tokens else None
        )

        if drop_path_uniform:
            dpr = [drop_path_rate] * depth
        else:
            dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linspace(0, rate, depth)
        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_bias=proj_bias,
                ffn_bias=ffn_bias,
                drop_path=dpr[i],
                norm_layer=norm_layer,
                act_layer=nn.GELU,
                ffn_layer=_FFN_LAYERS[ffn_layer],
                init_values=init_values,
                use_sdpa=use_sdpa,
            )
            for i in range(depth)
        )
        self.norm = norm_layer(embed_dim)
        self.head = nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.init_weights()

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """Official initialisation: trunc-normal(0.02) positions and linears, tiny-normal cls/registers."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, LayerScale):
                module.reset_parameters()

    # ------------------------------------------------------------ positions
    def interpolate_pos_encoding(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Positional embedding for an image of ``height x width`` pixels. ``-> (1, 1 + N, D)``.

        ``x`` is the token tensor ``(B, 1 + N, D)`` (cls + patches) whose dtype the result takes.
        Bicubic resize of the learned square grid, by scale factor ``(new + offset) / old`` when
        ``interpolate_offset`` is non-zero (official default 0.1) or to the exact size otherwise.
        """
        previous_dtype = x.dtype
        npatch = x.shape[1] - 1
        n = self.pos_embed.shape[1] - 1
        if npatch == n and height == width:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        class_pos_embed = pos_embed[:, :1]
        patch_pos_embed = pos_embed[:, 1:]
        dim = x.shape[-1]
        h0, w0 = height // self.patch_size, width // self.patch_size
        m = int(math.sqrt(n))
        kwargs: dict = {}
        if self.interpolate_offset:
            kwargs["scale_factor"] = (float(h0 + self.interpolate_offset) / m, float(w0 + self.interpolate_offset) / m)
        else:
            kwargs["size"] = (h0, w0)
        patch_pos_embed = F.interpolate(
            patch_pos_embed.reshape(1, m, m, dim).permute(0, 3, 1, 2),
            mode="bicubic",
            antialias=self.interpolate_antialias,
            **kwargs,
        )
        if tuple(patch_pos_embed.shape[-2:]) != (h0, w0):
            raise RuntimeError(
                f"positional interpolation gave a {tuple(patch_pos_embed.shape[-2:])} grid for a {(h0, w0)} "
                f"patch grid; set interpolate_offset=0.0 to interpolate to the exact size"
            )
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((class_pos_embed, patch_pos_embed), dim=1).to(previous_dtype)

    # --------------------------------------------------------------- tokens
    def prepare_tokens_with_masks(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> tokens ``(B, 1 + R + N, D)`` entering the first block.

        ``masks`` ``(B, N)`` bool: those patch embeddings are replaced by ``mask_token`` *before* the
        positional embedding is added (iBOT masked image modelling).
        """
        _, _, h, w = x.shape
        x = self.patch_embed(x)  # (B, N, D)
        if masks is not None:
            if masks.shape != x.shape[:2]:
                raise ValueError(f"masks must have shape (B, N) = {tuple(x.shape[:2])}, got {tuple(masks.shape)}")
            x = torch.where(masks.unsqueeze(-1), self.mask_token.to(x.dtype).unsqueeze(0), x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x), dim=1)  # (B, 1 + N, D)
        x = x + self.interpolate_pos_encoding(x, h, w)
        if self.register_tokens is not None:
            regs = self.register_tokens.expand(x.shape[0], -1, -1).to(x.dtype)
            x = torch.cat((x[:, :1], regs, x[:, 1:]), dim=1)  # (B, 1 + R + N, D)
        return x

    def run_blocks(self, tokens: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Run blocks ``start .. end-1`` on ``tokens`` ``(B, T, D)``. ``-> (B, T, D)``."""
        return run_blocks(self.blocks[start:end], tokens)

    def tokens_before_block(self, x: torch.Tensor, block_index: int, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens entering block ``block_index`` for images ``x``: the cache for top-block re-encoding.

        ``block_index = depth - n`` caches everything below the top ``n`` blocks. ``-> (B, 1 + R + N, D)``.
        """
        self._check_block_index(block_index)
        return self.run_blocks(self.prepare_tokens_with_masks(x, masks), 0, block_index)

    def forward_from_block(
        self, tokens: torch.Tensor, block_index: int, masks: torch.Tensor | None = None
    ) -> FeatureDict:
        """Finish the forward pass from cached tokens (see :meth:`tokens_before_block`).

        ``forward_from_block(tokens_before_block(x, k), k)`` equals ``forward_features(x)`` for any k.
        """
        self._check_block_index(block_index)
        return features_dict(self.norm, self.run_blocks(tokens, block_index), self.num_register_tokens, masks)

    def _check_block_index(self, block_index: int) -> None:
        if not 0 <= block_index <= self.n_blocks:
            raise ValueError(f"block_index must be in [0, {self.n_blocks}], got {block_index}")

    # ------------------------------------------------------------- forward
    def forward_features(
        self, x: torch.Tensor | Sequence[torch.Tensor], masks: torch.Tensor | Sequence | None = None
    ) -> FeatureDict | list[FeatureDict]:
        """Normalised cls/register/patch tokens of images ``x`` ``(B, C, H, W)``.

        Returns ``{x_norm_clstoken (B, D), x_norm_regtokens (B, R, D), x_norm_patchtokens (B, N, D),
        x_prenorm (B, 1 + R + N, D), masks}``. A list of image batches (multi-crop: global and local
        crops of different sizes) with a matching list of masks gives a list of such dicts.
        """
        if isinstance(x, (list, tuple)):
            return self.forward_features_list(x, masks)
        x_prenorm = self.run_blocks(self.prepare_tokens_with_masks(x, masks))
        return features_dict(self.norm, x_prenorm, self.num_register_tokens, masks)

    def forward_features_list(
        self, x_list: Sequence[torch.Tensor], masks_list: Sequence[torch.Tensor | None] | None = None
    ) -> list[FeatureDict]:
        """:meth:`forward_features` for each batch of a multi-crop list (each batch has one size)."""
        if masks_list is None:
            masks_list = [None] * len(x_list)
        if len(masks_list) != len(x_list):
            raise ValueError(f"got {len(x_list)} image batches but {len(masks_list)} masks")
        return [self.forward_features(x, m) for x, m in zip(x_list, masks_list)]

    def forward(self, x: torch.Tensor, is_training: bool = False) -> torch.Tensor | FeatureDict:
        """The cls token ``(B, D)`` through the (identity) head; the full dict if ``is_training``."""
        ret = self.forward_features(x)
        if is_training:
            return ret
        return self.head(ret["x_norm_clstoken"])

    def get_intermediate_layers(
        self,
        x: torch.Tensor,
        n: int | Sequence[int] = 1,
        reshape: bool = False,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple:
        """Outputs of the last ``n`` blocks (int) or of the blocks with the given indices (sequence).

        Each output is the patch tokens ``(B, N, D)``, or ``(B, D, H/p, W/p)`` with ``reshape``;
        ``return_class_token`` pairs each with its cls token ``(B, D)``. ``norm`` applies the final norm.
        """
        tokens = self.prepare_tokens_with_masks(x)
        total = len(self.blocks)
        take = set(range(total - n, total)) if isinstance(n, int) else set(n)
        if any(not 0 <= i < total for i in take):
            raise ValueError(f"block indices {sorted(take)} out of range for a {total}-block model")
        outputs = []
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens)
            if i in take:
                outputs.append(tokens)
        if norm:
            outputs = [self.norm(out) for out in outputs]
        class_tokens = [out[:, 0] for out in outputs]
        outputs = [out[:, 1 + self.num_register_tokens :] for out in outputs]
        if reshape:
            b, _, h, w = x.shape
            p = self.patch_size
            outputs = [out.reshape(b, h // p, w // p, -1).permute(0, 3, 1, 2).contiguous() for out in outputs]
        if return_class_token:
            return tuple(zip(outputs, class_tokens))
        return tuple(outputs)

    # ------------------------------------------------------------ freezing
    def freeze(self) -> DinoVisionTransformer:
        """Make every parameter non-trainable. Returns ``self``."""
        self.requires_grad_(False)
        return self

    def unfreeze_top_layers(self, n: int) -> DinoVisionTransformer:
        """Train only the top ``n`` blocks and the final norm; freeze everything else. Returns ``self``."""
        if not 0 <= n <= self.n_blocks:
            raise ValueError(f"n must be in [0, {self.n_blocks}] for a {self.n_blocks}-block model, got {n}")
        self.freeze()
        for blk in self.blocks[self.n_blocks - n :]:
            blk.requires_grad_(True)
        self.norm.requires_grad_(True)
        return self

    @property
    def first_trainable_block(self) -> int:
        """Index of the lowest block with a trainable parameter (``depth`` if none): the cache boundary."""
        embedding = [self.cls_token, self.pos_embed, self.mask_token, *self.patch_embed.parameters()]
        if self.register_tokens is not None:
            embedding.append(self.register_tokens)
        if any(p.requires_grad for p in embedding):
            return 0
        for i, blk in enumerate(self.blocks):
            if any(p.requires_grad for p in blk.parameters()):
                return i
        return self.n_blocks
