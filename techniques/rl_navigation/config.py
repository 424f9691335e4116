"""Configuration of two-phase curiosity training: one dataclass (a field per CLI flag) and the named presets.

``python -m experiments.two_phase --preset demo --phase1-steps 100000`` builds a :class:`TwoPhaseConfig` with
:func:`encoders.utils.config.parse_config`: every field below is a flag (``--field-name``; nested sections as
``--ppo.n-steps``), its docstring is the help text. Derived values (device, environment keyword arguments, the
scene generator, the SB3 PPO arguments, the run name) are computed by the functions at the end of this module,
nowhere else.

Presets:

- ``smoke``: seconds on a CPU (a random-init 2-block ViT, 2 scenes of 8x8 cells, a few episodes per phase);
  the tests use it.
- ``demo``: a few minutes on a 2-core CPU, no downloads (docs/results.md has the measured times): pretrains
  ``vit_mini_patch14`` on procedural training scenes (the pretraining stack), then both phases of ``ObjectNav-v0`` on
  12x12-cell scenes (300k + 50k environment steps), then evaluates on held-out test scenes against the reference
  policies.
- ``paper``: the defaults of the method: DINOv2 ViT-S/14, 32x32-cell scenes, 10,000 + 5,000 episodes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import tyro

from encoders.registry import get_model_spec
from encoders.released import RELEASED, is_release
from encoders.utils.config import AT_LEAST_1, NON_NEGATIVE, POSITIVE, UNIT, Range, check_fields
from encoders.utils.precision import Precision
from envs import MAX_EPISODE_STEPS, REGISTERED_IDS
from envs.features import StorageDType
from envs.rules import NavConfig, NavRules
from envs.world import WorldOptions
from techniques.rl_navigation.forward_model import ForwardLoss
from techniques.rl_navigation.policy import NavigationExtractor
from techniques.rl_navigation.target_encoder import TargetMode

CuriositySpace = Literal["semantic", "pixels", "none", "inverse", "random", "rnd", "oracle", "hog"]
#: Curiosity spaces whose learner reads the encoder's window-mean features.
ENCODER_SPACES: tuple[str, ...] = ("semantic", "inverse", "rnd")

#: Task names accepted by ``--task``: the registered Gymnasium ids and their environment keyword arguments
#: (``-v1``: STOP required for success).
TASKS: dict[str, dict[str, Any]] = dict(REGISTERED_IDS)
_TASK_ALIASES = {"imagenav": "ImageNav-v0", "objectnav": "ObjectNav-v0"}


@dataclass
class PPOConfig:
    """Stable-Baselines3 PPO settings (``--ppo.*``)."""

    n_steps: Annotated[int, AT_LEAST_1] = 128
    """environment steps per agent per rollout (a rollout has n_steps * n_envs transitions)"""
    batch_size: Annotated[int, Range(2)] = 512
    """PPO minibatch size"""
    n_epochs: Annotated[int, AT_LEAST_1] = 4
    """PPO epochs over each rollout"""
    learning_rate: Annotated[float, NON_NEGATIVE] = 3e-4
    """Adam learning rate of the policy and value networks"""
    gamma: Annotated[float, UNIT] = 0.99
    """discount of the extrinsic return"""
    gae_lambda: Annotated[float, UNIT] = 0.95
    """GAE lambda"""
    clip_range: Annotated[float, POSITIVE] = 0.2
    """PPO clipping range"""
    ent_coef: Annotated[float, NON_NEGATIVE] = 0.01
    """entropy bonus coefficient"""
    vf_coef: Annotated[float, NON_NEGATIVE] = 0.5
    """value loss coefficient"""
    max_grad_norm: Annotated[float, POSITIVE] = 0.5
    """gradient clipping of the policy update"""
    net_arch: Annotated[tuple[int, ...], AT_LEAST_1] = (128, 128)
    """hidden layers of the policy and value MLPs (after the features extractor; with --policy lstm, after the LSTM)"""
    lstm_hidden: Annotated[int, AT_LEAST_1] = 128
    """hidden size of the LSTM (--policy lstm)"""
    cell_dim: Annotated[int, NON_NEGATIVE] = 16
    """window and pixel observations: width of the embedding of every window cell, by one network shared across cells
    (the compression layer of VC-1 / OVRL-V2); 0: the window flattened as one vector, pixels through one CNN"""


@dataclass
class CuriosityConfig:
    """Forward model, intrinsic reward and phase-2 safeguards (``--curiosity.*``)."""

    space: CuriositySpace = "semantic"
    """the intrinsic reward: a forward model in 'semantic' (window-mean encoder features), 'pixels' (downsampled
    pixel crops), 'random' (features of a random-init encoder of the same architecture, Burda et al. 2019) or
    'inverse' space (ICM: features learned by inverse dynamics, Pathak et al. 2017); 'rnd' (Random Network
    Distillation's novelty bonus on the encoder features); 'oracle' (window means of the ground-truth cell features,
    envs.oracle: the positive control); 'hog' (histograms of oriented gradients, envs.hog: hand-made, shape not
    colour); 'none' (extrinsic-only PPO). Phase 2 needs 'semantic'"""
    encoder: str | None = None
    """the encoder of the 'semantic', 'inverse' and 'rnd' spaces when it is not the policy's (--encoder): a registry
    name, with --curiosity.encoder-weights (e.g. the laptop encoder or the supervised reference, while the policy
    observes the oracle); phase 1 only"""
    encoder_weights: str | None = None
    """checkpoint or release name (e.g. semnav-objects) of --curiosity.encoder (none: random initialisation)"""
    forward_hidden: Annotated[int, AT_LEAST_1] = 256
    """hidden width of the forward model"""
    forward_layers: Annotated[int, AT_LEAST_1] = 2
    """hidden layers of the forward model"""
    forward_loss: ForwardLoss = "mse_ln"
    """forward loss in a normalised space: 'mse_ln' (MSE to layer-normed targets) or 'cosine'"""
    forward_lr: Annotated[float, NON_NEGATIVE] = 1e-3
    """Adam learning rate of the forward model (its own optimiser)"""
    forward_epochs: Annotated[int, NON_NEGATIVE] = 2
    """passes of the forward model over each rollout's transitions"""
    forward_batch_size: Annotated[int, AT_LEAST_1] = 512
    """forward-model minibatch size (in phase 2 each minibatch re-runs the top blocks on its scenes)"""
    forward_max_grad_norm: Annotated[float, POSITIVE] = 1.0
    """gradient clipping of the forward model (and of the encoder in phase 2)"""
    episodic: bool = False
    """episodic intrinsic returns (cut at episode ends); default non-episodic, as RND (see intrinsic_reward.py)"""
    gamma: Annotated[float, UNIT] = 0.99
    """discount of the intrinsic return (reward filter and intrinsic GAE)"""
    gae_lambda: Annotated[float, UNIT] = 0.95
    """GAE lambda of the intrinsic advantages"""
    warmup_rollouts: Annotated[int, NON_NEGATIVE] = 1
    """rollouts that only warm up the intrinsic-return statistics (at the start and after the phase switch)"""
    critic_hidden: Annotated[int, AT_LEAST_1] = 128
    """hidden width of the intrinsic value head (non-episodic mode)"""
    critic_lr: Annotated[float, NON_NEGATIVE] = 1e-3
    """Adam learning rate of the intrinsic value head"""
    critic_epochs: Annotated[int, NON_NEGATIVE] = 2
    """passes of the intrinsic value head over each rollout"""
    target_mode: TargetMode = "ema"
    """phase-2 prediction targets: 'ema' (stop-gradient EMA of the top blocks), 'frozen' (phase-1 copy) or
    'online' (the fine-tuned encoder under stop-gradient)"""
    target_momentum: Annotated[float, UNIT] = 0.95
    """EMA momentum of the target blocks, applied once per rollout"""
    collapse_fraction: Annotated[float, UNIT] = 0.5
    """warn when the encoder's feature std or effective rank falls below this fraction of its phase-1 value"""
    pixel_size: Annotated[int, AT_LEAST_1] = 6
    """side of the downsampled crop that pixel-space curiosity predicts (space='pixels')"""
    rnd_dim: Annotated[int, AT_LEAST_1] = 64
    """output width of RND's random target network (space='rnd')"""
    inverse_dim: Annotated[int, AT_LEAST_1] = 64
    """width of the inverse-dynamics embedding the forward model predicts (space='inverse')"""


