"""The frozen teacher of distillation: a backbone with its DINO (and optional iBOT) heads.

A teacher comes from a pretraining ``checkpoint.pth`` of this project (its EMA teacher network: backbone,
heads, head shapes from the saved config, and the loss centers). Official DINOv2 releases and exported
``*_backbone.pth`` files hold a backbone only; :func:`load_teacher` then raises :class:`TeacherHeadsMissing`
naming the fix, and :func:`train_teacher_heads` provides it: DINOv2 training of freshly initialised heads on
top of the frozen teacher backbone (the same loop, data pipeline and checkpoints as pretraining), after which
the resulting checkpoint is a complete teacher.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from encoders.checkpoint import extract_backbone_state_dict, load_backbone_weights, sidecar_path
from encoders.distill.config import DistillConfig
from encoders.heads import DINOHead, ProjectionHead
from encoders.registry import create_model, load_official_state_dict, models_fitting
from encoders.train import distributed as dist_utils
from encoders.train.checkpointing import (
    CHECKPOINT_FORMAT,
    load_newest_training_checkpoint,
    training_checkpoints,
)
from encoders.train.config import DINOConfig, IBOTConfig, PretrainConfig
from encoders.train.ssl_meta_arch import Head, SSLMetaArch, SSLNetwork, _local_tensors
from encoders.utils.config import config_from_dict, replace_nested
from encoders.utils.io import CheckpointError, load_file

logger = logging.getLogger(__name__)

HEADS_DIR = "teacher_heads"


class TeacherHeadsMissing(ValueError):
    """The teacher checkpoint holds a backbone without DINO / iBOT heads."""


@dataclass
class FrozenTeacher:
    """A teacher network (``backbone``, ``dino_head``, optional ``ibot_head``; no gradients, eval mode).

    ``dino`` / ``ibot`` carry the head shapes (``head_n_prototypes``, ``separate_head``, ...); ``centers`` the
    saved loss centers (``dino_loss.center``, ``ibot_patch_loss.center``) when the checkpoint has them.
    """

    network: SSLNetwork
    arch: str
    dino: DINOConfig
    ibot: IBOTConfig
    source: str
    centers: dict[str, torch.Tensor] = field(default_factory=dict)
    objective: str = "dinov2"
    """the teacher's pretraining objective: ``dinov2`` (prototype heads) or ``simdino`` (projection heads)"""

    @property
    def patch_size(self) -> int:
        return int(self.network.backbone.patch_size)


def _missing_heads_message(weights: str) -> str:
    hint = ""
    if weights != "official":
        sibling = Path(weights).with_name("checkpoint.pth")
        if sibling.exists() and sibling != Path(weights):
            hint = f" The run folder has one: --teacher-weights {sibling}."
    return (
        f"the teacher {weights!r} holds a backbone only, without the DINO / iBOT heads that distillation matches "
        f"(official DINOv2 releases and exported *_backbone.pth files ship no heads). Pass a pretraining "
        f"checkpoint.pth, which has them,{hint} or add --train-teacher-heads-iters N (e.g. 2000) to first train "
        "new heads from scratch on top of the frozen teacher backbone (saved in <output>/teacher_heads), then distil."
    )


def _heads(embed_dim: int, dino: DINOConfig, ibot: IBOTConfig, objective: str) -> tuple[Head, Head | None]:
    def head(c: DINOConfig | IBOTConfig) -> Head:
        sizes = dict(nlayers=c.head_nlayers, hidden_dim=c.head_hidden_dim, bottleneck_dim=c.head_bottleneck_dim)
        if objective == "simdino":
            return ProjectionHead(embed_dim, **sizes)
        return DINOHead(embed_dim, c.head_n_prototypes, **sizes)

    return head(dino), head(ibot) if ibot.separate_head and ibot.loss_weight > 0 else None


