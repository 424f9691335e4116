"""The oracle feature space (envs/oracle.py): ground truth per cell, the same in every colour, through the feature-grid
contract of the environments and the trainer (observation, curiosity space), and refused by phase 2."""

from __future__ import annotations

import numpy as np
import pytest

from encoders.utils.config import replace_nested
from envs.goals import cell_box
from envs.image_nav_env import ImageNavEnv
from envs.oracle import N_CLASSES, ORACLE_DIM, SCREEN_CHANNEL, oracle_grid
from envs.scenes import SceneGenerator
from envs.scenes.types import BACKGROUNDS
from envs.world import NavWorld
from techniques.rl_navigation.config import PRESETS, TwoPhaseConfig, check_config

GENERATOR = SceneGenerator(image_size=112, n_objects=(2, 4), object_size=(16, 28))


def _world(task: str = "objectnav", **kwargs):
    return NavWorld.from_generator(n_scenes=3, generator=GENERATOR, task=task, observation="oracle", **kwargs)


def test_oracle_cells_name_the_objects_that_touch_them_and_the_background():
    scene = GENERATOR.generate(0, "train")
    grid = oracle_grid(scene, 14, (8, 8))
    assert grid.shape == (8, 8, ORACLE_DIM)
    background = np.zeros(len(BACKGROUNDS))
    background[BACKGROUNDS.index(scene.background)] = 1
    np.testing.assert_array_equal(
        grid[:, :, N_CLASSES:SCREEN_CHANNEL], np.broadcast_to(background, (8, 8, len(BACKGROUNDS)))
    )
    assert not grid[:, :, SCREEN_CHANNEL].any()  # no TV in this world
    expected = np.zeros((8, 8, N_CLASSES))
    for obj in scene.objects:
        r0, c0, r1, c1 = cell_box(obj.bbox, 14, (8, 8))
        expected[r0 : r1 + 1, c0 : c1 + 1, obj.class_id] = 1
    np.testing.assert_array_equal(grid[:, :, :N_CLASSES], expected)
    assert expected.any(axis=-1).sum() < 64  # some cells are background only


def test_oracle_features_are_identical_across_colour_variants_and_differ_across_classes():
    world = _world(colour_variants=3)
    grids = world.features.grids.numpy()  # (S, V, h, w, C)
    assert world.n_variants == 3 and not np.array_equal(world.images[:, 0], world.images[:, 1])  # pixels differ
    for v in range(1, 3):
        np.testing.assert_array_equal(grids[:, v], grids[:, 0])  # ... the ground truth does not
    classes = grids[..., :N_CLASSES].reshape(-1, N_CLASSES)
    present = {tuple(row) for row in classes if row.any()}
    assert len(present) >= 2  # cells of different classes have different vectors
    goals = world.object_goals
    vectors = goals.vectors.numpy()  # (G, K, C): the class one-hot of each goal
    np.testing.assert_array_equal(vectors.argmax(-1)[:, 0], goals.goal_class)
    assert vectors.sum(-1).max() == 1 and len(set(goals.goal_class.tolist())) >= 2


@pytest.mark.parametrize("task", ["imagenav", "objectnav"])
def test_oracle_observation_is_the_window_of_ground_truth_cells(task):
    env = ImageNavEnv(task, world=_world(task), observation="oracle", patch_radius=2, min_start_distance=2)
    obs, info = env.reset(seed=0)
    assert env.observation_space["features"].shape == (5, 5, ORACLE_DIM) and env.observation_space.contains(obs)
    row, col = info["position"]
    cell = env.unwrapped.core.world.features.grids.numpy()[info["scene_index"], 0, row, col]
    np.testing.assert_array_equal(obs["features"][2, 2], cell)  # the window's centre is the agent's cell
    if task == "objectnav":
        assert obs["goal"].sum() == 1 and obs["goal"][N_CLASSES:].sum() == 0  # the goal class alone


def test_the_oracle_refuses_photo_scenes_and_phase_2():
    scene = GENERATOR.generate(0, "train")
    scene.background = "photo"
    with pytest.raises(ValueError, match="oracle needs procedural scenes"):
        oracle_grid(scene, 14, (8, 8))
    cfg = replace_nested(TwoPhaseConfig(), {**PRESETS["smoke"], "observation": "oracle"})
    with pytest.raises(ValueError, match="--observation oracle has no encoder to fine-tune"):
        check_config(cfg)
    check_config(replace_nested(cfg, {"phase2_episodes": 0}))
