"""DINOv2 multi-crop augmentation: output format, op semantics against reference formulas, rates, determinism."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from encoders.data.augmentations import (
    NORMALIZED_MAX,
    NORMALIZED_MIN,
    DataAugmentationDINO,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    center_crop_transform,
    gaussian_blur,
    hflip,
    resize_image,
    resized_crop,
    sample_color_jitter,
    sample_resized_crop_box,
    solarize,
    to_float,
    to_grayscale,
    to_normalized_tensor,
)
from encoders.preprocessing import IMAGENET_MEAN, IMAGENET_STD, images_to_tensor

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def small_aug(**kw) -> DataAugmentationDINO:
    """Tiny crops keep the statistical tests fast; semantics do not depend on the size."""
    args = dict(global_crops_size=32, local_crops_size=16, local_crops_number=2, patch_size=16, seed=0)
    args.update(kw)
    return DataAugmentationDINO(**args)


def unnormalize(t: torch.Tensor) -> torch.Tensor:
    return t * STD + MEAN


def color_image(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Low-frequency colour image (random 8x8 colours upsampled)."""
    import cv2

    small = np.random.default_rng(seed).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------------------------------------------
# Output format
# ---------------------------------------------------------------------------------------------------------------


def test_output_format_shapes_dtypes_and_value_range():
    aug = DataAugmentationDINO(global_crops_size=48, local_crops_size=16, local_crops_number=3, patch_size=16, seed=1)
    out = aug(color_image(70, 90))
    assert set(out) == {"global_crops", "global_crops_teacher", "local_crops", "offsets"}
    assert out["offsets"] == ()
    assert len(out["global_crops"]) == 2 and len(out["local_crops"]) == 3
    assert out["global_crops_teacher"] is out["global_crops"]
    lo = torch.tensor(NORMALIZED_MIN).view(3, 1, 1) - 1e-5
    hi = torch.tensor(NORMALIZED_MAX).view(3, 1, 1) + 1e-5
    for crop, size in [(c, 48) for c in out["global_crops"]] + [(c, 16) for c in out["local_crops"]]:
        assert crop.shape == (3, size, size) and crop.dtype == torch.float32 and crop.is_contiguous()
        assert torch.isfinite(crop).all()
        assert (crop >= lo).all() and (crop <= hi).all()


def test_normalized_bounds_are_those_of_black_and_white():
    black = to_normalized_tensor(np.zeros((2, 2, 3), np.float32))
    white = to_normalized_tensor(np.ones((2, 2, 3), np.float32))
    assert torch.allclose(black[:, 0, 0], torch.tensor(NORMALIZED_MIN), atol=1e-6)
    assert torch.allclose(white[:, 0, 0], torch.tensor(NORMALIZED_MAX), atol=1e-6)


def test_default_sizes_match_dinov2():
    aug = DataAugmentationDINO(local_crops_number=1, seed=0)
    out = aug(color_image(100, 120))
    assert out["global_crops"][0].shape == (3, 224, 224)
    assert out["local_crops"][0].shape == (3, 96, 96)


def test_to_normalized_tensor_matches_images_to_tensor():
    img = color_image(9, 11)
    assert torch.allclose(to_normalized_tensor(to_float(img)), images_to_tensor(img)[0], atol=1e-5)


def test_zero_local_crops():
    out = small_aug(local_crops_number=0)(color_image())
    assert out["local_crops"] == [] and len(out["global_crops"]) == 2


# ---------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------


def test_crop_size_must_be_multiple_of_patch_size_and_error_names_valid_sizes():
    with pytest.raises(ValueError, match=r"global_crops_size=100 is not a multiple of patch_size=14; use 98 or 112"):
        DataAugmentationDINO(global_crops_size=100, local_crops_size=98, patch_size=14)
    with pytest.raises(ValueError, match=r"local_crops_size=10 .* use 14"):
        DataAugmentationDINO(global_crops_size=224, local_crops_size=10, patch_size=14)
    DataAugmentationDINO(global_crops_size=224, local_crops_size=98, patch_size=14)  # valid
    DataAugmentationDINO(global_crops_size=100, local_crops_size=50)  # no patch size: anything positive


