"""The two_phase CLI: smoke run end to end (checkpoints, TensorBoard tags, evaluation table), resume, errors."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import encoders
from encoders.utils.config import config_to_dict, field_flag
from encoders.utils.io import load_file
from experiments import two_phase
from techniques.rl_navigation.checkpointing import list_checkpoints
from techniques.rl_navigation.config import env_kwargs, nav_config

REQUIRED_SCALARS = (
    "charts/episode_return",
    "charts/success_rate",
    "charts/spl",
    "charts/coverage",
    "charts/time_in_tv",
    "charts/phase",
    "charts/fps",
    "curiosity/intrinsic_mean",
    "curiosity/intrinsic_std",
    "losses/forward",
    "encoder/feature_std",
    "encoder/effective_rank",
    "train/value_loss",
    "train/policy_gradient_loss",
    "train/entropy_loss",
)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, str]:
    logdir = tmp_path_factory.mktemp("runs")
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = two_phase.main(["--preset", "smoke", "--logdir", str(logdir), "--eval-episodes", "4"])
    assert rc == 0
    (run_dir,) = logdir.iterdir()
    return run_dir, out.getvalue()


def test_run_folder_config_and_report(smoke_run):
    run_dir, report = smoke_run
    assert re.fullmatch(r"ImageNav-v0__smoke__1__\d+", run_dir.name)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["encoder"] == "vit_pico_patch14" and cfg["phase1_episodes"] == 8 and cfg["ppo"]["n_steps"] == 16
    assert "| phase-1 end |" in report and "| phase-2 end |" in report and "| random walk |" in report
    assert (run_dir / "eval" / "summary_test.json").exists() and (run_dir / "eval" / "trajectories_test.png").exists()


def test_checkpoints_are_complete_and_loadable(smoke_run):
    run_dir, _ = smoke_run
    names = list_checkpoints(run_dir)
    assert {"phase1_end", "final"} <= set(names) and any(n.startswith("rollout_") for n in names)
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "final"
    for name in ("phase1_end", "final"):
        folder = run_dir / "checkpoints" / name
        assert {p.name for p in folder.iterdir()} == {"policy.zip", "encoder.pth", "encoder.pth.json", "state.pt"}
        state = load_file(folder / "state.pt")  # weights_only load works
        assert set(state) >= {"config", "counters", "curiosity", "target", "monitor", "rng"}
        assert set(state["curiosity"]) >= {"learner", "normalizer", "critic", "critic_optimizer"}
        assert state["counters"]["phase"] == (1 if name == "phase1_end" else 2)
    final = load_file(run_dir / "checkpoints" / "final" / "state.pt")
    assert final["curiosity"]["learner"]["encoder_optimizer"] is not None and final["target"]["mode"] == "ema"
    # the encoder checkpoint is in the official key format and rebuilds from its sidecar
    model = encoders.create_model_from_checkpoint(run_dir / "checkpoints" / "final" / "encoder.pth")
    keys = set(torch.load(run_dir / "checkpoints" / "final" / "encoder.pth", weights_only=True))
    assert "blocks.0.attn.qkv.weight" in keys and "cls_token" in keys and model.n_blocks == 2


def test_tensorboard_tags(smoke_run):
    run_dir, _ = smoke_run
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    missing = [t for t in REQUIRED_SCALARS if t not in tags["scalars"]]
    assert not missing, missing
    assert "trajectories/last_episodes" in tags["images"]
    assert any(t.startswith("hparams") for t in tags["tensors"])
    phases = [e.value for e in acc.Scalars("charts/phase")]
    assert phases[0] == 1 and phases[-1] == 2


def test_resume_from_the_cli(smoke_run, capsys):
    run_dir, _ = smoke_run
    before = load_file(run_dir / "checkpoints" / "final" / "state.pt")["counters"]
    rc = two_phase.main(["--resume", str(run_dir), "--phase2-episodes", "12", "--eval-episodes", "0"])
    assert rc == 0
    after = load_file(run_dir / "checkpoints" / "final" / "state.pt")["counters"]
    assert after["phase"] == 2 and after["episodes"] >= 20 and after["rollouts"] > before["rollouts"]
    assert after["phase2_start_episode"] == before["phase2_start_episode"]
    assert json.loads((run_dir / "config.json").read_text())["phase2_episodes"] == 12
    assert "episodes" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("tv", "space"), [("spontaneous", "pixels"), ("remote", "oracle"), ("colour", "hog"), ("class", "semantic")]
)
def test_a_tv_run_logs_the_intrinsic_reward_at_the_tv_and_evaluates_time_in_tv(tmp_path, tv, space):
    run_dir = tmp_path / "run"
    argv = ["--preset", "smoke", "--run-dir", str(run_dir), "--task", "ObjectNav-v0", "--tv", tv, "--tv-frames", "8"]
    argv += ["--curiosity.space", space, "--phase2-episodes", "0", "--eval-episodes", "8", "--extrinsic-coef", "0"]
    argv += ["--intrinsic-coef", "1", "--image-size", "168", "--phase1-episodes", "24", "--max-episode-steps", "20"]
    assert two_phase.main(argv) == 0
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"tv/tv_transitions", "charts/time_in_tv", "charts/remote_presses"} <= set(tags)
    # with a TV in view on some transitions and not on others, the split of the intrinsic reward is logged
    if any(0 < e.value < 1 for e in acc.Scalars("tv/tv_transitions")):
        assert {"tv/intrinsic_raw_tv", "tv/intrinsic_raw_elsewhere", "tv/intrinsic_tv_ratio"} <= set(tags)
    for split in ("test", "train"):
        walk = json.loads((run_dir / "eval" / f"summary_{split}.json").read_text())["results"]["random walk"]
        assert 0.0 < walk["tv_fraction"]["mean"] < 1.0 and walk["remote_presses"]["mean"] >= 0.0
        assert (walk["remote_presses"]["mean"] > 0) == (tv == "remote")  # random presses with the TV in view


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "PointNav-v0"], "unknown --task"),
        (["--tv-frames", "1"], "--tv-frames must be >= 2"),
        (["--curiosity.encoder-weights", "w.pth"], "--curiosity.encoder-weights needs --curiosity.encoder"),
        (["--curiosity.encoder", "vit_pico_patch14", "--curiosity.space", "hog"], "only read by the"),
        (["--ppo.batch-size", "100000"], "exceeds a rollout"),
        (["--phase2-episodes", "4", "--task", "ImageNavPixels-v0"], "phase 2 fine-tunes the encoder"),
        (["--encoder-weights", "/nonexistent/weights.pth"], "encoder weights not found"),
        (["--pretrain", "--pretrain-preset", "nope"], "--pretrain-preset must be one of"),
        (["--resume", "/nonexistent/run"], "no such run folder"),
    ],
)
def test_bad_input_is_reported(tmp_path, capsys, argv, message):
    rc = two_phase.main(["--preset", "smoke", "--logdir", str(tmp_path), *argv])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_flags_are_never_abbreviated(capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's prefix matching would read it as --phase1-episodes
        two_phase.parse_args(["--preset", "smoke", "--phase1-ep", "5"])
    err = capsys.readouterr().err
    assert (
        exit_info.value.code == 2
        and err == "error: unrecognized argument --phase1-ep; did you mean --phase1-episodes?\n"
    )


def test_task_rules_are_one_section_with_the_flat_flags():
    cfg = two_phase.parse_args(["--preset", "demo", "--task", "ObjectNavPixels-v1", "--patch-radius", "3"])
    assert (cfg.rules.patch_radius, cfg.rules.observation) == (3, "window")
    assert cfg.pixels and not two_phase.parse_args(["--preset", "demo"]).pixels
    # the task id fixes the task, the pixel observation and STOP; the rules section gives the rest
    rules = nav_config(cfg)
    assert (rules.task, rules.observation, rules.stop_action, rules.patch_radius) == ("objectnav", "pixels", True, 3)
    assert env_kwargs(cfg)["patch_radius"] == 3 and "patch_radius" in config_to_dict(cfg)


def test_required_flags_exist():
    cfg = two_phase.parse_args(
        [
            "--preset", "paper", "--encoder", "dinov2_vits14_reg", "--encoder-weights", "official", "--task",
            "ObjectNav-v0", "--actions", "egocentric", "--phase1-episodes", "3", "--phase2-episodes", "2",
            "--unfreeze-layers", "3", "--encoder-lr", "2e-5", "--intrinsic-coef", "0.3", "--n-envs", "8",
            "--seed", "7", "--device", "cpu", "--logdir", "x", "--resume", "y",
        ]
    )  # fmt: skip
    assert (cfg.encoder, cfg.task, cfg.rules.actions, cfg.phase1_episodes, cfg.unfreeze_layers) == (
        "dinov2_vits14_reg", "ObjectNav-v0", "egocentric", 3, 3
    )  # fmt: skip
    assert cfg.encoder_lr == 2e-5 and cfg.intrinsic_coef == 0.3 and cfg.n_envs == 8 and str(cfg.resume) == "y"
    paper = two_phase.parse_args(["--preset", "paper"])
    assert (paper.encoder, paper.phase1_episodes, paper.phase2_episodes) == ("dinov2_vits14", 10_000, 5_000)


#: A value for every field whose default is ``None``.
_OPTIONAL_VALUES = {
    "encoder_weights": "w.pth",
    "run_dir": Path("run_here"),
    "resume": Path("run_there"),
    "curiosity.encoder": "vit_pico_patch14",
    "curiosity.encoder_weights": "w.pth",
}


def _another_value(key: str, value, field) -> tuple[object, list[str]]:
    """A value of ``field``'s type other than ``value``, and the command line that gives it."""
    flag = field_flag(key)
    if value is None:
        return _OPTIONAL_VALUES[key], [flag, str(_OPTIONAL_VALUES[key])]
    if field.hint is bool:  # --no-curiosity.episodic: argparse's spelling, which the CLIs still accept
        return not value, [flag.replace("--", "--no-") if value else flag]
    if typing.get_origin(field.hint) is typing.Literal:
        other = next(c for c in typing.get_args(field.hint) if c != value)
        return other, [flag, str(other)]
    if isinstance(value, tuple):
        return (*value, 3), [flag, *(str(v) for v in (*value, 3))]
    if isinstance(value, Path):
        return value / "elsewhere", [flag, str(value / "elsewhere")]
    other = f"{value}x" if isinstance(value, str) else value + 3
    return other, [flag, str(other)]


def test_every_field_round_trips_through_its_flag_save_resume_and_override(tmp_path):
    """A table test over every field: its flag sets it, config.json keeps it, an override by its key gives the same
    config, and a resume given that flag changes exactly that field (which the trainer then applies or refuses)."""
    from encoders.utils.config import config_fields, flat_dict, load_config, replace_nested, save_config
    from techniques.rl_navigation.config import TwoPhaseConfig

    run = tmp_path / "run"
    save_config(TwoPhaseConfig(run_dir=run), run)
    fields = config_fields(TwoPhaseConfig)
    assert len(fields) > 80
    for key, default in flat_dict(TwoPhaseConfig()).items():
        value, argv = _another_value(key, default, fields[key])
        cfg = two_phase.parse_args(argv)
        assert flat_dict(cfg)[key] == value, argv
        assert replace_nested(TwoPhaseConfig(), {key: value}) == cfg, argv
        save_config(cfg, tmp_path / key)
        assert load_config(TwoPhaseConfig, tmp_path / key) == cfg, argv
        if key not in ("resume", "run_dir"):  # a resume sets the first; the second is the saved run's own
            assert two_phase.resume_overrides(run, ["--resume", str(run), *argv]) == {key: value}, argv
