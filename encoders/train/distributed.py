"""``torch.distributed`` set-up and helpers: one process per device under ``torchrun``, or a single process.

Everything here degrades to the single-process case when no process group exists, so library code can
call these helpers unconditionally. NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

DeviceChoice = Literal["auto", "cpu", "cuda"]


def is_enabled() -> bool:
    """True when a process group is initialised (cross-rank reductions are needed)."""
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_enabled() else 1


def get_rank() -> int:
    """Global rank of this process (0 without a process group)."""
    return dist.get_rank() if is_enabled() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_enabled():
        dist.barrier()


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs: rank, world size, local rank and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: DeviceChoice | str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU; ``"cuda"`` without CUDA is an error."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available; pass --train.device cpu (or auto)")
        return torch.device("cuda", local_rank)
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; choose auto, cpu or cuda")


def init_distributed(device: DeviceChoice | str = "auto", timeout_s: float = 1800.0) -> DistributedContext:
    """Join the process group that ``torchrun`` describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``); a plain ``python`` launch gives a single-process context.

    NCCL is used on CUDA devices, gloo on CPU. Idempotent: an existing process group is reused.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size <= 1 and not is_enabled():
        return DistributedContext(device=dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not is_enabled():
        if "MASTER_ADDR" not in os.environ or "RANK" not in os.environ:
            raise ValueError(
                f"WORLD_SIZE={world_size} but RANK/MASTER_ADDR are not set; launch with "
                "`torchrun --nproc_per_node=N -m experiments.pretrain ...`"
            )
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    ctx = DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=dev,
        backend=dist.get_backend(),
    )
    logger.info("process group: rank %d/%d on %s (%s)", ctx.rank, ctx.world_size, ctx.device, ctx.backend)
    return ctx


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if is_enabled():
        dist.destroy_process_group()


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (no-op without a process group). Returns ``tensor``."""
    if is_enabled():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max_(tensor: torch.Tensor) -> torch.Tensor:
    """In-place max over ranks (no-op without a process group). Returns ``tensor``."""
    if is_enabled():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


class _GatherWithGrad(torch.autograd.Function):
    """``all_gather`` along dim 0 whose backward sums the gradients of all ranks and keeps the local slice
    (all_reduce + slice, so it works on gloo, which lacks reduce_scatter)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        ctx.rank, ctx.n = dist.get_rank(), tensor.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` ``(B, ...)`` of every rank along dim 0 -> ``(W * B, ...)``, differentiably.

    Every rank must pass the same shape. If each rank computes the same loss of the gathered tensor and the
    gradients are then averaged over ranks (DDP), the result equals one process computing that loss.
    """
    if not is_enabled() or dist.get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)
