"""Curiosity for an on-policy learner: transitions recorded by an env wrapper, an intrinsic reward scored once
per rollout, and its advantages from a separate intrinsic critic.

- :class:`RolloutRecorder` (a ``VecEnvWrapper``) records every step's ``(state, action, next state, done)`` from
  the environment core (the agents' ``scene, variant, row, col, heading``; the terminal state of a finished
  episode from its ``info``) and counts finished episodes. It sees only the public ``VecEnv`` API, so it needs
  nothing of SB3's internals; no observation tensor is stored or differentiated.
- :class:`Curiosity` turns a rollout of transitions into intrinsic advantages and trains on it:

  1. **One batched pass per rollout.** All ``T x N`` transitions are scored by the learner (a forward model, RND,
     ...) in one call, *before* it trains on them.
  2. **Two value heads.** The intrinsic return gets its own critic (:class:`IntrinsicCritic`) and GAE, without
     ``dones`` by default (non-episodic, as RND) or cut at episode ends (``episodic=True``). By linearity of GAE,
     ``A = e * A_ext + c * A_int`` is the advantage of ``e * r_ext + c * r_int`` with a two-headed critic; PPO's own
     critic keeps regressing the extrinsic returns, untouched.
  3. **RND normalisation**: the rollout's filtered intrinsic returns update the statistics before the rollout is
     normalised. While the statistics warm up (at the start and after :meth:`Curiosity.reset`, the phase switch)
     the policy gets no intrinsic advantage, but the intrinsic critic already fits the normalised returns, so
     that it is calibrated when the reward switches on.

:class:`~techniques.rl_navigation.algorithm.CuriosityPPO` calls :meth:`Curiosity.rollout_advantages` at the end of
``collect_rollouts``; :meth:`~techniques.rl_navigation.trainer.TwoPhaseTrainer.train` calls :meth:`Curiosity.update`
after PPO's update.

Reference: Burda et al. 2018, "Exploration by Random Network Distillation" (two value heads, non-episodic
intrinsic returns); Pathak et al. 2017, "Curiosity-driven Exploration by Self-supervised Prediction".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from envs.core import NavCore
from techniques.rl_navigation.episode_stats import EpisodeStats
from techniques.rl_navigation.feature_sources import AgentStates, FeatureSource
from techniques.rl_navigation.intrinsic_critic import IntrinsicCritic
from techniques.rl_navigation.intrinsic_reward import IntrinsicRewardNormalizer, compute_gae

logger = logging.getLogger(__name__)


def core_states(core: NavCore) -> AgentStates:
    """The agents' current states (copies) from an :class:`envs.core.NavCore` (its :meth:`~envs.core.NavCore.poses`)."""
    return AgentStates(**core.poses())


@dataclass
class Transitions:
    """One rollout of ``T`` steps of ``N`` agents: ``states``, ``actions``, ``next_states`` and ``dones`` are
    ``(T, N)`` (``next_states`` holds the terminal state where ``dones``); ``final_states`` ``(N,)`` are the states
    after the last step (after automatic resets), where the next rollout starts."""

    states: AgentStates
    actions: np.ndarray
    next_states: AgentStates
    dones: np.ndarray
    final_states: AgentStates

    def __len__(self) -> int:
        return len(self.actions)


class RolloutRecorder(VecEnvWrapper):
    """Records the transitions of each rollout and counts finished episodes (see the module docstring).

    Args:
        venv: an :class:`envs.vec_env.ImageNavVecEnv` (anything with a ``core`` holding the agents' state arrays).
    """

    def __init__(self, venv: VecEnv):
        super().__init__(venv)
        self.core = venv.core
        self.stats = EpisodeStats()
        self._capacity = 0
        self._t = 0
        self._actions: np.ndarray | None = None
        self._current: AgentStates | None = None

    @property
    def episodes(self) -> int:
        """Episodes finished so far (the schedule's clock)."""
        return self.stats.episodes

    def start_rollout(self, n_steps: int) -> None:
        """Start recording a rollout of ``n_steps`` steps from the agents' current states."""
        if n_steps != self._capacity:
            shape = (int(n_steps), self.num_envs)
            self.states = AgentStates(*(np.zeros(shape, np.int64) for _ in NavCore.POSE_FIELDS))
            self.next_states = AgentStates(*(np.zeros(shape, np.int64) for _ in NavCore.POSE_FIELDS))
            self.actions = np.zeros(shape, np.int64)
            self.dones = np.zeros(shape, bool)
            self._capacity = int(n_steps)
        self._t = 0
        self._current = core_states(self.core)

    def observe(self) -> VecEnvObs:
        """The current observations of every agent (after a feature refresh: with the new features)."""
        return self.venv.observe()

    def reset(self) -> VecEnvObs:
        obs = self.venv.reset()
        self._current = core_states(self.core)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(-1).copy()
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        t = self._t
        if t >= self._capacity:
            raise RuntimeError(f"step {t + 1} of a rollout recorded for {self._capacity}; call start_rollout(n) first")
        after = core_states(self.core)
        for dst, src in zip(self.states.arrays(), self._current.arrays()):
            dst[t] = src
        for dst, src in zip(self.next_states.arrays(), after.arrays()):
            dst[t] = src
        for i in np.flatnonzero(dones):  # the terminal state and metrics, from the info of the finished episode
            info = infos[i]
            self.next_states.scene[t, i], self.next_states.variant[t, i] = info["scene_index"], info["variant_index"]
            self.next_states.row[t, i], self.next_states.col[t, i] = info["position"]
            self.next_states.heading[t, i] = info["heading"]
            self.stats.add_episode(info)
        self.actions[t] = self._actions
        self.dones[t] = dones
        self._current = after
        self._t += 1
        return obs, rewards, dones, infos

    def batch(self) -> Transitions:
        """The transitions recorded since :meth:`start_rollout`."""
        t = self._t
        return Transitions(self.states[:t], self.actions[:t], self.next_states[:t], self.dones[:t], self._current)


