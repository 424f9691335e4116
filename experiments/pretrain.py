"""DINOv2 self-supervised pretraining of a ViT from scratch on a folder of images.

Single process (CPU or one GPU)::

    python -m experiments.pretrain --preset tiny --data DIR --output runs/tiny
    python -m experiments.pretrain --preset laptop --data DIR --output runs/laptop   # shape, not colour (CPU)
    python -m experiments.pretrain --preset laptop --data objects:100 --output runs/laptop_objects

Several GPUs (or CPU processes with gloo)::

    torchrun --nproc_per_node=4 -m experiments.pretrain --preset vits14 --data DIR --output runs/vits14

``--data objects:N`` pretrains on procedural objects rendered as view pairs (see
:mod:`experiments.pretraining_data`). Every config field is a flag (``--help``); ``--resume`` continues
``<output>/checkpoint.pth`` exactly;
Ctrl-C or SIGTERM saves a checkpoint first. The run folder gets ``config.json``, ``tensorboard/``,
``checkpoint.pth`` (with the ``--train.keep-checkpoints`` - 1 it replaced: ``checkpoint.1.pth``, ...; a damaged
latest one is skipped on ``--resume`` with a warning) and ``teacher_backbone.pth`` (+ ``.json``), which loads with
``encoders.create_model(arch, pretrained=PATH)``. Bad input and a full disk end in one ``error:`` line, exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from encoders.train import distributed as dist_utils
from encoders.train.config import PRESETS, PretrainConfig
from encoders.train.ssl_meta_arch import SSLMetaArch
from encoders.train.trainer import fit_from_config, format_run_report
from encoders.utils.cli import CLI_ERRORS, report_error
from encoders.utils.config import parse_config
from encoders.utils.logging import setup_logging
from experiments.pretraining_data import procedural_images


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


def parse_args(argv: Sequence[str] | None = None) -> PretrainConfig:
    return parse_config(PretrainConfig, argv, presets=PRESETS, description=__doc__.split("\n\n")[0])


def run(cfg: PretrainConfig, ctx: dist_utils.DistributedContext) -> int:
    """Train the DINOv2 meta-architecture on ``cfg.data``; print a short report on rank 0."""
    trainer, result = fit_from_config(
        cfg,
        lambda c, device: SSLMetaArch(c, device=device),
        ctx,
        mask_ratio_tuple=cfg.ibot.mask_ratio_min_max,
        mask_probability=cfg.ibot.mask_sample_probability,
        desc="pretrain",
        images=procedural_images(cfg),
    )
    if ctx.is_main:
        print(format_run_report(trainer, result, "pretrain:", cfg.student.arch, "teacher backbone"))
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
