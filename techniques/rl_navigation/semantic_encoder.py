"""SemanticEncoder: a DINOv2-compatible backbone seen as "image -> patch-feature grid" for navigation.

It wraps a registry backbone (``encoders.create_model``) and adds what the RL trainer needs: freezing and
unfreezing of the top blocks, patch grids for batches of scenes, the mean-pooled feature around a pixel
position, and the two cache operations of phase 2 — recomputing features *with* gradients from the cached
block-boundary tokens (only the unfrozen top blocks run) and refreshing the cache in place after an update.
The cache itself is :class:`envs.features.SceneFeatures`; the encoder talks to it only through the
backbone contract (``forward_features`` / ``tokens_before_block`` / ``forward_from_block``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import encoders
from encoders.checkpoint import (
    CheckpointError,
    extract_backbone_state_dict,
    load_backbone_weights,
    load_file,
    save_backbone,
)
from encoders.preprocessing import images_to_tensor
from encoders.vision_transformer import DinoVisionTransformer
from envs.features import SceneFeatures, StorageDType

logger = logging.getLogger(__name__)


def pool_patch_window(grid: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Mean of the ``(2r+1) x (2r+1)`` cell window around each ``(row, col)``, clipped to the grid.

    Args:
        grid: ``(h, w, D)`` patch features.
        rows, cols: ``(B,)`` integer cell coordinates inside the grid.
        radius: window radius ``r >= 0`` in cells.

    Returns:
        ``(B, D)``: for cell ``(i, j)`` the mean over rows ``max(0, i-r)..min(h-1, i+r)`` and columns
        ``max(0, j-r)..min(w-1, j+r)`` (border windows average fewer cells; nothing is padded).
    """
    if radius < 0:
        raise ValueError(f"patch_radius must be >= 0, got {radius}")
    h, w, _ = grid.shape
    rows, cols = rows.long().reshape(-1), cols.long().reshape(-1)
    if ((rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)).any():
        raise ValueError(f"cells must lie inside the {h}x{w} grid, got rows {rows.tolist()} and cols {cols.tolist()}")
    offsets = torch.arange(-radius, radius + 1, device=grid.device)
    rr = rows.to(grid.device)[:, None] + offsets  # (B, K)
    cc = cols.to(grid.device)[:, None] + offsets  # (B, K)
    row_ok = (rr >= 0) & (rr < h)
    col_ok = (cc >= 0) & (cc < w)
    valid = (row_ok[:, :, None] & col_ok[:, None, :]).to(grid.dtype)  # (B, K, K)
    window = grid[rr.clamp(0, h - 1)[:, :, None], cc.clamp(0, w - 1)[:, None, :]]  # (B, K, K, D)
    total = (window * valid[..., None]).sum(dim=(1, 2))  # (B, D)
    return total / valid.sum(dim=(1, 2))[:, None]


