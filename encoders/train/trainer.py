"""A reusable teacher-student training loop: schedules, AdamW, gradient clipping, EMA, checkpoints,
exact resume, TensorBoard, progress, graceful Ctrl-C / SIGTERM, and ``torchrun`` data parallelism.

The loop knows nothing about DINO: it drives any :class:`MetaArch` (``SSLMetaArch`` for pretraining;
a student + frozen teacher for distillation) over the batches of a :class:`MultiCropDataPipeline`
(or any object with ``loader(start_iteration)`` and ``global_crops_size_at(iteration)``).

Per iteration ``it``: schedules at ``it`` -> param groups; ``forward_backward(batch, teacher_temp)``;
``clip_grad_norm_``; ``optimizer.step()``; ``update_teacher(momentum)``. Checkpoints store the state
*after* an iteration and the next iteration to run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from encoders.train import distributed as dist_utils
from encoders.train.checkpointing import (
    load_full_state_dicts,
    load_newest_training_checkpoint,
    restore_rng_state,
    save_training_checkpoint,
    set_aside_unreadable,
    training_checkpoints,
)
from encoders.train.config import ResolvedRun, TrainLoopConfig, resolve_run, schedule_lengths
from encoders.train.schedules import apply_optim_scheduler, schedule_values
from encoders.utils.config import flatten_keys
from encoders.utils.io import CheckpointError, atomic_write_text
from encoders.utils.progress import Progress
from encoders.utils.signals import stop_on_signals
from encoders.utils.tensorboard import make_writer

logger = logging.getLogger(__name__)

#: ``monitor/teacher_entropy`` (a fraction of ``ln K``) above which, after the warm-up, the trainer warns
UNIFORM_TEACHER_ENTROPY = 0.99

CHECKPOINT_NAME = "checkpoint.pth"
BACKBONE_NAME = "teacher_backbone.pth"


@runtime_checkable
class MetaArch(Protocol):
    """What the trainer needs from a model: an ``nn.Module`` whose ``state_dict`` is the whole training state
    (networks and loss buffers) and these methods."""

    def forward_backward(self, batch: dict[str, Any], teacher_temp: float) -> dict[str, torch.Tensor]:
        """Compute the losses of ``batch``, call ``backward()``; return detached scalars including ``total_loss``
        (keys ending in ``_loss`` are logged under ``losses/``, others under ``monitor/``)."""
        ...

    def update_teacher(self, m: float) -> None:
        """EMA update with momentum ``m`` (a no-op for a frozen teacher)."""
        ...

    def get_params_groups(self) -> list[dict[str, Any]]:
        """AdamW param groups with ``lr_multiplier``, ``wd_multiplier``, ``is_last_layer``."""
        ...

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Clip gradients (``max_norm <= 0``: only measure); return the norm before clipping."""
        ...

    def prepare_for_distributed_training(self, strategy: Literal["ddp", "fsdp"]) -> None: ...

    def export_backbone(self, path: str) -> None:
        """Write the deliverable backbone (official key format); a collective under FSDP."""
        ...


