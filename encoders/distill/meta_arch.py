"""Distillation meta-architecture: a frozen teacher (backbone + heads), a smaller student trained with the DINOv2
objective against it, and an EMA of the student, which is the exported model.

Everything per step is the pretraining step of :class:`~encoders.train.ssl_meta_arch.SSLMetaArch` (inherited,
not copied): the teacher sees the 2 global crops and gives centred, sharpened DINO targets for the cls tokens
and iBOT targets for the patches masked in the student's view; the student sees the global crops (masked) and
all local crops; DINO + iBOT + KoLeo losses, one backward. What changes:

- the teacher is a fixed network of any size (its heads' prototypes define the student heads' output), never
  updated and kept out of ``state_dict()`` (checkpoints hold student, EMA and loss centers; the teacher is
  rebuilt from ``--teacher-weights`` on resume);
- :meth:`update_teacher` (called by the trainer with the momentum schedule) updates the student's EMA instead;
- :meth:`export_backbone` writes that EMA backbone.

Reference: Oquab et al. 2023, "DINOv2", Sec. 5 (distillation: frozen large teacher, same training loop, a spare
EMA of the student as the final model); Hinton et al. 2015, "Distilling the Knowledge in a Neural Network".
"""

from __future__ import annotations

import logging
from typing import Literal

import torch

from encoders.distill.config import DistillConfig
from encoders.distill.teacher import FrozenTeacher
from encoders.registry import create_model, get_model_spec
from encoders.train import distributed as dist_utils
from encoders.train.ssl_meta_arch import SSLMetaArch, _local_tensors
from encoders.utils.config import replace_nested

logger = logging.getLogger(__name__)


def student_config(cfg: DistillConfig, teacher: FrozenTeacher) -> DistillConfig:
    """``cfg`` with the student's objective and head shapes set to the teacher's (the losses compare the teacher's
    and the student's head outputs: the same prototypes, or embeddings of the same width)."""
    t_dino, t_ibot = teacher.dino, teacher.ibot
    return replace_nested(
        cfg,
        {
            "objective": teacher.objective,
            "dino.head_n_prototypes": t_dino.head_n_prototypes,
            "dino.head_bottleneck_dim": t_dino.head_bottleneck_dim,
            "dino.head_nlayers": t_dino.head_nlayers,
            "dino.head_hidden_dim": t_dino.head_hidden_dim,
            "ibot.separate_head": t_ibot.separate_head,
            "ibot.head_n_prototypes": t_ibot.head_n_prototypes,
            "ibot.head_bottleneck_dim": t_ibot.head_bottleneck_dim,
            "ibot.head_nlayers": t_ibot.head_nlayers,
            "ibot.head_hidden_dim": t_ibot.head_hidden_dim,
        },
    )


