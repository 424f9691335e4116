"""Faults and bad input, tried as a new user and a QA engineer would (issue 11; the table in docs/reliability.md).

- files: atomic writes respect the umask; a full disk is reported as such;
- pretraining: one ``error:`` line, the last N checkpoints with a fallback past a damaged one, fresh starts over
  unreadable checkpoints;
- ``two_phase --resume`` of a folder that is not a two-phase run;
- the environments' input contract (order, action types, options, argument types, scene sizes, upscaling);
- two-phase training: SIGINT / SIGTERM at several moments, crashes (SIGKILL) at several moments, each resumed and
  compared with the uninterrupted run bit for bit; damaged latest checkpoints; resume flags; early validation.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the ids)
from encoders.data.image_folder import ImageFolderDataset
from encoders.train.config import CropsConfig
from encoders.train.data import MultiCropDataPipeline
from encoders.utils.config import config_fields, replace_nested
from encoders.utils.io import CheckpointError, atomic_save, atomic_write_text
from envs import ImageNavEnv, ImageNavVecEnv
from envs.scenes import FolderSceneSource
from experiments import pretrain, two_phase
from techniques.rl_navigation import checkpointing
from techniques.rl_navigation.checkpointing import checkpoint_dir
from techniques.rl_navigation.config import PRESETS, TwoPhaseConfig
from techniques.rl_navigation.trainer import TwoPhaseTrainer
from tests.conftest import REPO_ROOT

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
    from encoders.utils.io import DiskFullError

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
    refusal = (
        r"already holds a run \(checkpoint.1.pth, iteration 2; the newer checkpoint.pth is unreadable\); pass --resume"
    )
    with pytest.raises(ValueError, match=refusal):
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
        gym.make("ImageNav-v1", **kwargs)
    with pytest.raises(TypeError, match=message):
        ImageNavVecEnv(2, **kwargs)


def test_too_small_scenes_name_the_smallest_size_that_works():
    with pytest.raises(
        ValueError, match=r"image_size=112 is too small .* the smallest image_size that fits these scenes is 168"
    ):
        gym.make("ImageNav-v1", image_size=112)
    gym.make("ImageNav-v1", image_size=168)  # and that size does work


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


# -------------------------------------------------------------------------------- two-phase: exact resume
FAULT_RUN = {
    "eval_episodes": 0,
    "phase1_episodes": 40,
    "phase2_episodes": 40,
    "checkpoint_every": 1,
    "trajectory_every": 0,
    "seed": 5,
}
FAULT_ARGV = ["--preset", "smoke"] + [
    token for key, value in FAULT_RUN.items() for token in (f"--{key.replace('_', '-')}", str(value))
]


def _fault_cfg(**overrides) -> TwoPhaseConfig:
    return replace_nested(TwoPhaseConfig(), {**PRESETS["smoke"], **FAULT_RUN, **overrides})


def _final_state(run_dir) -> dict:
    """Everything the final checkpoint holds: policy and its optimiser, encoder, and ``state.pt`` (forward model,
    critic, optimisers, normaliser, target, counters, RNG, the agents' episodes) but the config (its run folder
    differs) and the wall-clock episode start times."""
    folder = run_dir / "checkpoints" / "final"
    with zipfile.ZipFile(folder / "policy.zip") as archive:
        policy = {
            n: torch.load(io.BytesIO(archive.read(n)), weights_only=False) for n in archive.namelist() if ".pth" in n
        }
    state = torch.load(folder / "state.pt", weights_only=True)
    del state["config"], state["env"]["agents"]["episode_start"]
    return {"policy": policy, "encoder": torch.load(folder / "encoder.pth", weights_only=True), "state": state}


def _assert_identical(a, b, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_identical(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{path}[{i}]")
    elif torch.is_tensor(a):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    trainer = TwoPhaseTrainer(_fault_cfg(), run_dir)
    result = trainer.train()
    trainer.close()
    assert not result.interrupted and result.counters.phase == 2 and result.counters.rollouts >= 12
    return _final_state(run_dir)


def _call_hook(obj, name: str, when, action) -> None:
    """Wrap ``obj.name`` so that ``action()`` runs before its call for which ``when(call number)`` is true."""
    original, calls = getattr(obj, name), {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if when(calls["n"]):
            action()
        return original(*args, **kwargs)

    setattr(obj, name, wrapped)


def _signal(sig):
    return lambda: os.kill(os.getpid(), sig)


SIGNAL_POINTS = {
    # (signal, where): install(trainer, action)
    ("SIGINT", "mid-rollout, phase 1"): lambda t, a: _call_hook(t.recorder, "step_wait", lambda n: n == 37, a),
    ("SIGTERM", "mid-PPO update, phase 1"): lambda t, a: _call_hook(
        t.model.policy.optimizer, "step", lambda n: n == 3, a
    ),
    ("SIGINT", "at the phase switch"): lambda t, a: _call_hook(t, "_enter_phase2", lambda n: n == 1, a),
    ("SIGTERM", "mid forward-model and encoder update, phase 2"): lambda t, a: _call_hook(
        t.curiosity.learner, "update", lambda n: n == 11, a
    ),
}


@pytest.mark.parametrize(("sig", "where"), list(SIGNAL_POINTS))
def test_a_signal_at_any_moment_then_resume_equals_the_uninterrupted_run(tmp_path, uninterrupted, sig, where):
    run_dir = tmp_path / "run"
    trainer = TwoPhaseTrainer(_fault_cfg(), run_dir)
    SIGNAL_POINTS[(sig, where)](trainer, _signal(getattr(signal, sig)))
    first = trainer.train()
    trainer.close()
    assert first.interrupted and checkpoint_dir(run_dir).name == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    resumed = TwoPhaseTrainer.resume(run_dir)
    assert resumed.counters == first.counters
    result = resumed.train()
    resumed.close()
    assert not result.interrupted
    _assert_identical(uninterrupted, _final_state(run_dir))


class _Killed(BaseException):
    """A process death at this point (nothing after it runs, no handler sees it)."""


def _kill():
    raise _Killed


KILL_POINTS = {
    "mid-rollout": lambda t: _call_hook(t.recorder, "step_wait", lambda n: n == 150, _kill),
    "a second Ctrl-C mid-update": lambda t: _call_hook(
        t.model.policy.optimizer, "step", lambda n: n in (5, 6), _signal(signal.SIGINT)
    ),
    "while writing a checkpoint": lambda t: _call_hook(t.encoder, "save", lambda n: n == 6, _kill),
    "between the checkpoint and its pointer": lambda t: _call_hook(
        checkpointing, "atomic_write_text", lambda n: n == 9, _kill
    ),
}


@pytest.mark.parametrize("where", list(KILL_POINTS))
def test_a_crash_then_resume_from_the_last_checkpoint_equals_the_uninterrupted_run(
    tmp_path, uninterrupted, monkeypatch, where
):
    run_dir = tmp_path / "run"
    trainer = TwoPhaseTrainer(_fault_cfg(), run_dir)
    monkeypatch.setattr(checkpointing, "atomic_write_text", checkpointing.atomic_write_text)  # undone afterwards
    KILL_POINTS[where](trainer)
    try:
        result = trainer.train()
        assert result.interrupted and "interrupted" not in result.checkpoints  # aborted: nothing saved
    except _Killed:
        pass
    trainer.writer.close()
    monkeypatch.undo()
    resumed = TwoPhaseTrainer.resume(run_dir)
    assert resumed.counters.rollouts < 12
    resumed.train()
    resumed.close()
    _assert_identical(uninterrupted, _final_state(run_dir))


def test_sigkill_of_the_cli_then_resume_equals_the_uninterrupted_run(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "experiments.two_phase", *FAULT_ARGV, "--run-dir", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO_ROOT)
    marker = run_dir / "checkpoints" / "rollout_000005" / "state.pt"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    assert marker.exists() and not (run_dir / "checkpoints" / "final").exists(), "killed too late"
    assert two_phase.main(["--resume", str(run_dir)]) == 0
    _assert_identical(uninterrupted, _final_state(run_dir))


# -------------------------------------------------------------------- two-phase: damaged latest checkpoint
@pytest.fixture
def interrupted_run(tmp_path):
    """A run stopped by SIGINT in rollout 10 of 15: checkpoints rollout_000009, rollout_000010, interrupted."""
    run_dir = tmp_path / "run"
    trainer = TwoPhaseTrainer(_fault_cfg(), run_dir)
    _call_hook(trainer.recorder, "step_wait", lambda n: n == 150, _signal(signal.SIGINT))
    assert trainer.train().interrupted
    trainer.close()
    assert checkpoint_dir(run_dir).name == "interrupted"
    return run_dir


@pytest.mark.parametrize("damaged", ["state.pt", "policy.zip", "encoder.pth"])
def test_a_truncated_latest_checkpoint_falls_back_to_the_newest_intact_one(
    interrupted_run, uninterrupted, caplog, damaged
):
    latest = checkpoint_dir(interrupted_run)
    _truncate(latest / damaged)
    with caplog.at_level(logging.WARNING):
        resumed = TwoPhaseTrainer.resume(interrupted_run)
    (warning,) = [r.getMessage() for r in caplog.records if "falling back" in r.getMessage()]
    assert str(latest / damaged) in warning and "rollout_000010" in warning
    resumed.train()
    resumed.close()
    _assert_identical(uninterrupted, _final_state(interrupted_run))  # every checkpoint resumes exactly


def test_a_truncated_policy_zip_is_named(interrupted_run):
    from techniques.rl_navigation.evaluation import evaluate_run

    _truncate(interrupted_run / "checkpoints" / "interrupted" / "policy.zip")
    with pytest.raises(CheckpointError, match=r"interrupted/policy.zip: the policy file is corrupt or truncated"):
        evaluate_run(interrupted_run, ["interrupted"], split="test", episodes=2, device="cpu")


# --------------------------------------------------------------------------- two-phase: flags and config
def test_resume_refuses_a_changed_setting_and_applies_the_others(interrupted_run, capsys):
    saved = (interrupted_run / "config.json").read_text()
    argv = ["--resume", str(interrupted_run), "--seed", "99", "--n-envs", "2", "--encoder", "vit_tiny_patch14"]
    assert two_phase.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: cannot change --encoder ('vit_pico_patch14' -> 'vit_tiny_patch14'), --n-envs (4 -> 2), --seed (5 -> 99)"
    )
    assert (interrupted_run / "config.json").read_text() == saved  # refused before any work
    argv = ["--preset", "smoke", "--resume", str(interrupted_run), "--seed", "5", "--phase2-episodes", "44"]
    assert two_phase.main(argv) == 0  # same seed: no change; more phase-2 episodes: applied
    assert json.loads((interrupted_run / "config.json").read_text())["phase2_episodes"] == 44
    assert torch.load(interrupted_run / "checkpoints/final/state.pt", weights_only=True)["counters"]["episodes"] >= 84


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--encoder-lr", "-1"], "--encoder-lr must be >= 0, got -1.0"),
        (["--curiosity.target-momentum", "2"], "--curiosity.target-momentum must be in [0, 1], got 2.0"),
        (["--n-eval-scenes", "0"], "--n-eval-scenes must be >= 1, got 0"),
        (["--ppo.gamma", "nan"], "--ppo.gamma must be in [0, 1], got nan"),
        (["--unfreeze-layers", "3"], "--unfreeze-layers must be in [1, 2]"),
        (["--image-size", "42"], "the smallest size that fits the train and test scenes is 70"),
        (["--encoder", "vit_nope"], "unknown encoder 'vit_nope'"),
    ],
)
def test_bad_settings_fail_before_any_work(tmp_path, capsys, flags, message):
    assert two_phase.main(["--preset", "smoke", "--logdir", str(tmp_path / "runs"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # no run folder: nothing started


def test_every_numeric_setting_has_a_range():
    numeric = [
        k for k, f in config_fields(TwoPhaseConfig).items() if f.hint in (int, float) or "tuple[int" in str(f.hint)
    ]
    assert len(numeric) > 50 and [k for k in numeric if config_fields(TwoPhaseConfig)[k].range is None] == []


def test_two_phase_on_a_full_disk_prints_one_error_line(tmp_path, full_disk, capsys):
    assert two_phase.main([*FAULT_ARGV, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no space left on the device of") and "Traceback" not in "".join(err)


def test_an_lstm_policy_resumes_exactly(tmp_path):
    """RecurrentPPO's LSTM states at the rollout boundary travel in state.pt (read with weights_only=True)."""
    reference, run_dir = tmp_path / "reference", tmp_path / "run"
    trainer = TwoPhaseTrainer(_fault_cfg(policy="lstm", phase1_episodes=12, phase2_episodes=8), reference)
    trainer.train()
    trainer.close()
    trainer = TwoPhaseTrainer(_fault_cfg(policy="lstm", phase1_episodes=12, phase2_episodes=8), run_dir)
    _call_hook(trainer.recorder, "step_wait", lambda n: n == 40, _signal(signal.SIGINT))
    assert trainer.train().interrupted
    trainer.close()
    resumed = TwoPhaseTrainer.resume(run_dir)
    resumed.train()
    resumed.close()
    _assert_identical(_final_state(reference), _final_state(run_dir))


