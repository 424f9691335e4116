"""Faults and bad input, tried as a new user and a QA engineer would (issue 11; the table in docs/reliability.md).

- files: atomic writes respect the umask; a full disk is reported as such;
- pretraining: one ``error:`` line, the last N checkpoints with a fallback past a damaged one, fresh starts over
  unreadable checkpoints;
- ``two_phase --resume`` of a folder that is not a two-phase run;
- the environments' input contract (order, action types, options, argument types, scene sizes, upscaling).
"""

from __future__ import annotations

import errno
import logging
import os

import cv2
import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the ids)
from encoders.checkpoint import atomic_save, atomic_write_text
from encoders.data.image_folder import ImageFolderDataset
from encoders.train.config import CropsConfig
from encoders.train.data import MultiCropDataPipeline
from envs import ImageNavEnv, ImageNavVecEnv
from envs.scenes import FolderSceneSource
from experiments import pretrain, two_phase

PICO = ["--preset", "pico", "--no-train.progress"]

pytestmark = pytest.mark.usefixtures("restore_logging")


def _pretrain(argv: list[str]) -> int:
    return pretrain.run(pretrain.parse_args(argv), pretrain.dist_utils.DistributedContext())


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


# ------------------------------------------------------------------------------------------------- files
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        saved = atomic_save({"a": torch.ones(1)}, tmp_path / "w.pth")
        text = atomic_write_text("x", tmp_path / "t.json")
    finally:
        os.umask(previous)
    assert (saved.stat().st_mode & 0o777) == (text.stat().st_mode & 0o777) == 0o666 & ~umask


class _FullDisk:
    """A binary file whose writes fail with ENOSPC after ``limit`` bytes, as on a full file system."""

    def __init__(self, f, limit: int = 64):
        self._f, self._left = f, limit

    def write(self, data) -> int:
        if len(data) > self._left:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._left -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def full_disk(monkeypatch):
    """Binary files opened by the atomic writers fill the disk (text files still work)."""
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real(fd, mode, *args, **kwargs)
        return _FullDisk(f) if "b" in mode and "w" in mode else f

    monkeypatch.setattr(os, "fdopen", fdopen)


def test_a_full_disk_is_reported_as_such_and_keeps_the_old_file(tmp_path, full_disk):
    from encoders.checkpoint import DiskFullError

    path = tmp_path / "ckpt.pth"
    path.write_bytes(b"old")
    with pytest.raises(DiskFullError, match="no space left on the device") as info:
        atomic_save({"a": torch.zeros(1000)}, path)
    assert "inline_container" not in str(info.value)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]


def test_pretrain_on_a_full_disk_prints_one_error_line(image_dir, tmp_path, full_disk, capsys):
    argv = [*PICO, "--data", str(image_dir), "--output", str(tmp_path / "run"), "--train.max-iterations", "1"]
    assert pretrain.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no space left on the device of") and "checkpoint.pth" in err[-1]
    assert not any("Traceback" in line or "inline_container" in line for line in err)