class DistillMetaArch(SSLMetaArch):
    """Student + student EMA + frozen teacher; implements the trainer's ``MetaArch`` protocol.

    Args:
        cfg: the distillation config (student architecture, losses, crops, schedules).
        teacher: the frozen teacher (see :func:`encoders.distill.teacher.load_teacher`).
        device: where to build the networks (the teacher is moved there).

    Attributes:
        student: ``SSLNetwork`` (backbone + heads with the teacher's prototypes), trained.
        student_ema: EMA copy of the student backbone (no gradients): the exported model.
        teacher: the frozen teacher ``SSLNetwork`` (not a registered submodule, so not in ``state_dict()``).
    """

    def __init__(self, cfg: DistillConfig, teacher: FrozenTeacher, device: torch.device | str = "cpu"):
        scfg = student_config(cfg, teacher)
        super().__init__(scfg, device)  # builds student, heads, losses; its EMA-teacher copy is replaced below
        if self.do_ibot and teacher.patch_size != self.patch_size:
            raise ValueError(
                f"the iBOT loss matches patch tokens, so teacher ({teacher.arch}, patch {teacher.patch_size}) and "
                f"student ({cfg.student.arch}, patch {self.patch_size}) need the same patch size; pick a student "
                f"with patch {teacher.patch_size} or disable iBOT with --ibot.loss-weight 0"
            )
        c = cfg.crops
        for name, size in (("crops.global_crops_size", c.global_crops_size),):
            if size % teacher.patch_size:
                raise ValueError(f"{name}={size} is not a multiple of the teacher's patch size {teacher.patch_size}")
        del self.teacher  # the student-architecture EMA teacher that SSLMetaArch built
        net = teacher.network.to(self.device).eval().requires_grad_(False)
        self.__dict__["teacher"] = net  # plain attribute: frozen, outside state_dict() and optimizer
        self._wrapped["teacher"] = net
        self.teacher_info = teacher
        ema = create_model(cfg.student.arch, init_values=cfg.student.layerscale).to(self.device)
        ema.load_state_dict(self.student.backbone.state_dict())
        self.student_ema = ema.requires_grad_(False).eval()
        for name, value in teacher.centers.items():
            buf = self.get_buffer(name)
            if tuple(buf.shape) == tuple(value.shape):
                buf.copy_(value.to(buf))
        logger.info(
            "distillation (%s): teacher %s (D=%d) -> student %s (D=%d)",
            teacher.objective,
            teacher.arch,
            int(net.backbone.embed_dim),
            cfg.student.arch,
            self.embed_dim,
        )

    # ------------------------------------------------------------------------------------- distributed
    def prepare_for_distributed_training(self, strategy: Literal["ddp", "fsdp"] = "ddp") -> None:
        """``ddp``: ``DistributedDataParallel`` over the student; the teacher and the EMA are replicated (the EMA
        stays identical on every rank since the synchronised student drives it). ``fsdp``: ``fully_shard`` every
        block and the root of student, EMA and teacher (the teacher then costs 1/world_size of its memory)."""
        if not dist_utils.is_enabled():
            return
        if strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            find_unused = self.ibot_separate_head and not self.do_dino
            ddp = DistributedDataParallel(self.student, device_ids=device_ids, find_unused_parameters=find_unused)
            self.student_ema.load_state_dict(self.student.backbone.state_dict())
            self._wrapped.update(student=ddp, strategy="ddp")
        elif strategy == "fsdp":
            from torch.distributed.fsdp import fully_shard

            for p in self.student.parameters():
                torch.distributed.broadcast(p.data, src=0)
            self.student_ema.load_state_dict(self.student.backbone.state_dict())
            for root, backbone in (
                (self.student, self.student.backbone),
                (self.student_ema, self.student_ema),
                (self.teacher, self.teacher.backbone),
            ):
                for blk in backbone.blocks:
                    fully_shard(blk)
                fully_shard(root, reshard_after_forward=True)
            self._wrapped.update(strategy="fsdp")
        else:
            raise ValueError(f"unknown strategy {strategy!r}; choose ddp or fsdp")

    # ---------------------------------------------------------------------------------------- training
    def train(self, mode: bool = True) -> DistillMetaArch:
        """Student in ``mode``; teacher and EMA always in eval mode."""
        super().train(mode)
        self.student_ema.eval()
        return self

    @torch.no_grad()
    def update_teacher(self, m: float) -> None:
        """EMA of the student backbone: ``ema = m * ema + (1 - m) * student`` (the teacher stays frozen)."""
        student = _local_tensors(list(self.student.backbone.parameters()))
        ema = _local_tensors(list(self.student_ema.parameters()))
        torch._foreach_mul_(ema, m)
        torch._foreach_add_(ema, student, alpha=1 - m)

    # ------------------------------------------------------------------------------------------ export
    def export_backbone(self, path: str, which: Literal["ema", "student"] = "ema") -> None:
        """Write the student's EMA (default) or the raw student backbone in the official key format with a JSON
        sidecar (``encoders.create_model(arch, pretrained=path)`` loads it). Call on every rank under FSDP."""
        from encoders.checkpoint import save_backbone
        from encoders.train.checkpointing import full_model_state_dict

        state = full_model_state_dict(self.student_ema if which == "ema" else self.student.backbone)
        if not dist_utils.is_main_process():
            return
        spec = get_model_spec(self.cfg.student.arch)
        export = create_model(spec.name, init_values=self.cfg.student.layerscale)
        export.load_state_dict(state, strict=True)
        save_backbone(export, path, name=spec.name, overrides={})


__all__ = ["DistillMetaArch", "student_config"]
