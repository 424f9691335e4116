"""DINOv2 multi-crop data augmentation on OpenCV/numpy (no torchvision, no PIL).

Each image gives 2 global crops and ``local_crops_number`` local crops. Every crop goes through
random resized crop -> horizontal flip -> colour jitter -> random grayscale -> Gaussian blur ->
(global crop 2 only) solarize -> ImageNet normalisation; the parameters and their semantics follow
``dinov2/data/augmentations.py`` and the torchvision transforms it composes:

- random resized crop: area fraction uniform in ``scale``, log-uniform aspect ratio in [3/4, 4/3], up to
  10 attempts, then a centre crop with the aspect ratio clamped; resized bicubically (``cv2.INTER_CUBIC``;
  with ``antialias`` the crop is first box-filtered (``cv2.INTER_AREA``) by the integer part of the
  reduction factor, approximating the antialiased bicubic resampling of PIL used by the official code).
- horizontal flip with p=0.5.
- colour jitter with p=0.8: brightness, contrast, saturation factors uniform in [0.6, 1.4], [0.6, 1.4],
  [0.8, 1.2] and a hue shift uniform in [-0.1, 0.1] turns, applied in a random order (torchvision
  ``ColorJitter``); contrast blends with the mean gray level, saturation with the gray image.
- grayscale with p=0.2 (``0.299 R + 0.587 G + 0.114 B`` copied to the 3 channels).
- Gaussian blur, 9x9 kernel, sigma uniform in [0.1, 2.0], reflect padding: p=1.0 on global crop 1,
  p=0.1 on global crop 2, p=0.5 on local crops.
- solarize (values >= 128/255 inverted) with p=0.2 on global crop 2.

Photometric operations run on whole ``float32`` crops in ``[0, 1]`` (no rounding to ``uint8`` between
operations, unlike PIL).

Blur probabilities. The released DINOv2 code passes ``1 - p`` to torchvision's ``RandomApply``, so it
actually never blurs global crop 1 and blurs global crop 2 with probability 0.9 (facebookresearch/dinov2
PR #411). The default here follows the paper and the stated parameters (p=1.0 / 0.1 / 0.5);
``invert_blur_probability=True`` reproduces the released code's behaviour.

Reference: Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024;
multi-crop from Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import get_worker_info

from encoders.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from encoders.utils.config import NON_NEGATIVE, UNIT, Range, check_fields

CropKind = Literal["global1", "global2", "local"]
JitterOp = Literal["brightness", "contrast", "saturation", "hue"]

# Value range of a normalised channel: (0 - mean) / std .. (1 - mean) / std.
NORMALIZED_MIN: tuple[float, ...] = tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
NORMALIZED_MAX: tuple[float, ...] = tuple((1.0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))

_MEAN_F = tuple(float(m) for m in IMAGENET_MEAN)
_INV_STD_F = tuple(1.0 / s for s in IMAGENET_STD)
_JITTER_OPS: tuple[JitterOp, ...] = ("brightness", "contrast", "saturation", "hue")
SOLARIZE_THRESHOLD = 128.0 / 255.0


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class AugmentationConfig:
    """Photometric augmentation of the multi-crop views. The defaults are DINOv2's; the other fields are for small
    images and for making colour useless to the objective (hue up to half a turn, channel permutation)."""

    brightness: Annotated[float, NON_NEGATIVE] = 0.4
    """colour jitter: brightness factor uniform in [1 - b, 1 + b]"""
    contrast: Annotated[float, NON_NEGATIVE] = 0.4
    """colour jitter: contrast factor uniform in [1 - c, 1 + c]"""
    saturation: Annotated[float, NON_NEGATIVE] = 0.2
    """colour jitter: saturation factor uniform in [1 - s, 1 + s]"""
    hue: Annotated[float, Range(0, 0.5)] = 0.1
    """colour jitter: hue shift uniform in [-h, h] turns (at most 0.5: any hue)"""
    color_jitter_probability: Annotated[float, UNIT] = 0.8
    """probability of applying the colour jitter to a crop"""
    grayscale_probability: Annotated[float, UNIT] = 0.2
    """probability of turning a crop gray"""
    channel_permutation_probability: Annotated[float, UNIT] = 0.0
    """probability of shuffling a crop's RGB channels (a colour change jitter cannot make; 0 in DINOv2)"""
    blur_probabilities: Annotated[tuple[float, float, float], UNIT] = (1.0, 0.1, 0.5)
    """Gaussian-blur probability of global crop 1, global crop 2 and the local crops"""
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    """blur sigma range in pixels (of a crop of blur_sigma_reference pixels, when that is set)"""
    blur_sigma_reference: Annotated[int, NON_NEGATIVE] = 0
    """0: blur_sigma is in pixels of every crop (official); N: it is given for an N-pixel crop and scaled by
    crop side / N, so that small crops are blurred as much as a 224-px crop relative to their size (N = 224)"""
    solarize_probability: Annotated[float, UNIT] = 0.2
    """solarize probability of global crop 2 (0: never)"""
    paired_view_probability: Annotated[float, UNIT] = 1.0
    """for sources that give two views of a sample (view pairs): probability that global crop 2 and every other
    local crop come from the second view (else all crops come from the first); ramped like the rest"""
    paired_colour: Annotated[float, UNIT] = 1.0
    """strength of the colour changes (jitter, grayscale, channel permutation, solarize) on the crops of view
    pairs, as a factor of their probabilities and magnitudes (0: none; view pairs already differ in colour and
    background, and keeping their colours lets the views' agreement form; blur and geometry apply as always; single
    images always get the full strength; see docs/results.md, issue 24)"""
    ramp_iterations: Annotated[int, NON_NEGATIVE] = 0
    """raise every photometric probability and jitter strength (and paired_view_probability) linearly from 0 to the
    values above over this many iterations (0: full strength from the start); lets an untrained network find
    cross-view agreement first"""

    def check(self) -> None:
        """``ValueError`` naming the field and its valid range."""
        check_fields(self, name=lambda key: f"aug.{key}")  # the ranges in the fields' types
        if len(self.blur_probabilities) != 3:
            raise ValueError(
                f"aug.blur_probabilities needs 3 values (global 1, global 2, local), got {self.blur_probabilities}"
            )
        if len(self.blur_sigma) != 2 or not 0.0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"aug.blur_sigma must be (min, max) with 0 < min <= max, got {tuple(self.blur_sigma)}")

    def strength_at(self, iteration: int) -> float:
        """The ramp's factor at ``iteration``: ``min(1, iteration / ramp_iterations)`` (1 without a ramp)."""
        if self.ramp_iterations <= 0:
            return 1.0
        return min(1.0, max(0, iteration) / self.ramp_iterations)


