"""Real photographs (scikit-image's bundled astronaut, coffee, chelsea, rocket, motorcycle) through the photo-folder
scene source, the navigation env and ``experiments.encode``."""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from encoders.preprocessing import read_image_rgb
from envs.scenes import FolderSceneSource
from envs.scenes.folder import fit_photo
from experiments import encode

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "motorcycle"]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """The five photos as lossless PNGs (``astronaut.png``, ...), written through ``encode.write_sample_photo``."""
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        encode.write_sample_photo(folder / f"{name}.png")
    return folder


def test_sample_photos_are_the_bundled_rgb_photographs(photo_folder):
    from skimage import data

    astronaut = read_image_rgb(photo_folder / "astronaut.png")
    assert astronaut.shape == (512, 512, 3) and np.array_equal(astronaut, data.astronaut())  # RGB order kept
    assert read_image_rgb(photo_folder / "motorcycle.png").shape == (500, 741, 3)
    with pytest.raises(ValueError, match="no bundled photo named 'lena'"):
        encode.write_sample_photo(photo_folder / "lena.png")


def test_folder_source_crops_the_photographs(photo_folder):
    source = FolderSceneSource(photo_folder, image_size=112, patch_size=14)
    assert [p.stem for p in source.files] == sorted(PHOTOS) and source.skipped == []
    for scene, path in zip(source, source.files):
        assert scene.image.shape == (112, 112, 3) and scene.source == str(path)
        np.testing.assert_array_equal(scene.image, fit_photo(read_image_rgb(path), 112, 14))
    coffee = source[sorted(PHOTOS).index("coffee")].image.reshape(-1, 3).mean(0)
    assert coffee[0] > coffee[2]  # a brown cup on a wooden table: more red than blue, so channels are not swapped
    resized = FolderSceneSource(photo_folder, image_size=112, patch_size=14, mode="resize")
    assert resized[sorted(PHOTOS).index("rocket")].image.shape == (70, 112, 3)  # 427x640 -> 75x112 -> 70x112


def test_image_nav_env_runs_on_the_photographs(photo_folder):
    env = gym.make(
        "ImageNav-v1",
        scene_folder=photo_folder,
        n_scenes=None,
        encoder="vit_pico_patch14",
        image_size=112,
        min_start_distance=2,
        max_episode_steps=20,
    )
    obs, info = env.reset(seed=0)
    assert obs["features"].shape == obs["goal"].shape == (64,)
    assert np.isfinite(obs["features"]).all() and not np.allclose(obs["features"], obs["goal"])
    world = env.unwrapped.world
    assert len(world.scenes) == len(PHOTOS) and {s.background for s in world.scenes} == {"photo"}
    seen = [obs["features"]]
    # a fixed walk without STOP (a random draw could STOP at once, and one feature would be seen)
    names = env.unwrapped.config.action_names
    walk = [names.index(a) for a in ("right", "right", "down", "down", "left", "up")] * 4
    for action in walk[:20]:
        obs, _, terminated, truncated, info = env.step(action)
        seen.append(obs["features"])
        if terminated or truncated:
            break
    assert terminated or truncated  # the 20-step limit at the latest
    assert {"is_success", "spl", "coverage"} <= set(info)
    assert len({f.tobytes() for f in seen}) > 1  # moving over the photo changes what the agent sees
    env.close()


def test_encode_writes_a_pca_map_of_a_photograph(photo_folder, tmp_path, capsys):
    out = tmp_path / "astronaut_pca.png"
    args = ["--encoder", "vit_pico_patch14", "--sample-photo", str(tmp_path / "astronaut.png"), "--size", "224"]
    assert encode.main([*args, "--output", str(out)]) == 0
    assert "x_norm_patchtokens   (1, 256, 64)" in capsys.readouterr().out  # 512x512 -> 224x224 -> 16x16 patches
    panel = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert panel.shape == (224, 448, 3)  # the photo and its PCA map side by side
    photo, pca = panel[:, :224], panel[:, 224:]
    assert (
        np.abs(
            photo.astype(int)
            - cv2.resize(read_image_rgb(photo_folder / "astronaut.png"), (224, 224), interpolation=cv2.INTER_AREA)
        ).mean()
        < 3
    )
    assert pca.reshape(-1, 3).std(0).min() > 10  # three components that vary over the photo, not one flat colour