@dataclass
class TwoPhaseConfig:
    """Two-phase curiosity training: PPO on detached semantic features with a forward-model intrinsic reward.

    The task rules are one :class:`envs.rules.NavRules` section (``cfg.rules``), declared once in ``envs``, whose
    flags and keys carry no section name (``--patch-radius``, ``"patch_radius"`` in overrides and ``config.json``).
    A numeric field's range is in its type (:class:`encoders.utils.config.Range`), checked by :func:`check_config`.
    """

    exp_name: str = "two_phase"
    """experiment name (the run folder is {task}__{exp_name}__{seed}__{time})"""
    task: str = "ImageNav-v0"
    """environment id: ImageNav-v0, ObjectNav-v0, ImageNavPixels-v0, ObjectNavPixels-v0, each also as -v1 (success
    needs STOP, habitat-lab's rule), or imagenav / objectnav; --tv adds a noisy TV to any of them"""
    policy: Literal["mlp", "lstm"] = "mlp"
    """'mlp' (memoryless PPO) or 'lstm' (sb3-contrib RecurrentPPO: an LSTM after the features extractor, as the
    memory of habitat's and OVRL's agents)"""
    rules: Annotated[NavRules, tyro.conf.arg(name="")] = field(default_factory=NavRules)
    """the task rules (:class:`envs.rules.NavRules`: flags --actions, --stop-action, --observation, --patch-radius,
    --success-radius, --min-start-distance, --include-position, --include-heading, --success-reward,
    --step-penalty, --distance-reward-scale, --image-goal)"""
    encoder: str = "dinov2_vits14"
    """encoder registry name (dinov2_vit{s,b,l,g}14[_reg], vit_{tiny,mini,pico}_patch{8,14,16}, ...)"""
    encoder_weights: str | None = None
    """encoder checkpoint path, 'official' (DINOv2 hub download), a release of semnav (semnav-objects, with --encoder
    vit_mini_patch14), or none (demo: pretrain one; else random)"""
    image_size: Annotated[int, AT_LEAST_1] = 448
    """scene side in pixels (multiple of the patch size): 448 with patch 14 gives 32x32 cells"""
    n_train_scenes: Annotated[int, AT_LEAST_1] = 64
    """procedural training scenes"""
    n_eval_scenes: Annotated[int, AT_LEAST_1] = 16
    """held-out scenes used by the final evaluation"""
    scene_seed: Annotated[int, NON_NEGATIVE] = 0
    """base seed of the procedural scene generator"""
    colour_variants: Annotated[int, AT_LEAST_1] = WorldOptions.colour_variants
    """colour variants per scene (k > 1: a random one per episode)"""
    tv_frames: Annotated[int, Range(2)] = WorldOptions.tv_frames
    """--tv: pre-rendered frames in each scene's TV pool (their features are cached; no encoder runs in a step)"""
    max_episode_steps: Annotated[int, AT_LEAST_1] = MAX_EPISODE_STEPS
    """time limit per episode (default: the registered environments')"""
    goal_distance_reward: Annotated[float, NON_NEGATIVE] = 0.0
    """dense baseline reward: this times the step's decrease in cosine distance between the observed features and
    the goal's (VIP-style, no privileged distance; feature tasks only; 0: off)"""
    phase1_episodes: Annotated[int, NON_NEGATIVE] = 10_000
    """episodes of phase 1 (encoder frozen)"""
    phase2_episodes: Annotated[int, NON_NEGATIVE] = 5_000
    """episodes of phase 2 (top blocks fine-tuned by the forward loss); 0: phase-1 only"""
    phase1_steps: Annotated[int, NON_NEGATIVE] = 0
    """environment steps of phase 1 (all agents together, rounded up to whole rollouts); > 0 budgets the whole run in
    steps, so every arm of a study gets the same samples however long its episodes; the episode budgets are unused"""
    phase2_steps: Annotated[int, NON_NEGATIVE] = 0
    """environment steps of phase 2 when the run is budgeted in steps (--phase1-steps > 0); 0: phase-1 only"""
    unfreeze_layers: Annotated[int, NON_NEGATIVE] = 2
    """number of top encoder blocks fine-tuned in phase 2 (plus the final norm)"""
    encoder_lr: Annotated[float, NON_NEGATIVE] = 1e-5
    """AdamW learning rate of the encoder in phase 2 (separate from the forward model's)"""
    encoder_weight_decay: Annotated[float, NON_NEGATIVE] = 0.0
    """AdamW weight decay of the encoder in phase 2"""
    intrinsic_coef: Annotated[float, NON_NEGATIVE] = 0.5
    """scale of the normalised intrinsic advantages added to the extrinsic ones (0: extrinsic only)"""
    extrinsic_coef: Annotated[float, NON_NEGATIVE] = 1.0
    """scale of the extrinsic advantages (0: pure curiosity, the protocol of Burda et al. 2019's large-scale study)"""
    n_envs: Annotated[int, AT_LEAST_1] = 16
    """parallel agents (one batched ImageNavVecEnv)"""
    seed: Annotated[int, NON_NEGATIVE] = 1
    """seed of torch, numpy and the environments"""
    device: str = "auto"
    """'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ... (PPO's MLP always runs on the CPU, as SB3
    recommends; the encoder, forward model and pixel-task CNN policies run here)"""
    torch_threads: Annotated[int, NON_NEGATIVE] = 1
    """torch CPU threads: RL's small batches run fastest on one (0: torch's default)"""
    precision: Precision = "auto"
    """bf16 autocast or fp32 for the encoder's passes (feature caching, phase-2 forward and backward, the refresh,
    evaluation); auto: bf16 on CUDA and on CPUs with native bf16, else fp32. The curiosity learner and the intrinsic
    critic always run in fp32; parameters, cached features and checkpoints stay fp32"""
    logdir: Path = Path("runs")
    """parent folder of run folders"""
    run_dir: Path | None = None
    """explicit run folder (default: {logdir}/{task}__{exp_name}__{seed}__{time})"""
    resume: Path | None = None
    """continue the run in this folder (its saved config is used; counters and phase continue)"""
    checkpoint_every: Annotated[int, NON_NEGATIVE] = 50
    """checkpoint every N rollouts (also at the phase switch, at the end and on Ctrl-C/SIGTERM)"""
    keep_checkpoints: Annotated[int, AT_LEAST_1] = 2
    """periodic checkpoints kept (the phase-switch and final ones are always kept)"""
    trajectory_every: Annotated[int, NON_NEGATIVE] = 25
    """TensorBoard trajectory images every N rollouts (0: never)"""
    eval_episodes: Annotated[int, NON_NEGATIVE] = 100
    """episodes of the final evaluation (0: skip it)"""
    eval_split: Literal["train", "val", "test"] = "test"
    """scene split of the final evaluation"""
    eval_train: bool = True
    """also evaluate on the training scenes (a policy that memorised them scores far above its held-out success)"""
    encode_batch_size: Annotated[int, AT_LEAST_1] = WorldOptions.encode_batch_size
    """images per encoder call when building / refreshing the feature cache"""
    storage_dtype: StorageDType = WorldOptions.storage_dtype
    """storage dtype of the cached feature grids"""
    pretrain_preset: str = "tiny"
    """demo only: preset of experiments.pretrain used when no --encoder-weights is given"""
    pretrain_images: Annotated[int, AT_LEAST_1] = 512
    """demo only: procedural training-scene images rendered for pretraining"""
    pretrain_iterations: Annotated[int, NON_NEGATIVE] = 0
    """demo only: pretraining iterations (0: the preset's)"""
    pretrain: bool = False
    """pretrain the encoder from scratch first when no --encoder-weights is given (the demo sets this)"""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    curiosity: CuriosityConfig = field(default_factory=CuriosityConfig)

    @property
    def pixels(self) -> bool:
        """Whether the agents observe pixel crops (a Pixels task or ``--observation pixels``; no encoder features)."""
        return nav_config(self).observation == "pixels"


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "exp_name": "smoke",
        "encoder": "vit_pico_patch14",
        "image_size": 112,
        "n_train_scenes": 2,
        "n_eval_scenes": 2,
        "min_start_distance": 4,
        "max_episode_steps": 12,
        "phase1_episodes": 8,
        "phase2_episodes": 8,
        "unfreeze_layers": 1,
        "encoder_lr": 1e-4,
        "n_envs": 4,
        "checkpoint_every": 2,
        "trajectory_every": 2,
        "eval_episodes": 4,
        "ppo.n_steps": 16,
        "ppo.batch_size": 32,
        "ppo.n_epochs": 1,
        "ppo.net_arch": (32,),
        "curiosity.forward_hidden": 32,
        "curiosity.forward_batch_size": 32,
        "curiosity.forward_epochs": 1,
        "curiosity.critic_hidden": 16,
        "curiosity.critic_epochs": 1,
    },
    "demo": {
        "exp_name": "demo",
        # the studies' ObjectNav-v0 (12x12 cells, 60-step episodes, start >= 5 cells away): on 16x16-cell ImageNav-v0
        # no policy learned within this budget, not even the oracle's (docs/results.md)
        "task": "ObjectNav-v0",
        "encoder": "vit_mini_patch14",
        "pretrain": True,
        "pretrain_preset": "demo",
        "image_size": 168,
        # the 5x5 window of patch features, each cell embedded by one shared layer, plus the last move's direction:
        # a mean-pooled window hides where things are, and a memoryless policy needs the heading to keep going
        "observation": "window",
        "patch_radius": 2,
        "include_heading": True,
        # enough scenes that the policy cannot learn where each goal is (16 are memorised: docs/results.md)
        "n_train_scenes": 128,
        "n_eval_scenes": 16,
        "min_start_distance": 5,
        "max_episode_steps": 60,
        "phase1_steps": 300_000,
        "phase2_steps": 50_000,
        # curiosity at the default 0.5 cost held-out success here (one seed: 0.805 against 0.875 at 0.1)
        "intrinsic_coef": 0.1,
        "unfreeze_layers": 2,
        "encoder_lr": 1e-4,
        "n_envs": 16,
        "checkpoint_every": 25,
        "trajectory_every": 10,
        "eval_episodes": 200,
    },
    "paper": {"exp_name": "paper", "encoder": "dinov2_vits14"},
}