def load_teacher(weights: str | os.PathLike, device: torch.device | str = "cpu") -> FrozenTeacher:
    """The frozen teacher network of a pretraining ``checkpoint.pth`` (its EMA teacher and heads).

    Raises:
        TeacherHeadsMissing: ``weights`` is ``"official"`` or a backbone-only file.
        FileNotFoundError / CheckpointError: missing or unreadable file.
    """
    weights = str(weights)
    if not weights:
        raise ValueError(
            "no teacher: pass --teacher-weights (a pretraining checkpoint.pth, a backbone file or 'official')"
        )
    if weights == "official":
        raise TeacherHeadsMissing(_missing_heads_message(weights))
    state = load_file(weights)
    if not (isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT):
        extract_backbone_state_dict(state)  # a clear CheckpointError if it is not even a backbone
        raise TeacherHeadsMissing(_missing_heads_message(weights))
    config = state.get("config") or {}
    try:
        arch = config["student"]["arch"]
        dino = config_from_dict(DINOConfig, config.get("dino", {}))
        ibot = config_from_dict(IBOTConfig, config.get("ibot", {}))
        objective = str(config.get("objective", "dinov2"))  # runs from before SimDINO have no such field
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{weights}: the checkpoint's config does not describe a DINOv2 run ({e})") from e
    model_sd = state["model"]
    teacher_sd = {k[len("teacher.") :]: v for k, v in model_sd.items() if k.startswith("teacher.")}
    if not any(k.startswith("dino_head.") for k in teacher_sd):
        raise TeacherHeadsMissing(_missing_heads_message(weights))
    ibot = dataclasses.replace(ibot, separate_head=any(k.startswith("ibot_head.") for k in teacher_sd))
    backbone = create_model(arch)
    network = SSLNetwork(backbone, *_heads(backbone.embed_dim, dino, ibot, objective))
    try:
        network.load_state_dict(teacher_sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{weights}: the teacher network does not match its saved config ({e})") from e
    network.to(device).eval().requires_grad_(False)
    centers = {k: v for k, v in model_sd.items() if k in ("dino_loss.center", "ibot_patch_loss.center")}
    heads = (
        f"SimDINO projection heads (d={dino.head_bottleneck_dim})"
        if objective == "simdino"
        else f"DINO K={dino.head_n_prototypes}"
        + (f", iBOT head K={ibot.head_n_prototypes}" if ibot.separate_head else "")
    )
    logger.info(
        "teacher %s from %s (iteration %s): D=%d, %s", arch, weights, state.get("iteration"), backbone.embed_dim, heads
    )
    return FrozenTeacher(network, arch, dino, ibot, weights, centers, objective)


def teacher_backbone_state(weights: str, arch: str = "") -> tuple[str, dict[str, torch.Tensor]]:
    """``(registry name, backbone state dict)`` of a backbone-only teacher: ``'official'`` (needs ``arch``), a file
    with a JSON sidecar, or a file whose shapes fit a registered model (``arch`` disambiguates)."""
    if weights == "official":
        if not arch:
            raise ValueError("--teacher-weights official needs --teacher-arch (e.g. dinov2_vitg14)")
        return arch, load_official_state_dict(arch)
    state = load_file(weights)
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        model_sd = state["model"]
        sd = {k[len("teacher.backbone.") :]: v for k, v in model_sd.items() if k.startswith("teacher.backbone.")}
        return arch or state["config"]["student"]["arch"], sd
    sd = extract_backbone_state_dict(state)
    if not arch and sidecar_path(weights).exists():
        arch = json.loads(sidecar_path(weights).read_text())["name"]
    if not arch:
        fits = models_fitting(sd)
        if not fits:
            raise ValueError(
                f"{weights} fits no registered model; pass --teacher-arch NAME (see encoders.list_models())"
            )
        arch = fits[0]
    return arch, sd


class HeadTrainingMetaArch(SSLMetaArch):
    """DINOv2 training of the heads only: the student backbone is the frozen teacher backbone (no gradients) and
    the EMA runs over the heads only, so the teacher network's backbone stays bit-identical to the given weights."""

    def __init__(self, cfg: PretrainConfig, backbone_sd: dict[str, torch.Tensor], source: str, device="cpu"):
        super().__init__(cfg, device)
        for net in (self.student, self.teacher):
            load_backbone_weights(net.backbone, backbone_sd, source=source)
        self.student.backbone.requires_grad_(False)

    @torch.no_grad()
    def update_teacher(self, m: float) -> None:
        """EMA of the head parameters: ``teacher_head = m * teacher_head + (1 - m) * student_head``."""

        def heads(net: SSLNetwork) -> list[torch.Tensor]:
            return _local_tensors([p for name, p in net.named_parameters() if not name.startswith("backbone.")])

        teacher = heads(self.teacher)
        torch._foreach_mul_(teacher, m)
        torch._foreach_add_(teacher, heads(self.student), alpha=1 - m)


def heads_config(cfg: DistillConfig, arch: str, iterations: int) -> PretrainConfig:
    """The pretraining config that trains heads on the frozen teacher: ``cfg``'s data, crops, optimiser, heads and
    iBOT settings, the teacher architecture, no KoLeo (the backbone is frozen), and the schedules compressed into
    ``iterations`` (10 "epochs": 1 of lr warmup, up to 3 of teacher-temperature warmup, last layer unfrozen)."""
    if iterations < 1:
        raise ValueError(f"--train-teacher-heads-iters must be >= 1, got {iterations}")
    base = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(PretrainConfig)}
    pre = PretrainConfig(**base)
    epochs = min(10, iterations)
    return replace_nested(
        pre,
        {
            "output": str(Path(cfg.output) / HEADS_DIR),
            "resume": False,
            "student.arch": arch,
            "student.drop_path_rate": 0.0,
            "student.pretrained_weights": "",
            "dino.koleo_loss_weight": 0.0,
            "optim.epochs": epochs,
            "optim.warmup_epochs": 1 if epochs > 1 else 0,
            "optim.freeze_last_layer_epochs": 0,
            "teacher.warmup_teacher_temp_epochs": min(3, epochs - 1),
            "train.epoch_length": math.ceil(iterations / epochs),
            "train.max_iterations": iterations,
            "crops.high_res_iterations": 0,
        },
    )