class _DataSource(Protocol):
    def loader(self, start_iteration: int = 0) -> Iterator[dict[str, Any]]: ...

    def global_crops_size_at(self, iteration: int) -> int: ...


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did."""

    start_iteration: int
    end_iteration: int
    """the next iteration to run (== stop iteration when the run completed)"""
    interrupted: bool
    checkpoint: Path | None
    backbone: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    """logged scalars (rank-averaged) every ``log_every`` iterations, with ``iteration``"""


class Trainer:
    """Runs a :class:`MetaArch` for ``cfg.train`` iterations under the schedules of ``cfg.optim`` / ``cfg.teacher``.

    Args:
        cfg: the loop settings (any :class:`TrainLoopConfig`, e.g. ``PretrainConfig``).
        model: the meta-architecture (already on its device).
        data: the batch source (``loader(start)``, ``global_crops_size_at(it)``).
        ctx: this process's distributed context.
        config_dict: the resolved config saved into checkpoints (default: none).
        callbacks: called as ``fn(trainer, iteration, scalars)`` after each iteration (``scalars`` holds the
            detached loss tensors of that iteration).
        desc: name shown by the progress bar.
        backbone_name: file name (in ``cfg.output``) of the exported backbone.
    """

    def __init__(
        self,
        cfg: TrainLoopConfig,
        model: nn.Module,
        data: _DataSource,
        ctx: dist_utils.DistributedContext | None = None,
        config_dict: dict[str, Any] | None = None,
        callbacks: list[Callable[[Trainer, int, dict[str, torch.Tensor]], None]] | None = None,
        desc: str = "train",
        backbone_name: str = BACKBONE_NAME,
    ):
        if not isinstance(model, MetaArch):
            raise TypeError(f"{type(model).__name__} does not implement the MetaArch protocol")
        self.cfg = cfg
        self.model = model
        self.data = data
        self.ctx = ctx or dist_utils.DistributedContext()
        self.config_dict = config_dict or {}
        self.callbacks = list(callbacks or [])
        self.desc = desc
        self.resolved: ResolvedRun = resolve_run(cfg, self.ctx.world_size)
        self.output = Path(cfg.output)
        self.checkpoint_path = self.output / CHECKPOINT_NAME
        self.backbone_path = self.output / backbone_name
        if self.ctx.distributed:
            model.prepare_for_distributed_training(cfg.train.strategy)
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(model.get_params_groups(), betas=(o.adamw_beta1, o.adamw_beta2))
        self._stop_requested = False

    # ----------------------------------------------------------------------------------------- control
    def request_stop(self) -> None:
        """Finish the current iteration, save a checkpoint and return (what Ctrl-C and SIGTERM do)."""
        self._stop_requested = True

    def _stop_agreed(self) -> bool:
        """True when any rank was asked to stop (all ranks then stop at the same iteration)."""
        if not self.ctx.distributed:
            return self._stop_requested
        flag = torch.tensor([1.0 if self._stop_requested else 0.0], device=self.ctx.device)
        dist_utils.all_reduce_max_(flag)
        return bool(flag.item() > 0)

    # ------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, next_iteration: int) -> Path | None:
        """Write ``checkpoint.pth`` (model, optimizer, iteration, RNG of every rank, config), keeping the
        ``train.keep_checkpoints - 1`` it replaces as ``checkpoint.1.pth``, ... Collective."""
        return save_training_checkpoint(
            self.checkpoint_path,
            self.model,
            self.optimizer,
            next_iteration,
            self.config_dict,
            extra={"resolved": dataclasses.asdict(self.resolved)},
            keep=self.cfg.train.keep_checkpoints,
        )

    def _resume(self) -> tuple[int, list | None]:
        """Load the newest intact checkpoint (a damaged newer one is set aside as ``*.unreadable``)."""
        if not self.cfg.resume:
            return 0, None
        if not training_checkpoints(self.checkpoint_path):
            raise FileNotFoundError(
                f"--resume: no checkpoint at {self.checkpoint_path}; check --output (the run folder) or drop --resume"
            )
        try:
            path, state, unreadable = load_newest_training_checkpoint(self.checkpoint_path)
        except CheckpointError as e:
            raise CheckpointError(
                f"{e}. Drop --resume to start afresh in {self.output} (the unreadable files are then set aside), "
                "or restore them from a backup"
            ) from e
        load_full_state_dicts(self.model, self.optimizer, state["model"], state["optimizer"])
        dist_utils.barrier()  # every rank has read its checkpoint before rank 0 moves damaged files away
        if self.ctx.is_main:
            set_aside_unreadable(unreadable)
        logger.info("resumed from %s at iteration %d", path, state["iteration"])
        return int(state["iteration"]), state.get("rng")

    # -------------------------------------------------------------------------------------------- loop
    def fit(self) -> TrainResult:
        """Train from iteration 0 (or the checkpoint with ``cfg.resume``) to the stop iteration."""
        cfg, ctx, r = self.cfg, self.ctx, self.resolved
        start, rng_states = self._resume()
        stop = r.stop_iteration
        self.model.train()
        crop_size = self.data.global_crops_size_at(start)
        batches = self.data.loader(start) if start < stop else iter(())
        if rng_states is not None:  # after the loader exists: creating it must not shift the streams
            restore_rng_state(rng_states, ctx.rank, ctx.world_size)

        writer = make_writer(self.output / "tensorboard", ctx.rank) if start < stop else None
        progress = Progress(
            total=stop, desc=self.desc, unit="it", initial=start, disable=not (cfg.train.progress and ctx.is_main)
        )
        images_per_it = r.total_batch_size
        history: list[dict[str, float]] = []
        warned_uniform = False
        interrupted = False
        it = start
        t_log, it_log = time.perf_counter(), start
        logger.info(
            "training iterations %d -> %d of %d (total batch %d, peak lr %.3g)",
            start,
            stop,
            r.total_iterations,
            images_per_it,
            r.lr,
        )
        with stop_on_signals(self.request_stop, "after this iteration"):
            while it < stop:
                if self.data.global_crops_size_at(it) != crop_size:
                    crop_size = self.data.global_crops_size_at(it)
                    logger.info("iteration %d: switching to %dpx global crops", it, crop_size)
                    batches = self.data.loader(it)
                batch = next(batches)
                sv = schedule_values(it, r.lr, cfg.optim, cfg.teacher, cfg.train.epoch_length)
                apply_optim_scheduler(self.optimizer, sv.lr, sv.wd, sv.last_layer_lr)
                self.optimizer.zero_grad(set_to_none=True)
                losses = self.model.forward_backward(batch, teacher_temp=sv.teacher_temp)
                grad_norm = self.model.clip_grad_norm_(cfg.optim.clip_grad)
                self.optimizer.step()
                self.model.update_teacher(sv.momentum)

                total = float(losses["total_loss"])
                if not math.isfinite(total):
                    raise FloatingPointError(
                        f"non-finite loss {total} at iteration {it}; lower --optim.base-lr, raise "
                        "--teacher.warmup-teacher-temp-epochs, or use --train.precision fp32"
                    )
                it += 1
                for fn in self.callbacks:
                    fn(self, it, losses)
                if it % cfg.train.log_every == 0 or it == stop:
                    now = time.perf_counter()
                    scalars = self._reduce_scalars({**losses, "grad_norm": grad_norm})
                    scalars.update(
                        lr=sv.lr,
                        wd=sv.wd,
                        momentum=sv.momentum,
                        teacher_temp=sv.teacher_temp,
                        last_layer_lr=sv.last_layer_lr,
                        images_per_s=images_per_it * (it - it_log) / max(now - t_log, 1e-9),
                        global_crops_size=float(crop_size),
                    )
                    t_log, it_log = now, it
                    self._write_scalars(writer, scalars, it)
                    warned_uniform = self._warn_if_uniform(scalars, it, warned_uniform)
                    history.append({"iteration": float(it), **scalars})
                progress.update(1, loss=total)
                stop_now = self._stop_agreed()
                if stop_now or (it % cfg.train.checkpoint_every == 0 and it < stop):
                    self.save_checkpoint(it)
                if stop_now:
                    interrupted = it < stop
                    logger.warning("stopped at iteration %d; continue with --resume", it)
                    break
        progress.close()
        if writer is not None:
            writer.close()
        checkpoint = None
        backbone = None
        if not interrupted:
            if start < stop or not self.checkpoint_path.exists():
                checkpoint = self.save_checkpoint(it)
            self.model.export_backbone(str(self.backbone_path))
            backbone = self.backbone_path if ctx.is_main else None
            dist_utils.barrier()
        else:
            checkpoint = self.checkpoint_path if ctx.is_main else None
        return TrainResult(
            start_iteration=start,
            end_iteration=it,
            interrupted=interrupted,
            checkpoint=checkpoint,
            backbone=backbone,
            history=history,
        )

    # ----------------------------------------------------------------------------------------- logging
    def _reduce_scalars(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """Mean over ranks of scalar tensors (one all_reduce), as python floats."""
        keys = sorted(values)
        stacked = torch.stack([values[k].detach().float().reshape(()).to(self.ctx.device) for k in keys])
        if self.ctx.distributed:
            dist_utils.all_reduce_sum_(stacked)
            stacked /= self.ctx.world_size
        return dict(zip(keys, stacked.tolist()))

    def _warn_if_uniform(self, scalars: dict[str, float], it: int, warned: bool) -> bool:
        """Log once (rank 0) when the teacher's DINO targets have become uniform; returns whether it has warned."""
        entropy = scalars.get("teacher_entropy")
        warmup = schedule_lengths(self.cfg.optim, self.cfg.teacher, self.cfg.train.epoch_length).lr_warmup
        if warned or entropy is None or entropy < UNIFORM_TEACHER_ENTROPY or it < warmup:
            return warned
        if self.ctx.is_main:
            logger.warning(
                "iteration %d: the teacher's DINO targets are uniform (entropy %.3f of ln K): the DINO loss no longer "
                "carries a learning signal. This collapse is common at small total batch sizes (the official recipe "
                "uses 1024 or more); watch monitor/teacher_entropy in TensorBoard",
                it,
                entropy,
            )
        return True

    @staticmethod
    def _write_scalars(writer: Any, scalars: dict[str, float], step: int) -> None:
        if writer is None:
            return
        for key, value in scalars.items():
            if key.endswith("_loss"):
                tag = f"losses/{key}"
            elif key in ("lr", "wd", "momentum", "teacher_temp", "last_layer_lr"):
                tag = f"schedules/{key}"
            elif key in ("images_per_s", "global_crops_size"):
                tag = f"charts/{key}"
            else:
                tag = f"monitor/{key}"
            writer.add_scalar(tag, value, step)
        writer.flush()


