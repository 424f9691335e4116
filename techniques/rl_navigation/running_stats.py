"""Running statistics for reward normalisation: a parallel-update mean/variance and RND's reward forward filter.

Reference: Burda et al. 2018, "Exploration by Random Network Distillation" (``RewardForwardFilter`` and the
running std of the intrinsic return); Chan, Golub & LeVeque 1979 (parallel variance update).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningMeanStd:
    """Mean and variance of a stream of arrays, updated batch by batch (exact, order independent).

    Args:
        shape: shape of one sample (``()`` for scalars).
        epsilon: initial pseudo-count, so ``var`` is defined before any update (mean 0, var 1).
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.shape = tuple(shape)
        self.epsilon = float(epsilon)
        self.reset()

    def reset(self) -> None:
        """Forget every sample (mean 0, var 1, count ``epsilon``)."""
        self.mean = np.zeros(self.shape, dtype=np.float64)
        self.var = np.ones(self.shape, dtype=np.float64)
        self.count = self.epsilon

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    def update(self, x: np.ndarray) -> None:
        """Add a batch ``x`` of shape ``(B, *shape)``."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, *self.shape)
        if len(x) == 0:
            return
        self.update_from_moments(x.mean(axis=0), x.var(axis=0), len(x))

    def update_from_moments(self, batch_mean: np.ndarray, batch_var: np.ndarray, batch_count: int) -> None:
        """Merge a batch given by its mean, (population) variance and size."""
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": float(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = np.asarray(state["mean"], dtype=np.float64).reshape(self.shape)
        self.var = np.asarray(state["var"], dtype=np.float64).reshape(self.shape)
        self.count = float(state["count"])


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


__all__ = ["RewardForwardFilter", "RunningMeanStd"]