# ------------------------------------------------------------------------------------------------ derived
def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> cuda when available else cpu; anything else as given (validated)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"invalid --device {device!r}: {e}; use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device} requested but CUDA is not available here; use --device cpu")
    return dev


def task_id(task: str) -> str:
    """Canonical task id (``imagenav`` -> ``ImageNav-v0``); unknown names raise ``ValueError``."""
    name = _TASK_ALIASES.get(task, task)
    if name not in TASKS:
        raise ValueError(f"unknown --task {task!r}; choose one of {', '.join(TASKS)}")
    return name


def _check_weights(flag: str, arch_flag: str, arch: str, weights: str | None) -> None:
    """``ValueError`` naming ``flag`` unless ``weights`` is ``None``, ``"official"``, a release made for ``arch``
    (:mod:`encoders.released`) or an existing file."""
    if weights is None or weights == "official":
        return
    if is_release(weights):
        release = RELEASED[weights]
        if get_model_spec(arch).name != release.arch:
            raise ValueError(f"{flag} {weights} are {release.arch} weights; pass {arch_flag} {release.arch} with them")
    elif not Path(weights).expanduser().is_file():
        raise ValueError(
            f"{flag}: encoder weights not found: {weights}; pass an existing checkpoint file, 'official', a released "
            f"name ({', '.join(RELEASED) or 'none'}), or omit it"
        )


