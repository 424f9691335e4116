"""Typed config of distillation: the pretraining config (same sections and flags) plus the frozen teacher.

Every field of :class:`~encoders.train.config.PretrainConfig` keeps its meaning (data, crops, optimiser and
schedules, ``train.*`` loop settings, DINO / iBOT / KoLeo loss weights), with these differences:

- ``student.*`` describes the smaller network being trained (default ViT-S/14 without stochastic depth, as in
  the DINOv2 distillation recipe);
- the student's DINO / iBOT heads take the *teacher's* head shapes (the losses compare distributions over the
  teacher's prototypes); ``dino.head_*`` / ``ibot.head_*`` only shape the heads trained from scratch by
  ``--train-teacher-heads-iters``;
- ``teacher.*`` still holds the momentum and temperature schedules: the momentum drives the EMA of the student
  (the exported model), the temperature sharpens the frozen teacher's outputs;
- ``objective`` follows the teacher (a SimDINO teacher has prototype-free heads, so the student matches its
  embeddings by cosine, with the coding-rate term on the student side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from encoders.train.config import PRESETS as PRETRAIN_PRESETS
from encoders.train.config import PretrainConfig, StudentConfig


def _student_default() -> StudentConfig:
    return StudentConfig(arch="dinov2_vits14", drop_path_rate=0.0)


@dataclass
class DistillConfig(PretrainConfig):
    """Distil a frozen teacher (with its DINO / iBOT heads) into a smaller student; export the student's EMA."""

    output: str = "runs/distill"
    """run folder: config.json, TensorBoard events, checkpoint.pth, student_backbone.pth"""
    teacher_weights: str = ""
    """the teacher: a pretraining checkpoint.pth (backbone + heads), or a backbone file / 'official' together with
    --train-teacher-heads-iters"""
    teacher_arch: str = ""
    """registry name of the teacher (needed for 'official' and for backbone files without a JSON sidecar)"""
    train_teacher_heads_iters: int = 0
    """when the teacher has no heads: first train DINO / iBOT heads from scratch on the frozen teacher backbone for
    this many iterations (into <output>/teacher_heads), then distil"""
    student: StudentConfig = field(default_factory=_student_default)


def _distill_preset(base: str, student_arch: str) -> dict[str, Any]:
    return {**PRETRAIN_PRESETS[base], "student.arch": student_arch, "student.drop_path_rate": 0.0}


PRESETS: dict[str, dict[str, Any]] = {
    # unit tests: a pico student, the pretraining pico schedule (seconds on a CPU)
    "pico": _distill_preset("pico", "vit_pico_patch14"),
    # the pretraining "tiny" data / schedule settings with a pico student (for a vit_mini_patch14 teacher)
    "tiny": _distill_preset("tiny", "vit_pico_patch14"),
    # the laptop recipe with a pico student (for a `pretrain --preset laptop` teacher)
    "laptop": _distill_preset("laptop", "vit_pico_patch14"),
    # a ViT-Ti/14 student at the official crop sizes (for a ViT-S/B teacher)
    "small": _distill_preset("small", "vit_tiny_patch14"),
    # the paper's students: ViT-S/14 and ViT-B/14 with the official schedule
    "vits14": {"student.arch": "dinov2_vits14", "student.drop_path_rate": 0.0},
    "vitb14": {"student.arch": "dinov2_vitb14", "student.drop_path_rate": 0.0},
}

__all__ = ["PRESETS", "DistillConfig"]
