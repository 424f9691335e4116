"""Numeric precision of encoder work: fp32, or bf16 autocast, and the ``auto`` rule shared by every CLI.

``auto`` picks bf16 autocast on CUDA and on CPUs whose instruction set multiplies bf16 natively
(x86 ``avx512_bf16`` / ``amx_bf16``, Arm ``bf16``), where a bf16 GEMM runs several times faster than an fp32
one; elsewhere bf16 is emulated and slower, so ``auto`` stays in fp32. Parameters, optimiser state, cached
features and checkpoints stay fp32 in every mode: autocast only changes the dtype of the matmuls.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")

_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set[str]:
    """The CPU feature flags the OS reports (Linux ``/proc/cpuinfo``; empty where unknown)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU executes bf16 dot products natively (checked at run time, never assumed).

    Linux: the ``avx512_bf16`` or ``amx_bf16`` flags (x86) or ``bf16`` (Arm) in ``/proc/cpuinfo``.
    macOS on Apple silicon: ``sysctl hw.optional.arm.FEAT_BF16``. Anything else: False.
    """
    flags = _cpu_flags()
    if any(f in flags for f in _X86_BF16_FLAGS) or "bf16" in flags:
        return True
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=5, check=False
            )
            return out.stdout.strip() == "1"
        except (OSError, subprocess.SubprocessError):
            return False
    return False


def check_precision(precision: str, field: str = "precision") -> Precision:
    """``precision`` if it is one of auto/fp32/bf16, else a ``ValueError`` naming ``field`` and the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"{field} must be one of auto, fp32, bf16, got {precision!r}")
    return precision  # type: ignore[return-value]


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``: ``torch.bfloat16`` or ``None`` (plain fp32).

    ``auto``: bf16 on CUDA and on CPUs with native bf16 (:func:`cpu_has_native_bf16`), fp32 elsewhere.
    ``bf16`` is honoured on any device (emulated, and slower, on CPUs without native support).
    """
    check_precision(precision)
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return None


def describe(dtype: torch.dtype | None) -> str:
    """``"bf16"`` or ``"fp32"`` for logs and reports."""
    return "bf16" if dtype == torch.bfloat16 else "fp32"


@contextlib.contextmanager
def autocast(device: torch.device | str, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast(device.type, dtype)`` when ``dtype`` is set, a no-op otherwise."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        yield


__all__ = [
    "PRECISIONS",
    "Precision",
    "autocast",
    "autocast_dtype",
    "check_precision",
    "cpu_has_native_bf16",
    "describe",
]
