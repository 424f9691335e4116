"""Batched feature extraction from frozen encoders (and the raw-pixel baseline) for k-NN and linear probes.

A *feature function* maps a normalised image batch ``(B, 3, H, W)`` to named features ``{name: (B, D)}``:

- :func:`backbone_feature_fn`: ``"cls"`` (``x_norm_clstoken``) and ``"patch_mean"`` (average-pooled
  ``x_norm_patchtokens``) of a frozen ViT, computed in one forward pass.
- :func:`pixel_feature_fn`: ``"pixels"``, the image area-downsampled to ``size x size`` and flattened
  (``3 * size * size`` values): the raw-pixel baseline of the k-NN protocol.
- :func:`gray_pixel_feature_fn`: ``"gray_pixels"``, the same on the luma image (``size * size`` values): pixels
  without colour.
- :func:`hog_feature_fn`: ``"hog"``, a histogram of gradient orientations (Dalal & Triggs 2005: ``cell`` px cells,
  9 unsigned orientation bins, 2x2-cell blocks with L2-Hys normalisation, as scikit-image's ``hog``): a strong
  hand-made shape descriptor that ignores colour, the baseline a learned encoder has to beat.

:func:`extract_features` runs a feature function over a dataset in batches (``DataLoader``, progress bar,
inference mode) and returns the features on the CPU with the labels; :func:`pooled` builds the probe input
(``cls`` or ``cls`` concatenated with the average-pooled patch tokens, as in the DINOv2 linear evaluation).

Reference: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers" (frozen-feature
k-NN and linear evaluation); Oquab et al. 2023, "DINOv2" (cls + average-pooled patch tokens for linear probes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from encoders.checkpoint import sidecar_path
from encoders.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from encoders.registry import create_model, create_model_from_checkpoint
from encoders.utils.precision import autocast
from encoders.utils.progress import Progress

logger = logging.getLogger(__name__)

FeatureFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]
Pooling = Literal["cls", "cls+avgpool"]
POOLINGS: tuple[str, ...] = ("cls", "cls+avgpool")


def load_frozen_encoder(
    name: str, weights: str | os.PathLike | None = None, device: torch.device | str = "cpu"
) -> nn.Module:
    """A frozen backbone in eval mode: ``weights`` ``None`` (random init), ``"official"`` (DINOv2 release) or a file.

    A file with a JSON sidecar (written by ``save_backbone``) is rebuilt from it, so constructor overrides
    saved with the checkpoint apply; otherwise the file is loaded strictly into the registered ``name``.
    """
    if weights is None:
        model = create_model(name)
    elif str(weights) == "official":
        model = create_model(name, pretrained=True)
    elif sidecar_path(weights).exists():
        model = create_model_from_checkpoint(Path(weights))
    else:
        model = create_model(name, pretrained=weights)
    return model.to(device).eval().requires_grad_(False)


def backbone_feature_fn(model: nn.Module, dtype: torch.dtype | None = None) -> FeatureFn:
    """Features of a frozen backbone: ``images (B, 3, H, W) -> {"cls": (B, D), "patch_mean": (B, D)}`` float32.

    ``model`` must follow the encoder contract (``forward_features`` returning ``x_norm_clstoken`` and
    ``x_norm_patchtokens``); it is put in eval mode and run without gradients. ``dtype``: the autocast dtype
    of the forward pass (``encoders.utils.precision.autocast_dtype``; ``None``: fp32); the features are fp32.
    """
    model.eval()

    def features(images: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast(images.device, dtype):
            out = model.forward_features(images)
        patch_mean = out["x_norm_patchtokens"].float().mean(dim=1)
        return {"cls": out["x_norm_clstoken"].float(), "patch_mean": patch_mean}

    return features


def pixel_features(images: torch.Tensor, size: int = 16) -> torch.Tensor:
    """Raw-pixel baseline: ``(B, 3, H, W) -> (B, 3 * size * size)`` by area averaging to ``size x size``."""
    if size < 1:
        raise ValueError(f"pixel feature size must be >= 1, got {size}; e.g. 16 for 16x16 thumbnails")
    return F.adaptive_avg_pool2d(images.float(), size).flatten(1)


def pixel_feature_fn(size: int = 16) -> FeatureFn:
    """Feature function of the raw-pixel baseline: ``images -> {"pixels": (B, 3 * size * size)}``."""
    if size < 1:
        raise ValueError(f"pixel feature size must be >= 1, got {size}; e.g. 16 for 16x16 thumbnails")
    return lambda images: {"pixels": pixel_features(images, size)}


def _unnormalise(images: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised ``(B, 3, H, W)`` -> RGB in ``[0, 1]``."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.float() * std + mean).clamp(0.0, 1.0)


def gray_pixel_features(images: torch.Tensor, size: int = 16) -> torch.Tensor:
    """Luma-pixel baseline: ``(B, 3, H, W)`` normalised -> ``(B, size * size)``, ``0.299 R + 0.587 G + 0.114 B``
    area-averaged to ``size x size`` and centred on 0.5 (so that cosine k-NN compares contrasts)."""
    if size < 1:
        raise ValueError(f"pixel feature size must be >= 1, got {size}; e.g. 16 for 16x16 thumbnails")
    rgb = _unnormalise(images)
    luma = (rgb * rgb.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)  # (B, 1, H, W)
    return (F.adaptive_avg_pool2d(luma, size) - 0.5).flatten(1)


def gray_pixel_feature_fn(size: int = 16) -> FeatureFn:
    """Feature function of the luma-pixel baseline: ``images -> {"gray_pixels": (B, size * size)}``."""
    if size < 1:
        raise ValueError(f"pixel feature size must be >= 1, got {size}; e.g. 16 for 16x16 thumbnails")
    return lambda images: {"gray_pixels": gray_pixel_features(images, size)}


def hog_features(images: torch.Tensor, cell: int = 14, bins: int = 9) -> torch.Tensor:
    """HOG descriptor of each image: ``(B, 3, H, W)`` normalised -> ``(B, (H/c - 1) * (W/c - 1) * 4 * bins)``.

    Dalal & Triggs 2005 on the luma image, as ``skimage.feature.hog(orientations=bins, pixels_per_cell=(c, c),
    cells_per_block=(2, 2), block_norm="L2-Hys")``: central-difference gradients, unsigned orientations in
    ``bins`` hard bins over [0, 180) degrees weighted by the gradient magnitude and averaged per ``c x c`` cell,
    blocks of 2x2 cells moved by one cell, each L2-normalised, clipped at 0.2 and normalised again. ``H`` and
    ``W`` must be multiples of ``c`` (the eval transform crops to a multiple of the patch size, 14 here).
    """
    b, _, h, w = images.shape
    if cell < 2 or h % cell or w % cell or h < 2 * cell or w < 2 * cell:
        raise ValueError(
            f"HOG needs images whose sides are multiples of the cell size {cell} and at least 2 cells, got {h}x{w}; "
            "pass a cell size that divides the image size (e.g. the patch size)"
        )
    rgb = _unnormalise(images)
    gray = (rgb * rgb.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(dim=1)  # (B, H, W)
    g_row, g_col = torch.zeros_like(gray), torch.zeros_like(gray)
    g_row[:, 1:-1] = gray[:, 2:] - gray[:, :-2]
    g_col[:, :, 1:-1] = gray[:, :, 2:] - gray[:, :, :-2]
    magnitude = torch.hypot(g_row, g_col)
    orientation = torch.rad2deg(torch.atan2(g_row, g_col)) % 180.0  # (B, H, W) in [0, 180)
    index = (orientation / (180.0 / bins)).floor().long().clamp_(0, bins - 1)
    per_bin = torch.zeros(b, bins, h, w, dtype=gray.dtype, device=gray.device)
    per_bin.scatter_(1, index.unsqueeze(1), magnitude.unsqueeze(1))
    cells = F.avg_pool2d(per_bin, cell)  # (B, bins, H/c, W/c): mean magnitude per orientation and cell
    blocks = cells.unfold(2, 2, 1).unfold(3, 2, 1)  # (B, bins, H/c - 1, W/c - 1, 2, 2)
    blocks = blocks.permute(0, 2, 3, 4, 5, 1).flatten(3)  # (B, by, bx, 2 * 2 * bins), cell-major as skimage
    eps = 1e-5
    blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + eps**2)
    blocks = blocks.clamp(max=0.2)
    blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + eps**2)
    return blocks.flatten(1).float()


def hog_feature_fn(cell: int = 14, bins: int = 9) -> FeatureFn:
    """Feature function of the HOG baseline: ``images -> {"hog": (B, D)}`` (see :func:`hog_features`)."""
    if cell < 2 or bins < 1:
        raise ValueError(f"HOG needs cell >= 2 pixels and bins >= 1, got cell={cell}, bins={bins}")
    return lambda images: {"hog": hog_features(images, cell, bins)}


@dataclass
class FeatureSet:
    """Features of a labelled dataset: ``features[name]`` ``(N, D)`` float32 (CPU), ``labels`` ``(N,)`` int64."""

    features: dict[str, torch.Tensor]
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def extract_features(
    feature_fn: FeatureFn,
    dataset: Dataset,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    desc: str = "features",
    progress: bool = True,
) -> FeatureSet:
    """Run ``feature_fn`` over ``dataset`` (items ``(image (3, H, W) float tensor, label int)``) in order.

    Batches are moved to ``device``; results are gathered as float32 on the CPU. Memory holds the features
    (``N x D``), never more than one batch of images.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("the dataset is empty; nothing to extract features from")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, drop_last=False)
    chunks: dict[str, list[torch.Tensor]] = {}
    labels: list[torch.Tensor] = []
    bar = Progress(len(dataset), desc=desc, unit="img", disable=not progress)  # type: ignore[arg-type]
    with torch.inference_mode():
        for images, targets in loader:
            out = feature_fn(images.to(device, non_blocking=True))
            for name, value in out.items():
                chunks.setdefault(name, []).append(value.float().cpu())
            labels.append(torch.as_tensor(targets, dtype=torch.long))
            bar.update(images.shape[0])
    bar.close()
    return FeatureSet({name: torch.cat(parts) for name, parts in chunks.items()}, torch.cat(labels))


