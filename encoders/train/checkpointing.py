"""Training checkpoints: full (unsharded) model and optimizer states, RNG states of every rank, iteration
and config, written atomically by rank 0 and readable with ``weights_only=True``.

Works the same for a single process, DDP (the unwrapped module's state) and FSDP2 (``fully_shard``:
gathered with ``torch.distributed.checkpoint.state_dict`` into full tensors, re-sharded on load).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from encoders.train import distributed as dist_utils
from encoders.utils.io import atomic_save, file_versions, load_file, load_newest_intact
from encoders.utils.seed import get_rng_state, set_rng_state

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "semnav-train-checkpoint-v1"


def _is_sharded(module: nn.Module) -> bool:
    return any(type(p).__name__ == "DTensor" for p in module.parameters())


def full_model_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict of ``module`` on CPU (a collective under FSDP: call it on every rank)."""
    if _is_sharded(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def full_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full model and optimizer state dicts (collective under FSDP; rank 0 gets the tensors)."""
    if _is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return full_model_state_dict(model), optimizer.state_dict()


def load_full_state_dicts(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, model_sd: dict, optim_sd: dict | None
) -> None:
    """Load full state dicts saved by :func:`full_state_dicts` (strict), re-sharding under FSDP."""
    if _is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_state_dict

        options = StateDictOptions(full_state_dict=True, strict=True)
        if optimizer is not None and optim_sd is not None:
            set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd, options=options)
        else:
            set_model_state_dict(model, model_sd, options=options)
        return
    model.load_state_dict(model_sd, strict=True)
    if optimizer is not None and optim_sd is not None:
        optimizer.load_state_dict(optim_sd)


def gather_rng_states() -> list[dict[str, Any]]:
    """This process's RNG states, gathered from every rank (index = rank)."""
    local = get_rng_state()  # tensors and plain numbers: weights_only-safe
    if not dist_utils.is_enabled():
        return [local]
    states: list[Any] = [None] * dist_utils.get_world_size()
    torch.distributed.all_gather_object(states, local)
    return states


def restore_rng_state(states: list[dict[str, Any]], rank: int, world_size: int) -> bool:
    """Restore this rank's RNG states from a checkpoint; False (and a warning) if the world size changed."""
    if len(states) != world_size:
        logger.warning(
            "checkpoint has RNG states of %d ranks but this run has %d: drop-path randomness will differ "
            "from an uninterrupted run",
            len(states),
            world_size,
        )
        return False
    set_rng_state(states[rank])
    return True


def save_training_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    iteration: int,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    keep: int = 1,
) -> Path | None:
    """Write ``{model, optimizer, iteration, rng (per rank), config, world_size, format, **extra}`` atomically.

    A collective: call it on every rank (rank 0 writes). ``iteration`` is the next iteration to run. ``keep``
    checkpoints stay: ``path`` and the ``keep - 1`` it replaced (``checkpoint.1.pth``, ...; see
    :func:`training_checkpoints`).
    """
    model_sd, optim_sd = full_state_dicts(model, optimizer)
    rng = gather_rng_states()
    if not dist_utils.is_main_process():
        return None
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model_sd,
        "optimizer": optim_sd,
        "iteration": int(iteration),
        "rng": rng,
        "config": config,
        "world_size": dist_utils.get_world_size(),
        **(extra or {}),
    }
    out = atomic_save(payload, path, keep_previous=keep - 1)
    logger.info("saved checkpoint %s (iteration %d)", out, iteration)
    return out


def training_checkpoints(path: str | os.PathLike) -> list[Path]:
    """The kept checkpoints of a run, newest first: ``checkpoint.pth``, ``checkpoint.1.pth``, ..."""
    return file_versions(path)


def load_newest_training_checkpoint(
    path: str | os.PathLike, warn: bool = True
) -> tuple[Path, dict[str, Any], list[Path]]:
    """The newest intact of :func:`training_checkpoints` ``(path, state, unreadable newer ones)``; a damaged
    newer one is skipped with a warning naming both files (unless ``warn`` is False)."""
    versions = training_checkpoints(path)
    if not versions:
        raise FileNotFoundError(f"no checkpoint at {path}")
    return load_newest_intact(versions, load_training_checkpoint, what="checkpoint", warn=warn)


def set_aside_unreadable(paths: list[Path]) -> None:
    """Rename damaged checkpoints to ``<name>.unreadable`` so that they neither block a run nor take a slot among
    the kept ones (call it on rank 0)."""
    for path in paths:
        target = path.with_name(path.name + ".unreadable")
        os.replace(path, target)
        logger.warning("moved the unreadable checkpoint %s to %s", path, target)


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_checkpoint` (clear errors for missing / corrupt files)."""
    state = load_file(path, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a training checkpoint of this project (format {CHECKPOINT_FORMAT}); to start from a "
            "backbone checkpoint use --student.pretrained-weights instead of --resume"
        )
    return state