# ------------------------------------------------------------------------------------------- launching
_RESUME_FREE_FIELDS = {
    "resume",
    "train.max_iterations",
    "train.num_workers",
    "train.progress",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
}


def check_run_folder(cfg: TrainLoopConfig, cfg_dict: dict[str, Any]) -> None:
    """Refuse to overwrite a run without ``--resume``; on resume, warn about config fields that changed.

    A folder whose checkpoints are all unreadable (e.g. truncated by a full disk) holds nothing to continue: a fresh
    start sets them aside as ``*.unreadable`` with a warning instead of refusing.
    """
    run_dir = Path(cfg.output)
    if not cfg.resume:
        existing = training_checkpoints(run_dir / CHECKPOINT_NAME)
        if not existing:
            return
        try:
            path, state, unreadable = load_newest_training_checkpoint(run_dir / CHECKPOINT_NAME, warn=False)
        except CheckpointError as e:
            logger.warning("%s. Starting a new run in %s", e, run_dir)
            if dist_utils.is_main_process():
                set_aside_unreadable(existing)
            dist_utils.barrier()
            return
        damaged = f"; the newer {', '.join(p.name for p in unreadable)} is unreadable" if unreadable else ""
        raise ValueError(
            f"{run_dir} already holds a run ({path.name}, iteration {state['iteration']}{damaged}); pass --resume to "
            "continue it from there, or choose another --output"
        )
    saved_path = run_dir / "config.json"
    if not saved_path.exists():
        return
    saved, now = flatten_keys(json.loads(saved_path.read_text())), flatten_keys(cfg_dict)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k) and k not in _RESUME_FREE_FIELDS)
    if changed:
        logger.warning(
            "resuming with a config that differs from %s in: %s (the run will not match an uninterrupted one)",
            saved_path,
            ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed),
        )


