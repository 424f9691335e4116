"""Training schedules as pure functions of the iteration (learning rate, weight decay, EMA momentum,
teacher temperature, frozen last layer), equal to the official ``CosineScheduler`` arrays.

Reference: Oquab et al. 2023, "DINOv2" (``dinov2/utils/utils.py`` CosineScheduler,
``dinov2/train/train.py`` build_schedulers / apply_optim_scheduler).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from encoders.train.config import OptimConfig, TeacherConfig, schedule_lengths


def cosine_schedule(
    step: int,
    base_value: float,
    final_value: float,
    total_iters: int,
    warmup_iters: int = 0,
    start_warmup_value: float = 0.0,
    freeze_iters: int = 0,
) -> float:
    """Value at ``step`` of: ``freeze_iters`` zeros, a linear warmup ``start_warmup_value -> base_value``
    over ``warmup_iters`` (both ends included, as ``np.linspace``), then a half cosine ``base_value ->
    final_value`` over the remaining iterations; ``final_value`` from ``total_iters`` on."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if warmup_iters + freeze_iters > total_iters:
        raise ValueError(
            f"warmup ({warmup_iters}) + freeze ({freeze_iters}) iterations exceed the schedule length ({total_iters})"
        )
    if step >= total_iters:
        return float(final_value)
    if step < freeze_iters:
        return 0.0
    step -= freeze_iters
    if step < warmup_iters:
        if step == warmup_iters - 1:
            return float(base_value)
        return float(start_warmup_value + step * ((base_value - start_warmup_value) / (warmup_iters - 1)))
    step -= warmup_iters
    n = total_iters - warmup_iters - freeze_iters
    return float(final_value + 0.5 * (base_value - final_value) * (1.0 + math.cos(math.pi * step / n)))


@dataclass(frozen=True)
class ScheduleValues:
    """The scheduled hyper-parameters of one iteration."""

    lr: float
    wd: float
    momentum: float
    teacher_temp: float
    last_layer_lr: float


def schedule_values(
    step: int, peak_lr: float, optim: OptimConfig, teacher: TeacherConfig, epoch_length: int
) -> ScheduleValues:
    """All schedules of the official pretraining at iteration ``step`` (``peak_lr`` after batch scaling).

    - lr: warmup ``0 -> peak_lr`` over ``warmup_epochs`` (or ``warmup_iters``), cosine to ``min_lr`` at ``epochs``;
    - wd: cosine ``weight_decay -> weight_decay_end``;
    - momentum: cosine ``momentum_teacher -> final_momentum_teacher`` over the run (or ``momentum_iters``);
    - teacher_temp: linear ``warmup_teacher_temp -> teacher_temp`` over ``warmup_teacher_temp_epochs`` (or
      ``warmup_teacher_temp_iters``), then constant;
    - last_layer_lr: lr, but 0 during the first ``freeze_last_layer_epochs`` (or ``freeze_last_layer_iters``).

    The lengths come from :func:`encoders.train.config.schedule_lengths`.
    """
    n = schedule_lengths(optim, teacher, epoch_length)
    lr = cosine_schedule(step, peak_lr, optim.min_lr, n.total, warmup_iters=n.lr_warmup)
    temp_iters = n.teacher_temp_warmup
    return ScheduleValues(
        lr=lr,
        wd=cosine_schedule(step, optim.weight_decay, optim.weight_decay_end, n.total),
        momentum=cosine_schedule(step, teacher.momentum_teacher, teacher.final_momentum_teacher, n.momentum),
        teacher_temp=cosine_schedule(
            step,
            teacher.teacher_temp,
            teacher.teacher_temp,
            temp_iters,
            warmup_iters=temp_iters,
            start_warmup_value=teacher.warmup_teacher_temp,
        ),
        last_layer_lr=0.0 if step < n.last_layer_freeze else lr,
    )


def apply_optim_scheduler(optimizer: torch.optim.Optimizer, lr: float, wd: float, last_layer_lr: float) -> None:
    """Set each param group's ``lr`` and ``weight_decay`` from its ``lr_multiplier``, ``wd_multiplier`` and
    ``is_last_layer`` (groups from :func:`encoders.train.param_groups.get_params_groups_with_decay`)."""
    for group in optimizer.param_groups:
        group["weight_decay"] = wd * group.get("wd_multiplier", 1.0)
        base = last_layer_lr if group.get("is_last_layer", False) else lr
        group["lr"] = base * group.get("lr_multiplier", 1.0)
