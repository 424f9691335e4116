"""ICM: curiosity in features that an inverse-dynamics model learns (the classic defence against noise the
agent cannot control).

An embedding ``phi`` of the base features (the encoder's window means) is trained only to predict the action
from two consecutive states, ``a_t ~ h(phi(z_t), phi(z_{t+1}))`` (cross-entropy): it keeps what the agent's
actions change and has no reason to encode what they do not (a noisy TV). A forward model predicts
``phi(z_{t+1})`` from ``phi(z_t)`` and ``a_t`` on detached embeddings; its error is the intrinsic reward. As in
Burda et al. 2019's IDF variant, the forward loss does not train ``phi``.

:class:`ICMLearner` has the learner interface of :class:`~techniques.rl_navigation.forward_trainer.ForwardModelTrainer`
(``errors``, ``update``, ``source``); its forward part *is* a ``ForwardModelTrainer`` over
:class:`EmbeddedSource`.

Reference: Pathak et al. 2017, "Curiosity-driven Exploration by Self-supervised Prediction"; Burda et al. 2019,
"Large-Scale Study of Curiosity-Driven Learning" (IDF features).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from techniques.rl_navigation.feature_sources import AgentStates, FeatureSource
from techniques.rl_navigation.forward_model import ForwardModel, normalise_features
from techniques.rl_navigation.forward_trainer import ForwardModelTrainer


class InverseDynamics(nn.Module):
    """Embedding ``phi: (B, D) -> (B, E)`` and inverse head ``h: (B, 2E) -> (B, A)`` logits."""

    def __init__(self, feature_dim: int, n_actions: int, embed_dim: int = 64, hidden_dim: int = 256):
        super().__init__()
        self.embed_dim = int(embed_dim)
        self.phi = nn.Sequential(nn.Linear(feature_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, embed_dim))
        self.head = nn.Sequential(nn.Linear(2 * embed_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, n_actions))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.phi(normalise_features(features))

    def logits(self, features: torch.Tensor, next_features: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.embed(features), self.embed(next_features)], dim=-1))


class EmbeddedSource:
    """``phi`` of a base source's features, detached (the forward model's space)."""

    trainable = False

    def __init__(self, base: FeatureSource, inverse: InverseDynamics):
        self.base = base
        self.inverse = inverse
        self.dim = inverse.embed_dim

    @torch.no_grad()
    def features(self, states: AgentStates) -> torch.Tensor:
        device = next(self.inverse.parameters()).device
        return self.inverse.embed(self.base.features(states).to(device))

    targets = features


class ICMLearner:
    """The inverse model (trains ``phi``) and the forward model in ``phi``'s space (its error is the reward).

    Args:
        base: the base feature source (also the intrinsic critic's input).
        n_actions: size of the action space.
        embed_dim, hidden_dim: of the inverse model.
        forward_hidden, forward_layers, forward_loss: of the forward model.
        lr, epochs, batch_size, max_grad_norm: shared by both models' training on each rollout.
        heading_cond: condition the forward model on the heading (egocentric actions).
    """

    def __init__(
        self,
        base: FeatureSource,
        n_actions: int,
        embed_dim: int = 64,
        hidden_dim: int = 256,
        forward_hidden: int = 256,
        forward_layers: int = 2,
        forward_loss: str = "mse_ln",
        lr: float = 1e-3,
        epochs: int = 2,
        batch_size: int = 512,
        max_grad_norm: float = 1.0,
        heading_cond: bool = False,
        device: torch.device | str = "cpu",
    ):
        self.source = base
        self.inverse = InverseDynamics(base.dim, n_actions, embed_dim, hidden_dim).to(device)
        self.optimizer = torch.optim.Adam(self.inverse.parameters(), lr=lr)
        model = ForwardModel(
            embed_dim, n_actions, forward_hidden, forward_layers, cond_dim=4 if heading_cond else 0, loss=forward_loss
        ).to(device)
        self.forward = ForwardModelTrainer(
            model, EmbeddedSource(base, self.inverse), lr, epochs, batch_size, max_grad_norm, heading_cond
        )
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.max_grad_norm = float(max_grad_norm)

    @property
    def device(self) -> torch.device:
        return next(self.inverse.parameters()).device

    def prediction_targets(self, states: AgentStates) -> torch.Tensor:
        """``(B, embed_dim)`` ``phi`` of ``states``: the forward model predicts in this learned space (Pathak et al.
        2017)."""
        return self.forward.prediction_targets(states)

    def errors(self, states: AgentStates, actions: np.ndarray, next_states: AgentStates) -> np.ndarray:
        """Forward-model errors in ``phi``'s space, shaped like ``actions`` (float64)."""
        return self.forward.errors(states, actions, next_states)

    def update(
        self, states: AgentStates, actions: np.ndarray, next_states: AgentStates, generator: np.random.Generator
    ) -> dict[str, float]:
        """Inverse model first (``inverse_loss``, ``inverse_accuracy``), then the forward model on the new ``phi``."""
        flat_s, flat_n, flat_a = states.reshape(-1), next_states.reshape(-1), np.asarray(actions).reshape(-1)
        losses, correct = [], 0.0
        for _ in range(self.epochs):
            perm = generator.permutation(len(flat_a))
            for start in range(0, len(flat_a), self.batch_size):
                idx = perm[start : start + self.batch_size]
                z = self.source.features(flat_s[idx]).to(self.device)
                z_next = self.source.features(flat_n[idx]).to(self.device)
                target = torch.from_numpy(flat_a[idx]).long().to(self.device)
                logits = self.inverse.logits(z, z_next)
                loss = F.cross_entropy(logits, target)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.inverse.parameters(), self.max_grad_norm)
                self.optimizer.step()
                losses.append(float(loss.detach()))
                correct += float((logits.argmax(-1) == target).float().sum())
        stats = self.forward.update(states, actions, next_states, generator)
        n = max(len(flat_a) * self.epochs, 1)
        return {
            **stats,
            "inverse_loss": float(np.mean(losses)) if losses else float("nan"),
            "inverse_accuracy": correct / n,
        }

    def state_dict(self) -> dict:
        return {
            "inverse": self.inverse.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "forward": self.forward.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.inverse.load_state_dict(state["inverse"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.forward.load_state_dict(state["forward"])


__all__ = ["EmbeddedSource", "ICMLearner", "InverseDynamics"]
