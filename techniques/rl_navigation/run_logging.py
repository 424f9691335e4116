"""What a two-phase run writes to TensorBoard, besides the scalars SB3 logs itself.

- :class:`SummaryWriterFormat`: forwards SB3's logger records (``train/*``, ``rollout/*``, ``time/*``) to the run's
  writer.
- :class:`RunLoggingMixin`: the per-rollout scalars of :class:`~techniques.rl_navigation.trainer.TwoPhaseTrainer`
  (``charts/*`` episode metrics, ``curiosity/*``, ``tv/*``, ``losses/*``, ``encoder/*``) and the ``trajectories/*``
  image of the last episodes (mixed into the trainer; uses its counters, writer, recorder, model, curiosity and env).
- :func:`hparams_markdown`: the resolved config as a markdown table (the ``hparams`` text).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.logger import KVWriter

from encoders.utils.config import config_to_dict
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


class RunLoggingMixin:
    """TensorBoard records of :class:`~techniques.rl_navigation.trainer.TwoPhaseTrainer` (mixed in)."""

    def _log_encoder_stats(self, step: int) -> None:
        for key, value in self._encoder_stats().items():
            self.writer.add_scalar(f"encoder/{key}", value, step)

    def _log_rollout(self, fps: float) -> None:
        c, w = self.counters, self.writer
        step = c.steps
        w.add_scalar("charts/phase", c.phase, step)
        w.add_scalar("charts/fps", fps, step)
        w.add_scalar("charts/episodes", c.episodes, step)
        episodes = self.recorder.stats.pop()
        if len(episodes["is_success"]):
            w.add_scalar("charts/episode_return", float(np.nanmean(episodes["return"])), step)
            w.add_scalar("charts/episode_length", float(np.nanmean(episodes["length"])), step)
            for key in EPISODE_METRICS:
                tag = _CHART_TAGS.get(key, key)
                w.add_scalar(f"charts/{tag}", float(episodes[key].mean()), step)
        s = {**self.model.last_rollout_stats, **(self.curiosity.last_stats if self.curiosity is not None else {})}
        keys = (
            "intrinsic_mean",
            "intrinsic_std",
            "intrinsic_raw_mean",
            "intrinsic_return_std",
            "intrinsic_advantage_std",
            "extrinsic_advantage_std",
        )
        for key in keys:
            if key in s:
                w.add_scalar(f"curiosity/{key}", s[key], step)
        for key in TV_KEYS:  # with a noisy TV: the intrinsic reward at the TV and elsewhere (curiosity.tv_split)
            if key in s:
                w.add_scalar(f"tv/{key}", s[key], step)
        if self.curiosity is None:
            return
        if "intrinsic_value_loss" in s:
            w.add_scalar("losses/intrinsic_value", s["intrinsic_value_loss"], step)
        if "forward_loss" in s:
            w.add_scalar("losses/forward", s["forward_loss"], step)
        for key in ("feature_std", "effective_rank"):
            if f"encoder_{key}" in s:
                w.add_scalar(f"encoder/{key}", s[f"encoder_{key}"], step)
        if "refresh_seconds" in s:
            w.add_scalar("encoder/refresh_seconds", s["refresh_seconds"], step)

    def _log_trajectories(self, n: int = 8) -> None:
        frames = [self.env.render_agent(i, "last") for i in range(min(n, self.env.num_envs))]
        frames = [f for f in frames if f is not None]
        if frames:
            grid = trajectory_grid(frames)
            self.writer.add_image("trajectories/last_episodes", grid, self.counters.steps, dataformats="HWC")


def hparams_markdown(cfg: TwoPhaseConfig) -> str:
    rows = []

    def walk(d: dict, prefix: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                rows.append(f"|{prefix}{k}|{v}|")

    walk(config_to_dict(cfg))
    return "|param|value|\n|-|-|\n" + "\n".join(rows)


__all__ = ["RunLoggingMixin", "SummaryWriterFormat", "hparams_markdown"]