@pytest.mark.parametrize(
    "kwargs",
    [
        {"global_crops_scale": (0.5, 0.3)},
        {"local_crops_scale": (0.0, 0.3)},
        {"global_crops_scale": (0.3, 1.5)},
        {"local_crops_number": -1},
        {"global_crops_size": 0},
        {"seed": -3},
    ],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        DataAugmentationDINO(**kwargs)


def test_input_must_be_uint8_rgb():
    aug = small_aug()
    with pytest.raises(ValueError, match="uint8 RGB"):
        aug(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        aug(np.zeros((32, 32), np.uint8))


def test_set_global_crops_size_for_high_resolution_adaptation():
    aug = small_aug()
    aug.set_global_crops_size(48)
    out = aug(color_image())
    assert out["global_crops"][0].shape == (3, 48, 48) and out["local_crops"][0].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="use 48 or 64"):
        aug.set_global_crops_size(50)


# ---------------------------------------------------------------------------------------------------------------
# Determinism and workers
# ---------------------------------------------------------------------------------------------------------------


def _stack(out: dict) -> torch.Tensor:
    return torch.cat([c.flatten() for c in out["global_crops"] + out["local_crops"]])


def test_same_seed_same_crops_different_seed_different_crops():
    img = color_image()
    a, b, c = small_aug(seed=5), small_aug(seed=5), small_aug(seed=6)
    for _ in range(3):
        oa, ob, oc = a(img), b(img), c(img)
        assert torch.equal(_stack(oa), _stack(ob))
        assert not torch.equal(_stack(oa), _stack(oc))


def test_set_epoch_rank_and_explicit_rng():
    img = color_image()
    base = _stack(small_aug(seed=5)(img))
    other_epoch = small_aug(seed=5)
    other_epoch.set_epoch(1)
    assert not torch.equal(base, _stack(other_epoch(img)))
    assert not torch.equal(base, _stack(small_aug(seed=5, rank=1)(img)))
    aug = small_aug(seed=None)
    r1 = _stack(aug(img, rng=np.random.default_rng(42)))
    r2 = _stack(aug(img, rng=np.random.default_rng(42)))
    assert torch.equal(r1, r2)


def test_pickled_copy_restarts_the_same_stream():
    img = color_image()
    aug = small_aug(seed=9)
    first = _stack(aug(img))
    copy = pickle.loads(pickle.dumps(aug))
    assert torch.equal(_stack(copy(img)), first)


class _InMemory(Dataset):
    def __init__(self, n: int, transform):
        self.image = color_image(40, 40)
        self.n, self.transform = n, transform

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.transform(self.image)["global_crops"][0]


def test_dataloader_workers_are_deterministic_and_draw_different_streams():
    def run():
        loader = DataLoader(_InMemory(4, small_aug(seed=3)), batch_size=1, num_workers=2, shuffle=False)
        return [b[0] for b in loader]

    first, second = run(), run()
    assert all(torch.equal(x, y) for x, y in zip(first, second))
    # Samples 0 and 1 go to workers 0 and 1: same image, independent streams.
    assert not torch.equal(first[0], first[1])


# ---------------------------------------------------------------------------------------------------------------
# Rates of the random decisions (fixed seeds, wide tolerances)
# ---------------------------------------------------------------------------------------------------------------


def _params(aug: DataAugmentationDINO, kind: str, n: int = 4000):
    rng = np.random.default_rng(123)
    return [aug.sample_params(kind, 100, 100, rng) for _ in range(n)]


@pytest.mark.parametrize(
    ("kind", "blur", "solar"),
    [("global1", 1.0, 0.0), ("global2", 0.1, 0.2), ("local", 0.5, 0.0)],
)
def test_decision_rates_match_dinov2(kind, blur, solar):
    ps = _params(small_aug(), kind)
    rate = lambda xs: float(np.mean(xs))  # noqa: E731
    assert rate([p.flip for p in ps]) == pytest.approx(0.5, abs=0.04)
    assert rate([p.jitter is not None for p in ps]) == pytest.approx(0.8, abs=0.04)
    assert rate([p.grayscale for p in ps]) == pytest.approx(0.2, abs=0.04)
    assert rate([p.blur_sigma is not None for p in ps]) == pytest.approx(blur, abs=0.04)
    assert rate([p.solarize for p in ps]) == pytest.approx(solar, abs=0.04)
    sigmas = [p.blur_sigma for p in ps if p.blur_sigma is not None]
    assert min(sigmas) >= 0.1 and max(sigmas) <= 2.0


def test_inverted_blur_probability_reproduces_released_code():
    aug = small_aug(invert_blur_probability=True)
    assert aug.blur_p == {"global1": 0.0, "global2": pytest.approx(0.9), "local": 0.5}
    ps = _params(aug, "global1", 500)
    assert not any(p.blur_sigma is not None for p in ps)


def test_color_jitter_factors_and_random_order():
    rng = np.random.default_rng(0)
    draws = [sample_color_jitter(rng) for _ in range(2000)]
    ranges = {"brightness": (0.6, 1.4), "contrast": (0.6, 1.4), "saturation": (0.8, 1.2), "hue": (-0.1, 0.1)}
    for d in draws:
        assert sorted(op for op, _ in d) == sorted(ranges)
        for op, f in d:
            assert ranges[op][0] <= f <= ranges[op][1]
    # Every op lands in every position about 1/4 of the time.
    for pos in range(4):
        counts = {op: sum(d[pos][0] == op for d in draws) / len(draws) for op in ranges}
        assert all(abs(c - 0.25) < 0.05 for c in counts.values()), counts


def test_resized_crop_box_scale_and_aspect():
    rng = np.random.default_rng(0)
    H, W = 120, 160
    fractions = []
    for _ in range(2000):
        top, left, h, w = sample_resized_crop_box(rng, H, W, (0.05, 0.32))
        assert top >= 0 and left >= 0 and top + h <= H and left + w <= W
        fractions.append(h * w / (H * W))
        # Rounding to whole pixels moves the ratio slightly outside [3/4, 4/3] for small crops.
        assert 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1
    assert min(fractions) > 0.04 and max(fractions) < 0.34
    assert np.mean(fractions) == pytest.approx((0.05 + 0.32) / 2, abs=0.02)  # uniform in area


def test_resized_crop_box_fallback_clamps_aspect_ratio():
    # A very wide image cannot hold a crop of 90% area with ratio <= 4/3: centre crop of full height.
    box = sample_resized_crop_box(np.random.default_rng(0), 10, 200, (0.9, 1.0))
    assert box == (0, (200 - 13) // 2, 10, 13)


def test_flip_rate_seen_in_outputs():
    # Gray horizontal ramp, crops covering the ramp: colour jitter, grayscale and blur keep the left part
    # darker than the right part, so a flipped crop is the one whose left half is brighter.
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.float32).astype(np.uint8)[None, :, None], (64, 1, 3))
    aug = small_aug(seed=11)
    flipped = []
    for _ in range(300):
        out = aug(ramp)
        for crop in [out["global_crops"][0], *out["local_crops"]]:
            c = crop[0]
            flipped.append(bool(c[:, : c.shape[1] // 2].mean() > c[:, c.shape[1] // 2 :].mean()))
    assert np.mean(flipped) == pytest.approx(0.5, abs=0.06)


def test_grayscale_rate_seen_in_outputs():
    aug = small_aug(seed=12)
    gray = []
    for _ in range(300):
        out = aug(color_image(64, 64))
        for crop in [*out["global_crops"], *out["local_crops"]]:
            rgb = unnormalize(crop)
            gray.append(bool((rgb.amax(0) - rgb.amin(0)).max() < 1e-4))
    assert np.mean(gray) == pytest.approx(0.2, abs=0.05)


def test_solarize_only_on_second_global_crop_at_rate_0_2():
    # A white image stays >= 0.6 after any jitter; only solarization takes it below 0.5.
    white = np.full((48, 48, 3), 255, np.uint8)
    aug = small_aug(seed=13)
    solarized = {"g1": [], "g2": [], "local": []}
    for _ in range(300):
        out = aug(white)
        g1, g2 = (unnormalize(c).mean().item() for c in out["global_crops"])
        solarized["g1"].append(g1 < 0.5)
        solarized["g2"].append(g2 < 0.5)
        solarized["local"].extend(unnormalize(c).mean().item() < 0.5 for c in out["local_crops"])
    assert not any(solarized["g1"]) and not any(solarized["local"])
    assert np.mean(solarized["g2"]) == pytest.approx(0.2, abs=0.06)


# ---------------------------------------------------------------------------------------------------------------
# Operations against reference formulas (torchvision semantics written out)
# ---------------------------------------------------------------------------------------------------------------


def _gray_ref(x: np.ndarray) -> np.ndarray:
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def test_brightness_contrast_saturation_formulas():
    x = to_float(color_image(20, 30))
    for f in (0.6, 1.0, 1.4):
        np.testing.assert_allclose(adjust_brightness(x, f), np.clip(f * x, 0, 1), atol=1e-6)
        m = _gray_ref(x).mean()
        np.testing.assert_allclose(adjust_contrast(x, f), np.clip(f * x + (1 - f) * m, 0, 1), atol=1e-5)
        g = _gray_ref(x)[..., None]
        np.testing.assert_allclose(adjust_saturation(x, f), np.clip(f * x + (1 - f) * g, 0, 1), atol=1e-5)


def _rgb_to_hsv_ref(x):
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = x.max(-1)
    c = v - x.min(-1)
    s = np.where(v > 0, c / np.where(v > 0, v, 1), 0)
    cd = np.where(c > 0, c, 1)
    h = np.where(v == r, (g - b) / cd, np.where(v == g, 2 + (b - r) / cd, 4 + (r - g) / cd))
    h = np.where(c > 0, (h / 6) % 1.0, 0)
    return h, s, v


def _hsv_to_rgb_ref(h, s, v):
    i = np.floor(h * 6) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros((*h.shape, 3))
    for k, (r, g, b) in enumerate(choices):
        sel = i == k
        out[sel] = np.stack([r[sel], g[sel], b[sel]], -1)
    return out


@pytest.mark.parametrize("shift", [-0.5, -0.1, -0.02, 0.0, 0.03, 0.1, 0.5])
def test_hue_shift_matches_hsv_reference(shift):
    x = to_float(color_image(16, 16, seed=1))
    h, s, v = _rgb_to_hsv_ref(x.astype(np.float64))
    expected = _hsv_to_rgb_ref((h + shift) % 1.0, s, v)
    np.testing.assert_allclose(adjust_hue(x, shift), expected, atol=1e-4)


def test_hue_shift_leaves_gray_unchanged():
    g = np.repeat(np.linspace(0, 1, 10, dtype=np.float32)[None, :, None], 3, axis=2)
    np.testing.assert_allclose(adjust_hue(g, 0.1), g, atol=1e-6)


def test_grayscale_weights_and_equal_channels():
    x = to_float(color_image(8, 8))
    g = to_grayscale(x)
    assert g.shape == x.shape
    np.testing.assert_allclose(g[..., 0], _gray_ref(x), atol=1e-5)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])


@pytest.mark.parametrize("sigma", [0.1, 0.7, 2.0])
def test_gaussian_blur_matches_separable_reflect_conv(sigma):
    x = to_float(color_image(20, 24))
    d = torch.linspace(-4, 4, 9, dtype=torch.float64)
    k1 = torch.exp(-0.5 * (d / sigma) ** 2)
    k1 = k1 / k1.sum()
    t = torch.from_numpy(x).double().permute(2, 0, 1)[None]  # (1, 3, H, W)
    t = F.pad(t, (4, 4, 4, 4), mode="reflect")
    t = F.conv2d(t, k1.view(1, 1, 1, 9).repeat(3, 1, 1, 1), groups=3)
    t = F.conv2d(t, k1.view(1, 1, 9, 1).repeat(3, 1, 1, 1), groups=3)
    np.testing.assert_allclose(gaussian_blur(x, sigma), t[0].permute(1, 2, 0).numpy(), atol=1e-5)


def test_solarize_inverts_at_and_above_128():
    values = np.array([0, 100, 127, 128, 129, 255], np.float32) / 255
    x = np.repeat(values[None, :, None], 3, axis=2)
    expected = np.where(x >= 128 / 255, 1 - x, x)
    assert np.array_equal(solarize(x), expected)
    assert solarize(x)[0, 2, 0] == pytest.approx(127 / 255) and solarize(x)[0, 3, 0] == pytest.approx(127 / 255)


def test_hflip_and_crop_box_orientation():
    img = color_image(30, 40)
    assert np.array_equal(hflip(img), img[:, ::-1])
    # top=5, left=7, 16x16 at size 16: no resampling, so exactly the slice.
    assert np.array_equal(resized_crop(img, (5, 7, 16, 16), 16), img[5:21, 7:23])


def test_apply_crop_with_neutral_params_is_plain_normalisation():
    from encoders.data.augmentations import CropParams

    img = color_image(32, 32)
    aug = small_aug()
    neutral = CropParams(box=(0, 0, 32, 32), flip=False, jitter=None, grayscale=False, blur_sigma=None, solarize=False)
    assert torch.allclose(aug.apply_crop(img, neutral, 32), images_to_tensor(img)[0], atol=1e-5)
    flipped = CropParams(box=(0, 0, 32, 32), flip=True, jitter=None, grayscale=False, blur_sigma=None, solarize=False)
    assert torch.allclose(aug.apply_crop(img, flipped, 32), images_to_tensor(img[:, ::-1].copy())[0], atol=1e-5)


@pytest.mark.parametrize("out_size", [224, 150, 96, 40, 500])
def test_resize_close_to_antialiased_bicubic(out_size):
    img = smooth_image(300, 300)
    ours = resize_image(img, out_size, out_size).astype(np.float32)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    ref = F.interpolate(t, size=(out_size, out_size), mode="bicubic", antialias=True, align_corners=False)
    ref = ref[0].permute(1, 2, 0).clamp(0, 255).numpy()
    assert np.abs(ours - ref).mean() < 3.0


def test_resize_of_noise_is_antialiased():
    # Without a low-pass filter, shrinking white noise 300 -> 40 keeps its full variance (aliasing).
    noise = color_image(300, 300)
    ours = resize_image(noise, 40, 40).astype(np.float32)
    aliased = resize_image(noise, 40, 40, antialias=False).astype(np.float32)
    assert ours.std() < 0.3 * aliased.std()


# ---------------------------------------------------------------------------------------------------------------
# Eval transform
# ---------------------------------------------------------------------------------------------------------------


def test_center_crop_transform_shape_content_and_validation():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :40] = (255, 0, 0)
    img[:, 40:] = (0, 0, 255)
    tf = center_crop_transform(28, resize_size=32, patch_size=14)
    out = tf(img)
    assert out.shape == (3, 28, 28) and out.dtype == torch.float32
    rgb = unnormalize(out)
    assert rgb[0, :, 0].mean() > 0.9 and rgb[2, :, 0].mean() < 0.1  # left edge red
    assert rgb[2, :, -1].mean() > 0.9 and rgb[0, :, -1].mean() < 0.1  # right edge blue
    const = center_crop_transform(16)(np.full((50, 30, 3), 128, np.uint8))
    assert torch.allclose(unnormalize(const), torch.full((3, 16, 16), 128 / 255), atol=1e-5)
    assert center_crop_transform(224).resize_size == 256
    with pytest.raises(ValueError, match="use 28 or 42"):
        center_crop_transform(30, patch_size=14)
    pickle.loads(pickle.dumps(tf))


