"""Study configs: ``--budget`` presets over a study's dataclass config, and the settings the RL studies share
(``--rl.*``), from which each arm's ``experiments.two_phase`` sub-run is built through the config API."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from encoders.utils.config import replace_nested
from experiments.studies.launch import LaunchOptions, check_options
from experiments.studies.shared_encoders import DEFAULT_ENCODERS_DIR, pretrained_encoder
from experiments.studies.two_phase_runs import TwoPhaseRun, two_phase_config
from techniques.rl_navigation.config import PRESETS, TwoPhaseConfig

T = TypeVar("T")
S = TypeVar("S", bound="RLStudyConfig")


def parse_study_config(
    cls: type[T],
    argv: Sequence[str] | None,
    budgets: Mapping[str, Mapping[str, Any]],
    description: str,
    default_budget: str = "cpu",
) -> T:
    """Parse a study config: ``--budget NAME`` (default ``default_budget``) applies a named budget (a preset of
    overrides by key, recorded in the ``budget`` field), other flags override it."""
    from encoders.utils.config import parse_config

    presets = {name: {**values, "budget": name} for name, values in budgets.items()}
    return parse_config(cls, argv, presets, description, default_budget, preset_flag="--budget")


#: What the RL studies' sub-runs change in two_phase's demo preset (``--rl.*`` sets any ``TwoPhaseConfig`` field).
STUDY_RL: dict[str, Any] = {
    "pretrain": False,
    "phase2_steps": 100_000,
    "intrinsic_coef": 0.5,
    "pixel_cell": 7,
    "checkpoint_every": 100_000,  # only the phase-1-end and final checkpoints (a cluster with preemption: e.g. 25)
    "trajectory_every": 0,
}


def study_rl(**overrides: Any) -> TwoPhaseConfig:
    """A study's default ``--rl`` settings: two_phase's demo preset, :data:`STUDY_RL`, then ``overrides`` (keys)."""
    return two_phase_config("demo", {**STUDY_RL, **overrides})


def step_budget(rl: TwoPhaseConfig, phase2: bool) -> dict[str, int]:
    """Step-budget fields of an arm: the two phases of ``rl``, or their sum in phase 1 (same total either way)."""
    if phase2:
        return {"phase1_steps": rl.phase1_steps, "phase2_steps": rl.phase2_steps}
    return {"phase1_steps": rl.phase1_steps + rl.phase2_steps, "phase2_steps": 0}


@dataclass
class RLStudyConfig(LaunchOptions):
    """The fields every RL study takes (each study subclasses it, overriding ``out`` and ``rl`` defaults), and how
    its sub-runs are launched (:class:`~experiments.studies.launch.LaunchOptions`)."""

    out: Path = Path("runs/studies")
    """output folder"""
    budget: str = "cpu"
    """budget name (set by --budget: smoke | cpu)"""
    seeds: int = 5
    """seeds per arm (1..N; rliable's intervals need several)"""
    encoders_dir: Path = DEFAULT_ENCODERS_DIR
    """shared encoders (the tiny pretrained one is built here once)"""
    official_weights: str | None = None
    """use this checkpoint of --official-arch as the encoder instead of the tiny pretrained one"""
    official_arch: str = "dinov2_vits14"
    """architecture of --official-weights"""
    rl: TwoPhaseConfig = field(default_factory=study_rl)
    """the sub-runs' two_phase settings (every flag of experiments.two_phase as --rl.*); arms set their own fields"""


#: The smoke budget's sub-runs (seconds each, a random-init pico encoder): two_phase's smoke preset and a step budget.
SMOKE_RL: dict[str, Any] = {
    **{f"rl.{key}": value for key, value in PRESETS["smoke"].items() if key not in STUDY_RL},
    "rl.n_train_scenes": 1,
    "rl.n_eval_scenes": 1,
    "rl.min_start_distance": 3,
    "rl.max_episode_steps": 8,
    "rl.phase1_steps": 64,
    "rl.phase2_steps": 64,
    "rl.ppo.n_steps": 8,
}


#: the studies' default encoder weights when the release exists for ``--rl.encoder`` (``encoders.released``)
DEFAULT_RELEASE = "semnav-objects"


def study_encoder_weights(rl: TwoPhaseConfig, budget: str, encoders_dir: Path) -> str | None:
    """Encoder weights of a study's sub-runs: explicit ``--rl.encoder-weights``; else the released
    :data:`DEFAULT_RELEASE` when it fits ``--rl.encoder``; else the shared tiny pretrained encoder (built if missing).
    The smoke budget never uses the release nor builds the shared encoder (random init unless it exists)."""
    from encoders.registry import get_model_spec
    from encoders.released import RELEASED

    if rl.encoder_weights:
        return rl.encoder_weights
    release = RELEASED.get(DEFAULT_RELEASE)
    if budget != "smoke" and release is not None and release.arch == get_model_spec(rl.encoder).name:
        return DEFAULT_RELEASE
    weights = encoders_dir / "pretrain" / "run" / "teacher_backbone.pth"
    if budget == "smoke" or rl.encoder != "vit_mini_patch14":
        return str(weights) if weights.exists() and rl.encoder == "vit_mini_patch14" else None
    return str(pretrained_encoder(encoders_dir, rl.image_size))


def start_rl_study(
    config_cls: type[S],
    argv: Sequence[str] | None,
    budgets: Mapping[str, Mapping[str, Any]],
    description: str,
    arms: Sequence[str] | None = None,
    check: Callable[[S], None] | None = None,
) -> tuple[S, str | None, float]:
    """The start every RL study shares: parse its config (budget presets), set up logging, check the launch
    options and, when the study has ``arms`` (their names), that ``cfg.arms`` names only those, and runs the study's
    own ``check`` of its config; then let
    ``--official-weights`` replace the encoder and resolve the sub-runs' encoder weights (which may pretrain the
    shared encoder, so the checks come first), which go into ``cfg.rl``. Returns the config, those weights (None:
    random init) and the start time (``time.perf_counter()``)."""
    from encoders.utils.logging import setup_logging

    cfg = parse_study_config(config_cls, argv, budgets, description)
    setup_logging()
    t0 = time.perf_counter()
    check_options(cfg)
    if arms is not None:
        unknown = sorted(set(cfg.arms) - set(arms))
        if unknown:
            raise ValueError(f"--arms: unknown arm(s) {unknown}; choose from {', '.join(arms)}")
    if check is not None:
        check(cfg)
    if cfg.official_weights:
        cfg.rl.encoder, cfg.rl.encoder_weights = cfg.official_arch, cfg.official_weights
    cfg.rl.encoder_weights = study_encoder_weights(cfg.rl, cfg.budget, cfg.encoders_dir)
    return cfg, cfg.rl.encoder_weights, t0


def arm_run(cfg: RLStudyConfig, task: str, arm: str, fields: Mapping[str, Any], seed: int) -> TwoPhaseRun:
    """The sub-run ``<out>/runs/<task>/<arm>__seed<seed>``: ``cfg.rl`` with the task and arm name, the arm's
    ``fields`` and the seed."""
    values = {
        "task": task,
        "exp_name": arm,
        **fields,
        "seed": seed,
        "run_dir": cfg.out / "runs" / task / f"{arm}__seed{seed}",
    }
    return TwoPhaseRun(replace_nested(cfg.rl, values))


__all__ = [
    "DEFAULT_RELEASE",
    "SMOKE_RL",
    "STUDY_RL",
    "RLStudyConfig",
    "arm_run",
    "parse_study_config",
    "start_rl_study",
    "step_budget",
    "study_encoder_weights",
    "study_rl",
]
