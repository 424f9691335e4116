"""One array-level step of all agents of :class:`~envs.core.NavCore`: the move (grid or egocentric; the border
blocks it), the reward, termination, truncation and the info dicts (:data:`INFO_KEYS`, plus the episode summary and
``success_within_<k>`` for :data:`SUCCESS_DISTANCES` when an episode ends).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from envs import metrics
from envs.episodes import TV_BLOCK
from envs.rendering import HEADING_DELTAS

#: Distances (cells) at which ``success_within_<k>`` is reported in the info of an episode's last step.
SUCCESS_DISTANCES: tuple[int, ...] = (0, 1, 2)

_HEADING_DR = np.array([d[0] for d in HEADING_DELTAS], dtype=np.int64)
_HEADING_DC = np.array([d[1] for d in HEADING_DELTAS], dtype=np.int64)
# grid actions up/down/left/right, then one entry that stays (remote, stop): row and column step, and the heading
# they leave the agent with (-1: keep)
_GRID_DR = np.array([-1, 1, 0, 0, 0], dtype=np.int64)
_GRID_DC = np.array([0, 0, -1, 1, 0], dtype=np.int64)
_GRID_HEADING = np.array([0, 2, 3, 1, -1], dtype=np.int64)
# egocentric actions forward/turn_left/turn_right, then one entry that stays (remote, stop)
_EGO_TURN = np.array([0, -1, 1, 0], dtype=np.int64)
_EGO_FORWARD = np.array([1, 0, 0, 0], dtype=np.int64)

INFO_KEYS: tuple[str, ...] = (
    "is_success",
    "distance_to_goal",
    "spl",
    "soft_spl",
    "coverage",
    "path_length",
    "scene_index",
    "variant_index",
    "position",
    "heading",
    "tv_in_view",
)


class SteppingMixin:
    """The step of :class:`~envs.core.NavCore` (mixed in; uses its config, world and agent arrays)."""

    # ------------------------------------------------------------------------------------------ stepping
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Apply one action per agent. ``-> rewards (N,) float64, terminated (N,), truncated (N,), infos``.

        Every info holds ``distance_to_goal``, the shortest-path distance in cells, and ``spl``, whose shortest path
        ends at the success region (:func:`envs.metrics.success_path_length`: ``max(d0 - success_radius, 0)``
        moves). Infos of agents whose episode ended also carry ``info["episode"] = {"r", "l", "t"}``,
        ``info["tv_fraction"]`` (time-in-TV: the fraction of the episode's steps that ended with the TV inside the
        observed window), ``info["remote_presses"]`` (remote presses with the TV in view) and
        ``info["success_within_<k>"]`` for ``k`` in :data:`SUCCESS_DISTANCES`: with a STOP action, STOP called
        within ``k`` cells of the goal (habitat-lab's success at distance ``k``); without one, the episode ended
        within ``k`` cells.
        """
        cfg = self.config
        a = np.asarray(actions).astype(np.int64, copy=False).reshape(-1)
        if a.shape != (self.n,):
            raise ValueError(f"expected {self.n} actions, got an array of shape {np.shape(actions)}")
        if a.min() < 0 or a.max() >= cfg.n_actions:
            raise ValueError(f"actions must be in [0, {cfg.n_actions}) ({', '.join(cfg.action_names)}), got {a}")
        n_moves = len(_GRID_DR) - 1 if cfg.actions == "grid" else len(_EGO_TURN) - 1
        move = np.minimum(a, n_moves)  # remote and stop: the tables' last entry, which neither moves nor turns
        if cfg.actions == "grid":
            dr, dc = _GRID_DR[move], _GRID_DC[move]
            new_heading = _GRID_HEADING[move]
            self.agents.heading = np.where(new_heading >= 0, new_heading, self.agents.heading)
        else:
            self.agents.heading = (self.agents.heading + _EGO_TURN[move]) % 4
            forward = _EGO_FORWARD[move]
            dr, dc = _HEADING_DR[self.agents.heading] * forward, _HEADING_DC[self.agents.heading] * forward
        row = np.minimum(np.maximum(self.agents.row + dr, 0), self.h - 1)  # the border blocks the move
        col = np.minimum(np.maximum(self.agents.col + dc, 0), self.w - 1)
        self.agents.path_length += (row != self.agents.row) | (col != self.agents.col)
        self.agents.row, self.agents.col = row, col
        self.agents.steps += 1
        agents = self._all
        self.agents.visited_count += ~self.agents.visited[agents, row, col]
        self.agents.visited[agents, row, col] = True
        self.agents.trail[agents, np.minimum(self.agents.steps, self.max_episode_steps), 0] = row
        self.agents.trail[agents, np.minimum(self.agents.steps, self.max_episode_steps), 1] = col
        previous = self.agents.distance
        self.agents.distance = self.distance_at(agents, row, col)
        within = self.agents.distance <= cfg.success_radius
        if cfg.stop_action:
            terminated = a == self.stop_index
            success = terminated & within
        else:
            success = terminated = within
        truncated = ~terminated & (self.agents.steps >= self.max_episode_steps)
        reward = success * cfg.success_reward - cfg.step_penalty
        if cfg.distance_reward_scale:
            reward = reward + cfg.distance_reward_scale * (previous - self.agents.distance)
        self.agents.episode_return += reward
        if self.world.tv is not None:
            self._step_tv(a)
        infos = self._infos(agents, success)
        for i in np.flatnonzero(terminated | truncated):
            infos[i]["episode"] = {
                "r": round(float(self.agents.episode_return[i]), 6),
                "l": int(self.agents.steps[i]),
                "t": round(time.perf_counter() - float(self.agents.episode_start[i]), 6),
            }
            infos[i]["tv_fraction"] = float(self.agents.tv_steps[i] / self.agents.steps[i])
            infos[i]["remote_presses"] = int(self.agents.remote_presses[i])
            ended = not cfg.stop_action or a[i] == self.stop_index
            for k in SUCCESS_DISTANCES:
                infos[i][f"success_within_{k}"] = bool(ended and self.agents.distance[i] <= k)
        return reward, terminated, truncated, infos

    def _step_tv(self, actions: np.ndarray) -> None:
        """Count the steps that ended with the TV in view and redraw the TVs of this step (every step, or on a remote
        press with the TV in view: the remote action does not move, so "in view" is where the agent is)."""
        in_view = self.tv_view[self.agents.scene, self.agents.row, self.agents.col]
        self.agents.tv_steps += in_view
        if self.world.tv.redraws_every_step:
            redraw = np.ones(self.n, dtype=bool)
        else:
            redraw = (actions == self.config.remote_index) & in_view
            self.agents.remote_presses += redraw
        self.agents.tv_draws += redraw
        slot = self.agents.tv_draws % TV_BLOCK
        for i in np.flatnonzero(redraw & (slot == 0)):
            self.agents.tv_seq[i] = self.agents.tv_rngs[i].integers(self.n_variants, size=TV_BLOCK)
        self.agents.variant = self.agents.tv_seq[self._all, slot]

    def _infos(self, idx: np.ndarray, success: np.ndarray) -> list[dict[str, Any]]:
        distance, start, path = self.agents.distance[idx], self.agents.start_distance[idx], self.agents.path_length[idx]
        scene, row, col = self.agents.scene[idx], self.agents.row[idx], self.agents.col[idx]
        columns = zip(
            success.tolist(),
            distance.tolist(),
            metrics.spl(success, metrics.success_path_length(start, self.config.success_radius), path).tolist(),
            metrics.soft_spl(distance, start, path).tolist(),
            (self.agents.visited_count[idx] / self.n_cells).tolist(),
            path.tolist(),
            scene.tolist(),
            self.agents.variant[idx].tolist(),
            zip(row.tolist(), col.tolist()),
            self.agents.heading[idx].tolist(),
            self.tv_view[scene, row, col].tolist(),
        )
        # a dict display per agent (the keys of INFO_KEYS, in order) is the cheapest way to build N dicts
        return [
            {
                "is_success": ok,
                "distance_to_goal": d,
                "spl": spl,
                "soft_spl": soft,
                "coverage": cov,
                "path_length": p,
                "scene_index": s,
                "variant_index": v,
                "position": pos,
                "heading": h,
                "tv_in_view": tv,
            }
            for ok, d, spl, soft, cov, p, s, v, pos, h, tv in columns
        ]


__all__ = ["INFO_KEYS", "SUCCESS_DISTANCES", "SteppingMixin"]
