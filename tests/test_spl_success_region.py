"""SPL through environment steps: the shortest path ends at the success region (``max(d0 - R, 0)`` moves), as
habitat-lab measures SPL to the goal's nearest view point; soft-SPL stays measured to the goal."""

from __future__ import annotations

import pytest

from envs.image_nav_env import ImageNavEnv
from tests.test_env_core import small_world

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3


def _env(**kwargs) -> ImageNavEnv:
    """An 8x8-cell image-goal env with pixel observations (no encoder)."""
    return ImageNavEnv("imagenav", world=small_world("imagenav", "pixels"), observation="pixels", **kwargs)


def _run(env: ImageNavEnv, actions: list[int]) -> tuple[bool, dict]:
    env.reset(seed=0, options={"start": (2, 0), "goal": (2, 6)})  # start distance 6
    terminated = False
    for a in actions:
        assert not terminated
        _, _, terminated, _, info = env.step(a)
    return terminated, info


def test_stop_at_the_goal_is_one_move_longer_than_optimal():
    env = _env(stop_action=True, success_radius=1, min_start_distance=2)
    stop = env.core.stop_index
    terminated, info = _run(env, [RIGHT] * 5 + [stop])  # STOP on entering the radius: 5 moves, optimal
    assert terminated and info["is_success"] and info["path_length"] == 5 and env.core.agents.start_distance[0] == 6
    assert info["spl"] == pytest.approx(1.0)
    terminated, info = _run(env, [RIGHT] * 6 + [stop])  # on to the goal cell, then STOP: 6 moves
    assert terminated and info["is_success"] and info["distance_to_goal"] == 0 and info["path_length"] == 6
    assert info["spl"] == pytest.approx(5 / 6)  # measured to the goal this was 6 / 6 = 1
    assert info["soft_spl"] == pytest.approx(1.0)  # soft-SPL: d0 / max(d0, p) with d0 = 6 to the goal


def test_detour_without_stop_is_scored_against_the_radius():
    env = _env(success_radius=1, min_start_distance=2)
    terminated, info = _run(env, [RIGHT] * 5)  # the episode ends on entering the radius
    assert terminated and info["is_success"] and info["spl"] == pytest.approx(1.0)
    terminated, info = _run(env, [DOWN] + [RIGHT] * 5 + [UP])  # a detour of 2 moves
    assert terminated and info["is_success"] and info["path_length"] == 7
    assert info["spl"] == pytest.approx(5 / 7)  # measured to the goal: 6 / 7
    assert info["soft_spl"] == pytest.approx((1 - 1 / 6) * 6 / 7)
