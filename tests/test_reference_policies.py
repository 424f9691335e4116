"""The reference policies on hand-placed agents: the blind persistent walk's turns at walls and kept headings, and
recognition + persistent walk's greedy approach, STOP and fallback to the walk; the evaluation's episode pairing
(8x8-cell pixel envs, no encoder)."""

from __future__ import annotations

import numpy as np
import pytest

from envs.vec_env import ImageNavVecEnv
from techniques.rl_navigation.evaluation import (
    format_table,
    paired_differences,
    random_actor,
    reference_actors,
    run_episodes,
    summarize,
)
from techniques.rl_navigation.reference_policies import persistent_walk_actor, recognition_walk_actor
from tests.test_env_core import small_world

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3  # grid actions
FORWARD, TURN_LEFT, TURN_RIGHT = 0, 1, 2  # egocentric actions
MOVE_OF_HEADING = {0: UP, 1: RIGHT, 2: DOWN, 3: LEFT}


def make_env(n: int, task: str = "imagenav", **kwargs) -> ImageNavVecEnv:
    kwargs = {"min_start_distance": 2, "patch_radius": 2, **kwargs}
    env = ImageNavVecEnv(n, task, world=small_world(task, "pixels"), observation="pixels", **kwargs)
    env.seed(0)
    env.reset()
    return env


def place(env: ImageNavVecEnv, i: int, cell: tuple[int, int], heading: int, goal: tuple[int, int] | None = None):
    """Put agent ``i`` on ``cell`` facing ``heading`` (and its image goal on ``goal``) at the start of an episode."""
    c = env.core
    c.agents.row[i], c.agents.col[i], c.agents.heading[i] = cell[0], cell[1], heading
    if goal is not None:
        c.agents.goal_row[i], c.agents.goal_col[i] = goal
    c.agents.distance[i] = c.agents.start_distance[i] = c.distance_at(
        np.array([i]), c.agents.row[i : i + 1], c.agents.col[i : i + 1]
    )[0]
    c.agents.steps[i] = c.agents.path_length[i] = 0


def act_many(act, n: int, calls: int = 200) -> np.ndarray:
    """``(calls, n)`` actions of repeated calls in the same state."""
    obs, starts = {}, np.zeros(n, bool)
    return np.stack([act(obs, starts) for _ in range(calls)])


def test_persistent_walk_turns_away_from_walls_to_an_open_heading():
    env = make_env(3)
    place(env, 0, (0, 3), heading=0)  # top wall, facing it
    place(env, 1, (0, 0), heading=3)  # top-left corner, facing the left wall
    place(env, 2, (7, 7), heading=1)  # bottom-right corner, facing the right wall
    actions = act_many(persistent_walk_actor(env, keep=1.0, seed=1), 3)
    assert set(actions[:, 0]) == {DOWN, LEFT, RIGHT}  # each open heading, never the blocked one
    assert set(actions[:, 1]) == {DOWN, RIGHT}
    assert set(actions[:, 2]) == {UP, LEFT}
    counts = np.bincount(actions[:, 0], minlength=4)[[DOWN, LEFT, RIGHT]]
    assert counts.min() > 40  # uniform over the three open headings (200 draws)


def test_persistent_walk_keeps_its_heading_with_keep_one_and_never_with_keep_zero():
    env = make_env(4)
    for k in range(4):
        place(env, k, (3, 4), heading=k)
    keeping = act_many(persistent_walk_actor(env, keep=1.0, seed=0), 4)
    np.testing.assert_array_equal(keeping, np.tile([MOVE_OF_HEADING[k] for k in range(4)], (200, 1)))
    turning = act_many(persistent_walk_actor(env, keep=0.0, seed=0), 4)
    for k in range(4):
        assert set(turning[:, k]) == set(MOVE_OF_HEADING.values()) - {MOVE_OF_HEADING[k]}
    mixed = act_many(persistent_walk_actor(env, keep=0.8, seed=0), 4, calls=2000)
    kept = np.mean(mixed == np.array([MOVE_OF_HEADING[k] for k in range(4)]))
    assert kept == pytest.approx(0.8, abs=0.03)


def test_persistent_walk_walks_straight_to_the_wall_then_turns():
    env = make_env(1, success_radius=0, max_episode_steps=50)
    place(env, 0, (2, 0), heading=1, goal=(7, 7))  # facing right along row 2, goal far away
    act = persistent_walk_actor(env, keep=1.0, seed=0)
    for col in range(1, 8):
        env.step(act({}, np.zeros(1, bool)))
        assert (env.core.agents.row[0], env.core.agents.col[0], env.core.agents.heading[0]) == (2, col, 1)
    action = act({}, np.zeros(1, bool))[0]  # at the right wall
    assert action in (UP, DOWN, LEFT)


