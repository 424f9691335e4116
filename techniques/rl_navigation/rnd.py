"""Random Network Distillation: the novelty bonus of the state reached, on the curiosity features.

A fixed, randomly initialised target network ``g`` maps the (layer-normalised) features of a state to ``k``
values; a predictor ``p`` of the same input is trained to match it. The per-transition bonus is the predictor's
error on the *next* state, ``||p(z') - g(z')||^2 / k``: states seen often are predicted well, new ones are not.
Unlike a forward model, the bonus does not depend on the action, so noise the agent cannot control (a noisy
TV) pays only as long as its frames are new.

:class:`RNDTrainer` has the learner interface of :class:`~techniques.rl_navigation.forward_trainer.ForwardModelTrainer`
(``errors``, ``update``, ``source``), so :class:`~techniques.rl_navigation.curiosity.Curiosity` uses it unchanged.

Reference: Burda et al. 2018, "Exploration by Random Network Distillation" (arXiv:1810.12894).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from techniques.rl_navigation.feature_sources import AgentStates, FeatureSource
from techniques.rl_navigation.forward_model import normalise_features


def _mlp(in_dim: int, hidden_dim: int, out_dim: int, n_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(n_layers):
        layers += [nn.Linear(width, hidden_dim), nn.GELU()]
        width = hidden_dim
    return nn.Sequential(*layers, nn.Linear(width, out_dim))


class RNDTrainer:
    """Target and predictor networks on ``source`` features; the predictor's Adam optimiser.

    Args:
        source: the features of states (frozen here: nothing trains the encoder).
        out_dim: ``k``, the width of the target's output.
        hidden_dim, n_layers: of both networks.
        lr, epochs, batch_size, max_grad_norm: the predictor's training on each rollout.
        seed: seed of the target's (and predictor's) initialisation.
    """

    def __init__(
        self,
        source: FeatureSource,
        out_dim: int = 64,
        hidden_dim: int = 256,
        n_layers: int = 2,
        lr: float = 1e-3,
        epochs: int = 2,
        batch_size: int = 512,
        max_grad_norm: float = 1.0,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        if epochs < 0 or batch_size < 1 or out_dim < 1:
            raise ValueError(f"need epochs >= 0, batch_size >= 1, out_dim >= 1; got {epochs}, {batch_size}, {out_dim}")
        self.source = source
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.target = _mlp(source.dim, hidden_dim, out_dim, n_layers).to(device).requires_grad_(False)
            self.predictor = _mlp(source.dim, hidden_dim, out_dim, n_layers).to(device)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=lr)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.max_grad_norm = float(max_grad_norm)

    @property
    def device(self) -> torch.device:
        return next(self.predictor.parameters()).device

    def _bonus(self, next_states: AgentStates) -> torch.Tensor:
        """``(B,)`` predictor error on the next states' features."""
        z = normalise_features(self.source.targets(next_states).to(self.device))  # (B, D)
        return (self.predictor(z) - self.target(z)).pow(2).mean(-1)

    @torch.no_grad()
    def prediction_targets(self, states: AgentStates) -> torch.Tensor:
        """``(B, k)`` the fixed random target network's output on ``states`` (what the predictor chases; Burda et
        al. 2019)."""
        return self.target(normalise_features(self.source.targets(states).to(self.device)))

    @torch.no_grad()
    def errors(self, states: AgentStates, actions: np.ndarray, next_states: AgentStates) -> np.ndarray:
        """Per-transition novelty of the state reached, shaped like ``actions`` (float64)."""
        shape = np.shape(actions)
        flat = next_states.reshape(-1)
        out = [self._bonus(flat[i : i + 8192]).double().cpu().numpy() for i in range(0, len(flat), 8192)]
        return np.concatenate(out).reshape(shape)

    def update(
        self, states: AgentStates, actions: np.ndarray, next_states: AgentStates, generator: np.random.Generator
    ) -> dict[str, float]:
        """Train the predictor on the rollout's next states; ``{"rnd_loss", "steps"}``."""
        flat = next_states.reshape(-1)
        losses: list[float] = []
        for _ in range(self.epochs):
            perm = generator.permutation(len(flat))
            for start in range(0, len(flat), self.batch_size):
                loss = self._bonus(flat[perm[start : start + self.batch_size]]).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.predictor.parameters(), self.max_grad_norm)
                self.optimizer.step()
                losses.append(float(loss.detach()))
        return {"rnd_loss": float(np.mean(losses)) if losses else float("nan"), "steps": float(len(losses))}

    def state_dict(self) -> dict:
        return {
            "target": self.target.state_dict(),
            "predictor": self.predictor.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.target.load_state_dict(state["target"])
        self.predictor.load_state_dict(state["predictor"])
        self.optimizer.load_state_dict(state["optimizer"])


__all__ = ["RNDTrainer"]
