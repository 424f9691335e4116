"""PNG grids of PCA maps of patch features: each tile is an image next to its :func:`~encoders.eval.pca.pca_rgb` map.

The PCA is joint over all images of the grid (colours are comparable across tiles); with a foreground
threshold the background patches are black (the DINOv2 paper's Fig. 1 recipe).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from encoders.eval.pca import pca_rgb, upsample_map


def image_grid(tiles: Sequence[np.ndarray], ncols: int, pad: int = 4, pad_value: int = 255) -> np.ndarray:
    """Arrange equally sized ``(H, W, 3)`` uint8 tiles row-major into ``ncols`` columns with ``pad`` px gaps."""
    if not tiles:
        raise ValueError("no tiles to arrange")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    h, w = tiles[0].shape[:2]
    if any(t.shape != tiles[0].shape for t in tiles):
        raise ValueError(f"all tiles must have the same shape, got {sorted({t.shape for t in tiles})}")
    ncols = min(ncols, len(tiles))
    nrows = -(-len(tiles) // ncols)
    grid = np.full((nrows * h + (nrows + 1) * pad, ncols * w + (ncols + 1) * pad, 3), pad_value, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = tile
    return grid


def pca_tiles(
    images: np.ndarray, patch_features: torch.Tensor, foreground_threshold: float | None = 0.5
) -> list[np.ndarray]:
    """One ``(H, 2W, 3)`` tile per image: the image and its PCA map upsampled to the image size.

    Args:
        images: ``(B, H, W, 3)`` uint8 RGB, the images the features were computed from.
        patch_features: ``(B, h, w, D)`` patch tokens.
        foreground_threshold: passed to :func:`~encoders.eval.pca.pca_rgb` (``None``: no masking).
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (B, H, W, 3) uint8 RGB, got {images.dtype} {images.shape}")
    if patch_features.ndim != 4 or patch_features.shape[0] != images.shape[0]:
        raise ValueError(
            f"patch_features must be (B, h, w, D) with B={images.shape[0]}, got {tuple(patch_features.shape)}"
        )
    maps = pca_rgb(patch_features, foreground_threshold)  # (B, h, w, 3)
    height, width = images.shape[1:3]
    return [np.concatenate([img, upsample_map(m, height, width)], axis=1) for img, m in zip(images, maps)]


def write_pca_grid(
    path: str | os.PathLike,
    images: np.ndarray,
    patch_features: torch.Tensor,
    foreground_threshold: float | None = 0.5,
    ncols: int = 4,
) -> Path:
    """Write the :func:`pca_tiles` of ``images`` as one PNG grid (``ncols`` image/map pairs per row)."""
    path = Path(path)
    grid = image_grid(pca_tiles(images, patch_features, foreground_threshold), ncols)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"could not write {path}; use a .png file name in a writable folder")
    return path


__all__ = ["image_grid", "pca_tiles", "write_pca_grid"]
