"""Training the forward model on a rollout's transitions (and, in phase 2, the encoder's top blocks through it).

Per rollout: ``epochs`` passes of shuffled minibatches. Each step computes the forward loss between
``f(z_t, a_t)`` and the stop-gradient target ``z'_{t+1}`` and steps the forward model's Adam optimiser. In
phase 2 a *separate* AdamW optimiser steps the encoder's unfrozen parameters, whose only gradient is this loss
entering through ``z_t``: the minibatches' gradients with respect to the features accumulate, and after the last
minibatch one backward pass through the top blocks (recomputed from the cached boundary tokens,
:class:`~techniques.rl_navigation.semantic_encoder.DeferredWindowFeatures`) gives the gradient of the mean
minibatch loss, on which the encoder steps once per rollout. Both gradients are clipped to ``max_grad_norm``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from techniques.rl_navigation.feature_sources import AgentStates, FeatureSource
from techniques.rl_navigation.forward_model import ForwardModel


class ForwardModelTrainer:
    """Owns the forward model's optimiser (and the encoder's in phase 2); computes per-transition errors.

    Args:
        model: the :class:`ForwardModel`.
        source: the :class:`FeatureSource` for inputs and targets.
        lr: Adam learning rate of the forward model.
        epochs: passes over each rollout.
        batch_size: minibatch size.
        max_grad_norm: gradient clipping (forward model and encoder separately).
        heading_cond: condition on the one-hot heading of the current state (egocentric actions).
    """

    def __init__(
        self,
        model: ForwardModel,
        source: FeatureSource,
        lr: float = 1e-3,
        epochs: int = 2,
        batch_size: int = 512,
        max_grad_norm: float = 1.0,
        heading_cond: bool = False,
    ):
        if epochs < 0 or batch_size < 1:
            raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got {epochs} and {batch_size}")
        if heading_cond and model.cond_dim != 4:
            raise ValueError("heading conditioning needs a ForwardModel with cond_dim=4")
        self.model = model
        self.source = source
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.encoder_optimizer: torch.optim.Optimizer | None = None
        self.encoder_params: list[nn.Parameter] = []
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.max_grad_norm = float(max_grad_norm)
        self.heading_cond = heading_cond

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def enable_encoder_training(self, params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0) -> None:
        """Phase 2: an AdamW optimiser over ``params`` (the unfrozen encoder parameters only)."""
        self.encoder_params = [p for p in params if p.requires_grad]
        if not self.encoder_params:
            raise ValueError("no trainable encoder parameters; call encoder.unfreeze_top_layers(n) first")
        self.encoder_optimizer = torch.optim.AdamW(self.encoder_params, lr=lr, weight_decay=weight_decay)

    def _cond(self, states: AgentStates) -> torch.Tensor | None:
        if not self.heading_cond:
            return None
        heading = torch.from_numpy(np.asarray(states.heading).reshape(-1)).long().to(self.device)
        return F.one_hot(heading, 4).float()

    def _actions(self, actions: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(actions).reshape(-1)).long().to(self.device)

    @torch.no_grad()
    def prediction_targets(self, states: AgentStates) -> torch.Tensor:
        """``(B, D)`` the forward model's targets for ``states`` (the source's targets)."""
        return self.source.targets(states).to(self.device)

    @torch.no_grad()
    def errors(self, states: AgentStates, actions: np.ndarray, next_states: AgentStates) -> np.ndarray:
        """Per-transition prediction errors with the current model, shaped like ``actions`` (float64)."""
        shape = np.shape(actions)
        out = []
        flat_s, flat_n, flat_a = states.reshape(-1), next_states.reshape(-1), np.asarray(actions).reshape(-1)
        chunk = 8192
        for start in range(0, len(flat_a), chunk):
            sl = slice(start, start + chunk)
            z = self.source.features(flat_s[sl]).to(self.device)
            target = self.source.targets(flat_n[sl]).to(self.device)
            err = self.model.errors(z, self._actions(flat_a[sl]), target, self._cond(flat_s[sl]))
            out.append(err.double().cpu().numpy())
        return np.concatenate(out).reshape(shape)

    def update(
        self, states: AgentStates, actions: np.ndarray, next_states: AgentStates, generator: np.random.Generator
    ) -> dict[str, float]:
        """Train on the transitions; returns ``{"forward_loss": mean loss, "forward_loss_first", "steps"}``."""
        flat_s, flat_n, flat_a = states.reshape(-1), next_states.reshape(-1), np.asarray(actions).reshape(-1)
        n = len(flat_a)
        train_encoder = self.encoder_optimizer is not None and self.source.trainable and self.epochs > 0
        deferred = self.source.deferred_features(flat_s) if train_encoder else None
        self.model.train()
        losses: list[float] = []
        for _ in range(self.epochs):
            perm = generator.permutation(n)
            for start in range(0, n, self.batch_size):
                idx = perm[start : start + self.batch_size]
                s, nxt = flat_s[idx], flat_n[idx]
                z = (self.source.features(s) if deferred is None else deferred(idx)).to(self.device)
                with torch.no_grad():
                    target = self.source.targets(nxt).to(self.device)
                loss = self.model.loss(z, self._actions(flat_a[idx]), target, self._cond(s))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # the forward model's gradient, and the features' into deferred.means
                nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
                self.optimizer.step()
                losses.append(float(loss.detach()))
        self.model.eval()
        if deferred is not None and losses:
            self.encoder_optimizer.zero_grad(set_to_none=True)
            deferred.backward(scale=1.0 / len(losses))  # the gradient of the mean minibatch loss
            nn.utils.clip_grad_norm_(self.encoder_params, self.max_grad_norm)
            self.encoder_optimizer.step()
        if not losses:
            return {"forward_loss": float("nan"), "forward_loss_first": float("nan"), "steps": 0.0}
        return {"forward_loss": float(np.mean(losses)), "forward_loss_first": losses[0], "steps": float(len(losses))}

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "encoder_optimizer": None if self.encoder_optimizer is None else self.encoder_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("encoder_optimizer") is not None:
            if self.encoder_optimizer is None:
                raise ValueError("the checkpoint has an encoder optimiser but encoder training is not enabled")
            self.encoder_optimizer.load_state_dict(state["encoder_optimizer"])


__all__ = ["ForwardModelTrainer"]
