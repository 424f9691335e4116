"""The glue between curiosity and Stable-Baselines3 PPO: a callback that rewrites each rollout's advantages.

Design choice: a :class:`~stable_baselines3.common.callbacks.BaseCallback` acting at the end of every rollout
(after SB3 has computed the extrinsic GAE, before PPO's update), rather than a ``VecEnvWrapper`` that adds a
reward at every step:

1. **One batched pass per rollout.** All ``n_steps x n_envs`` transitions are scored by the same forward model
   in one call, *before* it trains on them; a wrapper would call it every step on ``n_envs`` transitions.
2. **Non-episodic intrinsic returns** (the default, as RND) bootstrap across episode ends, which SB3's single
   episodic value function cannot express. The callback computes the intrinsic advantages with their own
   value head (:class:`~techniques.rl_navigation.intrinsic_critic.IntrinsicCritic`) and GAE without ``dones``,
   and adds them to SB3's extrinsic advantages: by linearity of GAE, ``A = A_ext + c * A_int`` is the advantage
   of ``r_ext + c * r_int`` with a two-headed critic. PPO's own critic keeps regressing the extrinsic returns.
   In episodic mode the scaled intrinsic reward is simply added to the buffer's rewards and SB3's GAE is
   recomputed (one critic, the classic ICM setup).
3. **RND normalisation** needs the rollout's filtered intrinsic returns before normalising that rollout.
4. **Phase 2** trains the encoder and refreshes the cached features between rollouts: the callback is the
   point where SB3 hands over control exactly there (``after_update`` hook).

The transitions' states come from the environment core (the agents' ``scene, variant, row, col, heading``
arrays after each step) and from ``info`` for agents whose episode just ended (their terminal state); actions
from SB3's rollout locals. No observation tensors are stored or differentiated: the policy's inputs stay numpy.

Reference: Burda et al. 2018, "Exploration by Random Network Distillation" (two value heads, non-episodic
intrinsic returns); Pathak et al. 2017, "Curiosity-driven Exploration by Self-supervised Prediction".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from techniques.rl_navigation.feature_sources import AgentStates
from techniques.rl_navigation.forward_trainer import ForwardModelTrainer
from techniques.rl_navigation.intrinsic_critic import IntrinsicCritic
from techniques.rl_navigation.intrinsic_reward import IntrinsicRewardNormalizer, compute_gae

logger = logging.getLogger(__name__)

_STATE_FIELDS = ("scene", "variant", "row", "col", "heading")
_INFO_FIELDS = ("scene_index", "variant_index", "position", "heading")


def core_states(core: Any) -> AgentStates:
    """The agents' current states (copies) from an :class:`envs.core.NavCore`."""
    return AgentStates(*(np.asarray(getattr(core, f)).copy() for f in _STATE_FIELDS))


class RolloutRecorder:
    """Per-step storage of ``(state, action, next state, done)`` for ``n_envs`` agents over ``n_steps`` steps."""

    def __init__(self, n_steps: int, n_envs: int):
        self.n_steps, self.n_envs = int(n_steps), int(n_envs)
        shape = (self.n_steps, self.n_envs)
        self.states = AgentStates(*(np.zeros(shape, np.int64) for _ in _STATE_FIELDS))
        self.next_states = AgentStates(*(np.zeros(shape, np.int64) for _ in _STATE_FIELDS))
        self.actions = np.zeros(shape, np.int64)
        self.dones = np.zeros(shape, bool)
        self.final_states: AgentStates | None = None
        self.t = 0

    def start(self, states: AgentStates) -> None:
        self.t = 0
        self._current = states
        self.final_states = None

    def record(self, actions: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]], after: AgentStates) -> None:
        """One environment step: ``after`` is the agents' state after the step (and after automatic resets)."""
        t = self.t
        if t >= self.n_steps:
            raise RuntimeError(f"rollout longer than n_steps={self.n_steps}; rebuild the recorder")
        for dst, src in zip(self.states.arrays(), self._current.arrays()):
            dst[t] = src
        nxt = [a.copy() for a in after.arrays()]
        for i in np.flatnonzero(dones):  # the terminal state, from the info of the finished episode
            info = infos[i]
            nxt[0][i], nxt[1][i] = info["scene_index"], info["variant_index"]
            nxt[2][i], nxt[3][i] = info["position"]
            nxt[4][i] = info["heading"]
        for dst, src in zip(self.next_states.arrays(), nxt):
            dst[t] = src
        self.actions[t] = np.asarray(actions).reshape(-1)
        self.dones[t] = dones
        self._current = after
        self.final_states = after
        self.t += 1

    def batch(self) -> tuple[AgentStates, np.ndarray, AgentStates, np.ndarray]:
        """``(states, actions, next_states, dones)`` of the steps recorded so far, each ``(T, N)``."""
        t = self.t
        return self.states[:t], self.actions[:t], self.next_states[:t], self.dones[:t]


