"""Stable-Baselines3 features extractor for the navigation environments' ``Dict`` observations.

The observations are numpy arrays (features looked up in :class:`envs.features.SceneFeatures`, or uint8 pixel
crops), so the policy is a plain SB3 network on *detached* inputs: no autograd path leads back to the encoder,
and PPO's optimiser only ever sees this extractor and SB3's heads.

Per key:

- uint8 images ``(H, W, C)`` or ``(C, H, W)`` (pixel mode; SB3 has already scaled them to ``[0, 1]``): a small
  strided CNN with global average pooling (works for crops smaller than NatureCNN's 36-pixel minimum);
- float vectors / windows: flattened; wide ones (``>= normalise_min_dim`` values, i.e. semantic features) are
  layer-normalised without affine parameters, so the policy's input scale does not drift when phase 2
  fine-tunes the encoder.

Goal matching ("does what I see match the goal" as a direct read-out instead of something the MLP has to
discover), with ``match_keys=(view, goal)``; ``"auto"`` uses the environments' ``("features", "goal")`` and
``None`` turns it off:

- ``view`` of shape ``(D,)`` (``observation="mean"``): the product ``norm(view) * norm(goal) / sqrt(D)`` and the
  cosine ``cos(view, goal)`` are appended (``D + 1`` values);
- ``view`` of shape ``(K, K, D)`` (``observation="window"``): the cosine of the goal with every window cell is
  appended (``K * K`` values, 0 for cells outside the scene, which are zero vectors).

Pixel observations have no feature keys: "auto" then matches nothing.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


def _is_image(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


class _SmallCNN(nn.Module):
    """``(B, C, H, W)`` or ``(B, H, W, C)`` in ``[0, 1]`` -> ``(B, out_dim)``."""

    def __init__(self, shape: tuple[int, int, int], out_dim: int):
        super().__init__()
        self.channels_last = shape[-1] <= 4 and shape[0] > 4
        channels = shape[-1] if self.channels_last else shape[0]
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, out_dim),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self.net(x.float())


class NavigationExtractor(BaseFeaturesExtractor):
    """Concatenates per-key encodings of a ``Dict`` observation (see the module docstring).

    Args:
        observation_space: the environment's ``Dict`` space.
        cnn_dim: output width of the CNN of each image key.
        normalise_min_dim: layer-normalise float keys with at least this many values.
        match_keys: ``(view, goal)`` keys whose match is appended (see the module docstring); ``"auto"`` uses
            ``("features", "goal")`` when both exist; ``None`` disables it.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        cnn_dim: int = 128,
        normalise_min_dim: int = 16,
        match_keys: tuple[str, str] | str | None = "auto",
    ):
        if not isinstance(observation_space, gym.spaces.Dict):
            raise ValueError(f"NavigationExtractor needs a Dict observation space, got {type(observation_space)}")
        super().__init__(observation_space, features_dim=1)
        self.cnns = nn.ModuleDict()
        self.normalised: list[str] = []
        self.keys = sorted(observation_space.spaces)
        width = 0
        shapes: dict[str, tuple[int, ...]] = {}
        for key in self.keys:
            space = observation_space.spaces[key]
            if _is_image(space):
                self.cnns[key] = _SmallCNN(tuple(space.shape), cnn_dim)
                width += cnn_dim
            else:
                shapes[key] = tuple(space.shape)
                n = int(np.prod(space.shape))
                width += n
                if n >= normalise_min_dim:
                    self.normalised.append(key)
        if match_keys == "auto":
            match_keys = ("features", "goal") if "features" in shapes and "goal" in shapes else None
        self.match_cells = 0  # K*K for a window view, 0 for a single vector
        if match_keys is not None:
            view, goal = match_keys
            view_shape, goal_shape = shapes.get(view), shapes.get(goal)
            if view_shape is None or goal_shape is None or len(goal_shape) != 1 or view_shape[-1] != goal_shape[0]:
                raise ValueError(
                    f"match_keys {match_keys} must name a float view (D,) or (K, K, D) and a goal (D,); have {shapes}"
                )
            if len(view_shape) == 1:
                width += goal_shape[0] + 1
            else:
                self.match_cells = int(np.prod(view_shape[:-1]))
                width += self.match_cells
        self.match_keys = match_keys
        self._features_dim = width

    def _encode(self, key: str, x: torch.Tensor) -> torch.Tensor:
        if key in self.cnns:
            return self.cnns[key](x)
        x = x.reshape(x.shape[0], -1).float()
        if key in self.normalised:
            x = F.layer_norm(x, x.shape[-1:], eps=1e-6)
        return x

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = {key: self._encode(key, observations[key]) for key in self.keys}
        out = [parts[key] for key in self.keys]
        if self.match_keys is not None:
            out.extend(self.goal_match(observations))
        return torch.cat(out, dim=1)

    def goal_match(self, observations: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The appended goal-match columns: ``[(B, D), (B, 1)]`` for a vector view, ``[(B, K*K)]`` for a window."""
        view_key, goal_key = self.match_keys
        goal = observations[goal_key].float()  # (B, D)
        if self.match_cells == 0:
            a, b = self._encode(view_key, observations[view_key]), self._encode(goal_key, observations[goal_key])
            return [a * b / a.shape[-1] ** 0.5, F.cosine_similarity(a, b, dim=-1, eps=1e-6)[:, None]]
        cells = observations[view_key].float().reshape(len(goal), self.match_cells, -1)  # (B, K*K, D)
        return [F.cosine_similarity(cells, goal[:, None, :], dim=-1, eps=1e-6)]  # (B, K*K)


__all__ = ["NavigationExtractor"]
