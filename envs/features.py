"""SceneFeatures: per-scene patch-feature grids computed once by an encoder, the fast path of the environments.

The encoder sees every scene image (and each of its colour variants) once; the environments then only index
into the resulting grids. Layout: ``grids (S, V, h, w, D)`` for ``S`` scenes, ``V`` colour variants per scene,
an ``h x w`` patch grid (``h = H / patch_size``) and feature width ``D``, stored on the CPU (the environments
read numpy views of it).

Window means (the default observation) are precomputed per radius by one average pooling, so an environment
step is a single array lookup: ``window_mean(r)[s, v, i, j]`` is the mean of ``grids[s, v]`` over the
``(2r+1) x (2r+1)`` neighbourhood of cell ``(i, j)`` clipped to the grid (border cells average fewer patches).

Fine-tuning (phase 2 of the RL trainer): with ``cache_block=k`` the tokens entering block ``k`` are kept
(``boundary_tokens (S, V, T, D)``, ``T = 1 + registers + h*w``), and :meth:`SceneFeatures.refresh` re-runs only
blocks ``k..`` and the final norm from them, writing the new grids and window means **in place** so every
numpy view handed out earlier (the environments hold some) sees the new values. For gradients,
:meth:`SceneFeatures.grids_from_tokens` runs the same top blocks *with* autograd for a batch of (scene, variant)
pairs, and :func:`window_mean` pools them differentiably.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoders.preprocessing import images_to_tensor

logger = logging.getLogger(__name__)

StorageDType = Literal["float32", "float16"]
_STORAGE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16}


def _resolve_storage_dtype(storage_dtype: StorageDType | torch.dtype) -> torch.dtype:
    if isinstance(storage_dtype, torch.dtype):
        if storage_dtype not in _STORAGE_DTYPES.values():
            raise ValueError(f"storage_dtype must be torch.float32 or torch.float16, got {storage_dtype}")
        return storage_dtype
    if storage_dtype not in _STORAGE_DTYPES:
        raise ValueError(f"storage_dtype must be 'float32' or 'float16', got {storage_dtype!r}")
    return _STORAGE_DTYPES[storage_dtype]


def _as_image_array(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """``(S, V, H, W, 3)`` uint8 from a 5-D array, a 4-D ``(S, H, W, 3)`` array (V = 1) or a list of either."""
    if not isinstance(images, np.ndarray):
        if len(images) == 0:
            raise ValueError("images is empty; pass at least one scene image")
        images = np.stack([np.asarray(im) for im in images])
    if images.ndim == 4:
        images = images[:, None]
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(
            f"images must have shape (S, V, H, W, 3) or (S, H, W, 3) (RGB, channels last), got {images.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 RGB, got dtype {images.dtype}; convert with .astype(np.uint8)")
    return images


def _encoder_device(encoder: nn.Module) -> torch.device:
    for p in encoder.parameters():
        return p.device
    return torch.device("cpu")


def window_mean(grid: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of each cell's clipped ``(2r+1) x (2r+1)`` neighbourhood (differentiable).

    Args:
        grid: ``(..., h, w, D)`` feature grid(s).
        radius: window radius ``r >= 0`` in cells.

    Returns:
        ``(..., h, w, D)`` in ``grid``'s dtype; cell ``(i, j)`` holds the mean over rows
        ``max(0, i-r) .. min(h-1, i+r)`` and columns ``max(0, j-r) .. min(w-1, j+r)``. One stride-1 average
        pooling that counts only the cells inside the grid, on the channels-last layout the grids already have,
        accumulated in float32 (at most ``(2r+1)^2`` terms per cell: float32 precision, no float64 pass).
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    lead, (h, w, d) = grid.shape[:-3], grid.shape[-3:]
    x = grid.reshape(-1, h, w, d).permute(0, 3, 1, 2)  # (N, D, h, w), channels-last in memory
    x = x if x.dtype in (torch.float32, torch.float64) else x.float()
    out = F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    return out.permute(0, 2, 3, 1).reshape(*lead, h, w, d).to(grid.dtype)


def window_offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets ``(K*K,)`` of a ``K = 2r+1`` window, row-major."""
    k = np.arange(-radius, radius + 1)
    dr, dc = np.meshgrid(k, k, indexing="ij")
    return dr.ravel(), dc.ravel()


