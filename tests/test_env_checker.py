"""API conformance of every registered id (Gymnasium + SB3 checkers, warnings as errors), determinism, spaces,
pickling and rendering."""

from __future__ import annotations

import copy
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.rendering import AGENT_COLOUR
from tests.test_env_core import RIGHT, make_env, pico_encoder, small_world


def _errors_but_the_v0_notice() -> None:
    """Every warning is an error, except Gymnasium's notice that a ``-v0`` id has a newer ``-v1``."""
    warnings.simplefilter("error")
    warnings.filterwarnings(
        "ignore", message=".*is out of date.*upgrading to version `v1`", category=DeprecationWarning
    )


@pytest.mark.parametrize("env_id", list(envs.REGISTERED_IDS))
def test_registered_ids_pass_both_checkers_without_warnings(env_id):
    with warnings.catch_warnings():
        _errors_but_the_v0_notice()
        env = gym.make(env_id)
        assert env.spec.max_episode_steps == envs.MAX_EPISODE_STEPS
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)
        env.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"actions": "egocentric", "stop_action": True, "include_position": True, "include_heading": True},
        {"observation": "pixels", "actions": "egocentric", "stop_action": True},
        {"world_task": "objectnav", "goal_variants": 2, "distance_reward_scale": 1.0},
        {"colour_variants": 2, "patch_radius": 2, "image_goal": "any"},
    ],
    ids=["egocentric-stop", "pixels-egocentric", "objectnav-shaping", "colour-variants"],
)
def test_other_configurations_pass_both_checkers(kwargs):
    kwargs = dict(kwargs)
    task = kwargs.pop("world_task", "imagenav")
    world_keys = {"goal_variants", "colour_variants"}
    world_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in world_keys}
    world = small_world(task, kwargs.get("observation", "mean"), **world_kwargs)
    with warnings.catch_warnings():
        _errors_but_the_v0_notice()
        env = gym.make("ImageNav-v0", task=task, world=world, min_start_distance=2, **kwargs)
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)


def test_window_observation_passes_gymnasium_checker():
    with warnings.catch_warnings():
        _errors_but_the_v0_notice()
        env = gym.make("ImageNav-v0", world=small_world(), observation="window", min_start_distance=2)
        gym_check_env(env.unwrapped)
    assert env.observation_space["features"].shape == (3, 3, 64)


def _rollout(env: gym.Env, seed: int, n_steps: int) -> list:
    """Observations, rewards, flags and infos (without wall-clock times) of a seeded random-action rollout."""
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    out = [(copy.deepcopy(obs), info)]
    for _ in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs), "observation outside the observation space"
        info = dict(info)
        if "episode" in info:
            info["episode"] = {k: v for k, v in info["episode"].items() if k != "t"}
        out.append((copy.deepcopy(obs), reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            assert env.observation_space.contains(obs)
            out.append((copy.deepcopy(obs), info))
    return out


def _assert_same(a, b) -> None:
    assert gym.utils.env_checker.data_equivalence(a, b, exact=True)


@pytest.mark.parametrize(
    "task,world_kwargs,kwargs",
    [
        ("imagenav", {}, {"max_episode_steps": 15}),
        ("objectnav", {"n_scenes": 2, "tv": "remote", "tv_frames": 3}, {"actions": "egocentric", "stop_action": True}),
        ("imagenav", {"colour_variants": 2}, {"observation": "pixels", "max_episode_steps": 10}),
    ],
    ids=["imagenav", "objectnav-remote-tv-egocentric", "pixels-colour-variants"],
)
def test_same_seed_same_rollout_and_observations_in_space(task, world_kwargs, kwargs):
    kwargs = dict(kwargs)
    observation = kwargs.pop("observation", "mean")
    first = _rollout(make_env(task, observation, world_kwargs, **kwargs), seed=7, n_steps=80)
    second = _rollout(make_env(task, observation, world_kwargs, **kwargs), seed=7, n_steps=80)
    _assert_same(first, second)
    other = _rollout(make_env(task, observation, world_kwargs, **kwargs), seed=8, n_steps=80)
    assert not gym.utils.env_checker.data_equivalence(first, other)


def test_pickling_round_trip_keeps_state_and_feature_views():
    env = make_env("objectnav", max_episode_steps=50)
    env.reset(seed=3)
    for _ in range(5):
        env.step(RIGHT)
    clone = pickle.loads(pickle.dumps(env))
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(30)]
    for a in actions:
        _assert_same(env.step(a)[:4], clone.step(a)[:4])
    # the clone's numpy views point into the clone's own (refreshable) feature tensors
    obs_before = clone.core.observe()["features"].copy()
    clone.world.features.grids.add_(1.0)
    clone.world.features._fill_window_mean(clone.world.features.window_mean(1), 1)
    np.testing.assert_allclose(clone.core.observe()["features"], obs_before + 1.0, atol=1e-5)
    assert not np.allclose(env.core.observe()["features"], clone.core.observe()["features"])
    wrapped = gym.make("ImageNavPixels-v0")
    wrapped.reset(seed=0)
    restored = pickle.loads(pickle.dumps(wrapped))
    _assert_same(wrapped.step(1)[:4], restored.step(1)[:4])


def test_render_rgb_array_frame():
    env = make_env(render_mode="rgb_array", success_radius=1)
    env.reset(seed=0, options={"start": (2, 2), "goal": (6, 6), "heading": 1})
    env.step(RIGHT)
    frame = env.render()
    assert frame.shape == (112, 112, 3) and frame.dtype == np.uint8
    assert tuple(frame[2 * 14 + 7, 3 * 14 + 5]) == AGENT_COLOUR  # the agent's disc in cell (2, 3)
    scene = env.world.images[env.core.agents.scene[0], 0]
    assert not np.array_equal(frame[6 * 14 : 7 * 14, 6 * 14 : 7 * 14], scene[6 * 14 : 7 * 14, 6 * 14 : 7 * 14])  # goal
    big = make_env(render_mode="rgb_array", render_scale=2)
    big.reset(seed=0)
    assert big.render().shape == (224, 224, 3)
    silent = make_env()
    silent.reset(seed=0)
    with pytest.warns(UserWarning, match="without specifying any render mode"):
        assert silent.render() is None


def test_refresh_features_reaches_the_observations():
    model = copy.deepcopy(pico_encoder()).unfreeze_top_layers(1)
    env = make_env(world_kwargs={"cache_block": 1})
    obs, _ = env.reset(seed=0)
    with torch.no_grad():
        model.norm.bias.add_(0.5)
    env.refresh_features(model)
    fresh, _ = env.reset(seed=0)
    np.testing.assert_allclose(fresh["features"], obs["features"] + 0.5, atol=1e-4)
    np.testing.assert_allclose(fresh["goal"], obs["goal"] + 0.5, atol=1e-4)
    with torch.no_grad():
        model.norm.bias.sub_(0.5)
    env.refresh_features(model)  # back to the original encoder: the shared cached world is unchanged for others
