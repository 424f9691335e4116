"""RND's reward forward filter: the running discounted intrinsic return whose std normalises the intrinsic reward
(the running std itself is SB3's ``RunningMeanStd``).

Reference: Burda et al. 2018, "Exploration by Random Network Distillation".
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RewardForwardFilter:
    """Per-environment discounted sum of rewards ``R_t = gamma * R_{t-1} + r_t`` (RND's reward forward filter).

    Its values estimate the (non-episodic) intrinsic return; their running std normalises the intrinsic reward.
    With ``episodic=True`` the sum restarts after every episode end (``dones``).

    Args:
        gamma: discount of the intrinsic return.
        n_envs: number of parallel environments (one running sum each).
    """

    def __init__(self, gamma: float, n_envs: int):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.gamma = float(gamma)
        self.n_envs = int(n_envs)
        self.reset()

    def reset(self) -> None:
        self.rewems = np.zeros(self.n_envs, dtype=np.float64)

    def update(self, rewards: np.ndarray, dones: np.ndarray | None = None) -> np.ndarray:
        """One step for all environments: ``rewards (n_envs,)`` -> running sums ``(n_envs,)`` (a copy).

        ``dones (n_envs,)`` (episodic mode only) marks environments whose episode ended *at this step*: their sum
        includes this reward and restarts from 0 at the next step.
        """
        self.rewems = self.rewems * self.gamma + np.asarray(rewards, dtype=np.float64)
        out = self.rewems.copy()
        if dones is not None:
            self.rewems = np.where(np.asarray(dones, dtype=bool), 0.0, self.rewems)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"rewems": self.rewems.tolist(), "gamma": self.gamma}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rewems = np.asarray(state["rewems"], dtype=np.float64)
        if rewems.shape != (self.n_envs,):
            raise ValueError(
                f"saved reward filter has {rewems.shape[0]} environments but this run has {self.n_envs}; "
                f"resume with the same --n-envs"
            )
        self.rewems = rewems.copy()


__all__ = ["RewardForwardFilter"]