def check_config(cfg: TwoPhaseConfig) -> None:
    """Reject bad or inconsistent settings before any work, naming the flag to change: every field's type, choices
    and range, then the encoder, its weights and patch size, the scene size, the task rules and the phase settings."""
    import encoders
    from envs.scenes import SceneGenerator, smallest_image_size

    task_id(cfg.task)
    check_fields(cfg)
    resolve_device(cfg.device)
    if not cfg.exp_name or os.sep in cfg.exp_name:
        raise ValueError(f"--exp-name must be a non-empty name without {os.sep!r}, got {cfg.exp_name!r}")
    spec = encoders.get_model_spec(cfg.encoder)  # ValueError listing the known encoders
    _check_weights("--encoder-weights", "--encoder", spec.name, cfg.encoder_weights)
    patch, depth = int(spec.kwargs["patch_size"]), int(spec.kwargs["depth"])
    if cfg.image_size % patch:
        raise ValueError(
            f"--image-size {cfg.image_size} must be a multiple of the patch size {patch} of {cfg.encoder}, "
            f"e.g. {max(1, round(cfg.image_size / patch)) * patch}"
        )
    if cfg.extrinsic_coef == 0 and (cfg.curiosity.space == "none" or cfg.intrinsic_coef == 0):
        raise ValueError(
            "--extrinsic-coef 0 (pure curiosity) leaves nothing to learn without an intrinsic reward; pass "
            "--intrinsic-coef > 0 and a --curiosity.space other than none"
        )
    if cfg.phase2_steps > 0 and cfg.phase1_steps == 0:
        raise ValueError(
            "--phase2-steps needs --phase1-steps > 0: a run is budgeted either in steps (both phases) or in episodes"
        )
    budget = run_budget(cfg)
    if budget.total < 1:
        raise ValueError(f"--phase1-{budget.unit} + --phase2-{budget.unit} must be >= 1 (nothing to train)")
    if budget.phase2 > 0 and not 1 <= cfg.unfreeze_layers <= depth:
        raise ValueError(
            f"--unfreeze-layers must be in [1, {depth}] ({cfg.encoder} has {depth} blocks) when phase 2 runs, got "
            f"{cfg.unfreeze_layers} (or pass --phase2-{budget.unit} 0 for phase-1-only)"
        )
    try:
        pixels = cfg.pixels  # builds (and so validates) the task rules
    except ValueError as e:
        raise ValueError(f"task rules: {e} (--min-start-distance, --success-radius, --patch-radius)") from e
    if cfg.goal_distance_reward != 0 and pixels:
        raise ValueError("--goal-distance-reward needs feature observations; use a task without Pixels or pass 0")
    if budget.phase2 > 0 and nav_config(cfg).observation == "oracle":
        raise ValueError(
            f"--observation oracle has no encoder to fine-tune: pass --phase2-{budget.unit} 0 (phase 1 only)"
        )
    cur = cfg.curiosity
    if cur.encoder_weights is not None and cur.encoder is None:
        raise ValueError("--curiosity.encoder-weights needs --curiosity.encoder (the architecture of the weights)")
    if cur.encoder is not None:
        encoders.get_model_spec(cur.encoder)
        if cur.space not in ENCODER_SPACES:
            raise ValueError(
                f"--curiosity.encoder is only read by the {', '.join(ENCODER_SPACES)} spaces, not --curiosity.space "
                f"{cur.space}; drop it"
            )
        _check_weights("--curiosity.encoder-weights", "--curiosity.encoder", cur.encoder, cur.encoder_weights)
        if budget.phase2 > 0:
            raise ValueError(
                f"--curiosity.encoder is a fixed curiosity space; phase 2 fine-tunes --encoder: pass --phase2-"
                f"{budget.unit} 0 or drop --curiosity.encoder"
            )
    if budget.phase2 > 0 and (pixels or cfg.curiosity.space != "semantic"):
        raise ValueError(
            "phase 2 fine-tunes the encoder through the semantic forward model, so it needs a feature task and "
            f"--curiosity.space semantic; pass --phase2-{budget.unit} 0 for pixel tasks or other curiosity spaces"
        )
    if cfg.ppo.batch_size > cfg.ppo.n_steps * cfg.n_envs:
        raise ValueError(
            f"--ppo.batch-size {cfg.ppo.batch_size} exceeds a rollout ({cfg.ppo.n_steps} x {cfg.n_envs} transitions);"
            f" lower it or raise --ppo.n-steps / --n-envs"
        )

    def generator(size: int) -> SceneGenerator:
        return SceneGenerator(**scene_generator_kwargs(size, patch, cfg.scene_seed))

    n_train = max(cfg.n_train_scenes, cfg.pretrain_images if cfg.pretrain and cfg.encoder_weights is None else 0)
    splits = {"train": n_train, cfg.eval_split: max(cfg.n_eval_scenes, n_train if cfg.eval_split == "train" else 0)}
    too_small = [
        split
        for split, n in splits.items()
        if smallest_image_size(range(n), split, cfg.image_size, generator, patch, limit=cfg.image_size) is None
    ]
    if too_small:
        fits = [
            smallest_image_size(range(n), split, cfg.image_size + patch, generator, patch)
            for split, n in splits.items()
        ]
        raise ValueError(
            f"--image-size {cfg.image_size} is too small for the procedural {' and '.join(too_small)} scenes (their "
            f"objects do not fit); the smallest size that fits the {' and '.join(splits)} scenes is "
            f"{max((f for f in fits if f is not None), default=None)}"
        )