# ----------------------------------------------------------------------------------------------------------------
# Parameter sampling
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CropParams:
    """Everything random about one crop; :meth:`DataAugmentationDINO.apply_crop` applies it deterministically."""

    box: tuple[int, int, int, int]
    """(top, left, height, width) of the crop in the source image."""
    flip: bool
    """Mirror left-right."""
    jitter: tuple[tuple[JitterOp, float], ...] | None
    """Colour-jitter operations in application order with their factors; ``None`` when jitter is not applied."""
    grayscale: bool
    """Convert to gray (3 equal channels)."""
    blur_sigma: float | None
    """Gaussian-blur sigma in pixels; ``None`` when blur is not applied."""
    solarize: bool
    """Invert values >= 128/255."""
    channel_order: tuple[int, int, int] | None = None
    """Permutation of the RGB channels (applied after the colour jitter); ``None`` keeps them."""


def sample_resized_crop_box(
    rng: np.random.Generator,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
) -> tuple[int, int, int, int]:
    """Random crop box as torchvision's ``RandomResizedCrop.get_params`` -> (top, left, height, width).

    Area fraction uniform in ``scale``, aspect ratio (width / height) log-uniform in ``ratio``; 10 attempts,
    then a centre crop with the image's aspect ratio clamped to ``ratio``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def sample_color_jitter(
    rng: np.random.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.2,
    hue: float = 0.1,
) -> tuple[tuple[JitterOp, float], ...]:
    """Random order and factors as torchvision's ``ColorJitter.get_params``."""
    factors = {
        "brightness": rng.uniform(max(0.0, 1.0 - brightness), 1.0 + brightness),
        "contrast": rng.uniform(max(0.0, 1.0 - contrast), 1.0 + contrast),
        "saturation": rng.uniform(max(0.0, 1.0 - saturation), 1.0 + saturation),
        "hue": rng.uniform(-hue, hue),
    }
    order = rng.permutation(4)
    return tuple((_JITTER_OPS[k], float(factors[_JITTER_OPS[k]])) for k in order)


