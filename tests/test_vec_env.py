"""ImageNavVecEnv: same trajectories as N single envs, SB3 VecEnv API, auto-reset, shared cache, PPO smoke."""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecCheckNan

from envs.features import SceneFeatures
from envs.image_nav_env import ImageNavEnv
from envs.vec_env import ImageNavVecEnv
from tests.test_env_core import SMALL_GENERATOR, pico_encoder, small_world

CASES = [
    ("imagenav", "mean", {}, {"max_episode_steps": 12, "min_start_distance": 3, "success_radius": 2}),
    (
        "objectnav",
        "mean",
        {"n_scenes": 2, "tv": "spontaneous", "tv_frames": 3},
        {"actions": "egocentric", "max_episode_steps": 70, "include_heading": True},  # > TV_BLOCK redraws
    ),
    ("objectnav", "oracle", {"n_scenes": 2, "tv": "remote", "tv_frames": 3}, {"max_episode_steps": 20}),
    ("imagenav", "pixels", {"colour_variants": 2}, {"max_episode_steps": 9, "stop_action": True}),
]


def _strip(info: dict) -> dict:
    info = {k: v for k, v in info.items() if k not in ("terminal_observation", "TimeLimit.truncated")}
    if "episode" in info:
        info["episode"] = {k: v for k, v in info["episode"].items() if k != "t"}
    return info


@pytest.mark.parametrize(
    "task,observation,world_kwargs,kwargs", CASES, ids=["imagenav", "objectnav-tv", "pixels", "oracle-remote-tv"]
)
def test_vec_env_matches_single_envs(task, observation, world_kwargs, kwargs):
    n, seed, n_steps = 4, 11, 150
    world = small_world(task, observation, **world_kwargs)
    limit = kwargs.pop("max_episode_steps")
    vec = ImageNavVecEnv(n, task, world=world, observation=observation, max_episode_steps=limit, **kwargs)
    singles = [
        ImageNavEnv(task, world=world, observation=observation, max_episode_steps=limit, **kwargs) for _ in range(n)
    ]
    vec.seed(seed)
    obs = vec.reset()
    for i, env in enumerate(singles):
        single_obs, single_info = env.reset(seed=seed + i)
        for key in obs:
            np.testing.assert_array_equal(obs[key][i], single_obs[key])
        assert vec.reset_infos[i] == single_info
    actions = np.random.default_rng(0).integers(vec.action_space.n, size=(n_steps, n))
    episodes = 0
    for t in range(n_steps):
        obs, rewards, dones, infos = vec.step(actions[t])
        assert rewards.dtype == np.float32 and dones.dtype == bool
        for i, env in enumerate(singles):
            s_obs, s_reward, s_term, s_trunc, s_info = env.step(actions[t, i])
            assert rewards[i] == np.float32(s_reward) and dones[i] == (s_term or s_trunc)
            assert _strip(infos[i]) == _strip(s_info)
            assert infos[i]["TimeLimit.truncated"] == (s_trunc and not s_term)
            if s_term or s_trunc:
                episodes += 1
                assert "episode" in infos[i] and infos[i]["episode"]["l"] == s_info["episode"]["l"]
                for key in obs:
                    np.testing.assert_array_equal(infos[i]["terminal_observation"][key], s_obs[key])
                s_obs, s_info = env.reset()
                assert vec.reset_infos[i] == s_info
            for key in obs:
                np.testing.assert_array_equal(obs[key][i], s_obs[key])
            assert singles[i].observation_space.contains({key: value[i] for key, value in obs.items()})
    assert episodes >= 8  # several auto-resets were compared


def test_poses_are_copies_of_where_the_agents_are():
    vec = ImageNavVecEnv(3, world=small_world(), min_start_distance=2)
    vec.reset()
    poses = vec.core.poses()
    assert tuple(poses) == ("scene", "variant", "row", "col", "heading")
    assert poses["heading"].tolist() == vec.get_attr("heading") and poses["row"].shape == (3,)
    poses["row"][:] = -1  # a copy: the agents stay where they are
    assert (vec.core.poses()["row"] >= 0).all()