def fit_from_config(
    cfg: TrainLoopConfig,
    build_model: Callable[[TrainLoopConfig, torch.device], nn.Module],
    ctx: dist_utils.DistributedContext,
    mask_ratio_tuple: tuple[float, float],
    mask_probability: float,
    desc: str = "train",
    callbacks: list[Callable[[Trainer, int, dict[str, torch.Tensor]], None]] | None = None,
    backbone_name: str = BACKBONE_NAME,
    images: Any = None,
) -> tuple[Trainer, TrainResult]:
    """The whole launch sequence of a CLI: check the run folder, build the model with the same seed on every
    rank (identical initial weights), re-seed per rank (drop path), build the image-folder data pipeline
    (``cfg.data`` / ``cfg.file_list``, or the dataset ``images``), save ``config.json`` and the derived values
    (peak lr after scaling, iteration counts, world size) as ``resolved.json`` (rank 0), train.

    ``build_model(cfg, device)`` returns the :class:`MetaArch`; it must expose ``patch_size``.
    """
    from encoders.train.data import MultiCropDataPipeline
    from encoders.utils.config import config_to_dict, save_config
    from encoders.utils.seed import seed_everything

    cfg_dict = config_to_dict(cfg)
    check_run_folder(cfg, cfg_dict)
    seed_everything(cfg.train.seed)
    model = build_model(cfg, ctx.device)
    seed_everything(cfg.train.seed + ctx.rank)
    resolved = resolve_run(cfg, ctx.world_size)
    data = MultiCropDataPipeline.from_config(
        cfg,
        patch_size=model.patch_size,
        mask_ratio_tuple=mask_ratio_tuple,
        mask_probability=mask_probability,
        rank=ctx.rank,
        world_size=ctx.world_size,
        high_res_start=resolved.high_res_start if cfg.crops.high_res_iterations > 0 else None,
        pin_memory=ctx.device.type == "cuda",
        images=images,
    )
    if ctx.is_main:
        save_config(cfg, cfg.output)
        derived = {
            **dataclasses.asdict(resolved),
            "world_size": ctx.world_size,
            "backend": ctx.backend,
            "device": str(ctx.device),
        }
        atomic_write_text(json.dumps(derived, indent=2, sort_keys=True) + "\n", Path(cfg.output) / "resolved.json")
    trainer = Trainer(
        cfg, model, data, ctx, config_dict=cfg_dict, callbacks=callbacks, desc=desc, backbone_name=backbone_name
    )
    return trainer, trainer.fit()