class SceneFeatures:
    """A cache of patch-feature grids for ``S`` scenes x ``V`` colour variants (see the module docstring).

    Build it with :meth:`from_encoder`. Attributes:

    - ``grids``: ``(S, V, h, w, D)`` CPU tensor in the storage dtype (float32 or float16).
    - ``boundary_tokens``: ``(S, V, T, D)`` CPU tensor of the tokens entering block ``cache_block``, or ``None``.
    - ``cache_block``: the block index the boundary tokens enter, or ``None``.
    - ``images``: the ``(S, V, H, W, 3)`` uint8 images (a reference, not a copy), for full re-encodes.
    - ``patch_size``; ``version`` (incremented by every :meth:`refresh`).

    Tensors are updated in place by :meth:`refresh`; views from :meth:`grids_numpy` and
    :meth:`window_mean_numpy` therefore stay valid and always show the current features.
    """

    def __init__(
        self,
        grids: torch.Tensor,
        patch_size: int,
        *,
        boundary_tokens: torch.Tensor | None = None,
        cache_block: int | None = None,
        images: np.ndarray | None = None,
    ):
        if grids.ndim != 5:
            raise ValueError(f"grids must have shape (S, V, h, w, D), got {tuple(grids.shape)}")
        if (boundary_tokens is None) != (cache_block is None):
            raise ValueError("boundary_tokens and cache_block must be given together (or neither)")
        self.grids = grids.detach().cpu()
        self.patch_size = int(patch_size)
        self.boundary_tokens = None if boundary_tokens is None else boundary_tokens.detach().cpu()
        self.cache_block = cache_block
        self.images = images
        self.version = 0
        self._window_means: dict[int, torch.Tensor] = {}

    # ----------------------------------------------------------------------------------------- building
    @classmethod
    @torch.no_grad()
    def from_encoder(
        cls,
        encoder: nn.Module,
        images: np.ndarray | Sequence[np.ndarray],
        batch_size: int = 16,
        device: torch.device | str | None = None,
        storage_dtype: StorageDType | torch.dtype = "float32",
        cache_block: int | None = None,
    ) -> SceneFeatures:
        """Encode every scene image once (eval mode, no grad) and store the patch grids.

        Args:
            encoder: any backbone with ``forward_features(x)["x_norm_patchtokens"] (B, N, D)`` and ``patch_size``;
                with ``cache_block`` also ``tokens_before_block`` / ``forward_from_block``.
            images: ``(S, V, H, W, 3)`` or ``(S, H, W, 3)`` uint8 RGB (or a list of such per-scene arrays);
                ``H`` and ``W`` multiples of the patch size.
            batch_size: images per encoder call.
            device: where the encoder runs; must be the encoder's device (the default). Storage is always the CPU.
            storage_dtype: ``"float32"`` or ``"float16"`` (halves memory; lookups are cast back to float32).
            cache_block: keep the tokens entering this block for :meth:`refresh` (``encoder.n_blocks - n`` when the
                top ``n`` blocks will be fine-tuned); ``None`` keeps none.

        Returns:
            The cache; the encoder's train/eval mode is restored afterwards.
        """
        images = _as_image_array(images)
        dtype = _resolve_storage_dtype(storage_dtype)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        patch = int(encoder.patch_size)
        s, v, height, width, _ = images.shape
        if height % patch or width % patch:
            raise ValueError(
                f"image size {height}x{width} is not a multiple of the encoder's patch size {patch}; "
                f"resize the scenes (envs.scenes generators take image_size, folder sources take patch_size)"
            )
        if cache_block is not None:
            n_blocks = int(getattr(encoder, "n_blocks", len(encoder.blocks)))
            if not 0 <= cache_block <= n_blocks:
                raise ValueError(f"cache_block must be in [0, {n_blocks}] for this encoder, got {cache_block}")
        device = _encoder_device(encoder) if device is None else torch.device(device)
        if device.type != _encoder_device(encoder).type:
            raise ValueError(
                f"device {device} differs from the encoder's device {_encoder_device(encoder)}; move the encoder first "
                f"(encoder.to({str(device)!r})) or omit device"
            )
        h, w, d = height // patch, width // patch, int(encoder.embed_dim)
        flat = images.reshape(s * v, height, width, 3)
        grids = torch.empty((s * v, h, w, d), dtype=dtype)
        tokens_store: torch.Tensor | None = None
        was_training = encoder.training
        encoder.eval()
        try:
            for start in range(0, s * v, batch_size):
                x = images_to_tensor(flat[start : start + batch_size], device)  # (B, 3, H, W)
                if cache_block is None:
                    out = encoder.forward_features(x)
                else:
                    tokens = encoder.tokens_before_block(x, cache_block)  # (B, T, D)
                    if tokens_store is None:
                        tokens_store = torch.empty((s * v, tokens.shape[1], d), dtype=dtype)
                    tokens_store[start : start + len(x)] = tokens.to("cpu", dtype)
                    out = encoder.forward_from_block(tokens, cache_block)
                patches = out["x_norm_patchtokens"]  # (B, h*w, D)
                grids[start : start + len(x)] = patches.reshape(len(x), h, w, d).to("cpu", dtype)
        finally:
            encoder.train(was_training)
        logger.info(
            "encoded %d scenes x %d variants into %dx%d grids of %d-d features (%s%s)",
            s,
            v,
            h,
            w,
            d,
            str(dtype).replace("torch.", ""),
            f", boundary tokens at block {cache_block}" if cache_block is not None else "",
        )
        return cls(
            grids.reshape(s, v, h, w, d),
            patch,
            boundary_tokens=None if tokens_store is None else tokens_store.reshape(s, v, -1, d),
            cache_block=cache_block,
            images=images,
        )

    # ------------------------------------------------------------------------------------------- shapes
    @property
    def n_scenes(self) -> int:
        return int(self.grids.shape[0])

    @property
    def n_variants(self) -> int:
        return int(self.grids.shape[1])

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(h, w)`` patch cells."""
        return int(self.grids.shape[2]), int(self.grids.shape[3])

    @property
    def dim(self) -> int:
        return int(self.grids.shape[4])

    @property
    def storage_dtype(self) -> torch.dtype:
        return self.grids.dtype

    # ------------------------------------------------------------------------------------------ lookups
    def window_mean(self, radius: int) -> torch.Tensor:
        """``(S, V, h, w, D)`` window-mean grids for ``radius`` (computed once, kept current by :meth:`refresh`)."""
        if radius not in self._window_means:
            out = torch.empty_like(self.grids)
            self._fill_window_mean(out, radius)
            self._window_means[radius] = out
        return self._window_means[radius]

    def window_mean_numpy(self, radius: int) -> np.ndarray:
        """A numpy view of :meth:`window_mean` (no copy; shows refreshed values)."""
        return self.window_mean(radius).numpy()

    def grids_numpy(self) -> np.ndarray:
        """A numpy view of ``grids`` ``(S, V, h, w, D)`` (no copy; shows refreshed values)."""
        return self.grids.numpy()

    def lookup(
        self,
        scene_idx: np.ndarray,
        variant_idx: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        radius: int = 1,
    ) -> np.ndarray:
        """Window-mean features at cells, as float32 ``(B, D)`` (detached; e.g. for forward-model targets).

        Args:
            scene_idx, variant_idx, rows, cols: ``(B,)`` integer arrays (``info["scene_index"]``,
                ``info["variant_index"]``, ``info["position"]`` of the environments).
            radius: window radius in cells.
        """
        wm = self.window_mean_numpy(radius)
        return np.asarray(wm[scene_idx, variant_idx, rows, cols], dtype=np.float32)

    def _fill_window_mean(self, out: torch.Tensor, radius: int, chunk: int = 8) -> None:
        for start in range(0, self.n_scenes, chunk):
            out[start : start + chunk].copy_(window_mean(self.grids[start : start + chunk], radius))

    # ---------------------------------------------------------------------------------------- refreshing
    def _check_encoder(self, encoder: nn.Module) -> None:
        if self.boundary_tokens is None:
            raise ValueError(
                "this SceneFeatures has no boundary tokens; build it with "
                "SceneFeatures.from_encoder(..., cache_block=k) to refresh or differentiate through the top blocks"
            )
        first = getattr(encoder, "first_trainable_block", None)
        if first is not None and first < self.cache_block:
            raise ValueError(
                f"the encoder has trainable parameters below block {self.cache_block} "
                f"(first trainable block: {first}), "
                f"so the cached boundary tokens may be stale; freeze the lower blocks "
                f"(encoder.unfreeze_top_layers(n) with n <= {getattr(encoder, 'n_blocks', '?')} - {self.cache_block}) "
                f"or rebuild the cache with cache_block <= {first}"
            )
        if int(encoder.embed_dim) != self.dim:
            raise ValueError(f"encoder width {encoder.embed_dim} does not match the cached features' width {self.dim}")

    @torch.no_grad()
    def refresh(self, encoder: nn.Module, batch_size: int = 16) -> None:
        """Recompute every grid after the encoder changed, in place.

        With boundary tokens only blocks ``cache_block..`` and the final norm run (cost about
        ``(depth - cache_block) / depth`` of a full encode); without them the stored images are re-encoded.
        Window means of every radius requested so far are recomputed. The encoder's mode is restored.
        """
        s, v, h, w, d = self.grids.shape
        flat_grids = self.grids.view(s * v, h, w, d)
        device = _encoder_device(encoder)
        was_training = encoder.training
        encoder.eval()
        try:
            if self.boundary_tokens is not None:
                self._check_encoder(encoder)
                flat_tokens = self.boundary_tokens.view(s * v, -1, d)
                for start in range(0, s * v, batch_size):
                    tokens = flat_tokens[start : start + batch_size].to(device, torch.float32)
                    patches = encoder.forward_from_block(tokens, self.cache_block)["x_norm_patchtokens"]
                    flat_grids[start : start + len(tokens)].copy_(patches.reshape(len(tokens), h, w, d))
            elif self.images is not None:
                flat_images = self.images.reshape(s * v, *self.images.shape[2:])
                for start in range(0, s * v, batch_size):
                    x = images_to_tensor(flat_images[start : start + batch_size], device)
                    patches = encoder.forward_features(x)["x_norm_patchtokens"]
                    flat_grids[start : start + len(x)].copy_(patches.reshape(len(x), h, w, d))
            else:
                raise ValueError(
                    "cannot refresh: neither boundary tokens nor images are stored; build the cache with "
                    "SceneFeatures.from_encoder(encoder, images, cache_block=k)"
                )
        finally:
            encoder.train(was_training)
        for radius, out in self._window_means.items():
            self._fill_window_mean(out, radius)
        self.version += 1

    def grids_from_tokens(
        self, encoder: nn.Module, scene_idx: torch.Tensor | np.ndarray, variant_idx: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """Patch grids of selected (scene, variant) pairs recomputed from the boundary tokens, **with** autograd.

        Runs blocks ``cache_block..`` and the final norm of ``encoder`` in its current mode (call it inside
        ``torch.no_grad()`` for targets). Duplicate pairs are computed once.

        Args:
            encoder: the encoder being fine-tuned (lower blocks frozen).
            scene_idx, variant_idx: ``(B,)`` integer indices.

        Returns:
            ``(B, h, w, D)`` float32 on the encoder's device.
        """
        self._check_encoder(encoder)
        s_idx = torch.as_tensor(np.asarray(scene_idx), dtype=torch.long).reshape(-1)
        v_idx = torch.as_tensor(np.asarray(variant_idx), dtype=torch.long).reshape(-1)
        if s_idx.shape != v_idx.shape:
            raise ValueError(f"scene_idx and variant_idx must have the same length, got {len(s_idx)} and {len(v_idx)}")
        pair = s_idx * self.n_variants + v_idx
        unique, inverse = torch.unique(pair, return_inverse=True)
        _, _, h, w, d = self.grids.shape
        device = _encoder_device(encoder)
        tokens = self.boundary_tokens.view(-1, self.boundary_tokens.shape[2], d)[unique]  # (U, T, D)
        tokens = tokens.to(device, torch.float32)
        patches = encoder.forward_from_block(tokens, self.cache_block)["x_norm_patchtokens"]  # (U, h*w, D)
        return patches.reshape(len(unique), h, w, d)[inverse.to(device)]

    def __repr__(self) -> str:
        s, v, h, w, d = self.grids.shape
        extra = f", cache_block={self.cache_block}" if self.cache_block is not None else ""
        return f"SceneFeatures(scenes={s}, variants={v}, grid={h}x{w}, dim={d}, dtype={self.storage_dtype}{extra})"


__all__ = ["SceneFeatures", "StorageDType", "window_mean", "window_offsets"]