# ------------------------------------------------------------------------------------------- pretraining
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "MISSING"], "error: image folder not found"),
        ([], "error: no training data: pass --data DIR"),
        (["--data", "DATA", "--train.keep-checkpoints", "0"], "error: train.keep_checkpoints must be >= 1"),
    ],
)
def test_pretrain_cli_prints_one_error_line(image_dir, tmp_path, capsys, extra, message):
    extra = [str(tmp_path / "missing") if e == "MISSING" else str(image_dir) if e == "DATA" else e for e in extra]
    assert pretrain.main([*PICO, "--output", str(tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_pretraining_keeps_the_last_checkpoints_and_falls_back_past_a_damaged_one(image_dir, tmp_path, caplog):
    out = tmp_path / "run"
    argv = [*PICO, "--data", str(image_dir), "--output", str(out), "--train.checkpoint-every", "1"]
    assert _pretrain([*argv, "--train.max-iterations", "3"]) == 0
    kept = {p.name: torch.load(p, weights_only=True)["iteration"] for p in out.glob("checkpoint*.pth")}
    assert kept == {"checkpoint.pth": 3, "checkpoint.1.pth": 2}  # the default keeps 2
    _truncate(out / "checkpoint.pth")
    with pytest.raises(ValueError, match=r"already holds a run \(checkpoint.1.pth, iteration 2\); pass --resume"):
        _pretrain([*argv, "--train.max-iterations", "4"])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _pretrain([*argv, "--train.max-iterations", "4", "--resume"]) == 0
    warning = next(r.getMessage() for r in caplog.records if "falling back" in r.getMessage())
    assert str(out / "checkpoint.pth") in warning and str(out / "checkpoint.1.pth") in warning
    assert "failed finding central directory" in warning
    kept = {p.name: torch.load(p, weights_only=True)["iteration"] for p in out.glob("checkpoint*.pth")}
    assert kept == {"checkpoint.pth": 4, "checkpoint.1.pth": 3}  # resumed at 2: iterations 2, 3 redone
    assert (out / "checkpoint.pth.unreadable").exists()


def test_a_fresh_start_replaces_unreadable_checkpoints_and_resume_names_them(image_dir, tmp_path, caplog):
    out = tmp_path / "run"
    argv = [*PICO, "--data", str(image_dir), "--output", str(out), "--train.max-iterations", "2"]
    assert _pretrain([*argv, "--train.checkpoint-every", "1"]) == 0
    for name in ("checkpoint.pth", "checkpoint.1.pth"):
        _truncate(out / name)
    with pytest.raises(Exception, match=r"no intact checkpoint: .*checkpoint.pth is unreadable.*Drop --resume"):
        _pretrain([*argv, "--resume"])
    with caplog.at_level(logging.WARNING):
        assert _pretrain(argv) == 0
    assert any("Starting a new run" in r.getMessage() for r in caplog.records)
    assert torch.load(out / "checkpoint.pth", weights_only=True)["iteration"] == 2
    assert sorted(p.name for p in out.glob("*.unreadable")) == [
        "checkpoint.1.pth.unreadable",
        "checkpoint.pth.unreadable",
    ]


def test_two_phase_resume_of_a_pretraining_folder_says_what_it_is(image_dir, tmp_path, capsys):
    out = tmp_path / "pretrain_run"
    assert _pretrain([*PICO, "--data", str(image_dir), "--output", str(out), "--train.max-iterations", "1"]) == 0
    assert two_phase.main(["--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--resume {out} is an encoder pretrain run (experiments.pretrain), not a two_phase run" in err
    assert f"--encoder-weights {out / 'teacher_backbone.pth'}" in err
    (tmp_path / "empty").mkdir()
    assert two_phase.main(["--resume", str(tmp_path / "empty")]) == 2
    assert "is not a two_phase run folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ env contract
@pytest.fixture(scope="module")
def env():
    return ImageNavEnv(n_scenes=1, image_size=224)


def test_step_and_render_before_reset_raise_as_gym_make_does():
    fresh = ImageNavEnv(n_scenes=1, image_size=224, render_mode="rgb_array")
    with pytest.raises(gym.error.ResetNeeded, match=r"env.step\(\) before calling env.reset\(\)"):
        fresh.step(0)
    with pytest.raises(gym.error.ResetNeeded, match=r"env.render\(\) before calling env.reset\(\)"):
        fresh.render()
    vec = ImageNavVecEnv(2, n_scenes=1, image_size=224, render_mode="rgb_array")
    with pytest.raises(gym.error.ResetNeeded):
        vec.step(np.array([0, 1]))
    with pytest.raises(gym.error.ResetNeeded):
        vec.get_images()


@pytest.mark.parametrize("action", [2, np.int64(2), np.uint8(2), np.array(2), np.array([2]), np.array([2], np.int8)])
def test_integer_actions_are_accepted(env, action):
    env.reset(seed=0)
    reference = ImageNavEnv(n_scenes=1, image_size=224)
    reference.reset(seed=0)
    assert env.step(action)[4]["position"] == reference.step(2)[4]["position"]


@pytest.mark.parametrize(
    "action", [1.5, "1", True, np.bool_(False), np.array(1.0), np.array([1, 2]), np.array([[1]]), [1], None]
)
def test_other_actions_are_a_type_error(env, action):
    env.reset(seed=0)
    with pytest.raises(TypeError, match=r"action must be an integer in \[0, 4\)"):
        env.step(action)


@pytest.mark.parametrize("actions", [np.array([0.0, 1.0]), np.array([True, False]), np.array(["0", "1"]), [0.5, 1]])
def test_the_vector_env_refuses_non_integer_actions(actions):
    vec = ImageNavVecEnv(2, n_scenes=1, image_size=224)
    vec.reset()
    with pytest.raises(TypeError, match=r"actions must be 2 integers in \[0, 4\) \(one per agent\)"):
        vec.step(actions)
    with pytest.raises(ValueError, match=r"expected 2 actions"):
        vec.step(np.array([0, 1, 2]))
    vec.step([0, 1])  # a list of ints is fine


def test_reset_options_must_be_a_dict(env):
    with pytest.raises(TypeError, match=r"options must be a dict such as .* or None, got str 'abc'"):
        env.reset(options="abc")
    vec = ImageNavVecEnv(2, n_scenes=1, image_size=224)
    with pytest.raises(TypeError, match=r"options must be a dict .* got str 'abc'"):
        vec.set_options("abc")
    with pytest.raises(ValueError, match="set_options got 1 option dicts for 2 agents"):
        vec.set_options([{"scene_index": 0}])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_scenes": "2"}, "n_scenes must be an int or None, got str '2'"),
        ({"image_size": 224.0}, "image_size must be an int, got float 224.0"),
        ({"stop_action": "yes"}, "stop_action must be a bool, got str 'yes'"),
        ({"patch_radius": True}, "patch_radius must be an int, got bool True"),
    ],
)
def test_argument_types_are_checked_before_any_work(kwargs, message):
    with pytest.raises(TypeError, match=message):
        gym.make("ImageNav-v0", **kwargs)
    with pytest.raises(TypeError, match=message):
        ImageNavVecEnv(2, **kwargs)


def test_too_small_scenes_name_the_smallest_size_that_works():
    with pytest.raises(
        ValueError, match=r"image_size=112 is too small .* the smallest image_size that fits these scenes is 168"
    ):
        gym.make("ImageNav-v0", image_size=112)
    gym.make("ImageNav-v0", image_size=168)  # and that size does work


def test_tiny_photos_warn_when_upscaled_for_scenes_and_pretraining(tmp_path, caplog):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.random.default_rng(i).integers(0, 255, (16, 16, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        source = FolderSceneSource(tmp_path, image_size=224)
        source.load(0), source.load(1)
    warnings = [r.getMessage() for r in caplog.records if "upscaled" in r.getMessage()]
    assert len(warnings) == 1 and "is 16x16 px, upscaled 14.0x to the 224 px scenes" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        MultiCropDataPipeline(
            ImageFolderDataset(tmp_path), CropsConfig(global_crops_size=112, local_crops_size=56), 14, 2
        )
    (warning,) = [r.getMessage() for r in caplog.records if "upscaled" in r.getMessage()]
    assert "3 of 3 images probed are much smaller than the crops" in warning and "upscaled 7.0x" in warning