@dataclass(frozen=True)
class RunBudget:
    """How long a run trains: ``phase1`` then ``phase2`` units of ``unit`` (counted over the whole run)."""

    unit: Literal["episodes", "steps"]
    phase1: int
    phase2: int

    @property
    def total(self) -> int:
        return self.phase1 + self.phase2


def run_budget(cfg: TwoPhaseConfig) -> RunBudget:
    """The run's budget: in environment steps when ``--phase1-steps`` > 0, else in episodes."""
    if cfg.phase1_steps > 0:
        return RunBudget("steps", cfg.phase1_steps, cfg.phase2_steps)
    return RunBudget("episodes", cfg.phase1_episodes, cfg.phase2_episodes)


def scene_generator_kwargs(image_size: int, patch_size: int, scene_seed: int) -> dict[str, Any]:
    """``SceneGenerator`` arguments: object count and size scaled from the generator's 448-pixel defaults."""
    scale = image_size / 448.0
    lo, hi = max(12, round(36 * scale)), max(18, round(72 * scale))
    n_objects = (4, 8) if image_size >= 336 else ((3, 6) if image_size >= 168 else (2, 4))
    return {
        "image_size": image_size,
        "patch_size": patch_size,
        "seed": scene_seed,
        "object_size": (lo, hi),
        "n_objects": n_objects,
    }


