"""Image I/O (finding image files, decoding them) and the tensor conversion every encoder input goes through.

Images travel through semnav as ``numpy`` arrays of shape ``(H, W, 3)`` (or ``(B, H, W, 3)``), dtype
``uint8``, channel order RGB. :func:`images_to_tensor` turns them into the ``(B, 3, H, W)`` float tensors
that DINOv2 backbones expect (scaled to ``[0, 1]``, then normalised with the ImageNet mean and std).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

#: Extensions of the image files a folder scan finds (:func:`scan_image_files`; case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Upscaling by more than this factor (a 16x16 image brought to 224 px: 14x) earns a warning: the pixels are blurred
#: into large flat blocks and carry no detail for the encoder
UPSCALE_WARNING_FACTOR = 2.0

# OpenCV >= 4.10 decodes straight to RGB; older versions decode to BGR and we swap the channels.
_IMREAD_RGB: int | None = getattr(cv2, "IMREAD_COLOR_RGB", None)


def normalize_(t: torch.Tensor) -> torch.Tensor:
    """Normalise in place with the ImageNet mean/std: ``t = (t - mean) / std``.

    Args:
        t: ``(..., 3, H, W)`` floating-point tensor with values in ``[0, 1]``.

    Returns:
        ``t`` itself (normalised), for chaining.
    """
    if not t.is_floating_point():
        raise ValueError(f"normalize_ needs a floating-point tensor, got dtype {t.dtype}; convert with .float() first.")
    if t.ndim < 3 or t.shape[-3] != 3:
        raise ValueError(f"normalize_ expects a (..., 3, H, W) tensor, got shape {tuple(t.shape)}.")
    mean = torch.tensor(IMAGENET_MEAN, device=t.device, dtype=t.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=t.device, dtype=t.dtype).view(3, 1, 1)
    return t.sub_(mean).div_(std)


def images_to_tensor(
    images: np.ndarray,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Convert RGB ``uint8`` images to a normalised batch for an encoder.

    Args:
        images: ``(H, W, 3)`` or ``(B, H, W, 3)`` array, dtype ``uint8``, RGB.
        device: target device; the ``uint8`` data is moved first (4x less traffic), then converted there.
        dtype: floating-point dtype of the result (the arithmetic is done in float32, then cast).

    Returns:
        ``(B, 3, H, W)`` tensor: ``(images / 255 - IMAGENET_MEAN) / IMAGENET_STD``.
    """
    if not isinstance(images, np.ndarray):
        raise ValueError(f"images must be a numpy array, got {type(images).__name__}; use np.asarray(images).")
    if images.dtype != np.uint8:
        raise ValueError(
            f"images must have dtype uint8 (0-255 RGB), got {images.dtype}; "
            "convert with (img * 255).round().clip(0, 255).astype(np.uint8) if it holds floats in [0, 1]."
        )
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must have shape (H, W, 3) or (B, H, W, 3) (RGB, channels last), got {images.shape}; "
            "grayscale images can be expanded with np.repeat(img[..., None], 3, axis=-1)."
        )
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype}.")
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # (B, H, W, 3) uint8
    t = t.permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()  # (B, 3, H, W)
    normalize_(t)
    return t if dtype == torch.float32 else t.to(dtype)


