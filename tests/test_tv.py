"""The noisy TV (envs/tv.py): where it stands, what it shows, how it is redrawn, what the oracle and HOG make of it, and
the time-in-TV and remote-press metrics, on hand cases."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from envs.goals import cell_box
from envs.hog import HOG_DIM, hog_features, hog_grid
from envs.image_nav_env import ImageNavEnv
from envs.oracle import N_CLASSES, SCREEN_CHANNEL
from envs.scenes import SceneGenerator
from envs.tv import TV_MODES, place_tv
from envs.world import NavWorld

#: 8 x 8 cells, few small objects: a free 2x2 place away from every object in each scene.
TV_GENERATOR = SceneGenerator(image_size=112, n_objects=(2, 3), object_size=(14, 20))
UP, DOWN, LEFT, RIGHT, REMOTE = 0, 1, 2, 3, 4


@functools.cache
def tv_world(mode: str, observation: str = "oracle", n_scenes: int = 4, frames: int = 8):
    return NavWorld.from_generator(
        n_scenes=n_scenes, generator=TV_GENERATOR, task="objectnav", observation=observation, tv=mode, tv_frames=frames
    )


@pytest.mark.parametrize("mode", TV_MODES)
def test_the_tv_is_on_the_background_away_from_every_goal_and_never_shows_a_goal_class(mode):
    world = tv_world(mode)
    tv = world.tv
    assert world.variant_mode == "tv" and world.n_variants == tv.n_frames == 8
    for s, scene in enumerate(world.scenes):
        r0, c0, r1, c1 = tv.boxes[s].tolist()
        assert (r1 - r0, c1 - c0) == (1, 1)  # 2 x 2 cells
        for obj in scene.objects:  # every object is a possible ObjectNav goal: no TV cell on it or next to it
            o0, p0, o1, p1 = cell_box(obj.bbox, 14, (8, 8))
            assert r1 < o0 - 1 or r0 > o1 + 1 or c1 < p0 - 1 or c0 > p1 + 1
        goal_classes = {int(world.object_goals.goal_class[g]) for g in world.object_goals.goals_of_scene(s)}
        assert goal_classes == {o.class_id for o in scene.objects}
        assert not goal_classes & set(tv.frame_classes[s].tolist())  # no frame shows a goal's class
        # pixels change only inside the TV's cells, and they do change
        changed = np.any(world.images[s] != world.images[s, :1], axis=(0, -1))  # (H, W)
        inside = np.zeros_like(changed)
        inside[r0 * 14 : (r1 + 1) * 14, c0 * 14 : (c1 + 1) * 14] = True
        assert changed.any() and not (changed & ~inside).any()
    # in view from a (2 + 2r) x (2 + 2r) block of cells at most (r = 1: 16 of the 64 cells)
    assert tv.in_view(1, (8, 8)).sum(axis=(1, 2)).max() <= 16


def test_place_tv_names_the_scene_when_there_is_no_room():
    crowded = SceneGenerator(image_size=112, n_objects=(5, 5), object_size=(24, 28), min_gap=0).generate(0, "train")
    with pytest.raises(ValueError, match="no free 2x2-cell place for a TV"):
        place_tv(crowded, 14, (8, 8), 2, np.random.default_rng(0))


def test_oracle_sees_the_screen_and_the_class_but_neither_the_noise_nor_the_hue():
    for mode in ("spontaneous", "remote", "colour", "class"):
        world = tv_world(mode)
        grids = world.features.grids.numpy()  # (S, V, h, w, C)
        for s in range(world.n_scenes):
            r0, c0, r1, c1 = world.tv.boxes[s].tolist()
            cells = grids[s, :, r0 : r1 + 1, c0 : c1 + 1]
            elsewhere = np.ones(grids.shape[2:4], bool)
            elsewhere[r0 : r1 + 1, c0 : c1 + 1] = False
            away = grids[s][:, elsewhere]  # (V, cells, C): away from the TV every frame has the same ground truth
            np.testing.assert_array_equal(away, np.broadcast_to(away[:1], away.shape))
            assert (cells[..., SCREEN_CHANNEL] == (mode != "colour")).all()
            if mode == "class":  # the class channel follows the frame
                shown = cells[:, 0, 0, :N_CLASSES].argmax(-1)
                np.testing.assert_array_equal(shown, world.tv.frame_classes[s])
                assert len(set(shown.tolist())) > 1
            else:  # noise and hue are no thing: every frame has the same ground truth
                np.testing.assert_array_equal(cells, np.broadcast_to(cells[:1], cells.shape))
                assert not np.array_equal(world.images[s, 0], world.images[s, 1])  # while the pixels change


def _walk(env: ImageNavEnv, actions, seed: int = 0, start=(0, 0)):
    env.reset(seed=seed, options={"scene_index": 0, "start": start})
    infos = []
    for a in actions:
        infos.append(env.step(a)[-1])
    return infos


def test_remote_redraws_only_on_the_remote_action_with_the_tv_in_view():
    world = tv_world("remote")
    env = ImageNavEnv("objectnav", world=world, observation="oracle", patch_radius=1, min_start_distance=2,
                      max_episode_steps=100)  # fmt: skip
    assert env.action_space.n == 5 and env.core.config.action_names[REMOTE] == "remote"
    r0, c0, _, _ = world.tv.boxes[0].tolist()
    view = env.core.tv_view[0]
    far = tuple(int(v) for v in np.argwhere(~view)[0])
    env.reset(seed=0, options={"scene_index": 0, "start": far})
    frames = [env.core.agents.variant[0]]
    for _ in range(6):  # out of view: pressing does nothing
        info = env.step(REMOTE)[-1]
        frames.append(info["variant_index"])
        assert info["position"] == far and not info["tv_in_view"]
    assert len(set(frames)) == 1 and env.core.agents.remote_presses[0] == 0
    env.reset(seed=0, options={"scene_index": 0, "start": (r0, c0)})  # on the TV: in view
    first = env.core.agents.variant[0]
    presses = []
    for _ in range(12):
        info = env.step(REMOTE)[-1]
        presses.append(info["variant_index"])
        assert info["tv_in_view"]
    assert env.core.agents.remote_presses[0] == 12 and len(set([first, *presses])) > 2
    moves = [env.step(a)[-1]["variant_index"] for a in (UP, DOWN, LEFT, RIGHT)]
    assert set(moves) == {presses[-1]}  # moving never redraws the remote TV


def test_spontaneous_redraws_every_step_and_the_stream_leaves_the_episodes_alone():
    world = tv_world("spontaneous")
    env = ImageNavEnv("objectnav", world=world, observation="oracle", min_start_distance=2, max_episode_steps=200)
    infos = _walk(env, [RIGHT] * 3 + [LEFT] * 3 + [DOWN] * 100)
    assert len({i["variant_index"] for i in infos}) == world.n_variants  # more redraws than a block of frames
    quiet = ImageNavEnv("objectnav", world=tv_world("spontaneous"), observation="oracle", min_start_distance=2)
    starts = []
    for e in (env, quiet):
        e.reset(seed=5)
        for _ in range(3):  # another policy, another number of frames drawn: the same next episodes
            for a in (RIGHT, DOWN) if e is env else (UP,):
                e.step(a)
            starts.append(e.reset()[1]["position"])
    assert starts[:3] == starts[3:]


def test_time_in_tv_on_a_hand_case():
    world = tv_world("spontaneous", n_scenes=1)
    env = ImageNavEnv(
        "objectnav",
        world=world,
        observation="oracle",
        patch_radius=1,
        min_start_distance=2,
        max_episode_steps=7,
        stop_action=True,
    )  # fmt: skip (with STOP, only the time limit ends it)
    r0, c0, r1, c1 = world.tv.boxes[0].tolist()
    # the cells whose 3x3 window holds a TV cell: its 2x2 cells dilated by 1, clipped to the grid
    expected = np.zeros((8, 8), bool)
    expected[max(r0 - 1, 0) : r1 + 2, max(c0 - 1, 0) : c1 + 2] = True
    np.testing.assert_array_equal(env.core.tv_view[0], expected)
    # 7 moves along the TV's row from the far side of the grid: the TV comes into view, then leaves it
    start_col, step = (0, RIGHT) if c0 >= 4 else (7, LEFT)
    env.reset(seed=0, options={"scene_index": 0, "start": (r0, start_col)})
    cols = []
    for _ in range(7):
        *_, truncated, info = env.step(step)
        cols.append(info["position"][1])
        assert info["tv_in_view"] == expected[r0, cols[-1]]
    assert truncated and cols == (list(range(1, 8)) if step == RIGHT else list(range(6, -1, -1)))
    hand = [expected[r0, c] for c in cols]  # e.g. TV at columns 5-6 walked from 0: cols 1..7, 4..7 in view
    assert 0 < sum(hand) < len(hand)
    assert info["tv_fraction"] == pytest.approx(sum(hand) / len(hand)) and info["remote_presses"] == 0


@pytest.mark.parametrize("mode", TV_MODES)
@pytest.mark.parametrize("observation", ["oracle", "pixels", "mean"])
def test_every_mode_runs_with_every_observation(mode, observation):
    from gymnasium.utils.env_checker import check_env

    env = ImageNavEnv("objectnav", world=tv_world(mode, observation, n_scenes=2, frames=4), observation=observation,
                      min_start_distance=2, max_episode_steps=10)  # fmt: skip
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    for _ in range(25):
        *_, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            assert 0.0 <= info["tv_fraction"] <= 1.0
            env.reset()


def test_a_world_with_another_tv_is_refused():
    with pytest.raises(ValueError, match="build it with tv='spontaneous'"):
        ImageNavEnv("objectnav", world=tv_world("remote"), observation="oracle", tv="spontaneous")
    with pytest.raises(ValueError, match="tv must be one of"):
        ImageNavEnv("objectnav", observation="oracle", scene_generator=TV_GENERATOR, n_scenes=1, tv="static")
    with pytest.raises(ValueError, match="not both"):
        NavWorld.from_generator(
            n_scenes=1, generator=TV_GENERATOR, observation="pixels", colour_variants=2, tv="colour"
        )


def test_hog_is_a_normalised_histogram_that_ignores_a_recolouring():
    scene = TV_GENERATOR.generate(0, "train")
    grid = hog_grid(scene.image, 14)
    assert grid.shape == (8, 8, HOG_DIM) and np.all(grid >= 0) and np.all(np.linalg.norm(grid, axis=-1) <= 1 + 1e-5)
    # a vertical step edge: every vote in the horizontal-gradient bins (0 and 180 degrees), none elsewhere
    edge = np.zeros((28, 28, 3), np.uint8)
    edge[:, 14:] = 200
    cells = hog_grid(edge, 14).reshape(2, 2, 2, 2, 9)
    assert cells[..., 1:8].max() == 0 and cells[..., 0].max() > 0
    # polarity and contrast do not matter: the inverted, dimmer edge has the same descriptor
    np.testing.assert_allclose(hog_grid((255 - edge) // 2, 14), hog_grid(edge, 14), atol=1e-2)
    world = tv_world("colour", "pixels", n_scenes=2)
    features = hog_features(world.images, 14).grids.numpy()
    rgb = world.images.astype(np.float32)
    for s in range(2):
        r0, c0, r1, c1 = world.tv.boxes[s].tolist()
        hog_change = np.abs(features[s, 1:, r0 : r1 + 1, c0 : c1 + 1] - features[s, :1, r0 : r1 + 1, c0 : c1 + 1])
        pixel_change = np.abs(rgb[s, 1:] - rgb[s, :1]).max() / 255.0
        assert hog_change.mean() < 0.1 * pixel_change  # a hue change moves the pixels much more than HOG