class CuriosityLearner(Protocol):
    """What :class:`Curiosity` needs from a learner of the intrinsic reward (forward model, ICM, RND)."""

    source: FeatureSource
    """the features of states (the intrinsic critic's input)"""

    def errors(self, states: AgentStates, actions: np.ndarray, next_states: AgentStates) -> np.ndarray: ...

    def prediction_targets(self, states: AgentStates) -> torch.Tensor:
        """``(B, k)`` what the learner predicts for states reached: its error on them is the intrinsic reward (the
        space in which a noisy TV is loud or quiet)."""
        ...

    def update(
        self, states: AgentStates, actions: np.ndarray, next_states: AgentStates, generator: np.random.Generator
    ) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def tv_split(raw: np.ndarray, normalised: np.ndarray, tv_view: np.ndarray, reached: AgentStates) -> dict[str, float]:
    """The mean intrinsic reward (raw and normalised, ``(T, N)``) of transitions whose reached state has the TV in view
    (``tv_view[scene, row, col]``) and of the others, their ratio, and the fraction at the TV (keys absent when a
    side has no transition)."""
    at_tv = tv_view[reached.scene, reached.row, reached.col]
    stats = {"tv_transitions": float(at_tv.mean())}
    if at_tv.all() or not at_tv.any():
        return stats
    for name, values in (("intrinsic_raw", raw), ("intrinsic_normalised", normalised)):
        stats[f"{name}_tv"] = float(values[at_tv].mean())
        stats[f"{name}_elsewhere"] = float(values[~at_tv].mean())
    stats["intrinsic_tv_ratio"] = stats["intrinsic_raw_tv"] / max(stats["intrinsic_raw_elsewhere"], 1e-12)
    return stats


