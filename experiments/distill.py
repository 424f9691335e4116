"""Distil a frozen teacher into a smaller student (DINO + iBOT + KoLeo against the teacher's outputs).

Single process (CPU or one GPU)::

    python -m experiments.distill --preset tiny --teacher-weights runs/tiny/checkpoint.pth --data DIR \\
        --output runs/distill_tiny
    python -m experiments.distill --preset vits14 --teacher-weights official --teacher-arch dinov2_vitg14 \\
        --train-teacher-heads-iters 5000 --data DIR --output runs/distill_s   # official weights have no heads

Several GPUs (or CPU processes with gloo)::

    torchrun --nproc_per_node=8 -m experiments.distill --preset vits14 --teacher-weights T --data DIR --output O

The teacher is a pretraining ``checkpoint.pth`` (backbone + DINO / iBOT heads + loss centers). A backbone-only
file (official releases, ``*_backbone.pth``) is refused with an explanation unless ``--train-teacher-heads-iters
N`` is given: new heads are then first trained from scratch on the frozen teacher backbone (``<output>/
teacher_heads``, resumable), then the distillation starts. Data pipeline, schedules, checkpoints, ``--resume``,
TensorBoard and ``torchrun`` are those of ``experiments.pretrain`` (every flag of it works here). The run
folder gets ``config.json``, ``tensorboard/``, ``checkpoint.pth`` and ``student_backbone.pth`` (+ ``.json``),
the student's EMA, which loads with ``encoders.create_model(student_arch, pretrained=PATH)``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from encoders.distill.config import PRESETS, DistillConfig
from encoders.distill.meta_arch import DistillMetaArch
from encoders.distill.teacher import TeacherHeadsMissing, load_teacher, train_teacher_heads
from encoders.train import distributed as dist_utils
from encoders.train.config import resolve_run
from encoders.train.trainer import check_run_folder, fit_from_config, format_run_report
from encoders.utils.cli import CLI_ERRORS, report_error
from encoders.utils.config import config_to_dict, parse_config
from encoders.utils.logging import setup_logging
from experiments.pretraining_data import procedural_images

logger = logging.getLogger("experiments.distill")

STUDENT_BACKBONE_NAME = "student_backbone.pth"


def parse_args(argv: Sequence[str] | None = None) -> DistillConfig:
    return parse_config(DistillConfig, argv, presets=PRESETS, description=__doc__.split("\n\n")[0])


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    ctx = dist_utils.init_distributed(cfg.train.device)
    setup_logging(rank=ctx.rank)
    try:
        return run(cfg, ctx)
    except CLI_ERRORS as e:
        return report_error(e, show=ctx.is_main)
    finally:
        dist_utils.cleanup()


def run(cfg: DistillConfig, ctx: dist_utils.DistributedContext) -> int:
    """Load (or complete) the teacher, then train student + EMA with the pretraining launch sequence."""
    if cfg.train_teacher_heads_iters < 0:
        raise ValueError(f"--train-teacher-heads-iters must be >= 0, got {cfg.train_teacher_heads_iters}")
    # validate the run folder and loop settings before any (long) teacher-head training
    check_run_folder(cfg, config_to_dict(cfg))
    resolve_run(cfg, ctx.world_size)
    try:
        teacher = load_teacher(cfg.teacher_weights, device=ctx.device)
    except TeacherHeadsMissing:
        if cfg.train_teacher_heads_iters == 0:
            raise
        teacher = load_teacher(train_teacher_heads(cfg, ctx), device=ctx.device)
    trainer, result = fit_from_config(
        cfg,
        lambda c, device: DistillMetaArch(c, teacher, device=device),
        ctx,
        mask_ratio_tuple=cfg.ibot.mask_ratio_min_max,
        mask_probability=cfg.ibot.mask_sample_probability,
        desc="distill",
        backbone_name=STUDENT_BACKBONE_NAME,
        images=procedural_images(cfg),
    )
    if ctx.is_main:
        title = f"distill: {teacher.arch} -> {cfg.student.arch},"
        print(format_run_report(trainer, result, title, cfg.student.arch, "student EMA backbone"))
    return 130 if result.interrupted else 0


__all__ = ["STUDENT_BACKBONE_NAME", "DistillConfig", "main", "parse_args", "run"]

if __name__ == "__main__":
    sys.exit(main())