def test_profiling_hook_collects_every_applied_op():
    aug = small_aug(seed=0)
    aug.op_timings = {}
    for _ in range(20):
        aug(color_image())
    assert {"resized_crop", "to_float", "normalize", "blur"} <= set(aug.op_timings)
    assert all(v >= 0 and math.isfinite(v) for v in aug.op_timings.values())


# ---------------------------------------------------------------------------------------------- configuration
def _photometric(**fields):
    from encoders.data.augmentations import AugmentationConfig

    return AugmentationConfig(**fields)


def test_hue_range_grayscale_and_permutation_fields_reach_the_sampled_parameters():
    aug = DataAugmentationDINO(
        global_crops_size=28,
        local_crops_size=14,
        local_crops_number=0,
        photometric=_photometric(
            hue=0.5, color_jitter_probability=1.0, grayscale_probability=0.0, channel_permutation_probability=1.0
        ),
    )
    rng = np.random.default_rng(0)
    params = [aug.sample_params("global1", 64, 64, rng) for _ in range(400)]
    hues = np.array([dict(p.jitter)["hue"] for p in params])
    assert hues.min() < -0.4 and hues.max() > 0.4 and np.abs(hues).max() <= 0.5
    assert not any(p.grayscale for p in params)
    orders = {p.channel_order for p in params}
    assert len(orders) == 6 and all(sorted(o) == [0, 1, 2] for o in orders)  # all 3! permutations


