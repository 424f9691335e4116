"""Two-phase curiosity training: PPO on detached semantic features + a forward-model intrinsic reward.

    python -m experiments.two_phase --preset demo                 # about 5 min on a 2-core CPU, no downloads
    python -m experiments.two_phase --preset smoke                # seconds
    python -m experiments.two_phase --preset paper --encoder-weights official --device cuda
    python -m experiments.two_phase --resume runs/ImageNav-v0__demo__1__1712345678
    tensorboard --logdir runs/

Phase 1 trains PPO with the encoder frozen (features looked up from a cache), phase 2 fine-tunes the top
``--unfreeze-layers`` blocks through the forward-model loss only. Without ``--encoder-weights`` the demo preset
first pretrains its small encoder from scratch on procedural training scenes (``experiments.pretrain``).
At the end the phase-1 and final checkpoints and the reference policies (random walk, blind persistent walk,
recognition + persistent walk) are evaluated on held-out scenes.
Every field of :class:`techniques.rl_navigation.config.TwoPhaseConfig` is a flag (``--help``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import encoders
from encoders.utils.cli import CLI_ERRORS, report_error
from encoders.utils.config import changed_fields, config_to_dict, load_config, parse_config
from encoders.utils.logging import setup_logging
from techniques.rl_navigation.config import PRESETS, TwoPhaseConfig, check_config, resolve_device, run_budget

logger = logging.getLogger("experiments.two_phase")

#: Columns of the printed held-out table (eval/summary_<split>.txt has every metric).
PRINTED_METRICS = ("success", "spl", "soft_spl", "coverage", "success_within_0", "success_within_2", "distance_to_goal")


def parse_args(argv: Sequence[str] | None = None) -> TwoPhaseConfig:
    return parse_config(TwoPhaseConfig, argv, presets=PRESETS, description=__doc__.split("\n\n")[0])


def resume_overrides(run_dir: Path, argv: Sequence[str] | None) -> dict[str, Any]:
    """The fields that the flags given change in the saved config of ``run_dir`` (key -> new value; ``--resume``
    itself aside): the command line parsed over that config (a ``--preset`` is accepted and ignored: a resume keeps
    the run's settings)."""
    from techniques.rl_navigation.checkpointing import check_run_folder

    saved = load_config(TwoPhaseConfig, check_run_folder(run_dir))
    given = parse_config(TwoPhaseConfig, argv, presets={name: {} for name in PRESETS}, default=saved)
    return {k: v for k, v in changed_fields(saved, given).items() if k != "resume"}


def check_pretraining(cfg: TwoPhaseConfig) -> None:
    """Reject a ``--pretrain-preset`` that ``experiments.pretrain`` does not have, before any work."""
    from encoders.train.config import PRESETS as PRETRAIN_PRESETS

    if cfg.pretrain_preset not in PRETRAIN_PRESETS:
        raise ValueError(
            f"--pretrain-preset must be one of {', '.join(sorted(PRETRAIN_PRESETS))}, got {cfg.pretrain_preset!r}"
        )


def pretrain_demo_encoder(cfg: TwoPhaseConfig, out_dir: Path) -> Path:
    """Pretrain ``cfg.encoder`` from scratch with the DINOv2 stack on procedural training scenes.

    Renders ``cfg.pretrain_images`` train-split scenes (test scenes are never seen) to ``out_dir/images``, runs
    ``experiments.pretrain`` (preset ``cfg.pretrain_preset``) into ``out_dir/run`` and returns the exported
    teacher backbone (official key format).
    """
    import cv2

    from encoders.train.checkpointing import training_checkpoints
    from encoders.train.trainer import CHECKPOINT_NAME
    from envs.scenes import SceneGenerator
    from experiments import pretrain
    from techniques.rl_navigation.config import scene_generator_kwargs

    spec = encoders.get_model_spec(cfg.encoder)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    generator = SceneGenerator(**scene_generator_kwargs(cfg.image_size, spec.kwargs["patch_size"], cfg.scene_seed))
    existing = len(list(images_dir.glob("*.png")))
    for scene_id in range(existing, cfg.pretrain_images):
        image = generator.generate(scene_id, "train").image
        cv2.imwrite(str(images_dir / f"scene_{scene_id:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    run = out_dir / "run"
    device = resolve_device(cfg.device).type
    argv = [
        "--preset",
        cfg.pretrain_preset,
        "--student.arch",
        spec.name,
        "--data",
        str(images_dir),
        "--output",
        str(run),
        "--train.device",
        device,
        "--train.seed",
        str(cfg.seed),
    ]
    if cfg.pretrain_iterations > 0:
        argv += ["--train.max-iterations", str(cfg.pretrain_iterations)]
    if training_checkpoints(run / CHECKPOINT_NAME):
        argv.append("--resume")
    logger.info("pretraining %s on %d procedural scenes: experiments.pretrain %s", spec.name, cfg.pretrain_images, argv)
    t0 = time.perf_counter()
    rc = pretrain.main(argv)
    setup_logging()  # the pretraining CLI configured logging for itself
    weights = run / "teacher_backbone.pth"
    if rc == 130:
        raise KeyboardInterrupt("pretraining interrupted")
    if rc != 0 or not weights.exists():
        raise RuntimeError(f"pretraining failed (exit code {rc}); see {run}; or pass --encoder-weights PATH")
    logger.info("pretrained encoder in %.0f s: %s", time.perf_counter() - t0, weights)
    return weights


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    setup_logging()
    stage = {"now": "setup", "run_dir": None}
    try:
        return run(cfg, argv, stage)
    except CLI_ERRORS as e:
        return report_error(e)
    except KeyboardInterrupt:
        run_dir = stage["run_dir"]
        hints = {
            "setup": "before training started: nothing to save",
            "training": f"during training: --resume {run_dir} continues from its last checkpoint",
            "pretraining": f"during pretraining (its checkpoint is kept): add --run-dir {run_dir} to the same command "
            "to continue it",
            "evaluation": f"during the evaluation; training is complete: evaluate with python -m experiments.evaluate "
            f"{run_dir}",
        }
        print(f"interrupted {hints.get(stage['now'], '')}", file=sys.stderr)
        return 130


def run(cfg: TwoPhaseConfig, argv: Sequence[str] | None, stage: dict) -> int:
    """Resume or start the run, pretrain its encoder (demo), train, evaluate, print the report; ``stage`` tracks
    where it is (for the message of an interruption outside training)."""
    from techniques.rl_navigation.checkpointing import list_checkpoints
    from techniques.rl_navigation.evaluation import evaluate_run, format_table, write_report
    from techniques.rl_navigation.trainer import TwoPhaseTrainer, run_name

    t0 = time.perf_counter()
    pretrain_s = 0.0
    if cfg.resume is not None:
        # the trainer applies the changes a resume may make and refuses the others
        trainer = TwoPhaseTrainer.resume(cfg.resume, resume_overrides(cfg.resume, argv))
        cfg = trainer.cfg
    else:
        run_dir = cfg.run_dir or (cfg.logdir / run_name(cfg))
        if list_checkpoints(run_dir):
            raise ValueError(f"{run_dir} already holds a run; continue it with --resume {run_dir}")
        cfg.run_dir = stage["run_dir"] = run_dir
        if cfg.pretrain and not cfg.encoder_weights:
            # the trainer checks the config it gets; minutes of pretraining come first, so check before them too
            check_pretraining(cfg)
            check_config(cfg)
            stage["now"] = "pretraining"
            t_pre = time.perf_counter()
            cfg.encoder_weights = str(pretrain_demo_encoder(cfg, run_dir / "pretrain"))
            pretrain_s = time.perf_counter() - t_pre
        elif not cfg.encoder_weights:
            logger.warning("random-init %s: pass --encoder-weights (or --pretrain) for real features", cfg.encoder)
        stage["now"] = "setup"
        trainer = TwoPhaseTrainer(cfg, run_dir)
    run_dir = stage["run_dir"] = trainer.run_dir
    stage["now"] = "training"  # the trainer saves a checkpoint on Ctrl-C / SIGTERM itself
    t_train = time.perf_counter()
    result = trainer.train()
    train_s = time.perf_counter() - t_train
    trainer.close()
    c, budget = result.counters, run_budget(cfg)
    lines = [
        f"two_phase: {run_dir}",
        f"  episodes {c.episodes}, steps {c.steps} (budget in {budget.unit}: phase 1 {budget.phase1}, phase 2 "
        f"{budget.phase2}), rollouts {c.rollouts}, phase {c.phase}"
        + (f" (interrupted: continue with --resume {run_dir})" * result.interrupted),
        f"  checkpoints: {', '.join(f'{k}={v}' for k, v in result.checkpoints.items())}",
    ]
    if not result.interrupted and cfg.eval_episodes > 0:
        stage["now"] = "evaluation"
        names = [n for n in ("phase1_end", "final") if n in list_checkpoints(run_dir)]
        t_eval = time.perf_counter()
        out_dir, meta = run_dir / "eval", {"config": config_to_dict(cfg)}
        # held out, then the same policies on their training scenes (far above held-out: memorised scenes)
        for split in [cfg.eval_split] + ["train"] * (cfg.eval_train and cfg.eval_split != "train"):
            results = evaluate_run(run_dir, names, split=split, episodes=cfg.eval_episodes, device=cfg.device)
            summaries, paired, _ = write_report(results, out_dir, split, meta)
            if split == cfg.eval_split:
                lines += [
                    f"  held-out evaluation ({split} split, {cfg.n_eval_scenes} scenes, {cfg.eval_episodes} "
                    f"episodes per policy; mean ± 95% CI) -> {out_dir}",
                    format_table(summaries, metrics=PRINTED_METRICS, paired=paired),
                ]
            else:
                lines += [
                    f"  the same on the training scenes ({cfg.n_train_scenes}; far above held-out = memorised scenes)",
                    format_table(summaries, metrics=("success", "spl"), paired=paired),
                ]
        eval_s = time.perf_counter() - t_eval
    else:
        eval_s = 0.0
    total = time.perf_counter() - t0
    lines.append(
        f"  wall time {total:.0f} s (pretraining {pretrain_s:.0f} s, RL {train_s:.0f} s, evaluation {eval_s:.0f} s)"
    )
    lines.append(f"  TensorBoard: tensorboard --logdir {run_dir.parent}")
    print("\n".join(lines))
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
