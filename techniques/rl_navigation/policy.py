"""Stable-Baselines3 features extractor for the navigation environments' ``Dict`` observations.

The observations are numpy arrays (features looked up in :class:`envs.features.SceneFeatures`, oracle cell
features, or uint8 pixel crops), so the policy is a plain SB3 network on *detached* inputs: no autograd path leads
back to the encoder, and PPO's optimiser only ever sees this extractor and SB3's heads.

**Per-cell input** (``cell_dim > 0``, the trainer's default, for window observations ``(K, K, D)`` and pixel crops of
``K x K`` cells): every cell of the window is encoded by one small network whose weights are shared across cells
(the "compression layer" of VC-1 and OVRL-V2, Majumdar et al. 2023, Yadav et al. 2023) into ``cell_dim`` values:

- feature cells: centred by ``feature_mean`` (the mean patch feature of the training scenes: an encoder's patch
  tokens share a large common component, which centring removes), layer-normed, then ``Linear(D, cell_dim)`` +
  ReLU;
- pixel cells: each ``p x p`` cell (``p = P / K``), average-pooled to about 7 pixels a side, through a two-layer
  MLP (a convolution whose kernel and stride are one cell).

The goal is encoded into ``cell_dim`` values too (features: centred, layer-normed, its own linear layer; pixels: the
mean of its cells' embeddings), and the cosine between the goal and every cell is appended (in the centred feature
space, or the learned pixel-cell space), as is a ``(K * K,)`` mask of the cells inside the scene (outside cells are
zero vectors or black). The policy then reads ``K * K * (cell_dim + 2) + cell_dim`` values whose meaning is the same
for every cell, instead of ``K * K * D`` raw values that invite memorising scenes; small keys (heading, position)
pass through unnormalised beside them, so nothing drowns them.

**Whole-vector input** (``cell_dim = 0``, and the ``observation="mean"`` view ``(D,)`` always):

- uint8 images ``(H, W, C)`` or ``(C, H, W)`` (SB3 has already scaled them to ``[0, 1]``): a small strided CNN with
  global average pooling (works for crops smaller than NatureCNN's 36-pixel minimum);
- float vectors / windows: flattened; wide ones (``>= normalise_min_dim`` values, i.e. semantic features) are
  layer-normalised without affine parameters, so the policy's input scale does not drift when phase 2 fine-tunes the
  encoder;
- goal matching with ``match_keys=(view, goal)`` (``"auto"``: ``("features", "goal")`` when both exist; ``None``:
  off): for a ``(D,)`` view the product ``norm(view) * norm(goal) / sqrt(D)`` and the cosine are appended (``D + 1``
  values); for a ``(K, K, D)`` window the goal's cosine with every cell (``K * K`` values, 0 outside the scene).
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


class _CellCNN(nn.Module):
    """Pixel crops of ``K x K`` cells of ``p`` pixels -> per-cell embeddings, weights shared across cells.

    ``(B, P, P, C)`` (channels last) or ``(B, C, P, P)`` in ``[0, 1]`` -> ``(B, K * K, out_dim)``: the crop is
    average-pooled to about 7 pixels per cell side (by ``f = max(1, p // 7)``), then every cell's pixels go through
    ``Linear -> ReLU -> Linear -> ReLU`` (a convolution whose kernel and stride are one cell, written as a matmul:
    pixel crops are 15k values an image, and on a CPU the pooled patch matmul is what keeps PPO's epochs over them
    affordable).
    """

    def __init__(self, shape: tuple[int, int, int], cells: int, out_dim: int, hidden: int = 32):
        super().__init__()
        self.channels_last = shape[-1] <= 4 and shape[0] > 4
        self.channels, side = (shape[-1], shape[0]) if self.channels_last else (shape[0], shape[1])
        if side % cells:
            raise ValueError(f"a {side}-pixel crop does not split into {cells} x {cells} cells")
        self.cells, self.cell_pixels = cells, side // cells
        self.pool = max(1, self.cell_pixels // 7)
        self.pooled = self.cell_pixels // self.pool  # pixels per cell side after pooling
        self.net = nn.Sequential(
            nn.Linear(self.pooled * self.pooled * self.channels, hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_dim),
            nn.ReLU(),
        )

    def _channels_first(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2) if self.channels_last else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._channels_first(x.float())
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)  # (B, C, K * q, K * q), q = pooled pixels per cell
        b, k, q = x.shape[0], self.cells, self.pooled
        x = x[:, :, : k * q, : k * q].reshape(b, self.channels, k, q, k, q).permute(0, 2, 4, 1, 3, 5)
        return self.net(x.reshape(b, k * k, self.channels * q * q))  # (B, K*K, out_dim)

    def inside(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, K*K)`` 1.0 for the cells with any non-black pixel (outside the scene, crops are black)."""
        brightest = self._channels_first(x).amax(1, keepdim=True).float()  # (B, 1, P, P)
        return (F.max_pool2d(brightest, self.cell_pixels).flatten(1) > 0).float()


class NavigationExtractor(BaseFeaturesExtractor):
    """Concatenates per-key encodings of a ``Dict`` observation (see the module docstring).

    Args:
        observation_space: the environment's ``Dict`` space.
        cnn_dim: output width of the whole-image CNN of an image key (``cell_dim = 0``).
        normalise_min_dim: layer-normalise float keys with at least this many values (whole-vector input).
        match_keys: ``(view, goal)`` keys whose match is appended in the whole-vector input (see the module
            docstring); ``"auto"`` uses ``("features", "goal")`` when both exist; ``None`` disables it.
        cell_dim: width of every cell's embedding (per-cell input); 0: the whole-vector input.
        feature_mean: ``(D,)`` values subtracted from feature cells and the goal (``None``: no centring).
        window_cells: ``K``, the window's side in cells (for pixel crops; feature windows carry it in their shape).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        cnn_dim: int = 128,
        normalise_min_dim: int = 16,
        match_keys: tuple[str, str] | str | None = "auto",
        cell_dim: int = 0,
        feature_mean: list[float] | None = None,
        window_cells: int | None = None,
    ):
        if not isinstance(observation_space, gym.spaces.Dict):
            raise ValueError(f"NavigationExtractor needs a Dict observation space, got {type(observation_space)}")
        super().__init__(observation_space, features_dim=1)
        spaces = observation_space.spaces
        mean = None if feature_mean is None else torch.as_tensor(feature_mean, dtype=torch.float32)
        self.register_buffer("feature_mean", mean)
        # the per-cell path: (view key, goal key) and their encoders
        self.cells: tuple[str, str] | None = None
        self.cell_projection: nn.Module | None = None
        self.goal_projection: nn.Module | None = None
        self.cell_cnn: _CellCNN | None = None
        width = 0
        view = spaces.get("features")
        if cell_dim > 0 and view is not None and len(view.shape) == 3 and "goal" in spaces:
            k, d = view.shape[0] * view.shape[1], view.shape[2]
            if mean is not None and tuple(mean.shape) != (d,):
                raise ValueError(f"feature_mean has shape {tuple(mean.shape)}, the view's cells ({d},)")
            self.cells = ("features", "goal")
            self.cell_projection = nn.Sequential(nn.Linear(d, cell_dim), nn.ReLU())
            self.goal_projection = nn.Sequential(nn.Linear(d, cell_dim), nn.ReLU())
            width += k * (cell_dim + 2) + cell_dim
        elif cell_dim > 0 and "pixels" in spaces and "goal_pixels" in spaces and _is_image(spaces["pixels"]):
            if window_cells is None:
                raise ValueError("pixel observations with cell_dim > 0 need window_cells (the window's side in cells)")
            self.cells = ("pixels", "goal_pixels")
            self.cell_cnn = _CellCNN(tuple(spaces["pixels"].shape), int(window_cells), cell_dim)
            width += int(window_cells) ** 2 * (cell_dim + 2) + cell_dim
        # the whole-vector path: every other key
        self.cnns = nn.ModuleDict()
        self.normalised: list[str] = []
        self.keys = sorted(k for k in spaces if self.cells is None or k not in self.cells)
        shapes: dict[str, tuple[int, ...]] = {}
        for key in self.keys:
            space = spaces[key]
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
            view_key, goal_key = match_keys
            view_shape, goal_shape = shapes.get(view_key), shapes.get(goal_key)
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

    # ------------------------------------------------------------------------------------------ per cell
    def _centred(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return x if self.feature_mean is None else x - self.feature_mean

    def encode_cells(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """The per-cell input ``(B, K*K * (cell_dim + 2) + cell_dim)``: cell embeddings, goal cosines, the inside
        mask and the goal embedding (see the module docstring)."""
        view_key, goal_key = self.cells
        view, goal = observations[view_key], observations[goal_key]
        if self.cell_cnn is not None:
            cells = self.cell_cnn(view)  # (B, K*K, c)
            inside = self.cell_cnn.inside(view)
            goal_embedding = self.cell_cnn(goal).mean(1)  # (B, c)
            cosine = F.cosine_similarity(cells, goal_embedding[:, None], dim=-1, eps=1e-6)
        else:
            raw = view.float().flatten(1, 2)  # (B, K*K, D)
            inside = (raw != 0).any(-1).float()  # zero vectors lie outside the scene
            centred, centred_goal = self._centred(raw), self._centred(goal)
            cosine = F.cosine_similarity(centred, centred_goal[:, None], dim=-1, eps=1e-6)
            cells = self.cell_projection(F.layer_norm(centred, centred.shape[-1:], eps=1e-6))
            goal_embedding = self.goal_projection(F.layer_norm(centred_goal, centred_goal.shape[-1:], eps=1e-6))
        cells = cells * inside[..., None]
        return torch.cat([cells.flatten(1), cosine * inside, inside, goal_embedding], dim=1)

    # ------------------------------------------------------------------------------------------ whole vectors
    def _encode(self, key: str, x: torch.Tensor) -> torch.Tensor:
        if key in self.cnns:
            return self.cnns[key](x)
        x = x.reshape(x.shape[0], -1).float()
        if key in self.normalised:
            x = F.layer_norm(x, x.shape[-1:], eps=1e-6)
        return x

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        out = [self._encode(key, observations[key]) for key in self.keys]
        if self.cells is not None:
            out.append(self.encode_cells(observations))
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
