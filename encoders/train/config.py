"""Typed configs of self-supervised pretraining, mirroring the sections of the official DINOv2 YAML
(``student``, ``teacher``, ``dino``, ``ibot``, ``optim``, ``crops``, ``train``), plus named presets.

On the command line every field is a flag (``--optim.base-lr 0.002``, ``--crops.global-crops-size 112``,
``--train.batch-size-per-gpu 32``), see :func:`encoders.utils.config.parse_config`. Derived values
(learning rate after the batch-size scaling rule, iteration counts) are computed in one place,
:func:`resolve_schedule_lengths` / :func:`scaled_lr`.

:class:`TrainLoopConfig` holds what any teacher-student training loop needs (data, output, optimiser,
schedules, crops, loop settings); :class:`PretrainConfig` adds the DINOv2 model, heads and losses.
Distillation (a frozen teacher) reuses :class:`TrainLoopConfig` the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from encoders.data.augmentations import AugmentationConfig
from encoders.utils.config import AT_LEAST_1, NON_NEGATIVE, check_fields
from encoders.utils.precision import Precision

Centering = Literal["centering", "softmax", "sinkhorn_knopp"]
Objective = Literal["dinov2", "simdino"]
Strategy = Literal["ddp", "fsdp"]
ScalingRule = Literal["sqrt_wrt_1024", "linear_wrt_256", "none"]


@dataclass
class StudentConfig:
    """The backbone being trained (student; the EMA teacher has the same architecture)."""

    arch: str = "dinov2_vitl14"
    """registered backbone name (see encoders.list_models()); the exported teacher loads with
    encoders.create_model(arch, pretrained=PATH)"""
    drop_path_rate: float = 0.3
    """stochastic depth rate of the student"""
    drop_path_uniform: bool = True
    """same drop-path rate in every block (else linear from 0)"""
    layerscale: float = 1e-5
    """LayerScale initial value"""
    pretrained_weights: str = ""
    """optional backbone checkpoint to initialise the student (and teacher) from"""


@dataclass
class TeacherConfig:
    """EMA momentum and teacher temperature schedules."""

    momentum_teacher: float = 0.992
    """initial EMA momentum (cosine schedule to final_momentum_teacher)"""
    final_momentum_teacher: float = 1.0
    """final EMA momentum"""
    warmup_teacher_temp: float = 0.04
    """teacher temperature at iteration 0 (linear warmup)"""
    teacher_temp: float = 0.07
    """teacher temperature after the warmup"""
    warmup_teacher_temp_epochs: int = 30
    """epochs of linear teacher-temperature warmup"""
    warmup_teacher_temp_iters: int | None = None
    """the same warmup in iterations (overrides warmup_teacher_temp_epochs; none: from the epochs)"""
    momentum_iters: int | None = None
    """iterations of the cosine momentum ramp momentum_teacher -> final_momentum_teacher (none: the whole run)"""


@dataclass
class DINOConfig:
    """Image-level DINO loss on cls tokens, its head, and the KoLeo regulariser."""

    loss_weight: float = 1.0
    """weight of the DINO loss (0 disables it)"""
    head_n_prototypes: int = 65536
    """prototypes K of the DINO head"""
    head_bottleneck_dim: int = 256
    """L2-normalised bottleneck width"""
    head_nlayers: int = 3
    """linear layers in the head MLP"""
    head_hidden_dim: int = 2048
    """hidden width of the head MLP"""
    koleo_loss_weight: float = 0.1
    """weight of the KoLeo regulariser on student global cls tokens (0 disables it)"""
    koleo_across_ranks: bool = False
    """search KoLeo nearest neighbours among all ranks' samples, so N ranks x batch b == 1 rank x batch N*b
    (default off: the official code searches within each rank only)"""


@dataclass
class IBOTConfig:
    """Patch-level iBOT loss on masked patches of the global crops, and the masking parameters."""

    loss_weight: float = 1.0
    """weight of the iBOT loss (0 disables it)"""
    mask_sample_probability: float = 0.5
    """fraction of global crops that are masked"""
    mask_ratio_min_max: tuple[float, float] = (0.1, 0.5)
    """range of the fraction of masked patches per masked crop"""
    separate_head: bool = False
    """use an iBOT head with its own weights (else share the DINO head)"""
    head_n_prototypes: int = 65536
    """prototypes of the separate iBOT head"""
    head_bottleneck_dim: int = 256
    """bottleneck width of the separate iBOT head"""
    head_nlayers: int = 3
    """linear layers of the separate iBOT head"""
    head_hidden_dim: int = 2048
    """hidden width of the separate iBOT head"""


@dataclass
class SimDINOConfig:
    """The SimDINO objective (``--objective simdino``): prototype-free heads (the dino/ibot head sizes without their
    last layer), cosine alignment of the views weighted by dino.loss_weight (cls) and ibot.loss_weight (masked
    patches), and a coding-rate term that spreads the batch. No centering, teacher temperature or prototypes."""

    coding_rate_eps: float = 0.05
    """distortion eps of the coding rate 1/2 logdet(I + d / (b eps) Z^T Z) (the paper's epsilon squared)"""
    coding_rate_weight: float = 1.0
    """multiplier of the coding rate's balanced weight (d + b) / (d b)"""


@dataclass
class OptimConfig:
    """AdamW, parameter groups and learning-rate / weight-decay schedules."""

    epochs: Annotated[int, AT_LEAST_1] = 100
    """number of epochs (an epoch is train.epoch_length iterations)"""
    weight_decay: float = 0.04
    """initial weight decay (cosine schedule to weight_decay_end)"""
    weight_decay_end: float = 0.4
    """final weight decay"""
    base_lr: float = 0.004
    """learning rate for a total batch of 1024 (scaled by scaling_rule)"""
    lr: float = 0.0
    """peak learning rate; 0 = derive it from base_lr and the total batch size"""
    scaling_rule: ScalingRule = "sqrt_wrt_1024"
    """lr = base_lr * sqrt(batch / 1024) (official), base_lr * batch / 256, or base_lr unchanged"""
    warmup_epochs: int = 10
    """epochs of linear learning-rate warmup from 0"""
    warmup_iters: int | None = None
    """the same warmup in iterations (overrides warmup_epochs; none: from the epochs)"""
    min_lr: float = 1e-6
    """final learning rate of the cosine schedule"""
    clip_grad: float = 3.0
    """gradient-norm clipping per student module (0 disables it)"""
    freeze_last_layer_epochs: int = 1
    """epochs during which the heads' last (prototype) layer has learning rate 0"""
    freeze_last_layer_iters: int | None = None
    """the same in iterations (overrides freeze_last_layer_epochs; none: from the epochs)"""
    patch_embed_lr_mult: float = 0.2
    """learning-rate multiplier of the patch embedding"""
    layerwise_decay: float = 0.9
    """layer-wise learning-rate decay (1.0 disables it)"""
    adamw_beta1: float = 0.9
    """AdamW beta1"""
    adamw_beta2: float = 0.999
    """AdamW beta2"""


@dataclass
class CropsConfig:
    """Multi-crop augmentation sizes and scales; optional high-resolution phase at the end."""

    global_crops_scale: tuple[float, float] = (0.32, 1.0)
    """area range of the 2 global crops (fraction of the image)"""
    local_crops_number: int = 8
    """number of local crops per image"""
    local_crops_scale: tuple[float, float] = (0.05, 0.32)
    """area range of the local crops"""
    global_crops_size: int = 224
    """side of the global crops in pixels (a multiple of the patch size)"""
    local_crops_size: int = 98
    """side of the local crops in pixels (a multiple of the patch size; the official 96 is for patch 16)"""
    high_res_global_crops_size: int = 518
    """global crop side during the high-resolution phase"""
    high_res_iterations: int = 0
    """train the last N iterations with high_res_global_crops_size global crops (0 disables the phase)"""


@dataclass
class TrainConfig:
    """The training loop: batch, iterations, devices, precision, checkpoints and logging."""

    batch_size_per_gpu: Annotated[int, AT_LEAST_1] = 64
    """images per process and iteration"""
    epoch_length: Annotated[int, AT_LEAST_1] = 1250
    """iterations per epoch (the official OFFICIAL_EPOCH_LENGTH); the data stream is infinite"""
    max_iterations: Annotated[int, NON_NEGATIVE] = 0
    """stop after this many iterations (0: epochs * epoch_length); the schedules still span all epochs"""
    num_workers: int = 10
    """DataLoader worker processes per rank (0: load in the main process)"""
    seed: int = 0
    """seed of model init, data order, augmentations and masks"""
    centering: Centering = "centering"
    """teacher centering: softmax centering ('centering' or 'softmax') or 'sinkhorn_knopp'"""
    device: str = "auto"
    """auto (CUDA if available), cuda or cpu"""
    precision: Precision = "auto"
    """auto (bf16 autocast on CUDA and on CPUs with native bf16, else fp32), fp32 or bf16"""
    compile: bool = False
    """torch.compile the transformer blocks"""
    strategy: Strategy = "ddp"
    """multi-process strategy under torchrun: DistributedDataParallel or FSDP (fully_shard)"""
    checkpoint_every: Annotated[int, AT_LEAST_1] = 3750
    """save a checkpoint every N iterations (and always at the end and on Ctrl-C / SIGTERM)"""
    keep_checkpoints: Annotated[int, AT_LEAST_1] = 2
    """checkpoints kept: checkpoint.pth and the ones it replaced (checkpoint.1.pth, ...); --resume falls back to
    the newest intact one if the latest is damaged"""
    log_every: int = 10
    """TensorBoard scalars every N iterations"""
    progress: bool = True
    """show a progress bar (it/s, ETA) on rank 0"""


@dataclass
class TrainLoopConfig:
    """What every teacher-student training loop needs: data, run folder, optimisation, schedules, crops."""

    data: str = ""
    """folder of training images (searched recursively); the CLIs also take objects:N, N procedural objects per class
    rendered as two views with different backgrounds and colours (experiments.pretraining_data)"""
    file_list: str = ""
    """optional text file listing image paths (instead of, or relative to, --data)"""
    output: str = "runs/pretrain"
    """run folder: config.json, TensorBoard events, checkpoint.pth, teacher_backbone.pth"""
    resume: bool = False
    """continue from <output>/checkpoint.pth (same schedules, optimizer state, data stream and RNG)"""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    crops: CropsConfig = field(default_factory=CropsConfig)
    aug: AugmentationConfig = field(default_factory=AugmentationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class PretrainConfig(TrainLoopConfig):
    """DINOv2 self-supervised pretraining of a ViT from scratch (student + EMA teacher, DINO + iBOT + KoLeo), or
    SimDINO's prototype-free variant of the same recipe."""

    objective: Objective = "dinov2"
    """dinov2: DINO + iBOT (prototypes, centering, sharpening) + KoLeo; simdino: cosine alignment + coding rate
    (SimDINO / SimDINOv2), which cannot settle in the uniform-target state that small batches reach with dinov2"""
    student: StudentConfig = field(default_factory=StudentConfig)
    dino: DINOConfig = field(default_factory=DINOConfig)
    ibot: IBOTConfig = field(default_factory=IBOTConfig)
    simdino: SimDINOConfig = field(default_factory=SimDINOConfig)


# ---------------------------------------------------------------------------------------- derived values
def scaled_lr(base_lr: float, total_batch_size: int, rule: ScalingRule = "sqrt_wrt_1024") -> float:
    """Peak learning rate for a total batch: ``base_lr * sqrt(B / 1024)`` (official), ``base_lr * B / 256``
    or ``base_lr``."""
    if total_batch_size < 1:
        raise ValueError(f"total batch size must be >= 1, got {total_batch_size}")
    if rule == "sqrt_wrt_1024":
        return base_lr * math.sqrt(total_batch_size / 1024.0)
    if rule == "linear_wrt_256":
        return base_lr * total_batch_size / 256.0
    if rule == "none":
        return base_lr
    raise ValueError(f"unknown scaling_rule {rule!r}; choose sqrt_wrt_1024, linear_wrt_256 or none")


@dataclass(frozen=True)
class ScheduleLengths:
    """Iteration counts of the schedules (from the ``*_iters`` fields, else from their ``*_epochs`` fields)."""

    total: int
    """epochs * epoch_length: the length of the lr, weight-decay and (by default) momentum schedules"""
    lr_warmup: int
    last_layer_freeze: int
    teacher_temp_warmup: int
    momentum: int


def schedule_lengths(optim: OptimConfig, teacher: TeacherConfig, epoch_length: int) -> ScheduleLengths:
    """Resolve every schedule length in iterations; ``ValueError`` naming a negative or too long one."""
    total = optim.epochs * epoch_length

    def iters(explicit: int | None, epochs: int, name: str) -> int:
        value = explicit if explicit is not None else epochs * epoch_length
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        return value

    lengths = ScheduleLengths(
        total=total,
        lr_warmup=iters(optim.warmup_iters, optim.warmup_epochs, "optim.warmup_iters"),
        last_layer_freeze=iters(
            optim.freeze_last_layer_iters, optim.freeze_last_layer_epochs, "optim.freeze_last_layer_iters"
        ),
        teacher_temp_warmup=iters(
            teacher.warmup_teacher_temp_iters, teacher.warmup_teacher_temp_epochs, "teacher.warmup_teacher_temp_iters"
        ),
        momentum=total
        if teacher.momentum_iters is None
        else iters(teacher.momentum_iters, 0, "teacher.momentum_iters"),
    )
    if lengths.lr_warmup > total:
        raise ValueError(f"the lr warmup ({lengths.lr_warmup} iterations) is longer than the run ({total})")
    if lengths.momentum < 1:
        raise ValueError("teacher.momentum_iters must be >= 1 (or none: the whole run)")
    return lengths


@dataclass(frozen=True)
class ResolvedRun:
    """Values derived from a config and the world size (computed once by :func:`resolve_run`)."""

    lr: float
    """peak learning rate after the scaling rule"""
    total_batch_size: int
    total_iterations: int
    """epochs * epoch_length: the length of every schedule"""
    stop_iteration: int
    """where this run stops (max_iterations or total_iterations)"""
    high_res_start: int
    """first iteration of the high-resolution phase (== total_iterations if disabled)"""
    schedules: ScheduleLengths | None = None
    """the schedules' lengths in iterations"""


def resolve_run(cfg: TrainLoopConfig, world_size: int = 1) -> ResolvedRun:
    """Derive the peak learning rate and iteration counts; validate the loop settings."""
    check_fields(cfg, name=str)  # every field's type and range
    t, o = cfg.train, cfg.optim
    total_batch = t.batch_size_per_gpu * world_size
    total = o.epochs * t.epoch_length
    lr = o.lr if o.lr > 0 else scaled_lr(o.base_lr, total_batch, o.scaling_rule)
    stop = min(t.max_iterations, total) if t.max_iterations else total
    hr = cfg.crops.high_res_iterations
    if hr < 0 or hr > total:
        raise ValueError(f"crops.high_res_iterations must be in [0, {total}] (the run length), got {hr}")
    return ResolvedRun(
        lr=lr,
        total_batch_size=total_batch,
        total_iterations=total,
        stop_iteration=stop,
        high_res_start=total - hr,
        schedules=schedule_lengths(o, cfg.teacher, t.epoch_length),
    )


# ---------------------------------------------------------------------------------------------- presets
_SMALL_HEADS = {
    "dino.head_n_prototypes": 4096,
    "dino.head_hidden_dim": 512,
    "dino.head_bottleneck_dim": 128,
    "ibot.head_n_prototypes": 4096,
    "ibot.head_hidden_dim": 512,
    "ibot.head_bottleneck_dim": 128,
}

_OFFICIAL_LARGE = {  # dinov2/configs/train/vitl14.yaml and vitg14.yaml
    "dino.head_n_prototypes": 131072,
    "dino.head_bottleneck_dim": 384,
    "ibot.separate_head": True,
    "ibot.head_n_prototypes": 131072,
    "train.centering": "sinkhorn_knopp",
    "student.drop_path_rate": 0.4,
    "teacher.momentum_teacher": 0.994,
    "optim.epochs": 500,
    "optim.weight_decay_end": 0.2,
    "optim.base_lr": 2.0e-4,
    "optim.warmup_epochs": 80,
    "optim.layerwise_decay": 1.0,
    "crops.local_crops_size": 98,
}

_TINY: dict[str, Any] = {
    "student.arch": "vit_mini_patch14",
    "student.drop_path_rate": 0.1,
    **_SMALL_HEADS,
    "crops.global_crops_size": 112,
    "crops.local_crops_size": 56,
    "crops.local_crops_number": 6,
    "crops.high_res_global_crops_size": 168,
    "train.batch_size_per_gpu": 32,
    "train.epoch_length": 25,
    "train.num_workers": 2,
    "train.checkpoint_every": 100,
    "train.log_every": 5,
    "optim.epochs": 12,
    "optim.base_lr": 0.008,
    "optim.warmup_epochs": 2,
    "teacher.momentum_teacher": 0.99,
    "teacher.warmup_teacher_temp_epochs": 3,
}

# The recipe for a laptop CPU (2 cores, bf16 where native; see docs/results.md for the sweep behind each choice):
# SimDINO, whose coding-rate term cannot settle in the uniform-target state that DINO reaches at batch 32;
# schedules in iterations; a fast EMA teacher (0.9 -> 1); colour made useless by hue jitter up to half a turn,
# channel permutation and grayscale; blur relative to the crop size; 2 local crops (as good as 6 here, and cheaper).
_LAPTOP: dict[str, Any] = {
    "objective": "simdino",
    "student.arch": "vit_mini_patch14",
    "student.drop_path_rate": 0.1,
    "student.layerscale": 0.1,
    "dino.head_hidden_dim": 512,
    "dino.head_bottleneck_dim": 128,
    "dino.koleo_loss_weight": 0.0,
    "crops.global_crops_size": 112,
    "crops.local_crops_size": 56,
    "crops.local_crops_number": 2,
    "crops.high_res_global_crops_size": 168,
    "aug.hue": 0.5,
    "aug.channel_permutation_probability": 0.5,
    "aug.blur_sigma_reference": 224,
    "train.batch_size_per_gpu": 32,
    "train.epoch_length": 100,
    "train.num_workers": 2,
    "train.checkpoint_every": 100,
    "train.log_every": 10,
    "optim.epochs": 9,
    "optim.base_lr": 0.01,
    "optim.warmup_iters": 60,
    "optim.freeze_last_layer_iters": 0,
    "teacher.momentum_teacher": 0.9,
    "teacher.warmup_teacher_temp_iters": 60,
}

PRESETS: dict[str, dict[str, Any]] = {
    # unit tests and smoke tests: seconds on a CPU
    "pico": {
        "student.arch": "vit_pico_patch14",
        "student.drop_path_rate": 0.0,
        "dino.head_n_prototypes": 256,
        "dino.head_hidden_dim": 64,
        "dino.head_bottleneck_dim": 32,
        "ibot.head_n_prototypes": 256,
        "ibot.head_hidden_dim": 64,
        "ibot.head_bottleneck_dim": 32,
        "crops.global_crops_size": 56,
        "crops.local_crops_size": 28,
        "crops.local_crops_number": 2,
        "crops.high_res_global_crops_size": 84,
        "train.batch_size_per_gpu": 4,
        "train.epoch_length": 5,
        "train.num_workers": 0,
        "train.checkpoint_every": 5,
        "train.log_every": 1,
        "optim.epochs": 2,
        "optim.warmup_epochs": 1,
        "teacher.warmup_teacher_temp_epochs": 1,
        "train.precision": "fp32",  # exact comparisons in the tests (auto would pick bf16 on bf16 CPUs)
    },
    # a real (tiny) pretraining run: about 6 minutes on 2 idle CPU cores (300 iterations of 32 images)
    "tiny": _TINY,
    # the RL demo's encoder: a short cut of the laptop recipe (200 iterations of 16 images)
    "demo": {
        **_LAPTOP,
        "train.batch_size_per_gpu": 16,
        "optim.epochs": 2,
        "optim.warmup_iters": 30,
        "teacher.warmup_teacher_temp_iters": 30,
        "train.checkpoint_every": 50,
    },
    # shape rather than colour or background on a 2-core CPU in 15 minutes, the released semnav-objects recipe
    # (issue 24): on object-sharing view pairs whose second view is on plain grey (--data objects:100:plain), the
    # views keep their colours (they differ already), 1,600 iterations; on a folder of images the usual colour
    # augmentation applies
    "laptop": {**_LAPTOP, "aug.paired_colour": 0.0, "optim.epochs": 16},
    # a ViT-Ti/14 at the official crop sizes (GPU-sized; CPU for benchmarks)
    "small": {
        "student.arch": "vit_tiny_patch14",
        "student.drop_path_rate": 0.1,
        "dino.head_n_prototypes": 16384,
        "ibot.head_n_prototypes": 16384,
        "train.batch_size_per_gpu": 64,
        "train.num_workers": 8,
    },
    # official-like: ssl_default_config.yaml (100 epochs, base lr 0.004 @ 1024, 10 warmup epochs ...) with the
    # ViT-S/14 and ViT-B/14 backbones (the official repository distils S and B; these train them from scratch)
    "vits14": {"student.arch": "dinov2_vits14"},
    "vitb14": {"student.arch": "dinov2_vitb14"},
    # official-like: dinov2/configs/train/vitl14.yaml and vitg14.yaml (hub architectures: MLP FFN for L)
    "vitl14": {**_OFFICIAL_LARGE, "student.arch": "dinov2_vitl14", "train.batch_size_per_gpu": 32},
    "vitg14": {
        **_OFFICIAL_LARGE,
        "student.arch": "dinov2_vitg14",
        "train.batch_size_per_gpu": 12,
        "train.strategy": "fsdp",
    },
}