# ----------------------------------------------------------------------------------------------------------------
# Operations. Geometric ones on uint8 (H, W, 3); photometric ones on float32 (H, W, 3) in [0, 1].
# ----------------------------------------------------------------------------------------------------------------


def resize_image(image: np.ndarray, width: int, height: int, antialias: bool = True) -> np.ndarray:
    """Bicubic resize of an ``(H, W, C)`` image to ``(height, width, C)``.

    With ``antialias``, a reduction by a factor k >= 2 on an axis is first done by ``cv2.INTER_AREA`` (box
    filter) by the integer part of k, so the bicubic step never shrinks by 2x or more (avoids aliasing).
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if antialias:
        fx, fy = max(1, w // width), max(1, h // height)
        if fx > 1 or fy > 1:
            image = cv2.resize(image, (max(width, w // fx), max(height, h // fy)), interpolation=cv2.INTER_AREA)
            if image.shape[:2] == (height, width):
                return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)


def resized_crop(image: np.ndarray, box: tuple[int, int, int, int], size: int, antialias: bool = True) -> np.ndarray:
    """Crop ``box`` = (top, left, height, width) from ``(H, W, 3)`` and resize it to ``(size, size, 3)``."""
    top, left, h, w = box
    return resize_image(image[top : top + h, left : left + w], size, size, antialias=antialias)


def hflip(image: np.ndarray) -> np.ndarray:
    """Mirror an ``(H, W, C)`` image left-right."""
    return cv2.flip(image, 1)


def to_float(image: np.ndarray) -> np.ndarray:
    """``uint8`` ``(H, W, 3)`` -> ``float32`` in ``[0, 1]``."""
    return np.multiply(image, np.float32(1.0 / 255.0), dtype=np.float32)


def rgb_to_gray(x: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float32 RGB -> ``(H, W)`` luma ``0.299 R + 0.587 G + 0.114 B``."""
    return cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)


def adjust_brightness(x: np.ndarray, factor: float) -> np.ndarray:
    """Scale intensities: ``clip(factor * x, 0, 1)``."""
    return np.clip(x * np.float32(factor), 0.0, 1.0)


