"""NavCore mechanics through ImageNavEnv: moves, rotation of the view, STOP, rewards, metrics, goals (the noisy TV:
tests/test_tv.py)."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
import torch

from encoders import create_model
from envs.core import NavConfig
from envs.image_nav_env import ImageNavEnv
from envs.scenes import SceneGenerator
from envs.world import NavWorld

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3
FORWARD, TURN_LEFT, TURN_RIGHT = 0, 1, 2

#: Small procedural scenes: 112 x 112 pixels -> 8 x 8 cells of 14 pixels.
SMALL_GENERATOR = SceneGenerator(image_size=112, n_objects=(2, 4), object_size=(16, 28))


@functools.cache
def pico_encoder() -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return create_model("vit_pico_patch14").eval()


@functools.cache
def small_world(task: str = "imagenav", observation: str = "mean", n_scenes: int = 3, **kwargs):
    """A shared small world (cached: build once per configuration and test session)."""
    encoder = pico_encoder() if observation != "pixels" else None
    return NavWorld.from_generator(
        n_scenes=n_scenes, generator=SMALL_GENERATOR, task=task, observation=observation, encoder=encoder, **kwargs
    )


def make_env(task="imagenav", observation="mean", world_kwargs=None, **kwargs) -> ImageNavEnv:
    kwargs.setdefault("min_start_distance", 2)
    return ImageNavEnv(
        task, world=small_world(task, observation, **(world_kwargs or {})), observation=observation, **kwargs
    )


def test_grid_moves_heading_and_border_noop():
    env = make_env(success_radius=0)
    env.reset(seed=0, options={"start": (0, 0), "goal": (7, 7), "heading": 1})
    _, _, _, _, info = env.step(UP)  # into the border: stays, heading up
    assert info["position"] == (0, 0) and info["path_length"] == 0 and info["heading"] == 0
    _, _, _, _, info = env.step(RIGHT)
    assert info["position"] == (0, 1) and info["path_length"] == 1 and info["heading"] == 1
    _, _, _, _, info = env.step(DOWN)
    assert info["position"] == (1, 1) and info["heading"] == 2
    _, _, _, _, info = env.step(LEFT)
    assert info["position"] == (1, 0) and info["heading"] == 3 and info["distance_to_goal"] == 6 + 7
    assert env.core.agents.steps[0] == 4 and info["coverage"] == pytest.approx(4 / 64)


@pytest.mark.parametrize("observation", ["window", "pixels"])
def test_egocentric_view_rotates_with_heading(observation):
    env = make_env(observation=observation, actions="egocentric", patch_radius=1)
    key = "features" if observation == "window" else "pixels"
    obs, _ = env.reset(seed=0, options={"start": (3, 3), "heading": 0})
    north = obs[key]
    for k, action in ((1, TURN_RIGHT), (2, TURN_RIGHT), (3, TURN_RIGHT), (0, TURN_RIGHT), (3, TURN_LEFT)):
        obs, _, _, _, info = env.step(action)
        assert info["heading"] == k and info["position"] == (3, 3)
        np.testing.assert_array_equal(obs[key], np.rot90(north, k, axes=(0, 1)))
    _, _, _, _, info = env.step(FORWARD)  # heading 3 = left (west)
    assert info["position"] == (3, 2) and info["path_length"] == 1


def _brute_mean(grid: np.ndarray, r: int, row: int, col: int) -> np.ndarray:
    return grid[max(0, row - r) : row + r + 1, max(0, col - r) : col + r + 1].astype(np.float64).mean(axis=(0, 1))


def test_feature_observations_are_window_lookups():
    env = make_env(observation="window", patch_radius=1)
    grids = env.world.features.grids.numpy()  # (S, V, h, w, D)
    obs, info = env.reset(seed=3, options={"start": (0, 5), "goal": (6, 2)})
    s = info["scene_index"]
    window = obs["features"]  # (3, 3, D), row 0 is outside the grid
    np.testing.assert_array_equal(window[0], 0.0)
    np.testing.assert_array_equal(window[1:], grids[s, 0, 0:2, 4:7])
    np.testing.assert_allclose(obs["goal"], _brute_mean(grids[s, 0], 1, 6, 2), atol=1e-5)
    mean_env = make_env(patch_radius=2, include_position=True, include_heading=True)
    obs, info = mean_env.reset(seed=3, options={"start": (7, 0), "heading": 2})
    grids = mean_env.world.features.grids.numpy()
    np.testing.assert_allclose(obs["features"], _brute_mean(grids[info["scene_index"], 0], 2, 7, 0), atol=1e-5)
    np.testing.assert_allclose(obs["position"], [1.0, 0.0])
    np.testing.assert_array_equal(obs["heading"], [0, 0, 1, 0])


def test_default_stop_task_reward_makes_an_immediate_stop_no_better_than_searching():
    """-v1 rules with the default rewards: a STOP that fails and every step pay 0, a STOP in the success region 1; so
    the return of an immediate STOP (0) is below that of any policy that sometimes stops at the goal (with a step
    penalty p, stopping at once would beat a search of L steps whenever its success rate is below p * L)."""
    env = make_env(stop_action=True, success_radius=1)
    stop = 4
    env.reset(seed=0, options={"start": (0, 0), "goal": (0, 3)})
    _, reward, terminated, _, info = env.step(stop)
    assert terminated and not info["is_success"] and reward == 0.0
    env.reset(options={"start": (0, 0), "goal": (0, 3)})
    rewards = [env.step(RIGHT)[1], env.step(RIGHT)[1]]
    _, reward, terminated, _, info = env.step(stop)
    assert rewards == [0.0, 0.0] and terminated and info["is_success"] and reward == 1.0


def test_stop_semantics_rewards_and_metrics():
    env = make_env(stop_action=True, success_radius=1, step_penalty=0.01, success_reward=2.0)
    stop = 4
    env.reset(seed=0, options={"start": (0, 0), "goal": (0, 3)})
    _, reward, terminated, _, info = env.step(RIGHT)
    assert reward == pytest.approx(-0.01) and not terminated and info["distance_to_goal"] == 2
    _, reward, terminated, _, info = env.step(stop)  # STOP outside the radius: episode over, failure
    assert terminated and not info["is_success"] and info["spl"] == 0 and reward == pytest.approx(-0.01)
    assert info["episode"]["l"] == 2 and info["episode"]["r"] == pytest.approx(-0.02)

    env.reset(options={"start": (0, 0), "goal": (0, 3)})
    env.step(RIGHT)
    _, _, terminated, _, info = env.step(RIGHT)  # within the radius but no STOP yet
    assert not terminated and not info["is_success"]
    _, reward, terminated, _, info = env.step(stop)
    assert terminated and info["is_success"] and reward == pytest.approx(2.0 - 0.01)
    assert info["spl"] == pytest.approx(1.0)  # the shortest successful path: 2 moves (start 3 cells away, radius 1)
    assert info["soft_spl"] == pytest.approx((1 - 1 / 3) * 1.0)

    no_stop = make_env(success_radius=1, distance_reward_scale=1.0, step_penalty=0.0)
    no_stop.reset(seed=0, options={"start": (0, 0), "goal": (0, 3)})
    _, reward, _, _, _ = no_stop.step(DOWN)
    assert reward == pytest.approx(-1.0)  # one cell farther
    no_stop.step(UP)
    no_stop.step(RIGHT)
    _, reward, terminated, _, info = no_stop.step(RIGHT)  # reaching the radius ends the episode with success
    assert terminated and info["is_success"] and reward == pytest.approx(1.0 + 1.0)
    assert info["spl"] == pytest.approx(2 / 4)  # detour: path 4 cells (down, up, right, right), shortest 3 - 1


def test_spl_of_shortest_path_and_detour_in_env():
    env = make_env(success_radius=0)
    env.reset(seed=0, options={"start": (2, 0), "goal": (2, 4)})
    for _ in range(4):
        _, _, terminated, _, info = env.step(RIGHT)
    assert terminated and info["is_success"] and info["spl"] == pytest.approx(1.0) and info["path_length"] == 4
    env.reset(options={"start": (2, 0), "goal": (2, 4)})
    for a in (DOWN, RIGHT, RIGHT, RIGHT, RIGHT, UP):
        _, _, terminated, _, info = env.step(a)
    assert terminated and info["spl"] == pytest.approx(4 / 6) and info["soft_spl"] == pytest.approx(4 / 6)
    assert info["coverage"] == pytest.approx(7 / 64)


def test_starts_respect_min_distance_and_time_limit():
    env = make_env(min_start_distance=5, max_episode_steps=3)
    env.reset(seed=1)
    for _ in range(30):
        _, info = env.reset()
        assert info["distance_to_goal"] >= 5
    for _ in range(2):
        _, _, terminated, truncated, _ = env.step(UP)
        assert not truncated
    _, _, terminated, truncated, info = env.step(UP)
    assert truncated and not terminated and info["episode"]["l"] == 3


def test_objectnav_goal_is_any_instance_of_the_class():
    env = make_env(task="objectnav", success_radius=1)
    world = env.world
    goals = world.object_goals
    _, info = env.reset(seed=0)
    g = int(env.core.agents.goal_id[0])
    scene = world.scenes[info["scene_index"]]
    assert goals.goal_scene[g] == info["scene_index"]
    assert goals.class_name(g) in {o.class_name for o in scene.objects}
    # walk greedily down the distance map: it must end in success next to an instance of the class
    dist = goals.distance_maps[g]
    deltas = {UP: (-1, 0), DOWN: (1, 0), LEFT: (0, -1), RIGHT: (0, 1)}
    terminated, steps = False, 0
    while not terminated:
        r, c = info["position"]
        action = min(deltas, key=lambda a: dist[min(max(r + deltas[a][0], 0), 7), min(max(c + deltas[a][1], 0), 7)])
        _, _, terminated, _, info = env.step(action)
        steps += 1
    assert info["is_success"] and info["distance_to_goal"] <= 1 and info["spl"] == pytest.approx(1.0)
    assert steps == max(env.core.agents.start_distance[0] - 1, 0)
    with pytest.raises(ValueError, match="not a class present"):
        absent = next(n for n in ("airplane", "bus", "chair", "car") if n not in {o.class_name for o in scene.objects})
        env.reset(options={"scene_index": info["scene_index"], "goal": absent})


def test_colour_variants_are_drawn_per_episode():
    env = make_env(world_kwargs={"colour_variants": 3})
    seen = set()
    env.reset(seed=0)
    for _ in range(12):
        _, info = env.reset()
        v = info["variant_index"]
        for _ in range(3):
            _, _, _, _, info = env.step(RIGHT)
            assert info["variant_index"] == v
        seen.add(v)
    assert seen == {0, 1, 2}


def test_photo_folder_scenes_give_image_goal_envs(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        photo = rng.integers(0, 256, size=(90 + 10 * i, 130, 3), dtype=np.uint8)
        assert cv2.imwrite(str(tmp_path / f"photo{i}.png"), photo)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    env = ImageNavEnv(scene_folder=tmp_path, image_size=84, encoder=pico_encoder(), min_start_distance=3)
    assert env.world.n_scenes == 3 and env.world.grid_shape == (6, 6)
    obs, info = env.reset(seed=0)
    assert obs["features"].shape == (64,) and info["distance_to_goal"] >= 3
    with pytest.raises(ValueError, match="no scene has any object"):
        ImageNavEnv("objectnav", scene_folder=tmp_path, image_size=84, encoder=pico_encoder())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no readable images"):
        ImageNavEnv(scene_folder=tmp_path / "empty", image_size=84, encoder=pico_encoder())


def test_invalid_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="task must be one of"):
        NavConfig(task="pointnav")
    with pytest.raises(ValueError, match="must exceed success_radius"):
        NavConfig(min_start_distance=1, success_radius=1)
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be in"):
        env.step(7)
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"start_cell": (0, 0)})
    with pytest.raises(ValueError, match="outside the 8x8 grid"):
        env.reset(options={"start": (9, 0)})
    with pytest.raises(ValueError, match="would be ignored"):
        ImageNavEnv(world=small_world(), n_scenes=5)
    with pytest.raises(ValueError, match="not both"):
        NavWorld.from_generator(
            n_scenes=1, generator=SMALL_GENERATOR, encoder=pico_encoder(), colour_variants=2, tv="colour"
        )
    with pytest.raises(ValueError, match="needs object goals"):
        ImageNavEnv("objectnav", world=small_world())
    with pytest.raises(ValueError, match="no scene has any object"):
        NavWorld.from_generator(
            n_scenes=2, generator=SceneGenerator(112, n_objects=(0, 0)), task="objectnav", observation="pixels"
        )
