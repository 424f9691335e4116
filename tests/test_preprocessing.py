"""encoders.preprocessing: tensor conversion, resizing to patch multiples, image decoding and its errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from encoders.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    images_to_tensor,
    normalize_,
    read_image_rgb,
    resize_to_multiple,
)


def rgb_image(h: int = 6, w: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def write_image(path, rgb: np.ndarray, ext: str = ".png") -> None:
    """Encode RGB through OpenCV (which expects BGR) and write with numpy (works for non-ASCII paths)."""
    ok, buf = cv2.imencode(ext, rgb[..., ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb)
    assert ok
    buf.tofile(str(path))


# ---------------------------------------------------------------------------------------------------------------
# images_to_tensor / normalize_
# ---------------------------------------------------------------------------------------------------------------


def test_images_to_tensor_values_layout_and_batch():
    img = rgb_image()
    t = images_to_tensor(img)
    assert t.shape == (1, 3, 6, 5) and t.dtype == torch.float32 and t.is_contiguous()
    for c in range(3):
        expected = (img[..., c].astype(np.float64) / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        np.testing.assert_allclose(t[0, c].numpy(), expected, atol=1e-5)
    batch = np.stack([img, rgb_image(seed=1)])
    tb = images_to_tensor(batch)
    assert tb.shape == (2, 3, 6, 5)
    assert torch.equal(tb[0], t[0])


def test_images_to_tensor_dtype_and_device():
    t = images_to_tensor(rgb_image(), device="cpu", dtype=torch.bfloat16)
    assert t.dtype == torch.bfloat16 and t.device.type == "cpu"
    assert torch.allclose(t.float(), images_to_tensor(rgb_image()), atol=0.02)


def test_images_to_tensor_accepts_non_contiguous_views():
    img = rgb_image(8, 8)
    assert torch.equal(images_to_tensor(img[:, ::-1]), images_to_tensor(img[:, ::-1].copy()))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((2, 4, 4, 4), np.uint8), r"\(H, W, 3\)"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_images_to_tensor_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        images_to_tensor(bad)


def test_normalize_in_place():
    t = torch.full((2, 3, 2, 2), 0.5)
    out = normalize_(t)
    assert out is t
    expected = [(0.5 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(t[1, :, 0, 0], torch.tensor(expected))
    with pytest.raises(ValueError, match="floating-point"):
        normalize_(torch.zeros(3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        normalize_(torch.zeros(4, 2, 2))


# ---------------------------------------------------------------------------------------------------------------
# resize_to_multiple
# ---------------------------------------------------------------------------------------------------------------


def test_resize_to_multiple_crop_is_centred():
    img = rgb_image(30, 45)
    out = resize_to_multiple(img, 14)
    assert out.shape == (28, 42, 3)
    assert np.array_equal(out, img[1:29, 1:43])


def test_resize_to_multiple_resize_mode_and_max_side():
    img = rgb_image(30, 45)
    assert resize_to_multiple(img, 14, mode="resize").shape == (28, 42, 3)
    assert resize_to_multiple(img, 14, mode="resize").dtype == np.uint8
    big = rgb_image(100, 200)
    assert resize_to_multiple(big, 14, max_side=98).shape == (42, 98, 3)  # shrink to 49x98, crop to 42x98
    assert resize_to_multiple(big, 14, mode="resize", max_side=98).shape == (56, 98, 3)  # 49 -> 56 (nearest)
    assert resize_to_multiple(rgb_image(28, 42), 14).shape == (28, 42, 3)
    assert resize_to_multiple(rgb_image(5, 5), 14, mode="resize").shape == (14, 14, 3)  # at least one patch
    gray = np.zeros((30, 45), np.uint8)
    assert resize_to_multiple(gray, 14).shape == (28, 42)


def test_resize_to_multiple_errors():
    with pytest.raises(ValueError, match="mode='resize'"):
        resize_to_multiple(rgb_image(10, 30), 14)
    with pytest.raises(ValueError, match="mode must be"):
        resize_to_multiple(rgb_image(), 14, mode="pad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        resize_to_multiple(rgb_image(), 0)
    with pytest.raises(ValueError, match="max_side"):
        resize_to_multiple(rgb_image(), 14, max_side=10)


# ---------------------------------------------------------------------------------------------------------------
# read_image_rgb
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".bmp", ".webp"])
def test_read_image_rgb_lossless_formats_keep_rgb_order(tmp_path, ext):
    img = rgb_image(7, 9)
    if ext == ".webp":
        path = tmp_path / f"x{ext}"
        ok, buf = cv2.imencode(ext, img[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
        assert ok
        buf.tofile(str(path))
    else:
        path = tmp_path / f"x{ext}"
        write_image(path, img, ext)
    out = read_image_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (7, 9, 3) and out.flags.c_contiguous
    assert np.array_equal(out, img)


def test_read_image_rgb_jpeg_red_stays_red(tmp_path):
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = 255
    write_image(tmp_path / "red.jpg", img, ".jpg")
    out = read_image_rgb(tmp_path / "red.jpg").astype(int)
    assert out[..., 0].min() > 240 and out[..., 2].max() < 15


def test_read_image_rgb_unicode_path_gray_and_alpha(tmp_path):
    img = rgb_image(5, 6)
    path = tmp_path / "Bilder_äöü_图像" / "фото.png"
    path.parent.mkdir()
    write_image(path, img)
    assert np.array_equal(read_image_rgb(path), img)
    gray = np.arange(30, dtype=np.uint8).reshape(5, 6)
    write_image(tmp_path / "gray.png", gray)
    g = read_image_rgb(tmp_path / "gray.png")
    assert g.shape == (5, 6, 3) and all(np.array_equal(g[..., c], gray) for c in range(3))
    rgba = np.concatenate([img[..., ::-1], np.full((5, 6, 1), 7, np.uint8)], axis=2)  # BGRA for OpenCV
    ok, buf = cv2.imencode(".png", rgba)
    assert ok
    buf.tofile(str(tmp_path / "alpha.png"))
    assert np.array_equal(read_image_rgb(tmp_path / "alpha.png"), img)


def test_read_image_rgb_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.jpg"
    with pytest.raises(FileNotFoundError, match=r"missing\.jpg"):
        read_image_rgb(missing)
    with pytest.raises(FileNotFoundError):
        read_image_rgb(tmp_path)  # a folder
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png"):
        read_image_rgb(tmp_path / "empty.png")
    (tmp_path / "junk.jpg").write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(ValueError, match=r"junk\.jpg"):
        read_image_rgb(tmp_path / "junk.jpg")
