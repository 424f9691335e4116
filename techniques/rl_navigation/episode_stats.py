"""Episode counting and navigation metrics of finished episodes, collected during training.

The two-phase schedule is driven by episode counts, so every finished episode is counted here (one per
``done``, fed by :class:`~techniques.rl_navigation.curiosity.RolloutRecorder`), together with its ``info``
metrics (success, success at 0/1/2 cells, SPL, soft-SPL, coverage, path length, distance to goal at the end, the
fraction of steps with the TV in view, remote presses) and its return and length (``info["episode"]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.stepping import SUCCESS_DISTANCES

EPISODE_METRICS: tuple[str, ...] = (
    "is_success",
    *(f"success_within_{k}" for k in SUCCESS_DISTANCES),
    "spl",
    "soft_spl",
    "coverage",
    "path_length",
    "distance_to_goal",
    "tv_fraction",
    "remote_presses",
)


class EpisodeStats:
    """Counts finished episodes and buffers their metrics until :meth:`pop` (called once per rollout)."""

    def __init__(self) -> None:
        self.episodes = 0
        self._pending: dict[str, list[float]] = {}
        self._reset_pending()

    def _reset_pending(self) -> None:
        self._pending = {key: [] for key in (*EPISODE_METRICS, "return", "length")}

    def add_episode(self, info: dict[str, Any]) -> None:
        """Count one finished episode from its last ``info``."""
        self.episodes += 1
        for key in EPISODE_METRICS:
            self._pending[key].append(float(info[key]))
        episode = info.get("episode", {})
        self._pending["return"].append(float(episode.get("r", np.nan)))
        self._pending["length"].append(float(episode.get("l", np.nan)))

    def pop(self) -> dict[str, np.ndarray]:
        """Metrics of the episodes finished since the last call (arrays, possibly empty); clears the buffer."""
        out = {key: np.asarray(values, dtype=np.float64) for key, values in self._pending.items()}
        self._reset_pending()
        return out


__all__ = ["EPISODE_METRICS", "EpisodeStats"]
