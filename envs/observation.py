"""What the agents see: the observation and action spaces of :class:`~envs.core.NavCore` and its observation
arrays (window-mean or window features with the goal's, or rotated pixel crops; position and heading).

- :func:`rotated_offsets`: the cell offsets of a view turned to each heading (egocentric windows).
- :class:`ObservationMixin`: :meth:`~ObservationMixin.observe` and the spaces, mixed into :class:`~envs.core.NavCore`;
  it reads the core's per-agent arrays and the feature views the core binds (``_wm``, ``_grid``, ``_goal_vecs``,
  ``_crops_of``).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.rendering import HEADING_DELTAS

#: Observation features are clipped to ``[-FEATURE_BOUND, FEATURE_BOUND]`` (the Box bounds; never reached by
#: layer-normed encoder features in practice).
FEATURE_BOUND = 1.0e4
_EYE4 = np.eye(4, dtype=np.float32)


def rotated_offsets(size: int, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``(4, size, size)`` (rows, cols) of a ``size``-square view centred on a ``cell``-sized cell.

    Entry ``[heading, a, b]`` is the offset (from the cell's top-left pixel/cell) of the view's pixel ``(a, b)``
    when row 0 of the view is straight ahead for that heading; heading 0 (up) is the unrotated north-up view.
    """
    a, b = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    two_f = (size - 1) - 2 * a  # twice the forward offset from the view centre
    two_l = 2 * b - (size - 1)  # twice the offset to the right
    rights = ((0, 1), (1, 0), (0, -1), (-1, 0))
    dr = np.empty((4, size, size), dtype=np.int64)
    dc = np.empty((4, size, size), dtype=np.int64)
    for h in range(4):
        fr, fc = HEADING_DELTAS[h]
        rr, rc = rights[h]
        dr[h] = ((cell - 1) + two_f * fr + two_l * rr) // 2
        dc[h] = ((cell - 1) + two_f * fc + two_l * rc) // 2
    return dr, dc


class ObservationMixin:
    """The observation side of :class:`~envs.core.NavCore` (mixed in; uses its config, world and agent arrays)."""

    # ------------------------------------------------------------------------------------------ spaces
    def observation_space(self) -> spaces.Dict:
        """The observation space of one agent."""
        cfg = self.config
        items: dict[str, spaces.Space] = {}
        if cfg.observation == "pixels":
            shape = (self.crop, self.crop, 3)
            items["pixels"] = spaces.Box(0, 255, shape, np.uint8)
            items["goal_pixels"] = spaces.Box(0, 255, shape, np.uint8)
        else:
            d = self.world.features.dim
            shape = (d,) if cfg.observation == "mean" else (self.window, self.window, d)
            items["features"] = spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, shape, np.float32)
            items["goal"] = spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (d,), np.float32)
        if cfg.include_position:
            items["position"] = spaces.Box(0.0, 1.0, (2,), np.float32)
        if cfg.include_heading:
            items["heading"] = spaces.Box(0.0, 1.0, (4,), np.float32)
        return spaces.Dict(items)

    def action_space(self) -> spaces.Discrete:
        return spaces.Discrete(self.config.n_actions)

    # ------------------------------------------------------------------------------------------ observing
    def observe(self, agents: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Fresh observation arrays ``(n, ...)`` for ``agents`` (default all), keyed like :meth:`observation_space`."""
        cfg = self.config
        idx = self._all if agents is None else np.asarray(agents, dtype=np.int64)
        s, v, r, c = self.agents.scene[idx], self.agents.variant[idx], self.agents.row[idx], self.agents.col[idx]
        heading = self.agents.heading[idx] if cfg.actions == "egocentric" else np.zeros_like(idx)
        obs: dict[str, np.ndarray] = {}
        if cfg.observation == "pixels":
            obs["pixels"] = self._crops(s, v, r, c, heading)
            if cfg.task == "imagenav":
                obs["goal_pixels"] = self.agents.goal_pixels[idx]
            else:
                obs["goal_pixels"] = self._goal_pixel_table[self.agents.goal_vec[idx]]
        else:
            base = s * self.n_variants + v
            if cfg.observation == "mean":
                feats = self._wm[(base * self.h + r) * self.w + c]  # (n, D)
            else:
                feats = self._windows(base, r, c, heading)  # (n, K, K, D)
            obs["features"] = self._as_obs(feats)
            if cfg.task == "imagenav":
                goal = self._wm[
                    ((s * self.n_variants) * self.h + self.agents.goal_row[idx]) * self.w + self.agents.goal_col[idx]
                ]
            else:
                goal = self._goal_vecs[self.agents.goal_vec[idx]]
            obs["goal"] = self._as_obs(goal)
        if cfg.include_position:
            pos = np.stack([r / max(self.h - 1, 1), c / max(self.w - 1, 1)], axis=1)
            obs["position"] = pos.astype(np.float32)
        if cfg.include_heading:
            obs["heading"] = _EYE4[self.agents.heading[idx]]
        return obs

    @staticmethod
    def _as_obs(x: np.ndarray) -> np.ndarray:
        out = x.astype(np.float32, copy=x.dtype != np.float32)
        np.minimum(out, FEATURE_BOUND, out=out)
        return np.maximum(out, -FEATURE_BOUND, out=out)

    def _windows(self, base: np.ndarray, r: np.ndarray, c: np.ndarray, heading: np.ndarray) -> np.ndarray:
        rr = r[:, None, None] + self._win_dr[heading]  # (n, K, K)
        cc = c[:, None, None] + self._win_dc[heading]
        valid = (rr >= 0) & (rr < self.h) & (cc >= 0) & (cc < self.w)
        lin = (base[:, None, None] * self.h + rr.clip(0, self.h - 1)) * self.w + cc.clip(0, self.w - 1)
        out = self._grid[lin]  # (n, K, K, D)
        out[~valid] = 0
        return out

    def _crops(self, s: np.ndarray, v: np.ndarray, r: np.ndarray, c: np.ndarray, heading: np.ndarray) -> np.ndarray:
        """``(n, P, P, 3)`` uint8 pixel crops around cells, rotated to ``heading``; outside the image is black."""
        out = self._crops_of(s, v, r, c)  # (n, P, P, 3), north-up
        for k in (1, 2, 3):  # row 0 of the crop is straight ahead: heading k is the north-up crop turned k times
            turned = heading == k
            if turned.any():
                out[turned] = np.rot90(out[turned], k, axes=(1, 2))
        return out


__all__ = ["FEATURE_BOUND", "ObservationMixin", "rotated_offsets"]