def test_a_run_with_a_remote_tv_resumes_exactly(tmp_path):
    """The TV's frame streams (per-agent generators, blocks of frames, redraw counters) are part of the agents' state:
    a SIGINT mid-rollout, then --resume, ends where the uninterrupted run ends."""
    tv = {"task": "ObjectNav-v0", "tv": "remote", "tv_frames": 8, "image_size": 168, "curiosity.space": "pixels"}
    tv["phase2_episodes"] = 0
    runs = {}
    for name in ("uninterrupted", "resumed"):
        run_dir = tmp_path / name
        trainer = TwoPhaseTrainer(_fault_cfg(**tv), run_dir)
        if name == "resumed":
            _call_hook(trainer.recorder, "step_wait", lambda n: n == 40, _signal(signal.SIGINT))
        result = trainer.train()
        trainer.close()
        if name == "resumed":
            assert result.interrupted
            resumed = TwoPhaseTrainer.resume(run_dir)
            assert not resumed.train().interrupted
            resumed.close()
        runs[name] = _final_state(run_dir)
    agents = runs["uninterrupted"]["state"]["env"]["agents"]
    assert agents["tv_seq"].any() and all(g is not None for g in agents["tv_rngs"])  # the frame streams are saved
    _assert_identical(runs["uninterrupted"], runs["resumed"])


def test_the_signal_tests_pass_when_pytest_starts_with_sigint_ignored():
    """Under nohup or as a script's background job, SIGINT arrives ignored (``trap "" INT``); the tests set the
    dispositions they need themselves (tests/conftest.py), so a Ctrl-C test still passes there."""
    test = "tests/test_faults.py::test_a_signal_at_any_moment_then_resume_equals_the_uninterrupted_run"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{test}[SIGINT-mid-rollout, phase 1]"],
        cwd=Path(__file__).resolve().parents[1],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
