"""Study configs: ``--budget`` presets over a study's dataclass config, and the settings the RL studies share
(``--rl.*``), from which each arm's ``experiments.two_phase`` sub-run is built through the config API."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from experiments.studies.launch import LaunchOptions, check_options
from experiments.studies.shared_encoders import DEFAULT_ENCODERS_DIR, pretrained_encoder
from experiments.studies.two_phase_runs import TwoPhaseRun, two_phase_config

T = TypeVar("T")
S = TypeVar("S", bound="RLStudyConfig")


def parse_study_config(
    cls: type[T],
    argv: Sequence[str] | None,
    budgets: Mapping[str, Mapping[str, Any]],
    description: str,
    default_budget: str = "cpu",
) -> T:
    """Parse a study config: ``--budget NAME`` (default ``default_budget``) applies a named budget (a preset),
    other flags override it."""
    import sys

    from encoders.utils.config import parse_config

    args = list(sys.argv[1:] if argv is None else argv)
    rewritten: list[str] = []
    for a in args:
        if a == "--budget":
            rewritten.append("--preset")
        elif a.startswith("--budget="):
            rewritten.append("--preset=" + a.split("=", 1)[1])
        else:
            rewritten.append(a)
    presets = {name: {**values, "budget": name} for name, values in budgets.items()}
    return parse_config(cls, rewritten, presets=presets, description=description, default_preset=default_budget)


@dataclass
class RLSettings:
    """The ``experiments.two_phase`` settings shared by a study's sub-runs (``--rl.*``); arms add their own."""

    preset: str = "demo"
    """two_phase preset the settings below override"""
    encoder: str = "vit_mini_patch14"
    """encoder architecture (the tiny pretrained encoder's)"""
    encoder_weights: str | None = None
    """encoder checkpoint or release name; none: the released semnav-objects encoder (cpu budget; the shared tiny
    pretrained encoder before it is released) or random init (smoke)"""
    image_size: int = 168
    """scene side in pixels (168 with patch 14: 12x12 cells)"""
    n_train_scenes: int = 128
    """procedural training scenes (with 16 a policy memorises where each goal is; see docs/results.md)"""
    n_eval_scenes: int = 16
    """held-out test scenes of the final evaluation"""
    min_start_distance: int = 5
    """minimum start distance from the goal (cells)"""
    max_episode_steps: int = 60
    """time limit per episode"""
    phase1_steps: int = 300_000
    """environment steps of phase 1 (all agents together)"""
    phase2_steps: int = 100_000
    """environment steps of phase 2 (arms without phase 2 train phase1 + phase2 steps in phase 1: every arm gets the
    same samples)"""
    n_envs: int = 16
    """parallel agents"""
    n_steps: int = 128
    """PPO rollout length per agent"""
    batch_size: int = 512
    """PPO and forward-model minibatch size"""
    n_epochs: int = 4
    """PPO epochs over each rollout (the PPO sweep's best on the oracle, docs/results.md)"""
    learning_rate: float = 3e-4
    """PPO learning rate"""
    ent_coef: float = 0.01
    """PPO entropy coefficient"""
    net_arch: tuple[int, ...] = (128, 128)
    """hidden layers of the policy and value MLPs"""
    cell_dim: int = 16
    """width of the per-cell projection of window observations (0: the flattened window)"""
    intrinsic_coef: float = 0.5
    """scale of the normalised intrinsic reward"""
    observation: Literal["mean", "window", "oracle", "pixels"] = "window"
    """observation: 'window' (the encoder's features of every window cell), 'mean' (their mean, what the issue-14
    tables used), 'oracle' (ground-truth cell features: the positive control) or 'pixels' (crops, a CNN)"""
    patch_radius: int = 2
    """observed window radius in cells"""
    pixel_cell: int = 7
    """pixels per cell side of pixel observations (the 14-pixel cells area-averaged to 7: a quarter of the values)"""
    include_heading: bool = True
    """add the last move's direction to the observation"""
    eval_episodes: int = 200
    """episodes of the final held-out evaluation, per policy"""
    torch_threads: int = 1
    """torch CPU threads per run"""
    device: str = "auto"
    """device of the encoder / forward model"""
    checkpoint_every: int = 100_000
    """checkpoint period in rollouts (default: only the phase-1-end and final checkpoints; on a cluster with time
    limits or preemption e.g. 25, so that a requeued sub-run loses little)"""

    def overrides(self, weights: str | None) -> dict[str, Any]:
        """``TwoPhaseConfig`` fields of these settings over :attr:`preset` (``weights`` overrides
        :attr:`encoder_weights`), dotted keys for nested ones."""
        return {
            "pretrain": False,
            "encoder": self.encoder,
            "encoder_weights": (weights or self.encoder_weights) or None,
            "image_size": self.image_size,
            "n_train_scenes": self.n_train_scenes,
            "n_eval_scenes": self.n_eval_scenes,
            "min_start_distance": self.min_start_distance,
            "max_episode_steps": self.max_episode_steps,
            "n_envs": self.n_envs,
            "ppo.n_steps": self.n_steps,
            "ppo.batch_size": self.batch_size,
            "ppo.n_epochs": self.n_epochs,
            "ppo.learning_rate": self.learning_rate,
            "ppo.ent_coef": self.ent_coef,
            "ppo.net_arch": self.net_arch,
            "ppo.cell_dim": self.cell_dim,
            "curiosity.forward_batch_size": self.batch_size,
            "intrinsic_coef": self.intrinsic_coef,
            "observation": self.observation,
            "patch_radius": self.patch_radius,
            "pixel_cell": self.pixel_cell,
            "eval_episodes": self.eval_episodes,
            "torch_threads": self.torch_threads,
            "device": self.device,
            "checkpoint_every": self.checkpoint_every,
            "trajectory_every": 0,
            "include_heading": self.include_heading,
        }

    def budget(self, phase2: bool) -> dict[str, int]:
        """Step-budget fields: ``phase1 + phase2`` steps of phase 1 only, or the two phases (same total either way)."""
        if phase2:
            return {"phase1_steps": self.phase1_steps, "phase2_steps": self.phase2_steps}
        return {"phase1_steps": self.phase1_steps + self.phase2_steps, "phase2_steps": 0}

    @property
    def total_steps(self) -> int:
        return self.phase1_steps + self.phase2_steps


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
    rl: RLSettings = field(default_factory=RLSettings)


