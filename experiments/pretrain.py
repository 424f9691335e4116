"""DINOv2 self-supervised pretraining of a ViT from scratch on a folder of images.

Single process (CPU or one GPU)::

    python -m experiments.pretrain --preset tiny --data DIR --output runs/tiny

Several GPUs (or CPU processes with gloo)::

    torchrun --nproc_per_node=4 -m experiments.pretrain --preset vits14 --data DIR --output runs/vits14

Every config field is a flag (``--help``); ``--resume`` continues ``<output>/checkpoint.pth`` exactly;
Ctrl-C or SIGTERM saves a checkpoint first. The run folder gets ``config.json``, ``tensorboard/``,
``checkpoint.pth`` and ``teacher_backbone.pth`` (+ ``.json``), which loads with
``encoders.create_model(arch, pretrained=PATH)``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from encoders.train import distributed as dist_utils
from encoders.train.config import PRESETS, PretrainConfig, resolve_run
from encoders.train.data import MultiCropDataPipeline
from encoders.train.ssl_meta_arch import SSLMetaArch
from encoders.train.trainer import Trainer
from encoders.utils.config import config_to_dict, save_config
from encoders.utils.logging import setup_logging
from encoders.utils.seed import seed_everything

logger = logging.getLogger("experiments.pretrain")

# fields that may differ between a run and its resumption without changing the result
_RESUME_FREE_FIELDS = {
    "resume",
    "train.max_iterations",
    "train.num_workers",
    "train.progress",
    "train.log_every",
    "train.checkpoint_every",
}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _warn_if_config_changed(cfg_dict: dict, run_dir: Path) -> None:
    saved_path = run_dir / "config.json"
    if not saved_path.exists():
        return
    saved, now = _flatten(json.loads(saved_path.read_text())), _flatten(cfg_dict)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k) and k not in _RESUME_FREE_FIELDS)
    if changed:
        logger.warning(
            "resuming with a config that differs from %s in: %s (the run will not match an uninterrupted one)",
            saved_path,
            ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed),
        )


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    ctx = dist_utils.init_distributed(cfg.train.device)
    setup_logging(rank=ctx.rank)
    try:
        return run(cfg, ctx)
    finally:
        dist_utils.cleanup()


def parse_args(argv: Sequence[str] | None = None) -> PretrainConfig:
    from encoders.utils.config import parse_config

    return parse_config(PretrainConfig, argv, presets=PRESETS, description=__doc__.split("\n\n")[0])


def run(cfg: PretrainConfig, ctx: dist_utils.DistributedContext) -> int:
    """Build the meta-architecture, the data pipeline and the trainer from ``cfg``; train; report."""
    run_dir = Path(cfg.output)
    cfg_dict = config_to_dict(cfg)
    if cfg.resume:
        _warn_if_config_changed(cfg_dict, run_dir)
    elif (run_dir / "checkpoint.pth").exists():
        raise ValueError(
            f"{run_dir} already holds a run (checkpoint.pth); pass --resume to continue it, or choose another --output"
        )
    seed_everything(cfg.train.seed)  # identical initial weights on every rank
    model = SSLMetaArch(cfg, device=ctx.device)
    seed_everything(cfg.train.seed + ctx.rank)  # per-rank drop-path streams
    resolved = resolve_run(cfg, ctx.world_size)
    high_res_start = resolved.high_res_start if cfg.crops.high_res_iterations > 0 else None
    data = MultiCropDataPipeline.from_config(
        cfg,
        patch_size=model.patch_size,
        mask_ratio_tuple=cfg.ibot.mask_ratio_min_max,
        mask_probability=cfg.ibot.mask_sample_probability,
        rank=ctx.rank,
        world_size=ctx.world_size,
        high_res_start=high_res_start,
        pin_memory=ctx.device.type == "cuda",
    )
    if ctx.is_main:
        save_config(cfg, run_dir)
    trainer = Trainer(cfg, model, data, ctx, config_dict=cfg_dict)
    result = trainer.fit()
    if ctx.is_main:
        last = result.history[-1] if result.history else {}
        lines = [
            f"pretrain: iterations {result.start_iteration} -> {result.end_iteration} of {resolved.stop_iteration}"
            + (" (interrupted)" if result.interrupted else ""),
        ]
        if last:
            lines.append(
                f"  last logged: total_loss {last.get('total_loss', float('nan')):.4f}, "
                f"student_cls_std {last.get('student_cls_std', float('nan')):.3f}, "
                f"{last.get('images_per_s', 0.0):.1f} images/s"
            )
        lines.append(f"  checkpoint: {trainer.checkpoint_path} (continue with --resume)")
        if result.backbone is not None:
            lines.append(
                f"  teacher backbone: {result.backbone} -> encoders.create_model({cfg.student.arch!r}, "
                f"pretrained={str(result.backbone)!r})"
            )
        lines.append(f"  TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}")
        print("\n".join(lines))
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