def test_channel_permutation_reorders_the_channels():
    from encoders.data.augmentations import permute_channels

    x = np.stack([np.full((2, 2), v, np.float32) for v in (0.1, 0.2, 0.3)], axis=-1)
    assert permute_channels(x, (2, 0, 1))[0, 0].tolist() == pytest.approx([0.3, 0.1, 0.2])


def test_blur_sigma_scales_with_the_crop_side_when_a_reference_is_set():
    kwargs = dict(global_crops_size=56, local_crops_size=28, local_crops_number=0)
    ref = _photometric(blur_probabilities=(1.0, 1.0, 1.0), blur_sigma=(2.0, 2.0), blur_sigma_reference=224)
    absolute = _photometric(blur_probabilities=(1.0, 1.0, 1.0), blur_sigma=(2.0, 2.0))
    rng = np.random.default_rng(0)
    assert DataAugmentationDINO(**kwargs, photometric=ref).sample_params("global1", 64, 64, rng).blur_sigma == 0.5
    assert DataAugmentationDINO(**kwargs, photometric=absolute).sample_params("global1", 64, 64, rng).blur_sigma == 2.0


def test_ramp_starts_without_photometric_changes_and_reaches_full_strength():
    ph = _photometric(ramp_iterations=100, channel_permutation_probability=0.5)
    assert ph.strength_at(0) == 0.0 and ph.strength_at(50) == 0.5 and ph.strength_at(500) == 1.0
    aug = DataAugmentationDINO(global_crops_size=28, local_crops_size=14, local_crops_number=2, photometric=ph)
    rng = np.random.default_rng(0)
    weak = [aug.sample_params(k, 64, 64, rng, strength=0.0) for k in ("global1", "global2", "local") * 50]
    assert all(
        p.jitter is None and not p.grayscale and p.blur_sigma is None and not p.solarize and p.channel_order is None
        for p in weak
    )
    full = [aug.sample_params("global1", 64, 64, rng, strength=1.0) for _ in range(50)]
    assert all(p.blur_sigma is not None for p in full)  # global crop 1 is always blurred at full strength


