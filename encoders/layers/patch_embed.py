"""Image to patch tokens: a strided convolution (ViT, Dosovitskiy et al. 2021)."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Split an image into non-overlapping ``patch_size`` squares and project each to ``embed_dim``.

    ``(B, C, H, W) -> (B, H/p * W/p, D)``. ``H`` and ``W`` must be multiples of ``p``.
    ``img_size`` only fixes the number of patches of the *learned* positional grid;
    other sizes are handled by positional-embedding interpolation in the backbone.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768):
        super().__init__()
        if img_size % patch_size != 0:
            raise ValueError(f"img_size={img_size} must be a multiple of patch_size={patch_size}")
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size * self.grid_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` that says what to do when ``x`` cannot be patchified."""
        if x.ndim != 4:
            raise ValueError(f"expected an image batch of shape (B, C, H, W), got shape {tuple(x.shape)}")
        _, c, h, w = x.shape
        if c != self.in_chans:
            raise ValueError(f"expected {self.in_chans} input channels, got {c} (shape {tuple(x.shape)})")
        p = self.patch_size
        if h % p != 0 or w % p != 0:
            raise ValueError(
                f"image size {h}x{w} is not a multiple of the patch size {p}; resize or crop it to "
                f"{(h // p) * p}x{(w // p) * p} (or {(-(-h // p)) * p}x{(-(-w // p)) * p})"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.proj(x)  # (B, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)