def train_teacher_heads(cfg: DistillConfig, ctx: dist_utils.DistributedContext) -> Path:
    """Train DINO / iBOT heads from scratch on the frozen teacher backbone; returns the complete teacher's
    ``checkpoint.pth`` (in ``<output>/teacher_heads``). An existing finished run is reused, an unfinished one
    resumed."""
    from encoders.train.trainer import CHECKPOINT_NAME, fit_from_config

    iterations = cfg.train_teacher_heads_iters
    arch, backbone_sd = teacher_backbone_state(cfg.teacher_weights, cfg.teacher_arch)
    hcfg = heads_config(cfg, arch, iterations)
    checkpoint = Path(hcfg.output) / CHECKPOINT_NAME
    if training_checkpoints(checkpoint):
        newest, state, _ = load_newest_training_checkpoint(checkpoint)
        done = int(state["iteration"])
        if done >= iterations:
            logger.info("teacher heads: reusing %s (%d iterations)", newest, done)
            return newest
        hcfg = dataclasses.replace(hcfg, resume=True)
    logger.info("teacher heads: training DINO/iBOT heads on the frozen %s for %d iterations", arch, iterations)
    _, result = fit_from_config(
        hcfg,
        lambda c, device: HeadTrainingMetaArch(c, backbone_sd, cfg.teacher_weights, device=device),
        ctx,
        mask_ratio_tuple=hcfg.ibot.mask_ratio_min_max,
        mask_probability=hcfg.ibot.mask_sample_probability,
        desc="teacher heads",
    )
    if result.interrupted:
        raise KeyboardInterrupt("teacher-head training interrupted; rerun the same command to resume it")
    return checkpoint


def describe(teacher: FrozenTeacher) -> dict[str, Any]:
    """A JSON-friendly summary of a teacher (for logs and reports)."""
    return {
        "arch": teacher.arch,
        "source": teacher.source,
        "embed_dim": int(teacher.network.backbone.embed_dim),
        "patch_size": teacher.patch_size,
        "objective": teacher.objective,
        "dino_prototypes": teacher.dino.head_n_prototypes,
        "ibot_separate_head": teacher.ibot.separate_head,
    }


__all__ = [
    "HEADS_DIR",
    "FrozenTeacher",
    "HeadTrainingMetaArch",
    "TeacherHeadsMissing",
    "describe",
    "heads_config",
    "load_teacher",
    "teacher_backbone_state",
    "train_teacher_heads",
]
