"""Intrinsic-reward normalisation and advantages for episodic or non-episodic intrinsic returns.

The raw intrinsic reward (a forward model's prediction error) has an arbitrary, drifting scale: it shrinks as
the model learns and jumps when the encoder is unfrozen. As in RND, each reward is divided by a running std of
the *intrinsic discounted return* (not of the reward itself), estimated from a per-environment
:class:`~techniques.rl_navigation.running_stats.RewardForwardFilter`. The statistics are reset and re-warmed
(``warmup_rollouts`` rollouts that only update the statistics and give no reward) when the reward's
distribution changes by design, i.e. at the phase switch; otherwise the large count accumulated in phase 1
would keep the std stale for most of phase 2.

**Non-episodic intrinsic returns are the default** (``episodic=False``): curiosity about what lies beyond the
end of an episode still counts, so ending an episode early (a time-out, or a success) is not a way to
escape intrinsic value, and the intrinsic return does not depend on episode boundaries that the agent
cannot observe (Burda et al. 2018, Sec. 2.3, found this better for exploration). Extrinsic returns stay
episodic. ``episodic=True`` cuts the intrinsic return at every episode end (the classic ICM setup, where the
intrinsic reward is simply added to the extrinsic one).

Reference: Burda et al. 2018, "Exploration by Random Network Distillation" (arXiv:1810.12894);
Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage Estimation".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.running_mean_std import RunningMeanStd

from techniques.rl_navigation.running_stats import RewardForwardFilter


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray | None,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over a rollout.

    Args:
        rewards: ``(T, N)`` rewards of transitions ``t`` in each of ``N`` environments.
        values: ``(T, N)`` value estimates of the states the transitions start from.
        last_values: ``(N,)`` value of the state after the last transition.
        dones: ``(T, N)`` bool, ``True`` where transition ``t`` ended an episode (no bootstrapping across it);
            ``None`` for non-episodic returns (bootstrap everywhere).
        gamma: discount; ``gae_lambda``: GAE lambda.

    Returns:
        ``(advantages, returns)`` each ``(T, N)`` float32, ``returns = advantages + values``.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if rewards.shape != values.shape or rewards.ndim != 2:
        raise ValueError(f"rewards and values must both be (T, N), got {rewards.shape} and {values.shape}")
    t_len = rewards.shape[0]
    not_done = np.ones_like(rewards) if dones is None else 1.0 - np.asarray(dones, dtype=np.float64)
    advantages = np.zeros_like(rewards)
    last_gae = np.zeros(rewards.shape[1], dtype=np.float64)
    for t in reversed(range(t_len)):
        next_values = np.asarray(last_values, dtype=np.float64) if t == t_len - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_values * not_done[t] - values[t]
        last_gae = delta + gamma * gae_lambda * not_done[t] * last_gae
        advantages[t] = last_gae
    return advantages.astype(np.float32), (advantages + values).astype(np.float32)


class IntrinsicRewardNormalizer:
    """Divides raw intrinsic rewards by the running std of the intrinsic discounted return (RND).

    Args:
        n_envs: parallel environments.
        gamma: discount of the intrinsic return used by the forward filter.
        episodic: restart the filtered return at episode ends (see the module docstring; default ``False``).
        warmup_rollouts: after a :meth:`reset`, this many rollouts only update the statistics and get a
            normalised reward of 0.
        epsilon: added to the std.
    """

    def __init__(
        self, n_envs: int, gamma: float = 0.99, episodic: bool = False, warmup_rollouts: int = 1, epsilon: float = 1e-8
    ):
        if warmup_rollouts < 0:
            raise ValueError(f"warmup_rollouts must be >= 0, got {warmup_rollouts}")
        self.n_envs = int(n_envs)
        self.episodic = bool(episodic)
        self.warmup_rollouts = int(warmup_rollouts)
        self.epsilon = float(epsilon)
        self.filter = RewardForwardFilter(gamma, n_envs)
        self.return_rms = RunningMeanStd(shape=())
        self.rollouts_since_reset = 0

    def reset(self) -> None:
        """Forget the statistics (call at the phase switch); the next ``warmup_rollouts`` rollouts re-warm them."""
        self.filter.reset()
        self.return_rms = RunningMeanStd(shape=())
        self.rollouts_since_reset = 0

    @property
    def warming_up(self) -> bool:
        """Whether the next rollout only updates the statistics."""
        return self.rollouts_since_reset < self.warmup_rollouts

    def update(self, raw: np.ndarray, dones: np.ndarray | None = None) -> None:
        """Feed a rollout of raw rewards ``(T, N)`` (and ``dones (T, N)`` in episodic mode) to the statistics."""
        raw = np.asarray(raw, dtype=np.float64)
        if raw.ndim != 2 or raw.shape[1] != self.n_envs:
            raise ValueError(f"raw intrinsic rewards must be (T, {self.n_envs}), got {raw.shape}")
        returns = np.empty_like(raw)
        for t in range(raw.shape[0]):
            returns[t] = self.filter.update(raw[t], None if not self.episodic or dones is None else dones[t])
        self.return_rms.update(returns.reshape(-1))

    @property
    def return_std(self) -> float:
        """The running std of the intrinsic return."""
        return float(np.sqrt(self.return_rms.var))

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """``raw / (std of the intrinsic return + eps)``, float32, no statistics update."""
        return (np.asarray(raw, dtype=np.float64) / (self.return_std + self.epsilon)).astype(np.float32)

    def __call__(self, raw: np.ndarray, dones: np.ndarray | None = None) -> np.ndarray:
        """Update the statistics with one rollout ``(T, N)`` and return its normalised rewards (zeros while warming)."""
        warming = self.warming_up
        self.update(raw, dones)
        self.rollouts_since_reset += 1
        if warming:
            return np.zeros(np.shape(raw), dtype=np.float32)
        return self.normalize(raw)

    def state_dict(self) -> dict[str, Any]:
        rms = self.return_rms
        return {
            "filter": self.filter.state_dict(),
            "return_rms": {"mean": float(rms.mean), "var": float(rms.var), "count": float(rms.count)},
            "rollouts_since_reset": self.rollouts_since_reset,
            "episodic": self.episodic,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.filter.load_state_dict(state["filter"])
        saved = state["return_rms"]
        self.return_rms.mean = np.asarray(saved["mean"], dtype=np.float64).reshape(())
        self.return_rms.var = np.asarray(saved["var"], dtype=np.float64).reshape(())
        self.return_rms.count = float(saved["count"])
        self.rollouts_since_reset = int(state["rollouts_since_reset"])


__all__ = ["IntrinsicRewardNormalizer", "compute_gae"]
