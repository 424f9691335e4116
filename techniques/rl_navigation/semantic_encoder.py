"""SemanticEncoder: a DINOv2-compatible backbone seen as "image -> patch-feature grid" for navigation.

It wraps a registry backbone (``encoders.create_model``) and adds what the RL trainer needs: freezing and
unfreezing of the top blocks, patch grids for batches of scenes, the feature cache of the scenes, and
recomputing window features *with* gradients from the cached block-boundary tokens in phase 2 (only the unfrozen
top blocks run; :meth:`envs.features.SceneFeatures.refresh` then refreshes the cache in place).
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
from torch import nn

import encoders
from encoders.checkpoint import extract_backbone_state_dict, load_backbone_weights, save_backbone
from encoders.preprocessing import images_to_tensor
from encoders.released import RELEASED, is_release
from encoders.utils.io import CheckpointError, load_file
from encoders.utils.precision import Precision, autocast, autocast_dtype
from encoders.vision_transformer import DinoVisionTransformer
from envs.features import SceneFeatures, StorageDType, window_mean

logger = logging.getLogger(__name__)


class SemanticEncoder(nn.Module):
    """A backbone plus the patch-grid operations of the navigation stack.

    Args:
        backbone: a :class:`~encoders.vision_transformer.DinoVisionTransformer` (or anything with the same
            contract).
        name: registry name (recorded in exported checkpoints so they can be rebuilt).
        overrides: constructor overrides used to build ``backbone`` (recorded likewise).
        dtype: autocast dtype of every backbone pass made here (``encoders.utils.precision.autocast_dtype``;
            ``None``: fp32). Parameters, cached grids and returned features stay fp32.

    The backbone is kept in eval mode (no stochastic depth): phase-2 fine-tuning then sees exactly the
    features the policy sees.
    """

    def __init__(
        self,
        backbone: DinoVisionTransformer,
        name: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.autocast_dtype = dtype
        self.name = name
        self.overrides = dict(overrides or {})
        self.backbone.eval()

    @classmethod
    def from_name(
        cls,
        name: str,
        weights: str | os.PathLike | None = None,
        device: torch.device | str = "cpu",
        precision: Precision = "fp32",
        **overrides: Any,
    ) -> SemanticEncoder:
        """Build a registry model: ``weights`` ``None`` (random init), ``"official"`` (hub download), a release name
        (:mod:`encoders.released`) or a file path.

        ``precision``: ``auto``, ``fp32`` or ``bf16`` (the rule of ``encoders.utils.precision``) for its passes.
        """
        dtype = autocast_dtype(precision, device)
        if weights is None or str(weights) in ("", "none"):
            backbone = encoders.create_model(name, **overrides)
        elif str(weights) == "official":
            backbone = encoders.create_model(name, pretrained=True, **overrides)
        elif is_release(weights):
            backbone = encoders.create_model(name, pretrained=weights, **overrides)
        else:
            if not Path(weights).is_file():
                raise FileNotFoundError(
                    f"encoder weights not found: {weights}; pass an existing checkpoint file, 'official', a released "
                    f"name ({', '.join(RELEASED) or 'none'}), or omit it"
                )
            backbone = encoders.create_model(name, **overrides)
            try:  # direct strict load; the registry's slower path only runs to explain a mismatch
                load_backbone_weights(backbone, extract_backbone_state_dict(load_file(weights)), source=str(weights))
            except CheckpointError:
                encoders.create_model(name, pretrained=weights, **overrides)  # raises with the fitting models
                raise
            logger.info("loaded %s weights from %s", name, weights)
        return cls(backbone.to(device), name=name, overrides=overrides, dtype=dtype)

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

    def autocast(self):
        """The context of this encoder's passes: bf16 autocast on its device, or nothing (fp32)."""
        return autocast(self.device, self.autocast_dtype)

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
            with self.autocast():
                patches = self.backbone.forward_features(x)["x_norm_patchtokens"]  # (b, h*w, D)
            out.append(patches.reshape(len(x), h, w, -1).float())
        return torch.cat(out)

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
        with self.autocast():
            return SceneFeatures.from_encoder(
                self.backbone, images, batch_size=batch_size, storage_dtype=storage_dtype, cache_block=cache_block
            )

    def top_block_window_means(
        self, cache: SceneFeatures, scene_idx: np.ndarray, variant_idx: np.ndarray, radius: int = 1
    ) -> torch.Tensor:
        """Window means ``(U, h, w, D)`` float32 of ``U`` (scene, variant) grids, recomputed **with autograd** from
        the cached boundary tokens (only the blocks from ``cache.cache_block`` up and the final norm run, under
        this encoder's autocast)."""
        with self.autocast():
            grids = cache.grids_from_tokens(self.backbone, scene_idx, variant_idx)  # (U, h, w, D)
        return window_mean(grids.float(), radius)

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
        once per distinct (scene, variant) of the batch, the window means are taken on those ``U`` grids and only
        then gathered per transition, so memory is ``O(U h w D)``, not ``O(B h w D)``.
        """
        unique, inverse = distinct_grids(cache.n_variants, scene_idx, variant_idx)
        means = self.top_block_window_means(cache, unique // cache.n_variants, unique % cache.n_variants, radius)
        index, r, c = cell_indices(inverse, rows, cols, means.device)
        return means[index, r, c]  # (B, D)

    def deferred_window_features(
        self,
        cache: SceneFeatures,
        scene_idx: np.ndarray,
        variant_idx: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        radius: int = 1,
        batch_size: int = 16,
    ) -> DeferredWindowFeatures:
        """The window-mean features of many transitions, with one deferred backward through the top blocks
        (:class:`DeferredWindowFeatures`). ``cache`` must hold this encoder's current grids."""
        return DeferredWindowFeatures(self, cache, scene_idx, variant_idx, rows, cols, radius, batch_size)

    # ------------------------------------------------------------------------------------------- export
    def save(self, path: str | os.PathLike) -> Path:
        """Export the backbone in the official key format (atomic) with a JSON sidecar naming the architecture."""
        return save_backbone(self.backbone, path, name=self.name, overrides=self.overrides)


