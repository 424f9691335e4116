"""PPO with curiosity, extending Stable-Baselines3 the way the sb3-contrib algorithms do: a subclass that overrides
``collect_rollouts`` and ``train``.

- ``collect_rollouts`` runs SB3's own loop over a :class:`~techniques.rl_navigation.curiosity.RolloutRecorder`
  (the env wrapper that records the agents' transitions), then adds the rollout's intrinsic advantages to the
  extrinsic ones SB3 computed: ``A = e * A_ext + c * A_int`` (``e`` = ``extrinsic_coef``; the buffer's returns,
  which PPO's critic regresses, stay extrinsic). It returns ``False``, which ends ``learn``, once the phase's
  budget is spent: ``budget_unit`` is ``"episodes"`` (finished episodes) or ``"steps"`` (environment steps, so the
  budget is met to the rollout), counted over the whole run; ``learn`` runs once per phase.
- ``train`` is PPO's update, then the curiosity learner's and the intrinsic critic's (and, in phase 2, the
  encoder's and the feature refresh through ``Curiosity.after_update``), then the ``on_update_end`` hook
  (logging, checkpoints).
- ``progress_remaining`` is ``1 - progress / total_budget`` over the whole run (in the budget's unit), so
  learning-rate and clip-range schedules follow the run (SB3 would otherwise measure it against one ``learn`` call's
  timesteps).

:class:`CuriosityPPO` extends SB3's PPO, :class:`CuriosityRecurrentPPO` sb3-contrib's RecurrentPPO (an LSTM
policy, ``--policy lstm``) with the same mixin: both keep their own ``collect_rollouts`` loop and ``train``.

Everything a bit-exact resume needs from the algorithm is in :meth:`CuriosityMixin.training_state` (counters,
progress, the last observations' episode starts, the LSTM states); the curiosity state is
``curiosity.state_dict()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from techniques.rl_navigation.curiosity import Curiosity, RolloutRecorder, Transitions


class CuriosityMixin:
    """Curiosity, episode budgets and run-long progress for an SB3 on-policy algorithm (see the module docstring).

    Mixed in before the algorithm class (``class CuriosityPPO(CuriosityMixin, PPO)``).

    Args:
        policy, env, **kwargs: as the algorithm's; ``env`` must be a :class:`RolloutRecorder` (or ``None`` when
            SB3's ``load`` rebuilds the model).
        curiosity: the intrinsic reward (``None``: extrinsic-only).
        extrinsic_coef: ``e``, the weight of the extrinsic advantages (0: pure curiosity).
        budget_unit: ``"episodes"`` or ``"steps"``: what the budgets count.
        total_budget: the whole run's budget in that unit (the denominator of ``progress_remaining``).
    """

    recorder: RolloutRecorder
    curiosity: Curiosity | None
    extrinsic_coef: float
    budget_unit: str
    total_budget: int
    phase_budget: int
    on_update_end: Callable[[], None] | None
    last_rollout_stats: dict[str, float]

    def __init__(
        self,
        policy: Any,
        env: RolloutRecorder | None,
        curiosity: Curiosity | None = None,
        extrinsic_coef: float = 1.0,
        budget_unit: str = "episodes",
        total_budget: int = 1,
        **kwargs: Any,
    ):
        if env is not None and not isinstance(env, RolloutRecorder):
            raise ValueError(f"{type(self).__name__} needs its env wrapped in a RolloutRecorder, got {type(env)}")
        if extrinsic_coef < 0 or total_budget < 1 or budget_unit not in ("episodes", "steps"):
            raise ValueError(
                "need extrinsic_coef >= 0, total_budget >= 1 and budget_unit 'episodes' or 'steps', got "
                f"{extrinsic_coef}, {total_budget}, {budget_unit!r}"
            )
        self.recorder = env
        self.curiosity = curiosity
        self.extrinsic_coef = float(extrinsic_coef)
        self.budget_unit = budget_unit
        self.total_budget = int(total_budget)
        self.phase_budget = int(total_budget)
        self.on_update_end = None
        self.last_rollout_stats = {}
        self._rollout: Transitions | None = None
        self._stop_requested = False
        super().__init__(policy, env, **kwargs)

    # ------------------------------------------------------------------------------------------ running
    @property
    def progress(self) -> int:
        """The run's progress in the budget's unit: finished episodes or environment steps."""
        return int(self.recorder.episodes if self.budget_unit == "episodes" else self.num_timesteps)

    def learn_budget(self, budget: int, callback: BaseCallback | None = None) -> Any:
        """``learn`` until the run's progress reaches ``budget`` (episodes or steps, counted over the whole run).

        Rollouts are whole, so a step budget ends at the first rollout boundary at or past it. The
        ``total_timesteps`` handed to SB3 is an upper bound on the steps this can take (for episodes: each remaining
        episode lasts at most the time limit); the budget ends the loop first.
        """
        self.phase_budget = int(budget)
        remaining = max(self.phase_budget - self.progress, 0)
        rollout = self.n_steps * self.n_envs
        if self.budget_unit == "steps":
            bound = math.ceil(remaining / rollout) * rollout
        else:
            per_agent = math.ceil(remaining / self.n_envs)
            bound = (per_agent * self.recorder.core.max_episode_steps + self.n_steps) * self.n_envs
        return self.learn(total_timesteps=bound, callback=callback, reset_num_timesteps=self.num_timesteps == 0)

    def learn_rollouts(self, n_rollouts: int, callback: BaseCallback | None = None) -> Any:
        """``learn`` for exactly ``n_rollouts`` rollouts whatever the budget (benchmarks, tests)."""
        budget, self.phase_budget = self.phase_budget, np.iinfo(np.int64).max
        try:
            steps = int(n_rollouts) * self.n_steps * self.n_envs
            return self.learn(total_timesteps=steps, callback=callback, reset_num_timesteps=self.num_timesteps == 0)
        finally:
            self.phase_budget = budget

    def request_stop(self) -> None:
        """End ``learn`` at the next rollout boundary (after the current rollout and its updates); what Ctrl-C and
        SIGTERM do. The state there is a checkpoint's: a run resumed from it continues exactly."""
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, rollout_buffer: Any, n_rollout_steps: int) -> bool:
        if self._stop_requested or self.progress >= self.phase_budget:
            return False
        self.recorder.start_rollout(n_rollout_steps)
        if not super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps):
            return False
        batch = self.recorder.batch()
        stats = {"extrinsic_advantage_std": float(np.std(rollout_buffer.advantages))}
        if self.extrinsic_coef != 1.0:
            rollout_buffer.advantages *= self.extrinsic_coef
        if self.curiosity is not None:
            rollout_buffer.advantages += self.curiosity.rollout_advantages(batch)
        self.last_rollout_stats = stats
        self._rollout = batch
        return True

    def train(self) -> None:
        super().train()
        if self.curiosity is not None and self._rollout is not None:
            self.curiosity.update(self._rollout)
        self._rollout = None
        if self.on_update_end is not None:
            self.on_update_end()

    def refresh_observations(self) -> None:
        """Take the next rollout's first observations anew from the env (after its features were refreshed)."""
        self._last_obs = self.recorder.observe()

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        """Progress over the whole run, in the budget's unit (SB3 calls this after each rollout)."""
        super()._update_current_progress_remaining(self.progress, self.total_budget)

    # ------------------------------------------------------------------------------------------ state
    def training_state(self) -> dict[str, Any]:
        """Counters and progress of the run (for checkpoints; the policy itself is saved by ``save``)."""
        return {
            "num_timesteps": int(self.num_timesteps),
            "n_updates": int(self._n_updates),
            "episodes": int(self.recorder.episodes),
            "progress_remaining": float(self._current_progress_remaining),
            "last_episode_starts": None if self._last_episode_starts is None else self._last_episode_starts.tolist(),
            "lstm_states": _states_to_lists(getattr(self, "_last_lstm_states", None)),
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`training_state` (before the next ``learn_budget``), after the env's own state: the next
        rollout starts from the env's current observations (its episodes in progress), not from a reset."""
        self.num_timesteps = int(state["num_timesteps"])
        self._n_updates = int(state["n_updates"])
        self.recorder.stats.episodes = int(state["episodes"])
        self._current_progress_remaining = float(state["progress_remaining"])
        if state.get("last_episode_starts") is not None:
            self._last_episode_starts = np.asarray(state["last_episode_starts"], dtype=bool)
        if state.get("lstm_states") is not None:
            self._last_lstm_states = _states_from_lists(state["lstm_states"])
        self.refresh_observations()

    def _excluded_save_params(self) -> list[str]:
        excluded = ["recorder", "curiosity", "on_update_end", "_rollout", "_stop_requested"]
        return [*super()._excluded_save_params(), *excluded]


class CuriosityPPO(CuriosityMixin, PPO):
    """SB3 PPO with curiosity (see the module docstring; arguments as :class:`CuriosityMixin`)."""


class CuriosityRecurrentPPO(CuriosityMixin, RecurrentPPO):
    """sb3-contrib RecurrentPPO (an LSTM policy) with curiosity (arguments as :class:`CuriosityMixin`)."""


def _states_to_lists(states: Any) -> list[list[torch.Tensor]] | None:
    """sb3-contrib's ``RNNStates`` ``((h_pi, c_pi), (h_vf, c_vf))`` as lists of tensor copies (a checkpoint read with
    ``weights_only=True`` cannot hold the namedtuple), or ``None``."""
    if states is None:
        return None
    return [[t.detach().clone() for t in pair] for pair in states]


def _states_from_lists(states: list[list[torch.Tensor]]) -> Any:
    """Inverse of :func:`_states_to_lists`."""
    from sb3_contrib.common.recurrent.type_aliases import RNNStates

    return RNNStates(*(tuple(t.clone() for t in pair) for pair in states))


__all__ = ["CuriosityMixin", "CuriosityPPO", "CuriosityRecurrentPPO"]