#: RL settings of the smoke budget (seconds per sub-run, random-init pico encoder).
SMOKE_RL: dict[str, Any] = {
    "rl.preset": "smoke",
    "rl.encoder": "vit_pico_patch14",
    "rl.image_size": 112,
    "rl.n_train_scenes": 1,
    "rl.n_eval_scenes": 1,
    "rl.min_start_distance": 3,
    "rl.max_episode_steps": 8,
    "rl.phase1_steps": 64,
    "rl.phase2_steps": 64,
    "rl.n_envs": 4,
    "rl.n_steps": 8,
    "rl.batch_size": 32,
    "rl.n_epochs": 1,
    "rl.net_arch": (32,),
    "rl.eval_episodes": 4,
}


#: the studies' default encoder weights when the release exists for ``--rl.encoder`` (``encoders.released``)
DEFAULT_RELEASE = "semnav-objects"


def study_encoder_weights(rl: RLSettings, budget: str, encoders_dir: Path) -> str | None:
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
) -> tuple[S, str | None, dict[str, Any], float]:
    """The start every RL study shares: parse its config (budget presets), set up logging, check the launch
    options and, when the study has ``arms`` (their names), that ``cfg.arms`` names only those, and runs the study's
    own ``check`` of its config; then let
    ``--official-weights`` replace the encoder and resolve the sub-runs' encoder weights (which may pretrain the
    shared encoder, so the checks come first). Returns the config, those weights (None: random init), the
    ``TwoPhaseConfig`` fields shared by its sub-runs and the start time (``time.perf_counter()``)."""
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
    weights = study_encoder_weights(cfg.rl, cfg.budget, cfg.encoders_dir)
    return cfg, weights, cfg.rl.overrides(weights), t0


def arm_run(
    cfg: RLStudyConfig, base: Mapping[str, Any], task: str, arm: str, fields: Mapping[str, Any], seed: int
) -> TwoPhaseRun:
    """The sub-run ``<out>/runs/<task>/<arm>__seed<seed>``: ``cfg.rl.preset`` with ``base`` (the study's shared
    fields), then the task and arm name, the arm's ``fields`` and the seed."""
    run_dir = cfg.out / "runs" / task / f"{arm}__seed{seed}"
    values = {**base, "task": task, "exp_name": arm, **fields, "seed": seed, "run_dir": run_dir}
    return TwoPhaseRun(two_phase_config(cfg.rl.preset, values))


__all__ = [
    "DEFAULT_RELEASE",
    "SMOKE_RL",
    "RLSettings",
    "RLStudyConfig",
    "arm_run",
    "parse_study_config",
    "start_rl_study",
    "study_encoder_weights",
]
