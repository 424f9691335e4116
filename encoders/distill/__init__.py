"""Distillation of a frozen teacher (backbone + DINO / iBOT heads) into a smaller student with the DINOv2
objective, on the pretraining loop (:class:`encoders.train.trainer.Trainer`); the student's EMA is exported."""

from encoders.distill.config import PRESETS, DistillConfig
from encoders.distill.meta_arch import DistillMetaArch
from encoders.distill.teacher import FrozenTeacher, TeacherHeadsMissing, load_teacher, train_teacher_heads

__all__ = [
    "PRESETS",
    "DistillConfig",
    "DistillMetaArch",
    "FrozenTeacher",
    "TeacherHeadsMissing",
    "load_teacher",
    "train_teacher_heads",
]
