"""A value head for the intrinsic return, trained next to PPO's own (extrinsic) critic.

Non-episodic intrinsic returns and episodic extrinsic returns cannot share one value function (they
bootstrap across different boundaries), so — as RND's two value heads — the intrinsic return gets its own
critic. It sees the same detached features the forward model uses and is trained by regression on the
intrinsic GAE returns of each rollout; PPO's critic keeps the extrinsic returns.

Reference: Burda et al. 2018, "Exploration by Random Network Distillation" (separate intrinsic value head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from techniques.rl_navigation.forward_model import normalise_features


class IntrinsicCritic(nn.Module):
    """MLP ``V_int(z) -> ()`` on ``D``-dimensional (layer-normalised) features.

    Args:
        feature_dim: ``D``.
        hidden_dim: width of the two hidden layers.
    """

    def __init__(self, feature_dim: int, hidden_dim: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden_dim),
            nn.Tanh(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.Tanh(),
            nn.Linear(hidden_dim, 1),
        )

    def reset_parameters(self, seed: int) -> None:
        """Re-initialise every layer (PyTorch's default init) from ``seed``, leaving the global RNG alone."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in self.net:
                if isinstance(module, nn.Linear):
                    module.reset_parameters()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, D) -> (B,)``."""
        return self.net(normalise_features(features)).squeeze(-1)

    def fit(
        self,
        optimizer: torch.optim.Optimizer,
        features: torch.Tensor,
        returns: torch.Tensor,
        epochs: int,
        batch_size: int,
        generator: torch.Generator | None = None,
    ) -> float:
        """Regress ``returns (B,)`` from ``features (B, D)`` for ``epochs`` passes of minibatches; mean loss."""
        losses = []
        n = len(features)
        for _ in range(epochs):
            perm = torch.randperm(n, generator=generator).to(features.device)
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                loss = F.mse_loss(self(features[idx]), returns[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        return sum(losses) / max(len(losses), 1)


__all__ = ["IntrinsicCritic"]
