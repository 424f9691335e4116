"""The agents' episodes in progress: one explicit record of per-agent arrays, saved and restored as such.

:class:`AgentState` holds, for ``N`` agents, where each one is, what it is looking for and what its episode has
done so far. The navigation core (:class:`envs.core.NavCore`) owns one and its mixins read and write its arrays in
place (``core.agents.row[idx] = ...``); :meth:`AgentState.state_dict` is what an environment checkpoint saves, so
that a restored environment continues every episode exactly where it was.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np


def generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    """A numpy ``Generator`` whose bit generator continues from ``state`` (``Generator.bit_generator.state``)."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


@dataclass
class AgentState:
    """Per-agent arrays of ``N`` agents on an ``h x w`` grid (int64 unless noted)."""

    scene: np.ndarray
    """``(N,)`` scene index"""
    variant: np.ndarray
    """``(N,)`` colour variant (or TV frame) of the scene in view"""
    row: np.ndarray
    """``(N,)`` cell row"""
    col: np.ndarray
    """``(N,)`` cell column"""
    heading: np.ndarray
    """``(N,)`` 0 up, 1 right, 2 down, 3 left"""
    goal_row: np.ndarray
    """``(N,)`` image goal's cell row"""
    goal_col: np.ndarray
    """``(N,)`` image goal's cell column"""
    goal_id: np.ndarray
    """``(N,)`` object goal index (-1: image goal)"""
    goal_vec: np.ndarray
    """``(N,)`` row of the goal's feature vector in the goal table"""
    steps: np.ndarray
    """``(N,)`` steps taken in the episode"""
    path_length: np.ndarray
    """``(N,)`` cells actually moved"""
    visited: np.ndarray
    """``(N, h, w)`` bool: cells visited in the episode"""
    visited_count: np.ndarray
    """``(N,)`` distinct cells visited"""
    start_distance: np.ndarray
    """``(N,)`` geodesic distance to the goal at the start"""
    distance: np.ndarray
    """``(N,)`` geodesic distance to the goal now"""
    episode_return: np.ndarray
    """``(N,)`` float64 return so far"""
    episode_start: np.ndarray
    """``(N,)`` float64 ``time.perf_counter()`` at the episode's start (saved as the time elapsed)"""
    tv_steps: np.ndarray
    """``(N,)`` steps that ended with the TV in view"""
    remote_presses: np.ndarray
    """``(N,)`` remote presses with the TV in view"""
    tv_draws: np.ndarray
    """``(N,)`` TV redraws in the episode so far"""
    tv_seq: np.ndarray
    """``(N, B)`` the episode's block of TV frame indices"""
    tv_rngs: list[np.random.Generator | None]
    """per-agent generator of the TV's frame stream (``None`` before an agent's first episode)"""
    trail: np.ndarray
    """``(N, T + 1, 2)`` int16 cells of the episode so far (``T``: the time limit)"""
    goal_pixels: np.ndarray | None = None
    """``(N, P, P, 3)`` uint8 image goals of pixel observations (``None`` otherwise)"""

    @classmethod
    def zeros(
        cls,
        n: int,
        grid_shape: tuple[int, int],
        max_episode_steps: int,
        tv_block: int,
        goal_pixels: int | None = None,
    ) -> AgentState:
        """Fresh state of ``n`` agents; ``goal_pixels``: the crop side of pixel image goals (``None``: none)."""
        h, w = grid_shape
        ints = {name: np.zeros(n, np.int64) for name in _INT_FIELDS}
        ints["goal_id"] = np.full(n, -1, np.int64)
        return cls(
            **ints,
            visited=np.zeros((n, h, w), dtype=bool),
            episode_return=np.zeros(n, np.float64),
            episode_start=np.zeros(n, np.float64),
            tv_seq=np.zeros((n, tv_block), np.int64),
            tv_rngs=[None] * n,
            trail=np.zeros((n, max_episode_steps + 1, 2), np.int16),
            goal_pixels=None if goal_pixels is None else np.zeros((n, goal_pixels, goal_pixels, 3), np.uint8),
        )

    def resize_trail(self, max_episode_steps: int) -> None:
        """Make room for episodes of ``max_episode_steps`` (the cells so far are kept)."""
        trail = np.zeros((self.trail.shape[0], max_episode_steps + 1, 2), np.int16)
        keep = min(trail.shape[1], self.trail.shape[1])
        trail[:, :keep] = self.trail[:, :keep]
        self.trail = trail

    def state_dict(self) -> dict[str, Any]:
        """Copies of every array (the episode start as the time elapsed) and the generators' states."""
        state: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "episode_start":
                state[f.name] = time.perf_counter() - value
            elif f.name == "tv_rngs":
                state[f.name] = [None if g is None else g.bit_generator.state for g in value]
            else:
                state[f.name] = None if value is None else value.copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into these arrays (same number of agents, grid and time limit)."""
        missing = sorted({f.name for f in dataclasses.fields(self)} - set(state))
        if missing:
            raise ValueError(f"agent state lacks {missing}; it was saved by another version of the environment")
        for f in dataclasses.fields(self):
            value, current = state[f.name], getattr(self, f.name)
            if f.name == "tv_rngs":
                self.tv_rngs = [None if g is None else generator_from_state(g) for g in value]
            elif current is None or value is None:
                if (current is None) != (value is None):
                    raise ValueError(f"agent state {f.name!r} does not match this environment's observation")
            else:
                value = np.asarray(value)
                if value.shape != current.shape:
                    raise ValueError(
                        f"agent state {f.name!r} has shape {value.shape}, this environment {current.shape}"
                    )
                current[...] = time.perf_counter() - value if f.name == "episode_start" else value


_INT_FIELDS = (
    "scene", "variant", "row", "col", "heading", "goal_row", "goal_col", "goal_id", "goal_vec", "steps",
    "path_length", "visited_count", "start_distance", "distance", "tv_steps", "remote_presses", "tv_draws",
)  # fmt: skip

#: the names of :class:`AgentState`'s fields
AGENT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AgentState))

__all__ = ["AGENT_FIELDS", "AgentState", "generator_from_state"]