def distinct_grids(n_variants: int, scene_idx: np.ndarray, variant_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (scene, variant) grids of ``B`` states: ``unique (U,)`` flat grid ids ``scene * n_variants +
    variant`` (sorted) and ``inverse (B,)``, each state's position in ``unique``."""
    pair = np.asarray(scene_idx, dtype=np.int64).reshape(-1) * n_variants
    pair = pair + np.asarray(variant_idx, dtype=np.int64).reshape(-1)
    unique, inverse = np.unique(pair, return_inverse=True)
    return unique, inverse.reshape(-1)


def cell_indices(
    inverse: np.ndarray, rows: np.ndarray, cols: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(grid, row, col)`` long index tensors ``(B,)`` on ``device`` that gather each state's cell from ``(U, h, w,
    D)`` window means (``inverse`` from :func:`distinct_grids`)."""
    index = torch.from_numpy(np.asarray(inverse, dtype=np.int64).reshape(-1)).to(device)
    r = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=device).reshape(-1)
    c = torch.as_tensor(np.asarray(cols), dtype=torch.long, device=device).reshape(-1)
    return index, r, c


class DeferredWindowFeatures:
    """Window-mean features of a rollout's transitions whose gradient reaches the encoder's top blocks in one pass.

    Phase 2 trains the forward model on several minibatches of each rollout, and the encoder's top blocks through
    it. Recomputing the top blocks with autograd for every minibatch costs one forward and one backward of those
    blocks per minibatch; here it is one of each per update. The features are gathered from ``means``
    ``(U, h, w, D)``: the cache's window means of the rollout's ``U`` distinct (scene, variant) grids, copied into a
    leaf tensor that accumulates the gradients of every minibatch loss (``z = features(idx)``). :meth:`backward`
    then recomputes those grids with autograd, ``batch_size`` at a time (memory of ``batch_size`` grids, not
    ``U``), and sends the accumulated gradient through the top blocks and the final norm.

    The cache must hold the encoder's current grids (true after every refresh), so the features equal what the
    top blocks compute. The encoder's optimiser then steps once per update on the mean of the minibatch
    gradients, all taken at the update's starting weights (the forward model still steps every minibatch).

    Args:
        encoder: the encoder being fine-tuned (its autocast dtype applies to the recomputation).
        cache: the feature cache with boundary tokens.
        scene_idx, variant_idx, rows, cols: ``(B,)`` the transitions' states.
        radius: window radius in cells.
        batch_size: grids per recomputation in :meth:`backward`.
    """

    def __init__(
        self,
        encoder: SemanticEncoder,
        cache: SceneFeatures,
        scene_idx: np.ndarray,
        variant_idx: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        radius: int = 1,
        batch_size: int = 16,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.encoder, self.cache, self.radius, self.batch_size = encoder, cache, int(radius), int(batch_size)
        s, v, h, w, d = cache.grids.shape
        unique, inverse = distinct_grids(v, scene_idx, variant_idx)
        self.scenes, self.variants = unique // v, unique % v  # (U,)
        device = encoder.device
        current = cache.window_mean(self.radius).view(s * v, h, w, d)[torch.from_numpy(unique)]
        self.means = current.to(device, torch.float32).requires_grad_(True)  # (U, h, w, D) leaf
        self._index, self._rows, self._cols = cell_indices(inverse, rows, cols, device)  # (B,) each

    def __len__(self) -> int:
        return len(self._index)

    def __call__(self, idx: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Features ``(b, D)`` of transitions ``idx`` (indices into the ``B`` given), differentiable in ``means``."""
        i = torch.as_tensor(idx, dtype=torch.long, device=self._index.device)
        return self.means[self._index[i], self._rows[i], self._cols[i]]

    def backward(self, scale: float = 1.0) -> None:
        """Send ``scale`` times the gradient accumulated in ``means`` through the top blocks (into their ``.grad``)."""
        if self.means.grad is None:
            return
        grad = self.means.grad * scale
        for start in range(0, len(self.scenes), self.batch_size):
            sl = slice(start, start + self.batch_size)
            means = self.encoder.top_block_window_means(self.cache, self.scenes[sl], self.variants[sl], self.radius)
            means.backward(grad[sl])


__all__ = ["DeferredWindowFeatures", "SemanticEncoder"]
