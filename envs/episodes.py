"""Episode sampling: the start, goal, scene, colour variant and heading of each new episode of
:class:`~envs.core.NavCore`, drawn from the agent's own generator.

Per-agent random draws happen only here, at episode resets, and always the same number of them, so two policies run
with the same seeds face the same episodes. With a TV one extra draw seeds the episode's own frame stream
(:data:`TV_BLOCK` frames at a time), which therefore never shifts the episode stream. Reset options
(``scene_index``, ``variant_index``, ``goal``, ``start``, ``heading``) override the draws, never skip them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

#: TV frame indices are drawn in blocks of this many redraws per agent.
TV_BLOCK = 64


class EpisodeSamplingMixin:
    """The resets of :class:`~envs.core.NavCore` (mixed in; uses its config, world and agent arrays)."""

    # ------------------------------------------------------------------------------------------ resets
    def _episode(self, rng: np.random.Generator, options: dict[str, Any] | None) -> dict[str, Any]:
        """Draw one episode from ``rng`` (always the same draws in the same order; options override results)."""
        opts = dict(options or {})
        unknown = set(opts) - {"scene_index", "variant_index", "goal", "start", "heading"}
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; valid: scene_index, variant_index, goal, start, heading"
            )
        cfg, world = self.config, self.world
        scene = int(rng.integers(self.n_scenes))
        if "scene_index" in opts:
            scene = int(opts["scene_index"])
            if not 0 <= scene < self.n_scenes:
                raise ValueError(f"options['scene_index']={scene} is out of range [0, {self.n_scenes})")
        variant = int(rng.integers(self.n_variants)) if world.variant_mode == "episode" else 0
        if "variant_index" in opts:
            variant = int(opts["variant_index"])
            if not 0 <= variant < self.n_variants:
                raise ValueError(f"options['variant_index']={variant} is out of range [0, {self.n_variants})")
        goal_cell, goal_id, goal_k = None, -1, 0
        if cfg.task == "imagenav":
            cands = self._goal_candidates[scene]
            goal_cell = divmod(int(cands[rng.integers(len(cands))]), self.w)
            if "goal" in opts:
                goal_cell = self._cell_option(opts["goal"], "goal")
        else:
            goals = world.object_goals
            lo, hi = goals.goals_of_scene(scene).start, goals.goals_of_scene(scene).stop
            goal_id = lo + int(rng.integers(hi - lo))
            goal_k = int(rng.integers(goals.n_variants))
            if "goal" in opts:
                goal_id = self._class_option(opts["goal"], scene)
        dist = self._distance_map(goal_cell, goal_id)
        threshold = min(cfg.min_start_distance, int(dist.max()))
        cands = np.flatnonzero(dist.ravel() >= threshold)
        start = divmod(int(cands[rng.integers(len(cands))]), self.w)
        if "start" in opts:
            start = self._cell_option(opts["start"], "start")
        heading = int(rng.integers(4))
        if "heading" in opts:
            heading = int(opts["heading"])
            if not 0 <= heading < 4:
                raise ValueError(f"options['heading']={heading} must be 0 (up), 1 (right), 2 (down) or 3 (left)")
        tv_seed = int(rng.integers(np.iinfo(np.int64).max)) if world.variant_mode == "tv" else None
        if goal_cell is None:  # object goal: mark the nearest instance's cell for rendering
            goal_cell = self._nearest_instance_cell(goal_id, start)
        return {
            "scene": scene,
            "variant": variant,
            "goal_cell": goal_cell,
            "goal_id": goal_id,
            "goal_vec": max(goal_id, 0) * world.object_goals.n_variants + goal_k if goal_id >= 0 else 0,
            "start": start,
            "heading": heading,
            "start_distance": int(dist[start]),
            "tv_seed": tv_seed,
        }

    def _cell_option(self, value: Any, name: str) -> tuple[int, int]:
        try:
            r, c = (int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"options[{name!r}] must be a (row, col) cell, got {value!r}") from None
        if not (0 <= r < self.h and 0 <= c < self.w):
            raise ValueError(f"options[{name!r}]={value!r} is outside the {self.h}x{self.w} grid")
        return r, c

    def _class_option(self, value: Any, scene: int) -> int:
        from envs.scenes import OBJECT_CLASSES

        goals = self.world.object_goals
        class_id = OBJECT_CLASSES.index(value) if isinstance(value, str) and value in OBJECT_CLASSES else value
        for g in goals.goals_of_scene(scene):
            if int(goals.goal_class[g]) == class_id:
                return g
        present = [goals.class_name(g) for g in goals.goals_of_scene(scene)]
        raise ValueError(f"options['goal']={value!r} is not a class present in scene {scene}; present: {present}")

    def _nearest_instance_cell(self, goal_id: int, start: tuple[int, int]) -> tuple[int, int]:
        boxes = self.world.object_goals.instance_boxes[goal_id]
        centres = [((r0 + r1) // 2, (c0 + c1) // 2) for r0, c0, r1, c1 in boxes]
        return min(centres, key=lambda rc: abs(rc[0] - start[0]) + abs(rc[1] - start[1]))

    def reset_agents(
        self,
        agents: Sequence[int] | np.ndarray,
        rngs: Sequence[np.random.Generator],
        options: Sequence[dict[str, Any] | None] | None = None,
    ) -> None:
        """Start new episodes for ``agents``, agent ``agents[k]`` drawing from ``rngs[k]``."""
        agents = np.asarray(agents, dtype=np.int64).reshape(-1)
        if len(agents) == 0:
            return
        options = options if options is not None else [None] * len(agents)
        eps = [self._episode(rng, opt) for rng, opt in zip(rngs, options)]
        self.agents.scene[agents] = [e["scene"] for e in eps]
        self.agents.goal_row[agents] = [e["goal_cell"][0] for e in eps]
        self.agents.goal_col[agents] = [e["goal_cell"][1] for e in eps]
        self.agents.goal_id[agents] = [e["goal_id"] for e in eps]
        self.agents.goal_vec[agents] = [e["goal_vec"] for e in eps]
        self.agents.row[agents] = [e["start"][0] for e in eps]
        self.agents.col[agents] = [e["start"][1] for e in eps]
        self.agents.heading[agents] = [e["heading"] for e in eps]
        self.agents.start_distance[agents] = [e["start_distance"] for e in eps]
        self.agents.distance[agents] = self.agents.start_distance[agents]
        if self.world.variant_mode == "tv":
            for i, e in zip(agents.tolist(), eps):
                self.agents.tv_rngs[i] = np.random.default_rng(e["tv_seed"])
                self.agents.tv_seq[i] = self.agents.tv_rngs[i].integers(self.n_variants, size=TV_BLOCK)
            self.agents.variant[agents] = self.agents.tv_seq[agents, 0]
        else:
            self.agents.variant[agents] = [e["variant"] for e in eps]
        self.agents.steps[agents] = 0
        self.agents.path_length[agents] = 0
        self.agents.visited[agents] = False
        self.agents.visited[agents, self.agents.row[agents], self.agents.col[agents]] = True
        self.agents.visited_count[agents] = 1
        self.agents.episode_return[agents] = 0.0
        self.agents.episode_start[agents] = time.perf_counter()
        self.agents.tv_steps[agents] = 0
        self.agents.remote_presses[agents] = 0
        self.agents.tv_draws[agents] = 0
        self.agents.trail[agents, 0, 0] = self.agents.row[agents]
        self.agents.trail[agents, 0, 1] = self.agents.col[agents]
        if self.config.observation == "pixels" and self.config.task == "imagenav":
            a = self.agents
            a.goal_pixels[agents] = self._crops(
                a.scene[agents], np.zeros_like(agents), a.goal_row[agents], a.goal_col[agents], np.zeros_like(agents)
            )

    def reset_infos(self, agents: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Info dicts right after a reset (same keys as :meth:`step` infos; ``is_success`` False)."""
        idx = self._all if agents is None else np.asarray(agents, dtype=np.int64)
        return self._infos(idx, np.zeros(len(idx), bool))


__all__ = ["TV_BLOCK", "EpisodeSamplingMixin"]
