"""CellCrops: the pixel crops of the pixel observation and the pixel-curiosity baseline, in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from envs.crops import CellCrops


def test_cell_crops_are_image_slices_with_black_outside():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(2, 3, 28, 42, 3), dtype=np.uint8)  # 2x3 cells of 14 px, no zero pixel
    crops = CellCrops(images, patch_size=14, radius=1)
    assert crops.size == 42
    out = crops(np.array([1, 0]), np.array([2, 0]), np.array([1, 0]), np.array([1, 2]))
    assert out.shape == (2, 42, 42, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    # cell (1, 1) of scene 1, variant 2 (the bottom row): image rows 0..27 at crop rows 0..27, all columns
    np.testing.assert_array_equal(out[0, :28], images[1, 2])
    assert not out[0, 28:].any()
    # cell (0, 2): the top-right corner, image rows 0..27 and columns 14..41 at crop rows 14.., columns 0..27
    np.testing.assert_array_equal(out[1, 14:, :28], images[0, 0, :, 14:])
    assert not out[1, :14].any() and not out[1, :, 28:].any()
    with pytest.raises(ValueError, match="patch_radius"):
        CellCrops(images, 14, -1)