def clipped_window_mean(grids: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of each cell's clipped ``(2r+1) x (2r+1)`` window, in ``grids``' dtype (differentiable).

    ``(U, h, w, D) -> (U, h, w, D)``: average pooling with stride 1 that counts only the cells inside the grid, so
    border windows average fewer cells (the rule of :func:`envs.features.window_mean`, which accumulates in
    float64 for the cache; this one stays in the autograd path's dtype).
    """
    if radius < 0:
        raise ValueError(f"patch_radius must be >= 0, got {radius}")
    x = grids.permute(0, 3, 1, 2)  # (U, D, h, w)
    out = F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    return out.permute(0, 2, 3, 1)  # (U, h, w, D)


class SemanticEncoder(nn.Module):
    """A backbone plus the patch-grid operations of the navigation stack.

    Args:
        backbone: a :class:`~encoders.vision_transformer.DinoVisionTransformer` (or anything with the same
            contract).
        name: registry name (recorded in exported checkpoints so they can be rebuilt).
        overrides: constructor overrides used to build ``backbone`` (recorded likewise).

    The backbone is kept in eval mode (no stochastic depth): phase-2 fine-tuning then sees exactly the
    features the policy sees.
    """

    def __init__(
        self, backbone: DinoVisionTransformer, name: str | None = None, overrides: Mapping[str, Any] | None = None
    ):
        super().__init__()
        self.backbone = backbone
        self.name = name
        self.overrides = dict(overrides or {})
        self.backbone.eval()

    @classmethod
    def from_name(
        cls,
        name: str,
        weights: str | os.PathLike | None = None,
        device: torch.device | str = "cpu",
        **overrides: Any,
    ) -> SemanticEncoder:
        """Build a registry model: ``weights`` ``None`` (random init), ``"official"`` (hub download) or a file path."""
        if weights is None or str(weights) in ("", "none"):
            backbone = encoders.create_model(name, **overrides)
        elif str(weights) == "official":
            backbone = encoders.create_model(name, pretrained=True, **overrides)
        else:
            if not Path(weights).is_file():
                raise FileNotFoundError(
                    f"encoder weights not found: {weights}; pass an existing checkpoint file, 'official', or omit it"
                )
            backbone = encoders.create_model(name, **overrides)
            try:  # direct strict load; the registry's slower path only runs to explain a mismatch
                load_backbone_weights(backbone, extract_backbone_state_dict(load_file(weights)), source=str(weights))
            except CheckpointError:
                encoders.create_model(name, pretrained=weights, **overrides)  # raises with the fitting models
                raise
            logger.info("loaded %s weights from %s", name, weights)
        return cls(backbone.to(device), name=name, overrides=overrides)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def patch_size(self) -> int:
        return int(self.backbone.patch_size)

    @property
    def embed_dim(self) -> int:
        return int(self.backbone.embed_dim)

    @property
    def n_blocks(self) -> int:
        return int(self.backbone.n_blocks)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def first_trainable_block(self) -> int:
        return int(self.backbone.first_trainable_block)

    def train(self, mode: bool = True) -> SemanticEncoder:
        """Kept in eval mode whatever ``mode`` is (see the class docstring)."""
        super().train(False)
        return self

    # ----------------------------------------------------------------------------------------- freezing
    def freeze(self) -> SemanticEncoder:
        """No parameter requires grad (phase 1)."""
        self.backbone.freeze()
        return self

    def unfreeze_top_layers(self, n_layers: int = 2) -> SemanticEncoder:
        """Train only the top ``n_layers`` blocks and the final norm (phase 2)."""
        self.backbone.unfreeze_top_layers(n_layers)
        return self

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.backbone.parameters() if p.requires_grad)

    # ------------------------------------------------------------------------------------------- grids
    @torch.no_grad()
    def patch_grids(self, images: np.ndarray, batch_size: int = 16) -> torch.Tensor:
        """Patch-feature grids of RGB uint8 images ``(B, H, W, 3)`` (or one ``(H, W, 3)``) -> ``(B, h, w, D)``.

        ``H`` and ``W`` must be multiples of :attr:`patch_size`; runs without autograd on the encoder's device.
        """
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] % self.patch_size or images.shape[2] % self.patch_size:
            raise ValueError(
                f"images must be (B, H, W, 3) with H and W multiples of the patch size {self.patch_size}, "
                f"got {images.shape}; resize with encoders.preprocessing.resize_to_multiple"
            )
        h, w = images.shape[1] // self.patch_size, images.shape[2] // self.patch_size
        out = []
        for start in range(0, len(images), batch_size):
            x = images_to_tensor(images[start : start + batch_size], self.device)  # (b, 3, H, W)
            patches = self.backbone.forward_features(x)["x_norm_patchtokens"]  # (b, h*w, D)
            out.append(patches.reshape(len(x), h, w, -1))
        return torch.cat(out)

    def get_patch_features_at_position(
        self, image: np.ndarray | torch.Tensor, position: tuple[int, int] | np.ndarray, patch_radius: int = 1
    ) -> torch.Tensor:
        """Mean patch feature around a pixel position.

        Args:
            image: ``(H, W, 3)`` uint8 RGB image, or its precomputed patch grid ``(h, w, D)`` (a tensor).
            position: pixel ``(x, y)`` (column, row; OpenCV order), or ``(B, 2)`` positions. A pixel belongs to
                the patch ``(row, col) = (y // patch_size, x // patch_size)``.
            patch_radius: window radius in patches; the window is clipped at the image border.

        Returns:
            ``(D,)`` for one position, ``(B, D)`` for several (detached, on the encoder's device).
        """
        grid = image if torch.is_tensor(image) else self.patch_grids(np.asarray(image))[0]  # (h, w, D)
        if grid.ndim != 3:
            raise ValueError(f"a precomputed grid must be (h, w, D), got {tuple(grid.shape)}")
        pos = np.asarray(position, dtype=np.int64)
        single = pos.ndim == 1
        pos = pos.reshape(-1, 2)
        h, w = grid.shape[0], grid.shape[1]
        height, width = h * self.patch_size, w * self.patch_size
        if ((pos[:, 0] < 0) | (pos[:, 0] >= width) | (pos[:, 1] < 0) | (pos[:, 1] >= height)).any():
            raise ValueError(f"pixel positions (x, y) must lie inside the {width}x{height} image, got {pos.tolist()}")
        rows = torch.from_numpy(pos[:, 1] // self.patch_size)
        cols = torch.from_numpy(pos[:, 0] // self.patch_size)
        out = pool_patch_window(grid.detach(), rows, cols, patch_radius)
        return out[0] if single else out

    # ------------------------------------------------------------------------------------------- cache
    def build_cache(
        self,
        images: np.ndarray,
        cache_top_layers: int | None = None,
        batch_size: int = 16,
        storage_dtype: StorageDType = "float32",
    ) -> SceneFeatures:
        """Encode every scene (``(S, V, H, W, 3)`` or ``(S, H, W, 3)`` uint8) once into a :class:`SceneFeatures`.

        ``cache_top_layers=n`` also stores the tokens entering block ``depth - n`` so that phase 2 can
        fine-tune (and refresh) only the top ``n`` blocks.
        """
        cache_block = None if cache_top_layers is None else self.n_blocks - int(cache_top_layers)
        if cache_block is not None and not 0 <= cache_block <= self.n_blocks:
            raise ValueError(f"cache_top_layers must be in [0, {self.n_blocks}], got {cache_top_layers}")
        return SceneFeatures.from_encoder(
            self.backbone, images, batch_size=batch_size, storage_dtype=storage_dtype, cache_block=cache_block
        )

    def refresh_cache(self, cache: SceneFeatures, batch_size: int = 16) -> None:
        """Recompute ``cache``'s grids in place after the encoder changed (only the top blocks run)."""
        cache.refresh(self.backbone, batch_size=batch_size)

    def window_features(
        self,
        cache: SceneFeatures,
        scene_idx: np.ndarray,
        variant_idx: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        radius: int = 1,
    ) -> torch.Tensor:
        """Window-mean features ``(B, D)`` at cells, recomputed **with autograd** from the cached boundary tokens.

        Gradients reach exactly the blocks from ``cache.cache_block`` up and the final norm. The top blocks run
        once per distinct (scene, variant) of the batch, the window means are taken on those ``U`` grids
        (cumulative sums) and only then gathered per transition, so memory is ``O(U h w D)``, not ``O(B h w D)``.
        """
        pair = np.asarray(scene_idx, dtype=np.int64) * cache.n_variants + np.asarray(variant_idx, dtype=np.int64)
        unique, inverse = np.unique(pair.reshape(-1), return_inverse=True)
        grids = cache.grids_from_tokens(self.backbone, unique // cache.n_variants, unique % cache.n_variants)
        means = clipped_window_mean(grids, radius)  # (U, h, w, D), no float64 in the autograd path
        dev = means.device
        index = torch.from_numpy(inverse.reshape(-1)).to(dev)
        r = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=dev).reshape(-1)
        c = torch.as_tensor(np.asarray(cols), dtype=torch.long, device=dev).reshape(-1)
        return means[index, r, c]  # (B, D)

    # ------------------------------------------------------------------------------------------- export
    def save(self, path: str | os.PathLike) -> Path:
        """Export the backbone in the official key format (atomic) with a JSON sidecar naming the architecture."""
        return save_backbone(self.backbone, path, name=self.name, overrides=self.overrides)


__all__ = ["SemanticEncoder", "clipped_window_mean", "pool_patch_window"]
