"""PCA visualisation of patch features, the DINOv2 paper's signature figure (Oquab et al. 2023, Fig. 1).

The first principal component of patch features separates foreground from background; a second PCA
on the foreground patches, its first 3 components shown as RGB, colours matching parts alike across images.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def _principal_components(x: torch.Tensor, k: int) -> torch.Tensor:
    """Project rows of ``x`` ``(M, D)`` on their top-``k`` principal directions. ``-> (M, k)``."""
    x = x.double() - x.double().mean(dim=0, keepdim=True)
    k = min(k, *x.shape)
    _, _, v = torch.linalg.svd(x, full_matrices=False)  # v: (min(M,D), D)
    return (x @ v[:k].T).float()


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.amin(dim=0, keepdim=True), x.amax(dim=0, keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-8)


def pca_rgb(features: torch.Tensor, foreground_threshold: float | None = None) -> np.ndarray:
    """Patch features ``(B, h, w, D)`` (or ``(h, w, D)``) -> RGB maps ``(B, h, w, 3)`` uint8.

    A joint PCA over all images (colours are comparable across the batch). With
    ``foreground_threshold`` (e.g. 0.5), patches whose min-max-normalised first component is below
    it are background (black) and the 3-component PCA runs on the foreground only; the sign of the
    first component is chosen so that the image border is mostly background.
    """
    if features.ndim == 3:
        features = features[None]
    if features.ndim != 4:
        raise ValueError(f"expected patch features (B, h, w, D), got shape {tuple(features.shape)}")
    b, h, w, d = features.shape
    flat = features.reshape(-1, d).float()
    rgb = torch.zeros(flat.shape[0], 3)
    keep = torch.ones(flat.shape[0], dtype=torch.bool)
    if foreground_threshold is not None:
        first = _principal_components(flat, 1)[:, 0]
        border = torch.zeros(b, h, w, dtype=torch.bool)
        border[:, 0], border[:, -1], border[:, :, 0], border[:, :, -1] = True, True, True, True
        if first[border.reshape(-1)].mean() > first.mean():
            first = -first
        keep = _minmax(first[:, None])[:, 0] > foreground_threshold
        if keep.sum() < 3:
            keep[:] = True
    comps = _principal_components(flat[keep], 3)
    if comps.shape[1] < 3:
        comps = torch.cat([comps, comps.new_zeros(comps.shape[0], 3 - comps.shape[1])], dim=1)
    rgb[keep] = _minmax(comps)
    return (rgb.reshape(b, h, w, 3).numpy() * 255).round().astype(np.uint8)


def upsample_map(rgb_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour upsampling of an ``(h, w, 3)`` patch map to ``(height, width, 3)`` pixels."""
    return cv2.resize(rgb_map, (width, height), interpolation=cv2.INTER_NEAREST)