def test_persistent_walk_is_reproducible_and_never_stops():
    env = make_env(6, stop_action=True)
    a = act_many(persistent_walk_actor(env, seed=3), 6, calls=50)
    b = act_many(persistent_walk_actor(env, seed=3), 6, calls=50)
    np.testing.assert_array_equal(a, b)
    assert not (a == env.core.stop_index).any()


def test_egocentric_persistent_walk_forward_or_a_turn_to_an_open_heading():
    env = make_env(3, actions="egocentric")
    place(env, 0, (3, 3), heading=2)  # open: forward when keeping
    place(env, 1, (0, 0), heading=0)  # corner facing up: left turn faces the left wall, right turn is open
    place(env, 2, (0, 4), heading=0)  # top wall facing it: both turns are open
    actions = act_many(persistent_walk_actor(env, keep=1.0, seed=0), 3)
    assert set(actions[:, 0]) == {FORWARD}
    assert set(actions[:, 1]) == {TURN_RIGHT}
    assert set(actions[:, 2]) == {TURN_LEFT, TURN_RIGHT}
    turning = act_many(persistent_walk_actor(env, keep=0.0, seed=0), 3)
    assert set(turning[:, 0]) == {TURN_LEFT, TURN_RIGHT}


def test_recognition_walks_straight_to_a_goal_in_view_and_stops_within_the_radius():
    env = make_env(1, stop_action=True, success_radius=1, max_episode_steps=50)  # an ImageNav-v1 setting
    place(env, 0, (3, 1), heading=0, goal=(3, 3))  # goal 2 cells to the right: in the 5x5 window
    act = recognition_walk_actor(env, keep=0.8, seed=0)
    _, _, dones, infos = env.step(act({}, np.zeros(1, bool)))
    assert (env.core.agents.row[0], env.core.agents.col[0]) == (3, 2) and not dones[0]
    action = act({}, np.zeros(1, bool))
    assert action[0] == env.core.stop_index  # within the success radius: STOP
    _, _, dones, infos = env.step(action)
    assert dones[0] and infos[0]["is_success"] and infos[0]["spl"] == pytest.approx(1.0)


def test_recognition_breaks_ties_at_random_and_turns_toward_the_goal_with_egocentric_actions():
    env = make_env(2, success_radius=0)
    place(env, 0, (4, 4), heading=0, goal=(2, 2))  # up and left both get closer
    place(env, 1, (4, 4), heading=0, goal=(6, 4))  # straight down
    actions = act_many(recognition_walk_actor(env, seed=0), 2)
    assert set(actions[:, 0]) == {UP, LEFT} and set(actions[:, 1]) == {DOWN}
    ego = make_env(3, actions="egocentric", success_radius=0)
    place(ego, 0, (4, 4), heading=0, goal=(4, 6))  # goal to the right: turn right
    place(ego, 1, (4, 4), heading=1, goal=(4, 6))  # facing it: forward
    place(ego, 2, (4, 4), heading=3, goal=(2, 6))  # up or right get closer; up needs one turn, right two
    actions = act_many(recognition_walk_actor(ego, seed=0), 3)
    assert set(actions[:, 0]) == {TURN_RIGHT} and set(actions[:, 1]) == {FORWARD} and set(actions[:, 2]) == {TURN_RIGHT}


def test_recognition_without_the_goal_in_view_is_the_persistent_walk():
    env = make_env(4, stop_action=True, success_radius=1)
    place(env, 0, (0, 0), heading=0, goal=(7, 7))
    place(env, 1, (4, 1), heading=1, goal=(4, 4))  # 3 columns away: just outside the 5x5 window
    place(env, 2, (7, 3), heading=2, goal=(1, 3))
    place(env, 3, (3, 3), heading=3, goal=(6, 7))
    walk = act_many(persistent_walk_actor(env, keep=0.7, seed=5), 4)
    recognition = act_many(recognition_walk_actor(env, keep=0.7, seed=5), 4)
    np.testing.assert_array_equal(recognition, walk)  # same seed, same draws: the very same actions


