"""TwoPhaseTrainer: PPO on detached semantic features with forward-model curiosity, in two phases.

Phase 1 (``phase1_episodes``, or ``phase1_steps`` environment steps): the encoder is frozen; the environments look
features up in the :class:`envs.features.SceneFeatures` cache computed once; the forward model trains on every
rollout. Phase 2 (``phase2_episodes`` or ``phase2_steps``): ``unfreeze_top_layers(n)``; the forward-model loss also
trains the top ``n`` blocks and the final norm (their own AdamW optimiser, ``encoder_lr``), their input features
recomputed with autograd from the cache's boundary tokens; targets come from a stop-gradient EMA copy of those
blocks (or a frozen / the online copy); after each rollout's update the cached grids are refreshed in place (top blocks
only) so the policy sees current features, the target copy follows, and feature std / effective rank are
checked against their phase-1 values. At the switch the intrinsic-reward statistics are reset and the intrinsic
critic is re-initialised; both re-warm (the critic fits, the policy gets no intrinsic advantage) for
``curiosity.warmup_rollouts`` rollouts.

PPO is :class:`~techniques.rl_navigation.algorithm.CuriosityPPO`; :meth:`TwoPhaseTrainer.train` is the whole
loop, SB3's ``learn`` unrolled (one ``_setup_learn``, then ``collect_rollouts`` and ``train`` per rollout) with the
curiosity update, the phase-2 refresh, logs, checkpoints and the phase switch written out, so SB3's progress,
schedules and fps cover the run. Phases are driven by episode counts or, with ``--phase1-steps``, by environment
steps (the same samples for every arm of a study, however long its episodes), and switch at rollout boundaries.
The run folder holds ``config.json``, TensorBoard events, and
``checkpoints/<name>/{policy.zip, encoder.pth(+.json), state.pt}`` with a ``checkpoints/latest`` pointer;
checkpoints are written at the phase switch, every ``checkpoint_every`` rollouts, at the end and on Ctrl-C /
SIGTERM, and :meth:`TwoPhaseTrainer.resume` continues counters and phase.

TensorBoard records are in :mod:`~techniques.rl_navigation.run_logging`; the SB3 arguments of a config
(:func:`~techniques.rl_navigation.config.ppo_arguments`) and :func:`~techniques.rl_navigation.config.run_name` are
in :mod:`~techniques.rl_navigation.config` (both still importable from here).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.logger import Logger

from encoders.utils.config import config_to_dict, field_flag, get_nested, load_config, replace_nested, save_config
from encoders.utils.io import atomic_save, load_file
from encoders.utils.progress import Progress
from encoders.utils.seed import get_rng_state, seed_everything, set_rng_state
from encoders.utils.signals import stop_on_signals
from encoders.utils.tensorboard import make_writer
from envs.features import SceneFeatures
from envs.hog import hog_features
from envs.oracle import oracle_features
from techniques.rl_navigation.algorithm import CuriosityPPO, CuriosityRecurrentPPO
from techniques.rl_navigation.checkpointing import (
    CHECKPOINT_DIR,
    ENCODER_FILE,
    POLICY_FILE,
    STATE_FILE,
    arrays_to_tensors,
    check_policy_file,
    check_run_folder,
    checkpoint_dir,
    list_checkpoints,
    load_newest_checkpoint,
    tensors_to_arrays,
    write_checkpoint,
)
from techniques.rl_navigation.collapse_monitor import CollapseMonitor, sample_features
from techniques.rl_navigation.config import (
    ENCODER_SPACES,
    TwoPhaseConfig,
    check_config,
    nav_config,
    ppo_arguments,
    resolve_device,
    run_budget,
    run_name,
)
from techniques.rl_navigation.curiosity import Curiosity, CuriosityLearner, RolloutRecorder
from techniques.rl_navigation.environment import make_env
from techniques.rl_navigation.feature_sources import PixelFeatureSource, SemanticFeatureSource
from techniques.rl_navigation.forward_model import ForwardModel
from techniques.rl_navigation.forward_trainer import ForwardModelTrainer
from techniques.rl_navigation.intrinsic_critic import IntrinsicCritic
from techniques.rl_navigation.intrinsic_reward import IntrinsicRewardNormalizer
from techniques.rl_navigation.inverse_dynamics import ICMLearner
from techniques.rl_navigation.rewards import GoalDistanceReward
from techniques.rl_navigation.rnd import RNDTrainer
from techniques.rl_navigation.run_logging import (
    SummaryWriterFormat,
    hparams_markdown,
    log_trajectories,
    rollout_scalars,
)
from techniques.rl_navigation.semantic_encoder import SemanticEncoder
from techniques.rl_navigation.target_encoder import TargetEncoder

logger = logging.getLogger(__name__)

#: Config fields a resumed run may change (they do not alter what has been trained so far).
RESUME_OVERRIDABLE = (
    "device",
    "phase1_episodes",
    "phase2_episodes",
    "phase1_steps",
    "phase2_steps",
    "checkpoint_every",
    "keep_checkpoints",
    "trajectory_every",
    "eval_episodes",
    "eval_split",
    "eval_train",
    "n_eval_scenes",
    "resume",
)


@dataclass
class Counters:
    """Progress of a run; saved in every checkpoint."""

    episodes: int = 0
    steps: int = 0
    rollouts: int = 0
    phase: int = 1
    phase2_start_episode: int = -1
    ppo_updates: int = 0


@dataclass
class TrainResult:
    run_dir: Path
    counters: Counters
    interrupted: bool
    checkpoints: dict[str, Path]


class TwoPhaseTrainer:
    """Builds the encoder, environments, PPO and curiosity from a :class:`TwoPhaseConfig`, and trains.

    Args:
        cfg: the resolved config (``check_config`` is applied).
        run_dir: the run folder (created; ``config.json`` written unless ``resume_from`` is given).
        resume_from: a checkpoint folder to continue from (see :meth:`resume`).
    """

    def __init__(self, cfg: TwoPhaseConfig, run_dir: str | os.PathLike, resume_from: Path | None = None):
        check_config(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(cfg.device)
        self._previous_threads = torch.get_num_threads()
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)  # restored by close()
        self.counters = Counters()
        self.checkpoints: dict[str, Path] = {}
        self._periodic: list[Path] = []
        self.stop_requested = False
        seed_everything(cfg.seed)
        state = None if resume_from is None else load_file(resume_from / STATE_FILE)
        self._build(resume_from)
        if state is not None:
            self._load_state(resume_from, state)
        else:
            save_config(cfg, self.run_dir)
            self.writer.add_text("hparams", hparams_markdown(cfg), 0)
            for key, value in self._encoder_stats().items():
                self.writer.add_scalar(f"encoder/{key}", value, 0)

    # ------------------------------------------------------------------------------------------ building
    def _build(self, resume_from: Path | None) -> None:
        cfg = self.cfg
        weights = cfg.encoder_weights if resume_from is None else resume_from / ENCODER_FILE
        self.encoder = SemanticEncoder.from_name(cfg.encoder, weights, self.device, precision=cfg.precision)
        if resume_from is not None:
            # the checkpoint's sidecar names the architecture; the config's encoder must match it
            logger.info("resuming encoder weights from %s", weights)
        self.encoder.freeze()
        self.budget = run_budget(cfg)
        self.n_top = cfg.unfreeze_layers if self.budget.phase2 > 0 else None
        if self.n_top is not None and not 1 <= self.n_top <= self.encoder.n_blocks:
            raise ValueError(f"--unfreeze-layers {self.n_top} is not in [1, {self.encoder.n_blocks}] for {cfg.encoder}")
        pixels = cfg.pixels
        self.env = make_env(cfg, self.encoder, "train", cache_top_layers=self.n_top)
        rewarded = self.env if cfg.goal_distance_reward == 0 else GoalDistanceReward(self.env, cfg.goal_distance_reward)
        self.writer = make_writer(self.run_dir)
        self.monitor = CollapseMonitor(cfg.curiosity.collapse_fraction)
        self.cache = self.env.scene_features if nav_config(cfg).needs_encoder else None
        if self.cache is None and cfg.curiosity.space in ENCODER_SPACES and cfg.curiosity.encoder is None:
            # pixel or oracle observations with semantic curiosity: the forward model still needs encoder features
            self.cache = self.encoder.build_cache(self.env.world.images, batch_size=cfg.encode_batch_size)
        self.recorder = RolloutRecorder(rewarded)
        self.curiosity = self._build_curiosity(pixels)
        self.target: TargetEncoder | None = None
        self.target_cache: SceneFeatures | None = None
        self.model = self._build_ppo(pixels)

    def _build_curiosity(self, pixels: bool) -> Curiosity | None:
        cfg, cur = self.cfg, self.cfg.curiosity
        if cur.space == "none":
            return None
        fm_device = self.device
        source, learner = self._build_learner(fm_device)
        self.source = source
        normalizer = IntrinsicRewardNormalizer(
            cfg.n_envs, gamma=cur.gamma, episodic=cur.episodic, warmup_rollouts=cur.warmup_rollouts
        )
        critic = IntrinsicCritic(source.dim, cur.critic_hidden).to(fm_device)
        return Curiosity(
            learner,
            normalizer,
            critic,
            cfg.intrinsic_coef,
            critic_lr=cur.critic_lr,
            critic_epochs=cur.critic_epochs,
            critic_batch_size=cur.forward_batch_size,
            gamma=cur.gamma,
            gae_lambda=cur.gae_lambda,
            seed=cfg.seed,
            tv_view=self.env.core.tv_view if self.env.world.tv is not None else None,
        )

    def _build_learner(self, device: torch.device) -> tuple[Any, CuriosityLearner]:
        """The feature source of states and the learner of the intrinsic reward of ``--curiosity.space``."""
        cfg, cur = self.cfg, self.cfg.curiosity
        rules = self.env.config  # the environments' task rules: the one source of the window radius and actions
        heading_cond = rules.actions == "egocentric"
        n_actions = self.env.action_space.n
        if cur.space == "pixels":
            world = self.env.world
            source = PixelFeatureSource(world.images, world.patch_size, rules.patch_radius, cur.pixel_size, device)
        elif cur.space == "random":
            # Burda et al. 2019: features of a random-init network of the same architecture, fixed
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed + 104_729)
                random_encoder = SemanticEncoder.from_name(cfg.encoder, None, self.device, precision=cfg.precision)
                random_encoder.freeze()
            cache = random_encoder.build_cache(self.env.world.images, batch_size=cfg.encode_batch_size)
            source = SemanticFeatureSource(cache, rules.patch_radius, device)
        elif cur.space == "oracle":
            world = self.env.world
            cache = (
                world.features
                if rules.observation == "oracle"
                else oracle_features(world.scenes, world.n_variants, world.patch_size, world.grid_shape, world.tv)
            )
            source = SemanticFeatureSource(cache, rules.patch_radius, device)
        elif cur.space == "hog":
            source = SemanticFeatureSource(hog_features(self.env.world.images, self.env.world.patch_size),
                                           rules.patch_radius, device)  # fmt: skip
        elif cur.encoder is not None:  # a fixed encoder of its own (the laptop encoder, the supervised reference)
            curiosity_encoder = SemanticEncoder.from_name(cur.encoder, cur.encoder_weights, self.device, cfg.precision)
            curiosity_encoder.freeze()
            cache = curiosity_encoder.build_cache(self.env.world.images, batch_size=cfg.encode_batch_size)
            source = SemanticFeatureSource(cache, rules.patch_radius, device)
        else:
            source = SemanticFeatureSource(self.cache, rules.patch_radius, device)
        shared = {"lr": cur.forward_lr, "epochs": cur.forward_epochs, "batch_size": cur.forward_batch_size}
        shared["max_grad_norm"] = cur.forward_max_grad_norm
        if cur.space == "rnd":
            return source, RNDTrainer(
                source, cur.rnd_dim, cur.forward_hidden, cur.forward_layers, seed=cfg.seed, device=device, **shared
            )
        if cur.space == "inverse":
            learner = ICMLearner(
                source,
                n_actions,
                embed_dim=cur.inverse_dim,
                hidden_dim=cur.forward_hidden,
                forward_hidden=cur.forward_hidden,
                forward_layers=cur.forward_layers,
                forward_loss=cur.forward_loss,
                heading_cond=heading_cond,
                device=device,
                **shared,
            )
            return source, learner
        forward_model = ForwardModel(
            source.dim,
            n_actions,
            hidden_dim=cur.forward_hidden,
            n_layers=cur.forward_layers,
            cond_dim=4 if heading_cond else 0,
            loss=cur.forward_loss,
        ).to(device)
        return source, ForwardModelTrainer(forward_model, source, heading_cond=heading_cond, **shared)

    def _build_ppo(self, pixels: bool) -> CuriosityPPO | CuriosityRecurrentPPO:
        cfg = self.cfg
        algorithm = CuriosityRecurrentPPO if cfg.policy == "lstm" else CuriosityPPO
        policy, kwargs = ppo_arguments(cfg, self._feature_mean())
        model = algorithm(
            policy,
            self.recorder,
            curiosity=self.curiosity,
            extrinsic_coef=cfg.extrinsic_coef,
            device=self.device if pixels else torch.device("cpu"),  # SB3: MLP policies run best on the CPU
            **kwargs,
        )
        model.set_logger(Logger(folder=None, output_formats=[SummaryWriterFormat(self.writer)]))
        return model

    def _feature_mean(self) -> list[float] | None:
        """The mean patch feature of the training scenes' encoder features (what the policy centres its feature
        inputs by; fixed at phase 1's value), or ``None`` for pixel and oracle observations."""
        if not nav_config(self.cfg).needs_encoder:
            return None
        return self.env.scene_features.grids.float().mean(dim=(0, 1, 2, 3)).tolist()

    # ------------------------------------------------------------------------------------------ phase 2
    def _enter_phase2(self) -> None:
        """Unfreeze the top blocks and wire the encoder optimiser and the target network."""
        cfg = self.cfg
        if self.curiosity is None or not isinstance(self.source, SemanticFeatureSource):
            raise ValueError("phase 2 needs semantic curiosity (--curiosity.space semantic)")
        self.encoder.unfreeze_top_layers(self.n_top)
        self.curiosity.learner.enable_encoder_training(
            self.encoder.trainable_parameters(), cfg.encoder_lr, cfg.encoder_weight_decay
        )
        self.target = TargetEncoder(
            self.encoder.backbone, self.n_top, cfg.curiosity.target_mode, cfg.curiosity.target_momentum
        )
        if self.target.separate:
            self.target_cache = SceneFeatures(
                self.cache.grids.clone(),
                self.cache.patch_size,
                boundary_tokens=self.cache.boundary_tokens,  # shared, never written
                cache_block=self.cache.cache_block,
            )
        else:
            self.target_cache = self.cache
        self.source.start_fine_tuning(self.encoder, self.target_cache, batch_size=cfg.encode_batch_size)

    def _switch_to_phase2(self) -> None:
        logger.info(
            "phase 1 done after %d episodes (%d steps): fine-tuning the top %d blocks of %s",
            self.counters.episodes,
            self.counters.steps,
            self.n_top,
            self.cfg.encoder,
        )
        self.checkpoints["phase1_end"] = self.save_checkpoint("phase1_end")
        self.monitor.set_reference(self._encoder_stats())
        self._enter_phase2()
        self.curiosity.reset()
        self.counters.phase = 2
        self.counters.phase2_start_episode = self.counters.episodes
        self.writer.add_scalar("charts/phase", 2, self.counters.steps)

    def _refresh_features(self) -> dict[str, float]:
        """After phase 2's encoder step: refresh the cached grids (and the target's), restart the next rollout from
        observations with the new features, and check the features for collapse."""
        t0 = time.perf_counter()
        with self.encoder.autocast():
            self.env.refresh_features(self.encoder.backbone, self.cfg.encode_batch_size)
            if self.target.update():
                self.target_cache.refresh(self.target.network, self.cfg.encode_batch_size)
        refresh_s = time.perf_counter() - t0
        self.model.refresh_observations()  # the next rollout starts from observations with current features
        stats = self._encoder_stats()
        self.monitor.check(stats, step=self.model.num_timesteps)
        return {"refresh_seconds": refresh_s, **{f"encoder_{k}": v for k, v in stats.items()}}

    def _encoder_stats(self) -> dict[str, float]:
        if self.cache is None:
            return {}
        return self.monitor.measure(sample_features(self.cache.grids, 4096, seed=0))

    # ------------------------------------------------------------------------------------------ training
    @property
    def progress(self) -> int:
        """The run's progress in the budget's unit: finished episodes or environment steps."""
        return self.recorder.episodes if self.budget.unit == "episodes" else int(self.model.num_timesteps)

    def request_stop(self) -> None:
        """Stop at the next rollout boundary (what Ctrl-C and SIGTERM do); a resume from there continues exactly."""
        self.stop_requested = True

    def train(self, max_rollouts: int | None = None) -> TrainResult:
        """Run (or continue) both phases, one rollout per iteration, and save the ``final`` checkpoint.

        Ctrl-C or SIGTERM stops at the next rollout boundary (after the rollout in progress and its updates) and
        saves the ``interrupted`` checkpoint there, from which :meth:`resume` continues bit for bit; a second
        Ctrl-C aborts at once without saving (a resume then starts from the last checkpoint). ``max_rollouts``
        (benchmarks) stops after that many rollouts and saves nothing.
        """
        cfg, c, model, budget = self.cfg, self.counters, self.model, self.budget
        unit = "ep" if budget.unit == "episodes" else "step"
        bar = Progress(budget.total, desc=budget.unit, unit=unit, initial=self.progress)
        # SB3's learn, unrolled: set up once (a new run resets the env), then collect_rollouts and train per rollout
        _, callback = model._setup_learn(0, reset_num_timesteps=model.num_timesteps == 0)  # the budget ends the loop
        callback.on_training_start(locals(), globals())
        iteration, started = 0, time.perf_counter()
        try:
            with stop_on_signals(self.request_stop, "at the end of this rollout"):
                while not self.stop_requested and (max_rollouts is None or iteration < max_rollouts):
                    if c.phase == 1 and budget.phase2 > 0 and self.progress >= budget.phase1:
                        self._switch_to_phase2()
                        continue  # a signal during the switch stops here
                    if self.progress >= budget.total:
                        break
                    if not model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps):
                        break  # a callback stopped the rollout
                    iteration += 1
                    model._update_current_progress_remaining(self.progress, budget.total)  # schedules span the run
                    model.dump_logs(iteration)  # SB3's rollout/* and time/*, and the previous update's train/*
                    model.train()  # PPO's update
                    stats = dict(model.last_rollout_stats)
                    if self.curiosity is not None:  # the learner (in phase 2 with the top blocks) and the critic
                        stats |= self.curiosity.update(self.recorder.batch())
                    if c.phase == 2:
                        stats |= self._refresh_features()
                    now = time.perf_counter()
                    fps, started = (model.num_timesteps - c.steps) / max(now - started, 1e-9), now
                    c.rollouts, c.steps, c.episodes = c.rollouts + 1, int(model.num_timesteps), self.recorder.episodes
                    c.ppo_updates = model.n_updates
                    scalars = rollout_scalars(c.phase, fps, c.episodes, self.recorder.stats.pop(), stats)
                    for tag, value in scalars.items():
                        self.writer.add_scalar(tag, value, c.steps)
                    if cfg.checkpoint_every and c.rollouts % cfg.checkpoint_every == 0:
                        self.save_checkpoint(f"rollout_{c.rollouts:06d}", periodic=True)
                    if cfg.trajectory_every and c.rollouts % cfg.trajectory_every == 0:
                        log_trajectories(self.writer, self.env, c.steps)
                    bar.update(self.progress - bar.n, phase=c.phase, fps=fps)
                callback.on_training_end()
                bar.close()
                finished = self.progress >= budget.total and (c.phase == 2 or budget.phase2 == 0)
                if max_rollouts is None:
                    name = "final" if finished else "interrupted"
                    self.checkpoints[name] = self.save_checkpoint(name)  # a second Ctrl-C here leaves the last one
        except KeyboardInterrupt:
            latest = checkpoint_dir(self.run_dir) if list_checkpoints(self.run_dir) else None
            logger.warning("aborted in rollout %d without saving; --resume continues from %s", c.rollouts + 1, latest)
            return TrainResult(self.run_dir, c, True, dict(self.checkpoints))
        finally:
            bar.close()
        self.writer.flush()
        return TrainResult(self.run_dir, c, not finished, dict(self.checkpoints))

    # ------------------------------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, name: str, periodic: bool = False) -> Path:
        """Write ``checkpoints/<name>/`` (policy, encoder, state) crash-safely and point ``latest`` at it."""

        def write(folder: Path) -> None:
            policy_tmp = folder / f".{POLICY_FILE}.tmp.zip"
            self.model.save(policy_tmp)  # SB3 writes the zip; rename it into place
            os.replace(policy_tmp, folder / POLICY_FILE)
            self.encoder.save(folder / ENCODER_FILE)
            atomic_save(self._state_dict(), folder / STATE_FILE)

        final = write_checkpoint(self.run_dir, name, write)
        if periodic:
            self._periodic = [p for p in self._periodic if p != final] + [final]
            while len(self._periodic) > max(self.cfg.keep_checkpoints, 1):
                shutil.rmtree(self._periodic.pop(0), ignore_errors=True)
        logger.info("checkpoint %s (episode %d, phase %d)", final, self.counters.episodes, self.counters.phase)
        return final

    def _state_dict(self) -> dict[str, Any]:
        return {
            "config": config_to_dict(self.cfg),
            "counters": asdict(self.counters),
            "algorithm": self.model.training_state(),
            "curiosity": None if self.curiosity is None else self.curiosity.state_dict(),
            "target": None if self.target is None else self.target.state_dict(),
            "monitor": self.monitor.state_dict(),
            "env": arrays_to_tensors(self.env.state_dict()),
            "rng": get_rng_state(),
            "periodic": [p.name for p in self._periodic],
        }

    def _load_state(self, ckpt: Path, state: dict[str, Any]) -> None:
        self.counters = Counters(**state["counters"])
        self.monitor.load_state_dict(state["monitor"])
        if self.counters.phase == 2:
            self._enter_phase2()
        if self.curiosity is not None and state["curiosity"] is not None:
            self.curiosity.load_state_dict(state["curiosity"])
        if self.target is not None and state["target"] is not None:
            self.target.load_state_dict(state["target"])
            if self.target.separate:
                with self.encoder.autocast():
                    self.target_cache.refresh(self.target.network, self.cfg.encode_batch_size)
        self.model.set_parameters(
            str(check_policy_file(ckpt / POLICY_FILE)), exact_match=True, device=self.model.device
        )
        if state.get("env") is not None:  # the episodes in progress continue where they were
            self.env.load_state_dict(tensors_to_arrays(state["env"]))
        else:
            logger.warning("%s predates exact resume (no environment state): new episodes start here", ckpt)
            self.env.seed(self.cfg.seed + 7919 * (self.counters.rollouts + 1))
            self.model.refresh_observations()
        self.model.load_training_state(state["algorithm"])  # after the env: its observations start the next rollout
        root = self.run_dir / CHECKPOINT_DIR
        self._periodic = [root / n for n in state.get("periodic", []) if (root / n).exists()]
        set_rng_state(state["rng"])
        logger.info(
            "resumed %s: phase %d, episode %d, step %d, rollout %d",
            ckpt,
            self.counters.phase,
            self.counters.episodes,
            self.counters.steps,
            self.counters.rollouts,
        )

    @classmethod
    def resume(cls, run_dir: str | os.PathLike, overrides: dict[str, Any] | None = None) -> TwoPhaseTrainer:
        """Continue the run in ``run_dir`` from its latest intact checkpoint, with its saved config.

        ``overrides`` (field names, dotted for nested ones: ``{"phase2_episodes": 3000, "ppo.n_steps": 64}``) equal
        to the saved values are no-ops; :data:`RESUME_OVERRIDABLE` fields are applied (more episodes, another
        device, ...); a change of any other field raises ``ValueError`` naming each one, before any work.
        """
        run_dir = check_run_folder(run_dir)
        saved = load_config(TwoPhaseConfig, run_dir)
        changed = {k: v for k, v in (overrides or {}).items() if get_nested(saved, k) != v}
        refused = sorted(k for k in changed if k not in RESUME_OVERRIDABLE)
        if refused:
            raise ValueError(
                "cannot change "
                + ", ".join(f"{field_flag(k)} ({get_nested(saved, k)!r} -> {changed[k]!r})" for k in refused)
                + f" when resuming {run_dir}: these settings shaped the training so far; start a new run for them. "
                "A resume may change only " + ", ".join(field_flag(k) for k in RESUME_OVERRIDABLE if k != "resume")
            )
        cfg = replace_nested(saved, changed)
        checkpoint, _ = load_newest_checkpoint(run_dir)
        trainer = cls(cfg, run_dir, resume_from=checkpoint)  # checks the config first
        if changed:
            applied = ", ".join(f"{field_flag(k)} {get_nested(saved, k)!r} -> {v!r}" for k, v in changed.items())
            logger.info("resuming with %s", applied)
        save_config(cfg, run_dir)
        return trainer

    def close(self) -> None:
        """Close the TensorBoard writer and the environments; restore torch's thread count."""
        self.writer.close()
        self.env.close()
        torch.set_num_threads(self._previous_threads)


__all__ = ["RESUME_OVERRIDABLE", "Counters", "TrainResult", "TwoPhaseTrainer", "ppo_arguments", "run_name"]