def adjust_contrast(x: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the mean gray level of the image: ``clip(factor * x + (1 - factor) * mean(gray(x)), 0, 1)``."""
    mean = cv2.mean(rgb_to_gray(x))[0]
    return np.clip(cv2.addWeighted(x, factor, x, 0.0, (1.0 - factor) * mean), 0.0, 1.0)


def adjust_saturation(x: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the gray image: ``clip(factor * x + (1 - factor) * gray(x), 0, 1)``."""
    return np.clip(cv2.addWeighted(x, factor, to_grayscale(x), 1.0 - factor, 0.0), 0.0, 1.0)


def adjust_hue(x: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the hue by ``shift`` turns (``shift`` in [-0.5, 0.5]) in HSV space."""
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # H in degrees [0, 360), S and V in [0, 1]
    # Add a non-negative shift; OpenCV's HSV->RGB wraps hues in [360, 720) (checked by the tests).
    hsv = cv2.add(hsv, ((shift % 1.0) * 360.0, 0.0, 0.0, 0.0))
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)


def to_grayscale(x: np.ndarray) -> np.ndarray:
    """Gray image with 3 equal channels, ``(H, W, 3)``."""
    return cv2.cvtColor(rgb_to_gray(x), cv2.COLOR_GRAY2RGB)


def gaussian_blur(x: np.ndarray, sigma: float, kernel_size: int = 9) -> np.ndarray:
    """Separable Gaussian blur with a ``kernel_size`` kernel, weights ``exp(-d^2 / (2 sigma^2))`` normalised,
    reflect padding (as torchvision's ``gaussian_blur``)."""
    return cv2.GaussianBlur(
        x, (kernel_size, kernel_size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101
    )


def permute_channels(x: np.ndarray, order: tuple[int, int, int]) -> np.ndarray:
    """Reorder the channels of ``(H, W, 3)``: output channel ``c`` is input channel ``order[c]``."""
    return np.ascontiguousarray(x[..., list(order)])


def solarize(x: np.ndarray, threshold: float = SOLARIZE_THRESHOLD) -> np.ndarray:
    """Invert values at or above ``threshold``: ``x >= t ? 1 - x : x`` (for ``x`` in [0, 1])."""
    # mask = 1 where x >= t (OpenCV thresholds with '>', so compare against the float32 just below t);
    # |x - mask| is then 1 - x where the mask is set and x elsewhere.
    below = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
    mask = cv2.threshold(x, below, 1.0, cv2.THRESH_BINARY)[1]
    return cv2.absdiff(x, mask)


def to_normalized_tensor(x: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` float32 in [0, 1] -> ``(3, H, W)`` tensor normalised with the ImageNet mean/std."""
    out = np.empty((3, *x.shape[:2]), dtype=np.float32)  # (3, H, W)
    for c, plane in enumerate(cv2.split(x)):
        cv2.addWeighted(plane, _INV_STD_F[c], plane, 0.0, -_MEAN_F[c] * _INV_STD_F[c], dst=out[c])
    return torch.from_numpy(out)


_JITTER_FNS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "brightness": adjust_brightness,
    "contrast": adjust_contrast,
    "saturation": adjust_saturation,
    "hue": adjust_hue,
}


def check_crop_size(name: str, size: int, patch_size: int | None) -> int:
    """Validate a crop size: a positive int, and a multiple of ``patch_size`` when given."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"{name} must be a positive integer number of pixels, got {size!r}.")
    if patch_size is not None and size % patch_size != 0:
        lower = (size // patch_size) * patch_size
        options = [s for s in (lower, lower + patch_size) if s > 0]
        raise ValueError(
            f"{name}={size} is not a multiple of patch_size={patch_size}; use "
            + " or ".join(str(s) for s in options)
            + "."
        )
    return int(size)


def _check_scale(name: str, scale: tuple[float, float]) -> tuple[float, float]:
    if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(
            f"{name} must be (min, max) area fractions with 0 < min <= max <= 1, got {tuple(scale)}; "
            "e.g. (0.32, 1.0) for global crops and (0.05, 0.32) for local crops."
        )
    return float(scale[0]), float(scale[1])


# ----------------------------------------------------------------------------------------------------------------
# The multi-crop transform
# ----------------------------------------------------------------------------------------------------------------


class DataAugmentationDINO:
    """DINOv2 multi-crop augmentation: ``image (H, W, 3) uint8 RGB -> dict`` of normalised crops.

    Args:
        global_crops_scale: area-fraction range of the 2 global crops.
        local_crops_scale: area-fraction range of the local crops.
        local_crops_number: number of local crops (0 allowed).
        global_crops_size: side of the global crops in pixels (224; 518 for high-resolution adaptation).
        local_crops_size: side of the local crops in pixels.
        patch_size: when given, both crop sizes must be multiples of it (``ValueError`` names the nearest
            valid sizes).
        seed: makes the random stream reproducible; ``None`` draws fresh OS entropy in every process.
        rank: distributed rank, mixed into the seed so that ranks draw different augmentations.
        invert_blur_probability: reproduce the released DINOv2 code's blur probabilities (1 - p); see the
            module docstring.
        antialias: box-filter before the bicubic step when shrinking by 2x or more.
        photometric: jitter strengths and probabilities, blur, solarize, channel permutation and the strength
            ramp (:class:`AugmentationConfig`; default: DINOv2's).

    Paired views: ``aug((image_a, image_b))`` takes global crop 1 from ``image_a``, global crop 2 from
    ``image_b`` and the local crops alternately from both, e.g. two renders of one procedural object with
    different backgrounds and colours, which makes those nuisances differ between the views (with probability
    ``photometric.paired_view_probability``; else every crop comes from ``image_a``).

    Output of ``aug(image)`` (the official format):
        ``global_crops``: list of 2 float32 tensors ``(3, G, G)``; ``global_crops_teacher``: the same list;
        ``local_crops``: list of ``local_crops_number`` tensors ``(3, L, L)``; ``offsets``: ``()``.
        Values of channel c lie in ``[NORMALIZED_MIN[c], NORMALIZED_MAX[c]]`` (about [-2.12, 2.64]).

    Randomness comes from a ``numpy.random.Generator`` created lazily in each process from
    ``SeedSequence(seed, spawn_key=(rank, epoch, worker_id + 1))`` (``worker_id + 1 = 0`` outside DataLoader
    workers). With a fixed number of workers, the DataLoader hands samples to workers in a fixed
    round-robin order, so a run is reproducible given (seed, rank, epoch, worker id, sample position).
    Non-persistent workers restart their streams with every new DataLoader iterator: call
    :meth:`set_epoch` (e.g. with the epoch, or the iteration a resumed run starts from) before creating
    it. For per-sample control pass ``rng=`` to ``__call__``. The object is picklable (the generator is
    not pickled). In DataLoader workers OpenCV runs single-threaded (``cv2.setNumThreads(0)``) to avoid
    oversubscription.

    Profiling: set ``aug.op_timings = {}`` to accumulate seconds per operation name in that dict.
    """

    def __init__(
        self,
        global_crops_scale: tuple[float, float] = (0.32, 1.0),
        local_crops_scale: tuple[float, float] = (0.05, 0.32),
        local_crops_number: int = 8,
        global_crops_size: int = 224,
        local_crops_size: int = 96,
        patch_size: int | None = None,
        seed: int | None = None,
        *,
        rank: int = 0,
        invert_blur_probability: bool = False,
        antialias: bool = True,
        photometric: AugmentationConfig | None = None,
    ):
        if patch_size is not None and (isinstance(patch_size, bool) or patch_size < 1):
            raise ValueError(f"patch_size must be a positive integer or None, got {patch_size!r}.")
        if local_crops_number < 0:
            raise ValueError(f"local_crops_number must be >= 0, got {local_crops_number}.")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed}.")
        if rank < 0:
            raise ValueError(f"rank must be >= 0, got {rank}.")
        self.patch_size = patch_size
        self.global_crops_scale = _check_scale("global_crops_scale", global_crops_scale)
        self.local_crops_scale = _check_scale("local_crops_scale", local_crops_scale)
        self.local_crops_number = int(local_crops_number)
        self.global_crops_size = check_crop_size("global_crops_size", global_crops_size, patch_size)
        self.local_crops_size = check_crop_size("local_crops_size", local_crops_size, patch_size)
        self.seed = seed
        self.rank = int(rank)
        self.antialias = antialias
        self.invert_blur_probability = invert_blur_probability
        self.photometric = photometric = photometric or AugmentationConfig()
        photometric.check()
        blur = dict(zip(("global1", "global2", "local"), photometric.blur_probabilities))
        self.blur_p: dict[str, float] = {k: 1.0 - p for k, p in blur.items()} if invert_blur_probability else blur
        self.solarize_p: dict[str, float] = {"global1": 0.0, "global2": photometric.solarize_probability, "local": 0.0}
        self.flip_p = 0.5
        self.jitter_p = photometric.color_jitter_probability
        self.grayscale_p = photometric.grayscale_probability
        self.permute_p = photometric.channel_permutation_probability
        self.blur_sigma = tuple(photometric.blur_sigma)
        self.blur_kernel_size = 9
        self.op_timings: dict[str, float] | None = None
        self._epoch = 0
        self._rng: np.random.Generator | None = None
        self._rng_pid = -1

    # -- configuration ---------------------------------------------------------------------------------------------

    def set_global_crops_size(self, size: int) -> None:
        """Change the global crop side (high-resolution adaptation, e.g. 518 for the last iterations).

        DataLoader workers hold copies: recreate the DataLoader (or its iterator) after calling this.
        """
        self.global_crops_size = check_crop_size("global_crops_size", size, self.patch_size)

    def set_epoch(self, epoch: int) -> None:
        """Switch to the reproducible random stream number ``epoch`` (restarts the stream in this process)."""
        self._epoch = int(epoch)
        self._rng = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_rng"] = None  # every process builds its own stream (see class docstring)
        state["_rng_pid"] = -1
        return state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(global={self.global_crops_size}px x2 scale={self.global_crops_scale}, "
            f"local={self.local_crops_size}px x{self.local_crops_number} scale={self.local_crops_scale}, "
            f"seed={self.seed}, blur_p={self.blur_p})"
        )

    # -- randomness ------------------------------------------------------------------------------------------------

    def _get_rng(self) -> np.random.Generator:
        pid = os.getpid()
        if self._rng is None or self._rng_pid != pid:
            info = get_worker_info()
            worker_key = 0 if info is None else info.id + 1
            if self.seed is None:
                self._rng = np.random.default_rng()
            else:
                seq = np.random.SeedSequence(self.seed, spawn_key=(self.rank, self._epoch, worker_key))
                self._rng = np.random.default_rng(seq)
            if info is not None:
                # Sequential OpenCV in workers (parallelism comes from the workers). 0, not 1: with the pthreads
                # backend, setNumThreads(1) in a forked child stops the parent's (absent) pool threads and can
                # deadlock; 0 only switches threading off.
                cv2.setNumThreads(0)
            self._rng_pid = pid
        return self._rng

    def sample_params(
        self,
        kind: CropKind,
        height: int,
        width: int,
        rng: np.random.Generator,
        strength: float = 1.0,
        colour: float = 1.0,
    ) -> CropParams:
        """Draw the random parameters of one crop of an ``height x width`` image.

        ``strength`` in ``[0, 1]`` scales every photometric probability and jitter magnitude (the ramp of
        :attr:`AugmentationConfig.ramp_iterations`); geometry is never weakened. ``colour`` scales the colour
        changes (jitter, grayscale, channel permutation, solarize) once more, not the blur.
        """
        ph = self.photometric
        blur_strength = strength
        strength = strength * colour
        scale = self.local_crops_scale if kind == "local" else self.global_crops_scale
        box = sample_resized_crop_box(rng, height, width, scale)
        flip = bool(rng.random() < self.flip_p)
        jitter = None
        if rng.random() < self.jitter_p * strength:
            jitter = sample_color_jitter(
                rng, ph.brightness * strength, ph.contrast * strength, ph.saturation * strength, ph.hue * strength
            )
        grayscale = bool(rng.random() < self.grayscale_p * strength)
        blur_sigma = float(rng.uniform(*self.blur_sigma)) if rng.random() < self.blur_p[kind] * blur_strength else None
        if blur_sigma is not None and ph.blur_sigma_reference > 0:
            size = self.local_crops_size if kind == "local" else self.global_crops_size
            blur_sigma *= size / ph.blur_sigma_reference
        solar = bool(rng.random() < self.solarize_p[kind] * strength) if self.solarize_p[kind] > 0 else False
        order = None
        if self.permute_p > 0 and rng.random() < self.permute_p * strength:
            order = tuple(int(c) for c in rng.permutation(3))
        return CropParams(
            box=box, flip=flip, jitter=jitter, grayscale=grayscale, blur_sigma=blur_sigma, solarize=solar,
            channel_order=order,
        )  # fmt: skip

    # -- application -----------------------------------------------------------------------------------------------

    def _run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        if self.op_timings is None:
            return fn(*args)
        t0 = time.perf_counter()
        out = fn(*args)
        self.op_timings[name] = self.op_timings.get(name, 0.0) + time.perf_counter() - t0
        return out

    def apply_crop(self, image: np.ndarray, params: CropParams, size: int) -> torch.Tensor:
        """Apply ``params`` to ``image`` (``(H, W, 3)`` uint8) -> ``(3, size, size)`` float32 normalised tensor."""
        run = self._run
        x = run("resized_crop", resized_crop, image, params.box, size, self.antialias)
        if params.flip:
            x = run("flip", hflip, x)
        x = run("to_float", to_float, x)
        if params.jitter is not None:
            for op, factor in params.jitter:
                x = run(op, _JITTER_FNS[op], x, factor)
        if params.channel_order is not None:
            x = run("channel_permutation", permute_channels, x, params.channel_order)
        if params.grayscale:
            x = run("grayscale", to_grayscale, x)
        if params.blur_sigma is not None:
            x = run("blur", gaussian_blur, x, params.blur_sigma, self.blur_kernel_size)
        if params.solarize:
            x = run("solarize", solarize, x)
        return run("normalize", to_normalized_tensor, x)

    def __call__(
        self,
        image: np.ndarray | tuple[np.ndarray, np.ndarray],
        rng: np.random.Generator | None = None,
        strength: float = 1.0,
    ) -> dict[str, Any]:
        """Multi-crop one ``(H, W, 3)`` uint8 RGB image, or a pair of views of one sample (see the class docstring
        for both and for the output); ``strength`` scales the photometric augmentation (see :meth:`sample_params`)."""
        views = tuple(image) if isinstance(image, (tuple, list)) else (image,)
        if len(views) not in (1, 2):
            raise ValueError(f"DataAugmentationDINO takes one image or a pair of views, got {len(views)} images")
        for view in views:
            if not isinstance(view, np.ndarray) or view.dtype != np.uint8 or view.ndim != 3 or view.shape[2] != 3:
                desc = f"{view.dtype} array of shape {view.shape}" if isinstance(view, np.ndarray) else type(view)
                raise ValueError(
                    f"DataAugmentationDINO expects an (H, W, 3) uint8 RGB array, got {desc}; "
                    "load images with encoders.preprocessing.read_image_rgb."
                )
        if rng is None:
            rng = self._get_rng()
        if len(views) == 2 and rng.random() >= self.photometric.paired_view_probability * strength:
            views = views[:1]  # this sample's crops all come from its first view
        colour = 1.0 if len(views) == 1 else self.photometric.paired_colour

        def crop(view: np.ndarray, kind: CropKind, size: int) -> torch.Tensor:
            return self.apply_crop(view, self.sample_params(kind, *view.shape[:2], rng, strength, colour), size)

        g1 = crop(views[0], "global1", self.global_crops_size)
        g2 = crop(views[-1], "global2", self.global_crops_size)
        local = [crop(views[i % len(views)], "local", self.local_crops_size) for i in range(self.local_crops_number)]
        global_crops = [g1, g2]
        return {
            "global_crops": global_crops,
            "global_crops_teacher": global_crops,
            "local_crops": local,
            "offsets": (),
        }


class CenterCropTransform:
    """Evaluation transform: resize the shorter side to ``resize_size``, centre-crop ``size x size``, normalise.

    ``(H, W, 3)`` uint8 RGB -> ``(3, size, size)`` float32 tensor (as torchvision's Resize + CenterCrop +
    ToTensor + Normalize with bicubic resampling).
    """

    def __init__(
        self, size: int, resize_size: int | None = None, patch_size: int | None = None, antialias: bool = True
    ):
        self.size = check_crop_size("size", size, patch_size)
        self.resize_size = round(self.size * 256 / 224) if resize_size is None else int(resize_size)
        if self.resize_size < self.size:
            raise ValueError(f"resize_size={self.resize_size} must be >= size={self.size} (the crop must fit).")
        self.antialias = antialias

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("CenterCropTransform expects an (H, W, 3) uint8 RGB array; use read_image_rgb.")
        h, w = image.shape[:2]
        scale = self.resize_size / min(h, w)
        new_h, new_w = max(self.resize_size, round(h * scale)), max(self.resize_size, round(w * scale))
        x = resize_image(image, new_w, new_h, antialias=self.antialias)
        top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
        x = x[top : top + self.size, left : left + self.size]
        return to_normalized_tensor(to_float(x))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, resize_size={self.resize_size})"


def center_crop_transform(
    size: int, resize_size: int | None = None, patch_size: int | None = None
) -> CenterCropTransform:
    """Eval-style transform (picklable): shorter side -> ``resize_size`` (default ``size * 256 / 224``),
    centre crop ``size``, ImageNet normalisation. ``(H, W, 3)`` uint8 -> ``(3, size, size)`` float32."""
    return CenterCropTransform(size, resize_size=resize_size, patch_size=patch_size)


__all__ = [
    "NORMALIZED_MAX",
    "NORMALIZED_MIN",
    "AugmentationConfig",
    "CenterCropTransform",
    "CropParams",
    "DataAugmentationDINO",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "center_crop_transform",
    "check_crop_size",
    "gaussian_blur",
    "hflip",
    "permute_channels",
    "resize_image",
    "resized_crop",
    "sample_color_jitter",
    "sample_resized_crop_box",
    "solarize",
    "to_float",
    "to_grayscale",
    "to_normalized_tensor",
]
