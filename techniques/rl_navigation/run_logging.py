"""What a two-phase run writes to TensorBoard, besides the scalars SB3 logs itself.

- :class:`SummaryWriterFormat`: forwards SB3's logger records (``train/*``, ``rollout/*``, ``time/*``) to the run's
  writer.
- :func:`rollout_scalars`: the per-rollout scalars of :class:`~techniques.rl_navigation.trainer.TwoPhaseTrainer`
  (``charts/*`` episode metrics, ``curiosity/*``, ``tv/*``, ``losses/*``, ``encoder/*``); :func:`log_trajectories`:
  the ``trajectories/*`` image of the last episodes.
- :func:`hparams_markdown`: the resolved config as a markdown table (the ``hparams`` text).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.logger import KVWriter

from encoders.utils.config import config_to_dict, flatten_keys
from techniques.rl_navigation.config import TwoPhaseConfig
from techniques.rl_navigation.episode_stats import EPISODE_METRICS
from techniques.rl_navigation.evaluation import trajectory_grid

#: Per-rollout statistics of the noisy TV, logged under ``tv/`` (:func:`techniques.rl_navigation.curiosity.tv_split`).
TV_KEYS: tuple[str, ...] = (
    "tv_transitions",
    "intrinsic_raw_tv",
    "intrinsic_raw_elsewhere",
    "intrinsic_tv_ratio",
    "intrinsic_normalised_tv",
    "intrinsic_normalised_elsewhere",
)
#: TensorBoard names of episode metrics under ``charts/`` (others keep their info key).
_CHART_TAGS = {"is_success": "success_rate", "tv_fraction": "time_in_tv"}


class SummaryWriterFormat(KVWriter):
    """Forwards SB3's logger records (``train/*``, ``rollout/*``, ``time/*``) to our TensorBoard writer."""

    def __init__(self, writer: Any):
        self.writer = writer

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        for key, value in key_values.items():
            excluded = key_excluded.get(key) or ()
            if "tensorboard" in excluded or isinstance(value, (str, bool)):
                continue
            if isinstance(value, (int, float, np.integer, np.floating)) or (
                torch.is_tensor(value) and value.numel() == 1
            ):
                self.writer.add_scalar(key, float(value), step)

    def close(self) -> None:
        return None


#: TensorBoard tags of the per-rollout statistics of the algorithm, the curiosity and the phase-2 refresh.
STAT_TAGS: dict[str, str] = {
    **{
        k: f"curiosity/{k}"
        for k in (
            "intrinsic_mean",
            "intrinsic_std",
            "intrinsic_raw_mean",
            "intrinsic_return_std",
            "intrinsic_advantage_std",
            "extrinsic_advantage_std",
        )
    },
    **{k: f"tv/{k}" for k in TV_KEYS},  # with a noisy TV: the intrinsic reward at the TV and elsewhere
    "intrinsic_value_loss": "losses/intrinsic_value",
    "forward_loss": "losses/forward",
    "encoder_feature_std": "encoder/feature_std",
    "encoder_effective_rank": "encoder/effective_rank",
    "refresh_seconds": "encoder/refresh_seconds",
}


def rollout_scalars(
    phase: int, fps: float, episodes: int, finished: dict[str, np.ndarray], stats: dict[str, float]
) -> dict[str, float]:
    """One rollout's TensorBoard scalars: ``charts/*`` (the phase, fps, the run's episodes and the metrics of the
    ``finished`` episodes, :meth:`EpisodeStats.pop`) and the :data:`STAT_TAGS` of ``stats`` present."""
    scalars = {"charts/phase": phase, "charts/fps": fps, "charts/episodes": episodes}
    if len(finished["is_success"]):
        scalars["charts/episode_return"] = float(np.nanmean(finished["return"]))
        scalars["charts/episode_length"] = float(np.nanmean(finished["length"]))
        scalars.update({f"charts/{_CHART_TAGS.get(k, k)}": float(finished[k].mean()) for k in EPISODE_METRICS})
    scalars.update({tag: stats[key] for key, tag in STAT_TAGS.items() if key in stats})
    return scalars


def log_trajectories(writer: Any, env: Any, step: int, n: int = 8) -> None:
    """The ``trajectories/last_episodes`` image: the last finished episode of up to ``n`` agents of ``env``."""
    frames = [env.render_agent(i, "last") for i in range(min(n, env.num_envs))]
    frames = [f for f in frames if f is not None]
    if frames:
        writer.add_image("trajectories/last_episodes", trajectory_grid(frames), step, dataformats="HWC")


def hparams_markdown(cfg: TwoPhaseConfig) -> str:
    """Every field of ``cfg`` as a markdown table (TensorBoard's text tab)."""
    return "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in flatten_keys(config_to_dict(cfg)).items())


__all__ = ["STAT_TAGS", "SummaryWriterFormat", "hparams_markdown", "log_trajectories", "rollout_scalars"]