def resize_to_multiple(
    image: np.ndarray,
    multiple: int,
    mode: Literal["crop", "resize"] = "crop",
    max_side: int | None = None,
) -> np.ndarray:
    """Make both image sides multiples of ``multiple`` (the patch size), so every pixel falls in a patch.

    If ``max_side`` is given and the longer side exceeds it, the image is first shrunk (aspect kept,
    ``cv2.INTER_AREA``) so that its longer side equals ``max_side``. Then:

    - ``mode="crop"``: centre-crop each side down to the largest multiple (loses < ``multiple`` pixels/side).
    - ``mode="resize"``: resize each side to the nearest multiple (at least one patch, at most ``max_side``).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array (any dtype OpenCV can resize).
        multiple: the patch size, e.g. 14.
        mode: ``"crop"`` or ``"resize"``.
        max_side: optional cap on the longer side, in pixels.

    Returns:
        The adjusted image (a view when cropping only; otherwise a new array).
    """
    if multiple < 1:
        raise ValueError(f"multiple must be a positive integer (the patch size), got {multiple}.")
    if mode not in ("crop", "resize"):
        raise ValueError(f"mode must be 'crop' or 'resize', got {mode!r}.")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {image.shape}.")
    if max_side is not None and max_side < multiple:
        raise ValueError(f"max_side={max_side} is smaller than one patch ({multiple}); use max_side >= {multiple}.")
    h, w = image.shape[:2]
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    if mode == "crop":
        new_h, new_w = (h // multiple) * multiple, (w // multiple) * multiple
        if new_h == 0 or new_w == 0:
            raise ValueError(
                f"image of size {h}x{w} is smaller than one {multiple}x{multiple} patch; "
                "use mode='resize' or a larger image."
            )
        top, left = (h - new_h) // 2, (w - new_w) // 2
        return image[top : top + new_h, left : left + new_w]
    new_h, new_w = (max(multiple, round(s / multiple) * multiple) for s in (h, w))
    if max_side is not None:
        limit = (max_side // multiple) * multiple
        new_h, new_w = min(new_h, limit), min(new_w, limit)
    if (new_h, new_w) == (h, w):
        return image
    shrinking = new_h * new_w < h * w
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def upscale_warning(
    source: str | os.PathLike,
    shape: tuple[int, ...],
    target: int,
    use: str,
    side: Literal["shorter", "longer"] = "shorter",
) -> str | None:
    """The warning to log when an ``(H, W, ...)`` image must be upscaled more than :data:`UPSCALE_WARNING_FACTOR`
    for its ``side`` to reach ``target`` pixels (``None`` when it is large enough); ``use`` says what for."""
    length = min(int(shape[0]), int(shape[1])) if side == "shorter" else max(int(shape[0]), int(shape[1]))
    factor = target / max(length, 1)
    if factor <= UPSCALE_WARNING_FACTOR:
        return None
    return (
        f"{source} is {shape[1]}x{shape[0]} px, upscaled {factor:.1f}x to the {target} px {use}: its pixels become "
        "flat blocks without detail for the encoder; use larger images"
    )


def normalize_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    """``("JPG", ".png")`` -> ``(".jpg", ".png")``: lower case with the dot; ``ValueError`` when empty."""
    if isinstance(extensions, str):
        extensions = (extensions,)
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    if not exts:
        raise ValueError(f"extensions must not be empty; e.g. pass extensions={IMAGE_EXTENSIONS}.")
    return exts


def scan_image_files(root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """All files under ``root`` (recursively) whose extension is in ``extensions`` (case-insensitive).

    Hidden files and folders (name starting with ``.``, e.g. macOS ``._*`` resource forks) are skipped;
    symlinked folders are followed once (cycles are cut). The result is sorted by the path components
    relative to ``root``, so it is the same on every run and every machine.
    """
    root = Path(root)
    exts = normalize_extensions(extensions)
    found: list[Path] = []
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        found.extend(
            base / name for name in filenames if not name.startswith(".") and os.path.splitext(name)[1].lower() in exts
        )
    found.sort(key=lambda p: p.relative_to(root).parts)
    return found


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file with OpenCV.

    Reads the bytes with numpy and decodes them with ``cv2.imdecode`` (so non-ASCII paths work on every
    OS). Grayscale and alpha images come back as 3-channel RGB, 16-bit images as 8-bit.

    Args:
        path: image file (any format OpenCV decodes: JPEG, PNG, WebP, BMP, TIFF, ...).

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB array (C-contiguous).

    Raises:
        FileNotFoundError: the file does not exist (or is a directory).
        ValueError: the file exists but is empty, truncated, or not an image OpenCV can decode.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path} (check the path, or remove it from the file list).")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ValueError(f"could not read image file {path}: {e}") from e
    if data.size == 0:
        raise ValueError(f"image file is empty: {path}; delete or re-export it.")
    try:
        image = cv2.imdecode(data, _IMREAD_RGB if _IMREAD_RGB is not None else cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise ValueError(f"OpenCV failed to decode {path}: {e}") from e
    if image is None:
        raise ValueError(
            f"could not decode image {path}: it is corrupt or not in a format OpenCV reads "
            "(supported: jpg, png, webp, bmp, tiff, ...); re-export or delete it."
        )
    if _IMREAD_RGB is None:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "images_to_tensor",
    "normalize_",
    "normalize_extensions",
    "read_image_rgb",
    "resize_to_multiple",
    "scan_image_files",
]
