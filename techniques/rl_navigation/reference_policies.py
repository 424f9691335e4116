"""Reference policies that read the agent's state from the environment instead of its observations: a blind
persistent walk (the floor a memoryless explorer should beat) and recognition + persistent walk (the ceiling of a
memoryless policy that recognises the goal perfectly once it is in view).

Both are :data:`~techniques.rl_navigation.evaluation.Actor` s over the agents of an
:class:`envs.vec_env.ImageNavVecEnv` (or a :class:`envs.core.NavCore`): ``act(obs, episode_starts) -> (N,)``
actions. They ignore ``obs`` and read the core's arrays (``row``, ``col``, ``heading``, the goal), which after each
``step`` already hold the new episodes of the agents that were reset. Each actor draws from its own seeded numpy
``Generator`` (a fixed number of draws per call), so a run repeats exactly; with the same seed, recognition +
persistent walk takes the blind walk's very actions wherever the goal is not in view.

- **Blind persistent walk** (:func:`persistent_walk_actor`): it knows only its heading and which moves the border
  blocks (both observable). With probability ``keep`` it moves on in its heading; otherwise, or when the border
  blocks that move, it takes a heading drawn uniformly from the other headings whose move is not blocked. With
  egocentric actions it goes forward when it keeps its heading and turns otherwise (left or right at random, a turn
  to an unblocked heading when one of the two is). It never calls STOP, so on STOP tasks it cannot succeed.
- **Recognition + persistent walk** (:func:`recognition_walk_actor`): when a goal cell (distance 0: the image
  goal's cell, or any cell of an instance of the goal class) lies in the observed window (Chebyshev radius
  ``patch_radius`` around the agent), it moves to a neighbour that lowers the geodesic distance to the goal (ties
  at random; with egocentric actions, among those the headings that need the fewest turns, then forward), and on
  STOP tasks calls STOP once within ``success_radius`` with the goal in view. Otherwise it walks as the blind
  persistent walk.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.core import NavCore
from envs.rendering import HEADING_DELTAS
from envs.rules import EGOCENTRIC_ACTIONS, GRID_ACTIONS

#: Table labels of the reference policies (the evaluation's rows).
BLIND_WALK = "blind persistent walk"
RECOGNITION_WALK = "recognition + persistent walk"

_DR = np.array([d[0] for d in HEADING_DELTAS], dtype=np.int64)  # (4,) row step of headings up, right, down, left
_DC = np.array([d[1] for d in HEADING_DELTAS], dtype=np.int64)
#: The grid action that moves in (and faces) each heading: up, right, down, left.
_GRID_OF_HEADING = np.array([GRID_ACTIONS.index(n) for n in ("up", "right", "down", "left")], dtype=np.int64)
_FORWARD, _TURN_LEFT, _TURN_RIGHT = (EGOCENTRIC_ACTIONS.index(n) for n in ("forward", "turn_left", "turn_right"))
_HEADINGS = np.arange(4)


def _core(env: Any) -> NavCore:
    """The :class:`NavCore` of an env (``env.core``) or the core itself."""
    core = getattr(env, "core", env)
    if not isinstance(core, NavCore):
        raise TypeError(f"expected an ImageNavVecEnv / ImageNavEnv or a NavCore, got {type(env).__name__}")
    return core


def _pick(rng_scores: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A uniform choice per row among the ``allowed`` columns: ``(index (N,), any allowed (N,))``; ``rng_scores``
    ``(N, K)`` uniform in ``[0, 1)``."""
    scores = np.where(allowed, rng_scores, -1.0)
    return scores.argmax(axis=1), allowed.any(axis=1)


class _PersistentWalk:
    """The blind persistent walk over the agents of a core (see the module docstring)."""

    def __init__(self, env: Any, keep: float = 0.8, seed: int = 0):
        if not 0.0 <= keep <= 1.0:
            raise ValueError(f"keep must be a probability in [0, 1], got {keep}")
        self.core = _core(env)
        self.keep = float(keep)
        self.rng = np.random.default_rng(seed)
        self.egocentric = self.core.config.actions == "egocentric"

    def open_headings(self) -> np.ndarray:
        """``(N, 4)`` bool: the move in each heading stays on the grid (the border blocks the others)."""
        c = self.core
        rows, cols = c.agents.row[:, None] + _DR, c.agents.col[:, None] + _DC
        return (rows >= 0) & (rows < c.h) & (cols >= 0) & (cols < c.w)

    def walk(self) -> np.ndarray:
        """``(N,)`` actions of the persistent walk (draws the same random numbers on every call)."""
        heading = self.core.agents.heading
        n = len(heading)
        keep_draw, heading_draw, turn_draw = self.rng.random(n), self.rng.random((n, 4)), self.rng.random((n, 2))
        open_ = self.open_headings()
        keeps = (keep_draw < self.keep) & open_[np.arange(n), heading]
        if self.egocentric:
            # the headings after a left and a right turn; prefer a turn to an open heading, else either
            after = np.stack([(heading - 1) % 4, (heading + 1) % 4], axis=1)
            turn, any_open = _pick(turn_draw, open_[np.arange(n)[:, None], after])
            turn = np.where(any_open, turn, (turn_draw[:, 0] < 0.5).astype(np.int64))
            return np.where(keeps, _FORWARD, np.where(turn == 0, _TURN_LEFT, _TURN_RIGHT))
        new, any_open = _pick(heading_draw, open_ & (heading[:, None] != _HEADINGS))
        chosen = np.where(keeps | ~any_open, heading, new)
        return _GRID_OF_HEADING[chosen]

    def __call__(self, obs: dict[str, np.ndarray], episode_starts: np.ndarray) -> np.ndarray:
        return self.walk()


