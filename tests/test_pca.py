"""PCA maps of patch features: planted foreground recovered, colours shared across images, PNG grids written."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from encoders.eval.pca import pca_rgb
from encoders.eval.pca_grid import image_grid, pca_tiles, write_pca_grid


def _planted(b: int = 3, h: int = 8, w: int = 8, d: int = 16, seed: int = 0):
    """Background patches near one direction, a centred square of foreground patches of two parts."""
    g = torch.Generator().manual_seed(seed)
    bg, part_a, part_b = torch.randn(3, d, generator=g) * 4
    feats = bg + 0.1 * torch.randn(b, h, w, d, generator=g)
    fg = torch.zeros(b, h, w, dtype=torch.bool)
    fg[:, 2:6, 2:6] = True
    left = fg.clone()
    left[:, :, 4:] = False
    feats[fg & left] = part_a + 0.1 * torch.randn(int((fg & left).sum()), d, generator=g)
    feats[fg & ~left] = part_b + 0.1 * torch.randn(int((fg & ~left).sum()), d, generator=g)
    return feats, fg, left


def test_threshold_recovers_the_planted_foreground():
    feats, fg, left = _planted()
    rgb = pca_rgb(feats, foreground_threshold=0.5)
    assert rgb.shape == (3, 8, 8, 3) and rgb.dtype == np.uint8
    shown = torch.from_numpy(rgb.any(axis=-1))
    assert torch.equal(shown, fg)  # background black, foreground coloured
    # the two parts differ along the first foreground component (red), by the same amount in every image
    for i in range(3):
        a = rgb[i][(fg & left)[i].numpy()][:, 0].astype(float).mean()
        b = rgb[i][(fg & ~left)[i].numpy()][:, 0].astype(float).mean()
        assert abs(a - b) > 200


def test_without_threshold_every_patch_is_coloured():
    feats, _, _ = _planted()
    rgb = pca_rgb(feats)
    assert rgb.shape == (3, 8, 8, 3)
    assert rgb.reshape(-1, 3).max(0).tolist() == [255, 255, 255]  # min-max scaled per component


def test_grid_layout_and_png(tmp_path):
    tiles = [np.full((5, 7, 3), i * 40, np.uint8) for i in range(5)]
    grid = image_grid(tiles, ncols=2, pad=1)
    assert grid.shape == (3 * 5 + 4, 2 * 7 + 3, 3)
    assert (grid[1:6, 1:8] == 0).all() and (grid[1:6, 9:16] == 40).all() and (grid[13:18, 1:8] == 160).all()
    assert (grid[13:18, 9:16] == 255).all()  # the empty slot keeps the padding colour

    feats, _, _ = _planted(b=3)
    images = np.random.default_rng(0).integers(0, 255, (3, 56, 56, 3), dtype=np.uint8)
    assert pca_tiles(images, feats)[0].shape == (56, 112, 3)
    path = write_pca_grid(tmp_path / "grid.png", images, feats, ncols=2)
    png = cv2.imread(str(path))
    assert png.shape == (2 * 56 + 3 * 4, 2 * 112 + 3 * 4, 3)
    assert np.array_equal(png[4:60, 4:60], cv2.cvtColor(images[0], cv2.COLOR_RGB2BGR))


def test_grid_inputs_are_checked():
    with pytest.raises(ValueError, match="same shape"):
        image_grid([np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2, 3), np.uint8)], 2)
    with pytest.raises(ValueError, match="B=2"):
        pca_tiles(np.zeros((2, 8, 8, 3), np.uint8), torch.zeros(3, 2, 2, 4))
