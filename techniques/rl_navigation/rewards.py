"""A dense goal-distance reward baseline: the step's decrease in feature distance to the goal.

``r_t += scale * (d(s_t) - d(s_{t+1}))`` with ``d(s) = 1 - cos(view(s), goal)``, where ``view`` is the
observed window's features summed over its cells (the direction of the clipped window mean; cells outside the
scene are zero) and ``goal`` the goal's features. The agent is paid for every step that makes what it sees look
more like the goal, in the spirit of VIP's embedding-distance reward; it needs no privileged map or distance
(compare ``--distance-reward-scale``, which uses the true geodesic distance).

Reference: Ma et al. 2022, "VIP: Towards Universal Visual Reward and Representation via Value-Implicit
Pre-Training" (reward as the decrease of an embedding distance to the goal).
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn


def goal_feature_distance(obs: dict[str, np.ndarray]) -> np.ndarray:
    """``(N,)`` cosine distance between the observed features (summed over a window) and the goal's."""
    goal = np.asarray(obs["goal"], dtype=np.float64)  # (N, D)
    view = np.asarray(obs["features"], dtype=np.float64).reshape(len(goal), -1, goal.shape[-1]).sum(1)  # (N, D)
    cos = (view * goal).sum(-1) / (np.linalg.norm(view, axis=-1) * np.linalg.norm(goal, axis=-1) + 1e-8)
    return 1.0 - cos


class GoalDistanceReward(VecEnvWrapper):
    """Adds ``scale * (d_prev - d_now)`` to every reward (see the module docstring).

    Args:
        venv: a feature-observation env (keys ``features`` and ``goal``).
        scale: the reward per unit of cosine distance gained.
    """

    def __init__(self, venv: VecEnv, scale: float):
        keys = getattr(venv.observation_space, "spaces", {})
        if "features" not in keys or "goal" not in keys:
            raise ValueError("the goal-distance reward needs feature observations (keys 'features' and 'goal')")
        super().__init__(venv)
        self.scale = float(scale)
        self._distance: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        obs = self.venv.reset()
        self._distance = goal_feature_distance(obs)
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        reached = goal_feature_distance(obs)  # after automatic resets for finished agents
        now = reached.copy()
        for i in np.flatnonzero(dones):  # the finished episode's last step ends at its terminal observation
            terminal = {key: value[None] for key, value in infos[i]["terminal_observation"].items()}
            now[i] = goal_feature_distance(terminal)[0]
        rewards = rewards + (self.scale * (self._distance - now)).astype(rewards.dtype)
        self._distance = reached
        return obs, rewards, dones, infos

    def observe(self) -> VecEnvObs:
        """Current observations; the distance the next step is measured from is taken anew (features refreshed)."""
        obs = self.venv.observe()
        self._distance = goal_feature_distance(obs)
        return obs


__all__ = ["GoalDistanceReward", "goal_feature_distance"]