class _RecognitionWalk(_PersistentWalk):
    """Greedy to the goal while a goal cell is in view, else the persistent walk (see the module docstring)."""

    def __init__(self, env: Any, keep: float = 0.8, seed: int = 0):
        super().__init__(env, keep, seed)
        # the greedy ties draw from a second generator: the walk's stream is the blind walk's of the same seed
        self.tie_rng = np.random.default_rng((seed, 1))
        c = self.core
        self.radius = c.config.patch_radius
        self.goal_view: np.ndarray | None = None
        if c.config.task == "objectnav":  # (G, h, w): a cell of the goal class lies within the window of each cell
            on_goal = c.world.object_goals.distance_maps == 0
            r = self.radius
            padded = np.pad(on_goal, ((0, 0), (r, r), (r, r)))
            view = np.zeros_like(on_goal)
            for dr in range(2 * r + 1):
                for dc in range(2 * r + 1):
                    view |= padded[:, dr : dr + c.h, dc : dc + c.w]
            self.goal_view = view

    def goal_in_view(self) -> np.ndarray:
        """``(N,)`` bool: a goal cell lies within the observed window (Chebyshev ``patch_radius``)."""
        c = self.core
        if self.goal_view is None:  # image goal: its cell
            return (
                np.maximum(np.abs(c.agents.row - c.agents.goal_row), np.abs(c.agents.col - c.agents.goal_col))
                <= self.radius
            )
        return self.goal_view[c.agents.goal_id, c.agents.row, c.agents.col]

    def __call__(self, obs: dict[str, np.ndarray], episode_starts: np.ndarray) -> np.ndarray:
        c = self.core
        actions = self.walk()  # always drawn, so the walk's stream does not depend on what was in view
        n = c.n
        tie_draw, behind_draw = self.tie_rng.random((n, 4)), self.tie_rng.random(n)
        seen = self.goal_in_view()
        if not seen.any():
            return actions
        agents = np.arange(n)
        open_ = self.open_headings()
        rows = np.clip(c.agents.row[:, None] + _DR, 0, c.h - 1)  # (N, 4): the cell a move in each heading reaches
        cols = np.clip(c.agents.col[:, None] + _DC, 0, c.w - 1)
        after = np.stack([c.distance_at(agents, rows[:, k], cols[:, k]) for k in range(4)], axis=1)
        closer = open_ & (after < c.agents.distance[:, None])  # (N, 4): the move in heading k lowers the distance
        if self.egocentric:  # among the closer headings, those that need the fewest turns
            turns = np.minimum((_HEADINGS - c.agents.heading[:, None]) % 4, (c.agents.heading[:, None] - _HEADINGS) % 4)
            fewest = np.where(closer, turns, 9).min(axis=1, keepdims=True)
            closer &= turns == fewest
        greedy, any_closer = _pick(tie_draw, closer)
        if self.egocentric:
            delta = (
                greedy - c.agents.heading
            ) % 4  # 0: ahead, 1: to the right, 3: to the left, 2: behind (either turn)
            behind = np.where(behind_draw < 0.5, _TURN_LEFT, _TURN_RIGHT)
            greedy_action = np.select([delta == 0, delta == 1, delta == 3], [_FORWARD, _TURN_RIGHT, _TURN_LEFT], behind)
        else:
            greedy_action = _GRID_OF_HEADING[greedy]
        actions = np.where(seen & any_closer, greedy_action, actions)
        if c.config.stop_action:
            actions = np.where(seen & (c.agents.distance <= c.config.success_radius), c.stop_index, actions)
        return actions


def persistent_walk_actor(env: Any, keep: float = 0.8, seed: int = 0) -> _PersistentWalk:
    """The blind persistent walk over the agents of ``env`` (an ``ImageNavVecEnv``; see the module docstring).

    Args:
        env: the environment it acts in (its core's ``row``, ``col``, ``heading`` are read at every call).
        keep: probability of moving on in the current heading when the border does not block it.
        seed: seed of its own random generator.

    Returns:
        an Actor: ``act(obs, episode_starts (N,)) -> actions (N,) int64`` (``obs`` is not read).
    """
    return _PersistentWalk(env, keep, seed)


def recognition_walk_actor(env: Any, keep: float = 0.8, seed: int = 0) -> _RecognitionWalk:
    """Recognition + persistent walk over the agents of ``env`` (an ``ImageNavVecEnv``; see the module docstring):
    greedy to the goal (and STOP within the success radius on STOP tasks) while a goal cell is in the observed
    window, otherwise :func:`persistent_walk_actor` with the same ``keep``. Returns an Actor (``obs`` is not read).
    """
    return _RecognitionWalk(env, keep, seed)


__all__ = ["BLIND_WALK", "RECOGNITION_WALK", "persistent_walk_actor", "recognition_walk_actor"]