def format_run_report(trainer: Trainer, result: TrainResult, title: str, arch: str, backbone_label: str) -> str:
    """The few lines a training CLI prints at the end: iterations done, last logged losses, where the checkpoint
    and the exported backbone are (with the call that loads it), and the TensorBoard command."""
    lines = [
        f"{title} iterations {result.start_iteration} -> {result.end_iteration} of "
        f"{trainer.resolved.stop_iteration}" + (" (interrupted)" if result.interrupted else "")
    ]
    last = result.history[-1] if result.history else {}
    if last:
        monitors = ("student_cls_std", "head_spread", "teacher_entropy", "teacher_crossview_same")
        shown = ", ".join(f"{k} {last[k]:.3f}" for k in monitors if k in last)
        lines.append(
            f"  last logged: total_loss {last.get('total_loss', float('nan')):.4f}, {shown}, "
            f"{last.get('images_per_s', 0.0):.1f} images/s"
        )
        if "teacher_crossview_same" in last:
            lines.append(
                "  teacher cross-view cosine (centred): same image "
                f"{last['teacher_crossview_same']:.3f} vs other images {last['teacher_crossview_other']:.3f}"
            )
    lines.append(f"  checkpoint: {trainer.checkpoint_path} (continue with --resume)")
    if result.backbone is not None:
        lines.append(
            f"  {backbone_label}: {result.backbone} -> encoders.create_model({arch!r}, "
            f"pretrained={str(result.backbone)!r})"
        )
    lines.append(f"  TensorBoard: tensorboard --logdir {trainer.output / 'tensorboard'}")
    return "\n".join(lines)
