"""Batched feature extraction from frozen encoders (and the raw-pixel baseline) for k-NN and linear probes.

A *feature function* maps a normalised image batch ``(B, 3, H, W)`` to named features ``{name: (B, D)}``:

- :func:`backbone_feature_fn`: ``"cls"`` (``x_norm_clstoken``) and ``"patch_mean"`` (average-pooled
  ``x_norm_patchtokens``) of a frozen ViT, computed in one forward pass.
- :func:`pixel_feature_fn`: ``"pixels"``, the image area-downsampled to ``size x size`` and flattened
  (``3 * size * size`` values): the raw-pixel baseline of the k-NN protocol.

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
    "load_frozen_encoder",
    "patch_feature_grid",
    "pixel_feature_fn",
    "pixel_features",
    "pooled",
]