def test_paired_views_feed_one_view_to_each_global_crop():
    black = np.zeros((32, 32, 3), np.uint8)
    white = np.full((32, 32, 3), 255, np.uint8)
    quiet = _photometric(color_jitter_probability=0, grayscale_probability=0, blur_probabilities=(0, 0, 0))
    quiet.solarize_probability = 0.0
    aug = DataAugmentationDINO(global_crops_size=28, local_crops_size=14, local_crops_number=4, photometric=quiet)
    out = aug((black, white), rng=np.random.default_rng(0))
    g1, g2 = out["global_crops"]
    assert g1.mean() < 0 < g2.mean()
    assert [bool(c.mean() > 0) for c in out["local_crops"]] == [False, True, False, True]
    with pytest.raises(ValueError, match="one image or a pair"):
        aug((black, white, black))
    # at strength 0 of the ramp (or paired_view_probability 0) every crop comes from the first view
    out = aug((black, white), rng=np.random.default_rng(0), strength=0.0)
    assert all(c.mean() < 0 for c in [*out["global_crops"], *out["local_crops"]])


def test_paired_colour_off_keeps_the_colours_of_view_pairs_only():
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    blue = np.zeros((32, 32, 3), np.uint8)
    blue[..., 2] = 200
    strong = _photometric(color_jitter_probability=1.0, grayscale_probability=0.5, blur_probabilities=(0, 0, 0),
                          channel_permutation_probability=0.5, paired_colour=0.0)  # fmt: skip
    aug = DataAugmentationDINO(global_crops_size=28, local_crops_size=14, local_crops_number=2, photometric=strong)
    exact = {name: aug.apply_crop(image, aug.sample_params("global1", 32, 32, np.random.default_rng(0), 0.0), 28)
             for name, image in (("red", red), ("blue", blue))}  # fmt: skip
    rng = np.random.default_rng(1)
    for _ in range(5):  # pairs: the crops keep their view's colour exactly
        out = aug((red, blue), rng=rng)
        torch.testing.assert_close(out["global_crops"][0], exact["red"])
        torch.testing.assert_close(out["global_crops"][1], exact["blue"])
    singles = [aug(red, rng=rng)["global_crops"][0] for _ in range(5)]  # single images are still jittered
    assert not all(torch.allclose(c, exact["red"]) for c in singles)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"hue": 0.6}, r"aug.hue must be in \[0, 0.5\]"),
        ({"grayscale_probability": 1.5}, r"aug.grayscale_probability must be in \[0, 1\]"),
        ({"blur_sigma": (2.0, 1.0)}, "aug.blur_sigma must be"),
    ],
)
def test_bad_augmentation_fields_name_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        DataAugmentationDINO(photometric=_photometric(**fields))