def nav_config(cfg: TwoPhaseConfig) -> NavConfig:
    """The environments' validated task rules: ``cfg.rules`` with what the task id fixes (the task, pixel
    observations, a STOP action; ``ValueError`` for inconsistent rules)."""
    fixed = {k: v for k, v in TASKS[task_id(cfg.task)].items() if k in NavConfig.__dataclass_fields__}
    stop_action = cfg.rules.stop_action or bool(fixed.pop("stop_action", False))
    return NavConfig(**{**dataclasses.asdict(cfg.rules), **fixed, "stop_action": stop_action})


def env_kwargs(cfg: TwoPhaseConfig) -> dict[str, Any]:
    """:class:`envs.vec_env.ImageNavVecEnv` keyword arguments: the task rules (:func:`nav_config`), the task id's
    world arguments, the TV's pool size, the time limit and the colour variants (scenes and encoder added by the
    caller)."""
    world = {k: v for k, v in TASKS[task_id(cfg.task)].items() if k not in NavConfig.__dataclass_fields__}
    kwargs = {**dataclasses.asdict(nav_config(cfg)), **world, "max_episode_steps": cfg.max_episode_steps}
    if cfg.colour_variants > 1:
        kwargs["colour_variants"] = cfg.colour_variants
    if cfg.rules.tv != "none":
        kwargs["tv_frames"] = cfg.tv_frames
    return kwargs