class Curiosity:
    """Intrinsic advantages of a rollout and the training of the learner and of the intrinsic critic.

    The learner and the critic run in fp32 whatever the encoder's precision: they are small MLPs (nothing to gain),
    and under CPU bf16 autocast the forward model's updates diverged (held-out errors jumping from 0.01 to 10^3-10^4
    within a few updates, docs/results.md); phase 2's passes through the encoder keep the encoder's autocast.

    Args:
        learner: scores transitions (``errors``), then trains on them (``update``).
        normalizer: the :class:`IntrinsicRewardNormalizer` (its ``episodic`` flag also cuts the intrinsic GAE).
        critic: the intrinsic value head on ``learner.source`` features.
        intrinsic_coef: ``c``, the scale of the normalised intrinsic advantages (0: the learner still trains).
        critic_lr, critic_epochs, critic_batch_size: the critic's regression on each rollout's intrinsic returns.
        gamma, gae_lambda: of the intrinsic advantages.
        seed: seed of the minibatch shuffling and of the critic's re-initialisation at :meth:`reset`.
        tv_view: ``(S, h, w)`` bool, where a noisy TV is in view (:attr:`envs.core.NavCore.tv_view`); with it each
            rollout's statistics split the intrinsic reward of transitions that reach the TV's view from the others
            (``intrinsic_raw_tv``, ``intrinsic_raw_elsewhere``, their ratio, and the normalised rewards): the
            mechanism a noisy TV works through.
    """

    def __init__(
        self,
        learner: CuriosityLearner,
        normalizer: IntrinsicRewardNormalizer,
        critic: IntrinsicCritic,
        intrinsic_coef: float,
        critic_lr: float = 1e-3,
        critic_epochs: int = 2,
        critic_batch_size: int = 512,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        seed: int = 0,
        tv_view: np.ndarray | None = None,
    ):
        if intrinsic_coef < 0:
            raise ValueError(f"intrinsic_coef must be >= 0, got {intrinsic_coef}")
        self.learner = learner
        self.normalizer = normalizer
        self.critic = critic
        self.critic_lr = float(critic_lr)
        self.critic_optimizer = torch.optim.Adam(critic.parameters(), lr=self.critic_lr)
        self.intrinsic_coef = float(intrinsic_coef)
        self.critic_epochs = int(critic_epochs)
        self.critic_batch_size = int(critic_batch_size)
        self.gamma = float(gamma)
        self.gae_lambda = float(gae_lambda)
        self.seed = int(seed)
        self.tv_view = tv_view
        self.rng = np.random.default_rng(seed)
        self.torch_generator = torch.Generator().manual_seed(seed)
        self.resets = 0
        self.last_stats: dict[str, float] = {}
        self._critic_data: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def source(self) -> FeatureSource:
        return self.learner.source

    @property
    def device(self) -> torch.device:
        return next(self.critic.parameters()).device

    # ------------------------------------------------------------------------------------------ rollouts
    def rollout_advantages(self, batch: Transitions) -> np.ndarray:
        """``c * A_int`` ``(T, N)`` float32 of a rollout (zeros while the statistics warm up or when ``c == 0``).

        Scores the transitions with the current learner, updates the normaliser, and computes the intrinsic GAE
        with the intrinsic critic; the critic's regression targets are kept for :meth:`update`.
        """
        raw = self.learner.errors(batch.states, batch.actions, batch.next_states)  # (T, N)
        warming = self.normalizer.warming_up
        rewarded = self.normalizer(raw, batch.dones)  # (T, N), zeros while warming up
        normalised = self.normalizer.normalize(raw)  # what the critic learns, also during the warm-up
        device = self.device
        t_len, n_envs = raw.shape
        with torch.no_grad():
            z = self.source.features(batch.states).to(device)  # (T*N, D)
            z_last = self.source.features(batch.final_states).to(device)  # (N, D)
            values = self.critic(z).float().reshape(t_len, n_envs).cpu().numpy()
            last_values = self.critic(z_last).float().cpu().numpy()
        dones = batch.dones if self.normalizer.episodic else None
        adv, returns = compute_gae(normalised, values, last_values, dones, self.gamma, self.gae_lambda)
        self._critic_data = (z, torch.from_numpy(returns.reshape(-1)).to(device))
        self.last_stats = {
            "intrinsic_raw_mean": float(raw.mean()),
            "intrinsic_mean": float(rewarded.mean()),
            "intrinsic_std": float(rewarded.std()),
            "intrinsic_return_std": self.normalizer.return_std,
            "intrinsic_warming_up": float(warming),
            "intrinsic_advantage_std": float(adv.std()),
        }
        if self.tv_view is not None:
            self.last_stats.update(tv_split(raw, normalised, self.tv_view, batch.next_states))
        if warming or self.intrinsic_coef == 0:
            return np.zeros_like(adv)
        return (self.intrinsic_coef * adv).astype(np.float32)

    def update(self, batch: Transitions) -> dict[str, float]:
        """Train the learner on the rollout and the critic on its intrinsic returns; return the rollout's statistics."""
        stats = dict(self.last_stats)
        stats.update(self.learner.update(batch.states, batch.actions, batch.next_states, self.rng))
        if self._critic_data is not None:
            z, returns = self._critic_data
            stats["intrinsic_value_loss"] = self.critic.fit(
                self.critic_optimizer, z, returns, self.critic_epochs, self.critic_batch_size, self.torch_generator
            )
            self._critic_data = None
        self.last_stats = stats
        return stats

    def reset(self) -> None:
        """The reward's distribution changes by design (the phase switch): forget the normaliser's statistics, and
        re-initialise the intrinsic critic and its optimiser (their values are in the old return scale); both
        re-warm during the next ``warmup_rollouts`` rollouts."""
        self.normalizer.reset()
        self.resets += 1
        self.critic.reset_parameters(self.seed + self.resets)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=self.critic_lr)

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "torch_generator": self.torch_generator.get_state(),
            "resets": self.resets,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.critic.load_state_dict(state["critic"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.torch_generator.set_state(state["torch_generator"])
        self.resets = int(state.get("resets", 0))


__all__ = ["Curiosity", "CuriosityLearner", "RolloutRecorder", "Transitions", "core_states", "tv_split"]
