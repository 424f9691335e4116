"""Hand-made baselines of the encoder evaluation: luma pixels and HOG (checked against scikit-image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders.eval.features import gray_pixel_features, hog_feature_fn, hog_features
from encoders.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from envs.scenes.object_set import make_object_set, sample_object

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def normalised(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


def test_hog_equals_scikit_image():
    skimage_feature = pytest.importorskip("skimage.feature")
    images, _, _ = make_object_set(1, classes=("car", "tree", "bicycle"))
    x = normalised(images)  # (3, 3, 112, 112)
    ours = hog_features(x, cell=14, bins=9)
    gray = ((x * STD + MEAN).clamp(0, 1) * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    for i in range(len(images)):
        ref = skimage_feature.hog(
            gray[i].double().numpy(), orientations=9, pixels_per_cell=(14, 14), cells_per_block=(2, 2),
            block_norm="L2-Hys", feature_vector=True,
        )  # fmt: skip
        assert ours[i].shape == ref.shape == (7 * 7 * 4 * 9,)
        np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-6)


def test_hog_and_gray_pixels_ignore_a_hue_change():
    """The same object in two hues of equal luma-ish: gray features move little, RGB pixels a lot."""
    a = sample_object("car", 3, colour=(200, 40, 40), backgrounds=("plain",)).image
    b = sample_object("car", 3, colour=(40, 40, 200), backgrounds=("plain",)).image
    x = normalised(np.stack([a, b]))
    rgb_change = (x[0] - x[1]).abs().mean()
    hog = hog_feature_fn(14)(x)["hog"]
    cos_hog = torch.nn.functional.cosine_similarity(hog[0], hog[1], dim=0)
    assert rgb_change > 0.1
    assert cos_hog > 0.9
    g = gray_pixel_features(x, 16)
    assert g.shape == (2, 256)


def test_hog_rejects_sizes_the_cells_do_not_tile():
    with pytest.raises(ValueError, match="multiples of the cell size 14"):
        hog_features(torch.zeros(1, 3, 100, 100), cell=14)
