"""Forward dynamics model in feature space: predicts the next step's features from the current ones and the action.

Its per-transition prediction error is the curiosity signal: transitions the model has seen often are
predicted well (low reward), novel ones are not (high reward). The loss lives in a normalised feature space
so that neither the feature scale nor its drift during encoder fine-tuning changes what "surprising" means:

- ``"mse_ln"`` (default): mean squared error between the prediction and the layer-normalised target
  (zero mean, unit variance over the feature dimension, no affine parameters);
- ``"cosine"``: ``1 - cos(prediction, target)``.

Reference: Pathak et al. 2017, "Curiosity-driven Exploration by Self-supervised Prediction" (ICM forward model);
Burda et al. 2019, "Large-Scale Study of Curiosity-Driven Learning" (prediction error in a fixed/learned
feature space).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ForwardLoss = Literal["mse_ln", "cosine"]
FORWARD_LOSSES: tuple[str, ...] = ("mse_ln", "cosine")


def normalise_features(x: torch.Tensor) -> torch.Tensor:
    """Layer norm without affine parameters over the last dimension: ``(..., D) -> (..., D)``."""
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


def prediction_error(prediction: torch.Tensor, target: torch.Tensor, loss: ForwardLoss = "mse_ln") -> torch.Tensor:
    """Per-sample error ``(B, D), (B, D) -> (B,)`` in the normalised space of ``loss`` (target not detached here)."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    if loss == "mse_ln":
        return (prediction - normalise_features(target)).pow(2).mean(-1)
    if loss == "cosine":
        return 1.0 - F.cosine_similarity(prediction, target, dim=-1, eps=1e-6)
    raise ValueError(f"unknown forward loss {loss!r}; choose one of {', '.join(FORWARD_LOSSES)}")


class ForwardModel(nn.Module):
    """MLP ``f(z_t, a_t[, c_t]) -> z_{t+1}`` on ``D``-dimensional features.

    The input features are layer-normalised (no affine), the action is one-hot, and ``cond`` (optional,
    ``cond_dim`` wide, e.g. a one-hot heading for egocentric actions whose effect depends on it) is
    concatenated. With ``residual=True`` the network predicts a change added to the normalised input, so
    "nothing changes" is the easy default.

    Args:
        feature_dim: ``D``.
        n_actions: size of the discrete action space.
        hidden_dim: width of the hidden layers.
        n_layers: number of hidden layers (>= 1).
        cond_dim: width of the optional conditioning vector (0: none).
        loss: ``"mse_ln"`` or ``"cosine"`` (see the module docstring).
        residual: predict ``normalise(z_t) + delta``.
    """

    def __init__(
        self,
        feature_dim: int,
        n_actions: int,
        hidden_dim: int = 256,
        n_layers: int = 2,
        cond_dim: int = 0,
        loss: ForwardLoss = "mse_ln",
        residual: bool = True,
    ):
        super().__init__()
        if loss not in FORWARD_LOSSES:
            raise ValueError(f"unknown forward loss {loss!r}; choose one of {', '.join(FORWARD_LOSSES)}")
        if n_layers < 1 or hidden_dim < 1 or n_actions < 1 or feature_dim < 1 or cond_dim < 0:
            raise ValueError(
                f"ForwardModel needs positive sizes, got feature_dim={feature_dim}, n_actions={n_actions}, "
                f"hidden_dim={hidden_dim}, n_layers={n_layers}, cond_dim={cond_dim}"
            )
        self.feature_dim = feature_dim
        self.n_actions = n_actions
        self.cond_dim = cond_dim
        self.loss_kind: ForwardLoss = loss
        self.residual = residual
        layers: list[nn.Module] = []
        width = feature_dim + n_actions + cond_dim
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden_dim), nn.GELU()]
            width = hidden_dim
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(hidden_dim, feature_dim)
        if residual:  # start as the identity map on normalised features
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, features: torch.Tensor, actions: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``features (B, D)``, ``actions (B,)`` int, ``cond (B, C)`` -> predicted next features ``(B, D)``."""
        z = normalise_features(features)  # (B, D)
        onehot = F.one_hot(actions.long().reshape(-1), self.n_actions).to(z.dtype)  # (B, A)
        parts = [z, onehot]
        if self.cond_dim:
            if cond is None or cond.shape[-1] != self.cond_dim:
                raise ValueError(f"this forward model needs cond of width {self.cond_dim}")
            parts.append(cond.to(z.dtype))
        delta = self.out(self.body(torch.cat(parts, dim=-1)))  # (B, D)
        return z + delta if self.residual else delta

    def errors(
        self,
        features: torch.Tensor,
        actions: torch.Tensor,
        next_features: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-transition prediction error ``(B,)``; the target ``next_features`` is detached (stop-gradient)."""
        return prediction_error(self(features, actions, cond), next_features.detach(), self.loss_kind)

    def loss(
        self,
        features: torch.Tensor,
        actions: torch.Tensor,
        next_features: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean of :meth:`errors` (scalar)."""
        return self.errors(features, actions, next_features, cond).mean()


__all__ = ["FORWARD_LOSSES", "ForwardLoss", "ForwardModel", "normalise_features", "prediction_error"]