def test_objectnav_recognition_sees_any_instance_of_the_goal_class():
    env = make_env(1, task="objectnav", patch_radius=2, success_radius=1)
    c = env.core
    act = recognition_walk_actor(env, seed=0)
    g = int(c.agents.goal_id[0])
    dist = c.world.object_goals.distance_maps[g]
    seen = np.zeros((c.h, c.w), bool)
    for r in range(c.h):
        for col in range(c.w):
            c.agents.row[0], c.agents.col[0] = r, col
            seen[r, col] = act.goal_in_view()[0]
            assert seen[r, col] == (dist[max(r - 2, 0) : r + 3, max(col - 2, 0) : col + 3].min() == 0)
    assert seen.any() and not seen.all()
    # from a cell 2 away (an instance cell then lies in the 5x5 window) every greedy move gets one cell closer
    r, col = map(int, np.argwhere(dist == 2)[0])
    place(env, 0, (r, col), heading=0)
    assert act.goal_in_view()[0]
    deltas = {UP: (-1, 0), DOWN: (1, 0), LEFT: (0, -1), RIGHT: (0, 1)}
    for a in set(act_many(act, 1, calls=50)[:, 0].tolist()):
        assert dist[r + deltas[a][0], col + deltas[a][1]] == 1


def _recording(env: ImageNavVecEnv, act):
    """``act`` that also records each episode's identity (scene, goal, start) and its number of actions, keyed by
    (agent, episode number)."""
    c, count = env.core, np.zeros(env.num_envs, np.int64)
    episodes: dict[tuple[int, int], tuple[int, ...]] = {}
    steps: dict[tuple[int, int], int] = {}

    def wrapped(obs, starts):
        for i in np.flatnonzero(starts):
            episodes[(int(i), int(count[i]))] = tuple(
                int(v[i])
                for v in (
                    c.agents.scene,
                    c.agents.goal_row,
                    c.agents.goal_col,
                    c.agents.row,
                    c.agents.col,
                    c.agents.start_distance,
                )
            )
            count[i] += 1
        for i in range(env.num_envs):
            key = (i, int(count[i]) - 1)
            steps[key] = steps.get(key, 0) + 1
        return act(obs, starts)

    return wrapped, episodes, steps


def test_run_episodes_lists_the_same_episodes_in_the_same_order_for_every_policy():
    env = make_env(2, stop_action=True, success_radius=1, max_episode_steps=6)
    stop = env.core.stop_index
    env.seed(7)
    stopper, stop_eps, _ = _recording(env, lambda obs, starts: np.full(2, stop))
    a = run_episodes(env, stopper, 6, max_frames=0)  # every episode one step: they finish agent 0, 1, 0, 1, ...
    env.seed(7)
    walker, walk_eps, walk_steps = _recording(env, random_actor(env.action_space.n, 2, seed=1))
    b = run_episodes(env, walker, 6, max_frames=0)  # episodes of 1 to 6 steps: they finish in another order
    for r in (a, b):
        np.testing.assert_array_equal(r.agent, [0, 0, 0, 1, 1, 1])
        np.testing.assert_array_equal(r.episode, [0, 1, 2, 0, 1, 2])
    keys = list(zip(a.agent.tolist(), a.episode.tolist()))
    assert [stop_eps[k] for k in keys] == [walk_eps[k] for k in keys]  # the same episodes
    np.testing.assert_array_equal(a.distance_to_goal, [stop_eps[k][-1] for k in keys])  # STOP where it started
    np.testing.assert_array_equal(b.length, [walk_steps[k] for k in keys])  # each row is its own episode
    assert len(set(b.length.tolist())) > 1


def test_paired_differences_and_the_table_column():
    env = make_env(2, success_radius=1, max_episode_steps=30)
    results = {}
    for label, act in reference_actors(env, seed=0).items():
        env.seed(3)
        results[label] = run_episodes(env, act, 8, max_frames=0)
    paired = paired_differences(results)
    assert set(paired) == {"random walk", "recognition + persistent walk"}
    diff = results["recognition + persistent walk"].success - results["blind persistent walk"].success
    assert paired["recognition + persistent walk"]["mean"] == pytest.approx(diff.mean())
    assert paired["recognition + persistent walk"]["n"] == 8
    table = format_table({k: summarize(r) for k, r in results.items()}, metrics=("success",), paired=paired)
    assert "| success − blind walk (paired) |" in table.splitlines()[0]
    assert table.splitlines()[3].endswith(" |  |")  # the blind walk's own row: no difference to itself
    assert paired_differences({"x": results["random walk"]}) == {}
    results["short"] = run_episodes(env, reference_actors(env, seed=0)["random walk"], 6, max_frames=0)
    with pytest.raises(ValueError, match="ran different episodes"):
        paired_differences(results)
