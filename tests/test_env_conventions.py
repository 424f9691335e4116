"""The field's task conventions: STOP-required success on the ``-v1`` ids, success at 0/1/2 cells, the
shortest-path ``distance_to_goal`` at every step, and TV frames that leave the episode stream alone."""

from __future__ import annotations

import collections
import warnings

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.core import SUCCESS_DISTANCES
from envs.vec_env import ImageNavVecEnv
from tests.test_env_core import RIGHT, make_env, small_world


def _bfs(h: int, w: int, goal_cells: list[tuple[int, int]]) -> np.ndarray:
    """Shortest-path distances (cells) on the open h x w grid to the nearest goal cell."""
    dist = np.full((h, w), -1, dtype=np.int64)
    queue = collections.deque(goal_cells)
    for r, c in goal_cells:
        dist[r, c] = 0
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < h and 0 <= cc < w and dist[rr, cc] < 0:
                dist[rr, cc] = dist[r, c] + 1
                queue.append((rr, cc))
    return dist


def test_v1_ids_require_stop_and_v0_ids_are_unchanged():
    for env_id, kwargs in envs.REGISTERED_IDS.items():
        if env_id.endswith("-v1"):
            base = envs.REGISTERED_IDS[env_id.replace("-v1", "-v0")]
            assert kwargs == {**base, "stop_action": True}
        else:
            assert "stop_action" not in kwargs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v1 = gym.make("ImageNav-v1", world=small_world(), min_start_distance=2).unwrapped
        v0 = gym.make("ImageNav-v0", world=small_world(), min_start_distance=2).unwrapped
    assert v1.config.stop_action and v1.action_space.n == 5
    assert not v0.config.stop_action and v0.action_space.n == 4


def test_reaching_the_goal_is_not_success_without_stop():
    env = make_env(stop_action=True, success_radius=1)
    env.reset(seed=0, options={"start": (0, 0), "goal": (0, 3)})
    stop = env.action_space.n - 1
    for _ in range(3):  # onto the goal cell: the episode goes on
        _, _, terminated, _, info = env.step(RIGHT)
        assert not terminated and not info["is_success"]
    assert info["distance_to_goal"] == 0
    _, _, terminated, _, info = env.step(stop)
    assert terminated and info["is_success"]
    assert [info[f"success_within_{k}"] for k in SUCCESS_DISTANCES] == [True, True, True]
    # STOP two cells away: a failure at the success radius 1, a success at 2 cells
    env.reset(seed=0, options={"start": (0, 0), "goal": (0, 3)})
    env.step(RIGHT)
    _, _, terminated, _, info = env.step(stop)
    assert terminated and not info["is_success"] and info["distance_to_goal"] == 2
    assert [info[f"success_within_{k}"] for k in SUCCESS_DISTANCES] == [False, False, True]
    # a time-out next to the goal is no success at any distance
    env = make_env(stop_action=True, max_episode_steps=3)
    env.reset(seed=0, options={"start": (0, 0), "goal": (0, 3)})
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(RIGHT)
    assert truncated and not terminated and info["distance_to_goal"] == 0
    assert not any(info[f"success_within_{k}"] for k in SUCCESS_DISTANCES)


@pytest.mark.parametrize("task", ["imagenav", "objectnav"])
def test_distance_to_goal_is_the_shortest_path_at_every_step(task):
    env = make_env(task, stop_action=True, max_episode_steps=40)
    _, info = env.reset(seed=3)
    core = env.core
    steps = 0
    while steps < 120:
        if core.config.task == "imagenav":
            goals = [(int(core.agents.goal_row[0]), int(core.agents.goal_col[0]))]
        else:
            goals = [
                (r, c)
                for r0, c0, r1, c1 in env.world.object_goals.instance_boxes[int(core.agents.goal_id[0])]
                for r in range(r0, r1 + 1)
                for c in range(c0, c1 + 1)
            ]
        dist = _bfs(core.h, core.w, goals)
        assert info["distance_to_goal"] == dist[info["position"]]
        _, _, terminated, truncated, info = env.step(env.action_space.sample() % 4)  # moves only
        steps += 1
        if terminated or truncated:
            assert info["distance_to_goal"] == dist[info["position"]]  # the last step, before the reset
            _, info = env.reset()


def _episode_starts(env: ImageNavVecEnv, policy: np.random.Generator, n_episodes: int) -> list[tuple]:
    """The (scene, goal, start) of each agent's first ``n_episodes`` episodes under random actions of ``policy``."""
    env.seed(7)
    env.reset()
    seen: list[list[tuple]] = [[] for _ in range(env.num_envs)]
    core = env.core
    for i in range(env.num_envs):
        seen[i].append(
            (
                int(core.agents.scene[i]),
                int(core.agents.goal_row[i]),
                int(core.agents.goal_col[i]),
                int(core.agents.row[i]),
            )
        )
    while min(len(s) for s in seen) < n_episodes:
        _, _, dones, _ = env.step(policy.integers(env.action_space.n, size=env.num_envs))
        for i in np.flatnonzero(dones):
            seen[i].append(
                (
                    int(core.agents.scene[i]),
                    int(core.agents.goal_row[i]),
                    int(core.agents.goal_col[i]),
                    int(core.agents.row[i]),
                )
            )
    return [tuple(s[:n_episodes]) for s in seen]


def test_tv_frames_do_not_shift_the_episodes_two_policies_face():
    world = small_world(n_scenes=2, tv="spontaneous", tv_frames=4)
    assert world.variant_mode == "tv"
    # long episodes cross several blocks of TV frames, so the policies draw different numbers of blocks
    env = ImageNavVecEnv(3, world=world, min_start_distance=2, max_episode_steps=150, success_radius=0)
    a = _episode_starts(env, np.random.default_rng(0), 4)
    b = _episode_starts(env, np.random.default_rng(1), 4)
    assert a == b