class CuriosityCallback(BaseCallback):
    """Adds forward-model curiosity to SB3 PPO rollouts (see the module docstring).

    Args:
        core: the environments' :class:`envs.core.NavCore` (``ImageNavVecEnv.core``), read after every step.
        learner: the :class:`ForwardModelTrainer` (scores transitions, then trains on them).
        normalizer: the :class:`IntrinsicRewardNormalizer`.
        intrinsic_coef: scale of the normalised intrinsic reward (0: the forward model still trains, no reward).
        critic: intrinsic value head (required unless ``normalizer.episodic``).
        critic_lr, critic_epochs, critic_batch_size: its regression on each rollout's intrinsic returns.
        gamma, gae_lambda: of the intrinsic advantages.
        after_update: called after the forward model (and encoder) trained on a rollout, e.g. the phase-2
            feature refresh; may return a dict of statistics merged into :attr:`last_stats`.
        seed: seed of the minibatch shuffling.
    """

    def __init__(
        self,
        core: Any,
        learner: ForwardModelTrainer,
        normalizer: IntrinsicRewardNormalizer,
        intrinsic_coef: float,
        critic: IntrinsicCritic | None = None,
        critic_lr: float = 1e-3,
        critic_epochs: int = 2,
        critic_batch_size: int = 512,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        after_update: Callable[[], dict[str, float] | None] | None = None,
        seed: int = 0,
    ):
        super().__init__(verbose=0)
        if not normalizer.episodic and critic is None:
            raise ValueError("non-episodic intrinsic returns need an IntrinsicCritic (or use episodic=True)")
        self.core = core
        self.learner = learner
        self.normalizer = normalizer
        self.intrinsic_coef = float(intrinsic_coef)
        self.critic = critic
        self.critic_optimizer = None if critic is None else torch.optim.Adam(critic.parameters(), lr=critic_lr)
        self.critic_epochs = int(critic_epochs)
        self.critic_batch_size = int(critic_batch_size)
        self.gamma = float(gamma)
        self.gae_lambda = float(gae_lambda)
        self.after_update = after_update
        self.rng = np.random.default_rng(seed)
        self.torch_generator = torch.Generator().manual_seed(seed)
        self.recorder: RolloutRecorder | None = None
        self.last_stats: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------ recording
    def _on_rollout_start(self) -> None:
        n_steps, n_envs = self.model.n_steps, self.training_env.num_envs
        if self.recorder is None or (self.recorder.n_steps, self.recorder.n_envs) != (n_steps, n_envs):
            self.recorder = RolloutRecorder(n_steps, n_envs)
        self.recorder.start(core_states(self.core))

    def _on_step(self) -> bool:
        self.recorder.record(
            self.locals["actions"], np.asarray(self.locals["dones"]), self.locals["infos"], core_states(self.core)
        )
        return True

    # ------------------------------------------------------------------------------------------ rewriting
    def _on_rollout_end(self) -> None:
        states, actions, next_states, dones = self.recorder.batch()
        buffer = self.model.rollout_buffer
        if len(actions) != buffer.buffer_size:
            raise RuntimeError(f"recorded {len(actions)} steps but the rollout buffer holds {buffer.buffer_size}")
        raw = self.learner.errors(states, actions, next_states)  # (T, N)
        warming = self.normalizer.warming_up
        intrinsic = self.normalizer(raw, dones)  # (T, N), zeros while warming up
        stats: dict[str, float] = {
            "intrinsic_raw_mean": float(raw.mean()),
            "intrinsic_mean": float(intrinsic.mean()),
            "intrinsic_std": float(intrinsic.std()),
            "intrinsic_return_std": float(self.normalizer.return_rms.std),
            "intrinsic_warming_up": float(warming),
        }
        if self.intrinsic_coef > 0 and not warming:
            if self.normalizer.episodic:
                buffer.rewards += self.intrinsic_coef * intrinsic
                buffer.compute_returns_and_advantage(last_values=self.locals["values"], dones=self.locals["dones"])
            else:
                stats.update(self._add_non_episodic_advantages(buffer, states, intrinsic))
        stats.update(self.learner.update(states, actions, next_states, self.rng))
        if self.after_update is not None:
            stats.update(self.after_update() or {})
        self.last_stats = stats

    def _add_non_episodic_advantages(self, buffer: Any, states: AgentStates, intrinsic: np.ndarray) -> dict[str, float]:
        source = self.learner.source
        device = next(self.critic.parameters()).device
        t_len, n_envs = intrinsic.shape
        with torch.no_grad():
            z = source.features(states).to(device)  # (T*N, D)
            z_last = source.features(self.recorder.final_states).to(device)  # (N, D)
            values = self.critic(z).reshape(t_len, n_envs).cpu().numpy()
            last_values = self.critic(z_last).cpu().numpy()
        adv, returns = compute_gae(intrinsic, values, last_values, None, self.gamma, self.gae_lambda)
        buffer.advantages += self.intrinsic_coef * adv
        loss = self.critic.fit(
            self.critic_optimizer,
            z,
            torch.from_numpy(returns.reshape(-1)).to(device),
            self.critic_epochs,
            self.critic_batch_size,
            self.torch_generator,
        )
        return {
            "intrinsic_value_loss": loss,
            "intrinsic_advantage_std": float(adv.std()),
            "extrinsic_advantage_std": float(np.std(buffer.advantages - self.intrinsic_coef * adv)),
        }

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "critic": None if self.critic is None else self.critic.state_dict(),
            "critic_optimizer": None if self.critic_optimizer is None else self.critic_optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "torch_generator": self.torch_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.normalizer.load_state_dict(state["normalizer"])
        if self.critic is not None and state.get("critic") is not None:
            self.critic.load_state_dict(state["critic"])
            self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.torch_generator.set_state(state["torch_generator"])


__all__ = ["CuriosityCallback", "RolloutRecorder", "core_states"]