def test_sb3_vec_env_api():
    vec = ImageNavVecEnv(3, world=small_world(), min_start_distance=2, render_mode="rgb_array", max_episode_steps=5)
    assert vec.seed(5) == [5, 6, 7]
    vec.reset()
    assert vec.get_attr("render_mode") == ["rgb_array"] * 3
    assert vec.get_attr("success_radius", indices=[0]) == [1]
    headings = vec.get_attr("heading")
    assert headings == vec.core.agents.heading.tolist()
    vec.set_attr("heading", 2, indices=[1])
    assert vec.get_attr("heading", indices=1) == [2]
    with pytest.raises(ValueError, match="shared by all agents"):
        vec.set_attr("render_scale", 2, indices=[0])
    vec.set_attr("render_scale", 1)
    with pytest.raises(AttributeError):
        vec.get_attr("no_such_attribute")
    assert vec.env_is_wrapped(Monitor) == [True] * 3
    assert vec.env_is_wrapped(gym.wrappers.TimeLimit, indices=[2]) == [True]
    assert vec.env_is_wrapped(gym.wrappers.ClipAction) == [False] * 3
    frames = vec.env_method("render_agent", indices=[0, 2])
    assert len(frames) == 2 and frames[0].shape == (112, 112, 3)
    assert vec.render_agent(1, episode="last") is None
    tiled = vec.render()
    assert tiled.shape == (224, 224, 3) and tiled.dtype == np.uint8
    checked = VecCheckNan(vec, raise_exception=True)
    for _ in range(6):  # past the 5-step time limit: every agent was reset once
        checked.step(np.zeros(3, dtype=np.int64))
    assert vec.render_agent(1, episode="last").shape == (112, 112, 3)
    with pytest.raises(ValueError, match="expected 3 actions"):
        vec.step(np.zeros(2, dtype=np.int64))
    clone = pickle.loads(pickle.dumps(vec))
    a = np.array([0, 1, 3])
    out, out_clone = vec.step(a), clone.step(a)
    for key in out[0]:
        np.testing.assert_array_equal(out[0][key], out_clone[0][key])
    vec.close()
    vec.close()


def test_shared_world_and_refresh_without_copies():
    model = copy.deepcopy(pico_encoder()).unfreeze_top_layers(1)
    train = ImageNavVecEnv(
        2, encoder=model, cache_block=1, scene_generator=SMALL_GENERATOR, n_scenes=2, min_start_distance=2
    )
    other = ImageNavVecEnv(3, world=train.world, min_start_distance=2)
    single = ImageNavEnv(world=train.world, min_start_distance=2)
    assert other.scene_features is train.scene_features and single.scene_features is train.scene_features
    train.seed(0)
    other.seed(0)
    before, before_other = train.reset(), other.reset()
    with torch.no_grad():
        model.norm.bias.add_(0.25)
    train.refresh_features(model)
    train.seed(0)
    other.seed(0)
    after, after_other = train.reset(), other.reset()
    np.testing.assert_allclose(after["features"], before["features"] + 0.25, atol=1e-4)
    np.testing.assert_allclose(after_other["features"], before_other["features"] + 0.25, atol=1e-4)


def test_prebuilt_scenes_and_scene_features_are_used_without_copies():
    model = copy.deepcopy(pico_encoder()).unfreeze_top_layers(1)
    scenes = SMALL_GENERATOR.generate_many(range(3), "val")
    images = np.stack([s.image for s in scenes])[:, None]  # (S, 1, H, W, 3)
    cache = SceneFeatures.from_encoder(model, images, storage_dtype="float16", cache_block=1)
    vec = ImageNavVecEnv(2, "objectnav", scenes=scenes, scene_features=cache, encoder=model, min_start_distance=2)
    assert vec.scene_features is cache and vec.world.images is images
    assert vec.world.object_goals.features.storage_dtype == torch.float16  # goals follow the cache's settings
    vec.seed(1)
    obs = vec.reset()
    assert obs["features"].dtype == np.float32 and vec.observation_space.contains({k: v[0] for k, v in obs.items()})
    with torch.no_grad():
        model.norm.bias.add_(0.5)
    cache.refresh(model)  # refreshed from outside: the env sees it
    vec.seed(1)
    np.testing.assert_allclose(vec.reset()["features"], obs["features"] + 0.5, atol=2e-2)
    with pytest.raises(ValueError, match="scene_features has grids"):
        ImageNavVecEnv(2, scenes=scenes, scene_features=cache, colour_variants=2)
    with pytest.raises(ValueError, match="also needs the encoder"):
        ImageNavVecEnv(2, "objectnav", scenes=scenes, scene_features=cache)


def test_ppo_learns_on_the_vec_env_without_wrappers():
    vec = ImageNavVecEnv(4, world=small_world(), min_start_distance=2, max_episode_steps=8, include_position=True)
    model = PPO("MultiInputPolicy", vec, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    assert len(model.ep_info_buffer) > 0 and {"r", "l", "t"} <= set(model.ep_info_buffer[0])
