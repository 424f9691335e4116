"""Where the forward model's features come from, for a batch of agent states ``(scene, variant, row, col)``.

A :class:`FeatureSource` gives, for states recorded during a rollout,

- ``features(states)``: the current features (detached; what the policy saw, used for rewards and the critic),
- ``targets(states)``: the prediction targets for next states (detached, from the target network's cache in
  phase 2; with the ``online`` target the cache itself, which holds the current weights' features whenever the
  learner trains);
- ``trainable``: whether an encoder trains through the features; then ``deferred_features(states)`` gives them
  with one deferred backward through its unfrozen blocks
  (:class:`~techniques.rl_navigation.semantic_encoder.DeferredWindowFeatures`).

Two implementations, swappable in the trainer:

- :class:`SemanticFeatureSource`: window-mean patch features from :class:`envs.features.SceneFeatures`; phase 2
  recomputes them from the cached boundary tokens so gradients reach exactly the top blocks and the final norm;
- :class:`PixelFeatureSource`: the north-up pixel crop around the cell, average-pooled to a few pixels per side
  (pixel-space curiosity baseline; nothing to fine-tune).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from envs.crops import CellCrops
from envs.features import SceneFeatures
from techniques.rl_navigation.semantic_encoder import DeferredWindowFeatures, SemanticEncoder


@dataclass
class AgentStates:
    """Agent states as integer arrays of one shape (e.g. ``(T, N)`` for a rollout or ``(B,)`` for a minibatch)."""

    scene: np.ndarray
    variant: np.ndarray
    row: np.ndarray
    col: np.ndarray
    heading: np.ndarray

    def __getitem__(self, index) -> AgentStates:
        return AgentStates(
            self.scene[index], self.variant[index], self.row[index], self.col[index], self.heading[index]
        )

    def reshape(self, *shape: int) -> AgentStates:
        return AgentStates(*(a.reshape(*shape) for a in self.arrays()))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.scene, self.variant, self.row, self.col, self.heading

    def __len__(self) -> int:
        return len(self.scene)


class FeatureSource(Protocol):
    """What the curiosity learner needs from a feature space (see the module docstring)."""

    dim: int
    trainable: bool

    def features(self, states: AgentStates) -> torch.Tensor: ...

    def targets(self, states: AgentStates) -> torch.Tensor: ...


class SemanticFeatureSource:
    """Window-mean encoder features from a :class:`SceneFeatures` cache.

    Args:
        cache: the environments' feature cache (refreshed in place after encoder updates).
        radius: window radius in cells (the environments' ``patch_radius``).
        device: where the returned tensors live.

    Call :meth:`start_fine_tuning` at the phase switch to train the encoder through :meth:`deferred_features` and
    to take targets from a separate cache (the target network's grids).
    """

    def __init__(self, cache: SceneFeatures, radius: int, device: torch.device | str = "cpu"):
        self.cache = cache
        self.target_cache = cache
        self.radius = int(radius)
        self.device = torch.device(device)
        self.encoder: SemanticEncoder | None = None
        self.batch_size = 16
        self.dim = cache.dim

    @property
    def trainable(self) -> bool:
        return self.encoder is not None

    def start_fine_tuning(
        self, encoder: SemanticEncoder, target_cache: SceneFeatures | None = None, batch_size: int = 16
    ) -> None:
        """Gradients flow into ``encoder``'s unfrozen blocks; targets come from ``target_cache`` (default: the
        cache, the ``online`` target); ``batch_size`` grids per recomputation of the top blocks."""
        if self.cache.boundary_tokens is None:
            raise ValueError(
                "the feature cache holds no boundary tokens, so the encoder cannot be fine-tuned; build the "
                "environment with cache_block = depth - unfreeze_layers"
            )
        self.encoder = encoder
        self.target_cache = target_cache if target_cache is not None else self.cache
        self.batch_size = int(batch_size)

    def _lookup(self, cache: SceneFeatures, s: AgentStates) -> torch.Tensor:
        s = s.reshape(-1)
        out = cache.lookup(s.scene, s.variant, s.row, s.col, self.radius)  # (B, D) float32
        return torch.from_numpy(out).to(self.device)

    def features(self, states: AgentStates) -> torch.Tensor:
        return self._lookup(self.cache, states)

    def targets(self, states: AgentStates) -> torch.Tensor:
        return self._lookup(self.target_cache, states)

    def deferred_features(self, states: AgentStates) -> DeferredWindowFeatures:
        """Phase 2: the features of ``states`` ``(B,)`` with one deferred backward through the encoder's top blocks."""
        if self.encoder is None:
            raise ValueError("no encoder trains through these features; call start_fine_tuning(encoder) first")
        s = states.reshape(-1)
        return self.encoder.deferred_window_features(
            self.cache, s.scene, s.variant, s.row, s.col, self.radius, self.batch_size
        )


class PixelFeatureSource:
    """Average-pooled pixel crops ``(size * size * 3,)`` in ``[0, 1]`` around cells (north-up).

    Args:
        images: ``(S, V, H, W, 3)`` uint8 scene variants (the environments' ``world.images``).
        patch_size: pixels per cell.
        radius: crop radius in cells (crop side ``(2r+1) * patch_size``; outside the image is black).
        size: side of the pooled crop.
        device: where the returned tensors live.
    """

    trainable = False

    def __init__(self, images: np.ndarray, patch_size: int, radius: int, size: int = 6, device: str = "cpu"):
        if size < 1:
            raise ValueError(f"pixel size must be >= 1, got {size}")
        self.images = images
        self.size = int(size)
        self.device = torch.device(device)
        self.dim = self.size * self.size * 3
        self._crops_of = CellCrops(images, patch_size, radius)

    def _crops(self, s: AgentStates) -> torch.Tensor:
        s = s.reshape(-1)
        crops = self._crops_of(s.scene, s.variant, s.row, s.col)  # (B, P, P, 3)
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, P, P)
        return F.adaptive_avg_pool2d(x, self.size).reshape(len(x), -1)  # (B, size*size*3)

    def features(self, states: AgentStates) -> torch.Tensor:
        return self._crops(states)

    targets = features


__all__ = ["AgentStates", "FeatureSource", "PixelFeatureSource", "SemanticFeatureSource"]