def ppo_arguments(cfg: TwoPhaseConfig, feature_mean: list[float] | None = None) -> tuple[str, dict[str, Any]]:
    """The SB3 policy name and PPO keyword arguments of ``cfg`` (hyperparameters, policy network, seed), as given
    to :class:`CuriosityPPO` (and to a plain SB3 ``PPO`` baseline of the same config). ``feature_mean``: the mean
    training-scene feature the policy centres its feature inputs by (:class:`NavigationExtractor`)."""
    p = cfg.ppo
    window_cells = 2 * cfg.rules.patch_radius + 1
    extractor = {"cell_dim": p.cell_dim, "feature_mean": feature_mean, "window_cells": window_cells}
    policy_kwargs: dict[str, Any] = {
        "features_extractor_class": NavigationExtractor,
        "features_extractor_kwargs": extractor,
        "net_arch": list(p.net_arch),
    }
    if cfg.policy == "lstm":
        policy_kwargs["lstm_hidden_size"] = p.lstm_hidden
    kwargs = dict(
        learning_rate=p.learning_rate,
        n_steps=p.n_steps,
        batch_size=p.batch_size,
        n_epochs=p.n_epochs,
        gamma=p.gamma,
        gae_lambda=p.gae_lambda,
        clip_range=p.clip_range,
        ent_coef=p.ent_coef,
        vf_coef=p.vf_coef,
        max_grad_norm=p.max_grad_norm,
        policy_kwargs=policy_kwargs,
        seed=cfg.seed,
        verbose=0,
    )
    return ("MultiInputLstmPolicy" if cfg.policy == "lstm" else "MultiInputPolicy"), kwargs


def run_name(cfg: TwoPhaseConfig, timestamp: int | None = None) -> str:
    """CleanRL-style run name ``{task}__{exp_name}__{seed}__{unix time}``."""
    return f"{task_id(cfg.task)}__{cfg.exp_name}__{cfg.seed}__{int(time.time() if timestamp is None else timestamp)}"


__all__ = [
    "ENCODER_SPACES",
    "PRESETS",
    "TASKS",
    "CuriosityConfig",
    "CuriositySpace",
    "PPOConfig",
    "RunBudget",
    "TwoPhaseConfig",
    "check_config",
    "env_kwargs",
    "nav_config",
    "ppo_arguments",
    "resolve_device",
    "run_budget",
    "run_name",
    "scene_generator_kwargs",
    "task_id",
]
