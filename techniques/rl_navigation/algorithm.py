"""PPO with curiosity, extending Stable-Baselines3 the way the sb3-contrib algorithms do: a subclass that overrides
``collect_rollouts``.

``collect_rollouts`` runs the algorithm's own loop over a :class:`~techniques.rl_navigation.curiosity.RolloutRecorder`
(the env wrapper that records the agents' transitions), then adds the rollout's intrinsic advantages to the extrinsic
ones SB3 computed: ``A = e * A_ext + c * A_int`` (``e`` = ``extrinsic_coef``; the buffer's returns, which PPO's critic
regresses, stay extrinsic). ``train`` is the algorithm's own update. The loop around them (SB3's ``learn``, unrolled:
budgets, run-long schedules, the curiosity learner's update, the phase switch) is
:meth:`techniques.rl_navigation.trainer.TwoPhaseTrainer.train`.

:class:`CuriosityPPO` extends SB3's PPO, :class:`CuriosityRecurrentPPO` sb3-contrib's RecurrentPPO (an LSTM
policy, ``--policy lstm``) with the same mixin: both keep their own ``collect_rollouts`` loop and ``train``.

Everything a bit-exact resume needs from the algorithm is in :meth:`CuriosityMixin.training_state` (counters,
progress, the last observations' episode starts, the LSTM states); the curiosity state is
``curiosity.state_dict()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from techniques.rl_navigation.curiosity import Curiosity, RolloutRecorder


class CuriosityMixin:
    """Curiosity for an SB3 on-policy algorithm (see the module docstring).

    Mixed in before the algorithm class (``class CuriosityPPO(CuriosityMixin, PPO)``).

    Args:
        policy, env, **kwargs: as the algorithm's; ``env`` must be a :class:`RolloutRecorder` (or ``None`` when
            SB3's ``load`` rebuilds the model).
        curiosity: the intrinsic reward (``None``: extrinsic-only).
        extrinsic_coef: ``e``, the weight of the extrinsic advantages (0: pure curiosity).
    """

    recorder: RolloutRecorder
    curiosity: Curiosity | None
    extrinsic_coef: float
    last_rollout_stats: dict[str, float]

    def __init__(
        self,
        policy: Any,
        env: RolloutRecorder | None,
        curiosity: Curiosity | None = None,
        extrinsic_coef: float = 1.0,
        **kwargs: Any,
    ):
        if env is not None and not isinstance(env, RolloutRecorder):
            raise ValueError(f"{type(self).__name__} needs its env wrapped in a RolloutRecorder, got {type(env)}")
        if extrinsic_coef < 0:
            raise ValueError(f"need extrinsic_coef >= 0, got {extrinsic_coef}")
        self.recorder = env
        self.curiosity = curiosity
        self.extrinsic_coef = float(extrinsic_coef)
        self.last_rollout_stats = {}
        super().__init__(policy, env, **kwargs)

    def learn_rollouts(self, n_rollouts: int, callback: BaseCallback | None = None) -> Any:
        """SB3's ``learn`` for exactly ``n_rollouts`` rollouts: collection (with the intrinsic advantages) and the
        algorithm's update, without the curiosity learner's (tests; a run trains in ``TwoPhaseTrainer.train``)."""
        steps = int(n_rollouts) * self.n_steps * self.n_envs
        return self.learn(total_timesteps=steps, callback=callback, reset_num_timesteps=self.num_timesteps == 0)

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, rollout_buffer: Any, n_rollout_steps: int) -> bool:
        """SB3's rollout, recorded, then ``A = e * A_ext + c * A_int`` in the buffer (``False``: a callback stopped)."""
        self.recorder.start_rollout(n_rollout_steps)
        if not super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps):
            return False
        self.last_rollout_stats = {"extrinsic_advantage_std": float(np.std(rollout_buffer.advantages))}
        if self.extrinsic_coef != 1.0:
            rollout_buffer.advantages *= self.extrinsic_coef
        if self.curiosity is not None:
            rollout_buffer.advantages += self.curiosity.rollout_advantages(self.recorder.batch())
        return True

    def refresh_observations(self) -> None:
        """Take the next rollout's first observations anew from the env (after its features were refreshed)."""
        self._last_obs = self.recorder.observe()

    # ------------------------------------------------------------------------------------------ state
    @property
    def n_updates(self) -> int:
        """Gradient steps of the algorithm's updates so far (SB3's counter)."""
        return int(self._n_updates)

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
        """Restore :meth:`training_state` (before the next rollout), after the env's own state: the next
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
        return [*super()._excluded_save_params(), "recorder", "curiosity"]


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
