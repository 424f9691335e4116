"""Pixel crops around grid cells: the pixel observation of the environments and the pixel-curiosity baseline's
input (one implementation for both)."""

from __future__ import annotations

import numpy as np


class CellCrops:
    """North-up ``(P, P, 3)`` uint8 crops centred on grid cells, ``P = (2r + 1) * patch_size``; outside the image is
    black.

    The images are zero-padded once and a strided view of every crop position is kept, so a batch of crops is one
    fancy-index gather. Pixel ``(a, b)`` of the crop of cell ``(r, c)`` is image pixel
    ``(r * patch_size + a - pad, c * patch_size + b - pad)`` with ``pad = radius * patch_size``.

    Args:
        images: ``(S, V, H, W, 3)`` uint8 scene variants.
        patch_size: pixels per cell.
        radius: crop radius in cells.
    """

    def __init__(self, images: np.ndarray, patch_size: int, radius: int):
        if radius < 0:
            raise ValueError(f"patch_radius must be >= 0, got {radius}")
        self.patch_size = int(patch_size)
        self.size = (2 * int(radius) + 1) * self.patch_size
        pad = int(radius) * self.patch_size
        s, v, height, width, _ = images.shape
        padded = np.zeros((s, v, height + 2 * pad, width + 2 * pad, 3), np.uint8)
        padded[:, :, pad : pad + height, pad : pad + width] = images
        # (S, V, Hp - P + 1, Wp - P + 1, 3, P, P), a view of `padded`
        self._windows = np.lib.stride_tricks.sliding_window_view(padded, (self.size, self.size), axis=(2, 3))

    def __call__(self, scene: np.ndarray, variant: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """``(n, P, P, 3)`` uint8 crops (a contiguous copy) of cells ``(row, col)`` of ``(scene, variant)``."""
        p = self.patch_size
        # the crop of cell (r, c) starts at pixel (r * p, c * p) of the padded image
        return np.ascontiguousarray(self._windows[scene, variant, row * p, col * p].transpose(0, 2, 3, 1))


__all__ = ["CellCrops"]