def pooled(features: dict[str, torch.Tensor], pooling: Pooling) -> torch.Tensor:
    """The probe input: ``"cls"`` -> ``(N, D)``; ``"cls+avgpool"`` -> ``[cls, patch_mean]`` ``(N, 2D)``."""
    if pooling == "cls":
        return features["cls"]
    if pooling == "cls+avgpool":
        return torch.cat([features["cls"], features["patch_mean"]], dim=1)
    raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")


@torch.inference_mode()
def patch_feature_grid(model: nn.Module, images: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Patch tokens of a frozen backbone as a grid: ``(B, 3, H, W) -> (B, H/p, W/p, D)`` (CPU, float32).

    ``dtype``: the autocast dtype of the forward pass (``None``: fp32).
    """
    model.eval()
    patch = model.patch_size  # type: ignore[attr-defined]
    b, _, h, w = images.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}; resize the images first")
    with autocast(images.device, dtype):
        tokens = model.forward_features(images)["x_norm_patchtokens"]  # (B, N, D)
    return tokens.reshape(b, h // patch, w // patch, -1).float().cpu()


__all__ = [
    "POOLINGS",
    "FeatureFn",
    "FeatureSet",
    "Pooling",
    "backbone_feature_fn",
    "extract_features",
    "gray_pixel_feature_fn",
    "gray_pixel_features",
    "hog_feature_fn",
    "hog_features",
    "load_frozen_encoder",
    "patch_feature_grid",
    "pixel_feature_fn",
    "pixel_features",
    "pooled",
]
