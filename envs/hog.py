"""A hand-made feature space: histograms of oriented gradients (HOG) per grid cell, served as :class:`SceneFeatures`.

Dalal & Triggs 2005, "Histograms of Oriented Gradients for Human Detection": gradients of the luminance, their
unsigned orientation binned and weighted by magnitude over small cells, each cell's histogram normalised. It sees
shape, not colour: a recoloured object keeps its edges, and unsigned orientations and the per-cell normalisation
discount the edge's polarity and contrast (the invariance is approximate: a hue change also changes the luminance
contrast against the background, and a faint edge can sink into the background's texture). It is the baseline
between pixels and a learned encoder in the noisy-TV study: what shape alone buys without any learning.

A cell of ``patch_size`` pixels is split into ``2 x 2`` sub-cells of :data:`N_BINS` orientation bins (linear
interpolation between neighbouring bins; the patch size must be even), so a cell vector has :data:`HOG_DIM`
values, L2-normalised per cell.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from einops import reduce

from envs.features import SceneFeatures

#: Orientation bins over [0, 180) degrees.
N_BINS = 9
#: Sub-cells per cell side.
SUBCELLS = 2
#: Width of a cell vector.
HOG_DIM = SUBCELLS * SUBCELLS * N_BINS
_EPS = 1e-3


def hog_grid(image: np.ndarray, patch_size: int) -> np.ndarray:
    """``(h, w, HOG_DIM)`` float32 HOG cell vectors of one ``(H, W, 3)`` uint8 image (``h = H // patch_size``)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {image.shape}")
    if patch_size % SUBCELLS:
        raise ValueError(
            f"HOG splits a cell into {SUBCELLS}x{SUBCELLS} sub-cells: patch_size must be even, got {patch_size}"
        )
    height, width = image.shape[0] // patch_size * patch_size, image.shape[1] // patch_size * patch_size
    grey = cv2.cvtColor(np.ascontiguousarray(image[:height, :width]), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=1)
    magnitude = np.hypot(gx, gy)
    position = (np.degrees(np.arctan2(gy, gx)) % 180.0) / (180.0 / N_BINS) - 0.5  # bin centres at 0.5, 1.5, ...
    lower = np.floor(position).astype(np.int64) % N_BINS
    upper = (lower + 1) % N_BINS
    upper_vote = magnitude * (position - np.floor(position))
    lower_vote = magnitude - upper_vote
    bins = np.arange(N_BINS)
    votes = (lower[..., None] == bins) * lower_vote[..., None] + (upper[..., None] == bins) * upper_vote[..., None]
    sub = patch_size // SUBCELLS
    # sum the votes over each sub-cell; a cell's vector is its 2x2 sub-cells' histograms, row by row
    grid = reduce(votes, "(h a p) (w b q) k -> h w (a b k)", "sum", a=SUBCELLS, b=SUBCELLS, p=sub, q=sub)
    grid = grid.astype(np.float32)
    return grid / np.sqrt((grid**2).sum(-1, keepdims=True) + _EPS**2)


def hog_features(images: np.ndarray, patch_size: int) -> SceneFeatures:
    """A :class:`SceneFeatures` of HOG grids ``(S, V, h, w, HOG_DIM)`` of ``(S, V, H, W, 3)`` uint8 scene variants."""
    if images.ndim != 5:
        raise ValueError(f"images must be (S, V, H, W, 3), got {images.shape}")
    s, v = images.shape[:2]
    grids = np.stack([hog_grid(im, patch_size) for im in images.reshape(s * v, *images.shape[2:])])
    grids = grids.reshape(s, v, *grids.shape[1:])
    return SceneFeatures(torch.from_numpy(np.ascontiguousarray(grids)), patch_size)


__all__ = ["HOG_DIM", "N_BINS", "hog_features", "hog_grid"]
