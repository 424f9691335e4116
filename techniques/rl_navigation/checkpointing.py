"""Layout of a two-phase run's checkpoints and the crash-safe way they are written.

``<run_dir>/checkpoints/<name>/`` holds ``policy.zip`` (SB3), ``encoder.pth`` (+ ``.json``; official DINOv2 key
format) and ``state.pt`` (forward model, optimisers, normaliser statistics, target network, counters, RNG);
``<run_dir>/checkpoints/latest`` names the most recent one. A checkpoint folder is written under a temporary
name and renamed into place, then the pointer file is replaced atomically, so a crash leaves either the old
or the new checkpoint, never a mix.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from encoders.checkpoint import atomic_write_text

CHECKPOINT_DIR = "checkpoints"
LATEST_POINTER = "latest"
POLICY_FILE = "policy.zip"
ENCODER_FILE = "encoder.pth"
STATE_FILE = "state.pt"


def checkpoint_dir(run_dir: str | os.PathLike, name: str = LATEST_POINTER) -> Path:
    """The folder of checkpoint ``name`` of a run (``"latest"`` follows the pointer file)."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if name == LATEST_POINTER:
        pointer = root / LATEST_POINTER
        if not pointer.exists():
            raise FileNotFoundError(f"no checkpoint in {run_dir} ({pointer} missing); is this a two_phase run folder?")
        name = pointer.read_text().strip()
    path = root / name
    if not (path / STATE_FILE).exists():
        available = list_checkpoints(run_dir)
        raise FileNotFoundError(f"checkpoint {path} not found; available: {', '.join(available) or 'none'}")
    return path


def list_checkpoints(run_dir: str | os.PathLike) -> list[str]:
    """Names of the complete checkpoints of a run."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / STATE_FILE).exists())


def write_checkpoint(run_dir: str | os.PathLike, name: str, write_files: Callable[[Path], None]) -> Path:
    """Create ``checkpoints/<name>/`` with ``write_files(tmp_folder)``, swap it into place, point ``latest`` at it."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final, tmp, old = root / name, root / f".{name}.tmp", root / f".{name}.old"
    for stale in (tmp, old):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir()
    write_files(tmp)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)
    atomic_write_text(name + "\n", root / LATEST_POINTER)
    return final


__all__ = [
    "CHECKPOINT_DIR",
    "ENCODER_FILE",
    "LATEST_POINTER",
    "POLICY_FILE",
    "STATE_FILE",
    "checkpoint_dir",
    "list_checkpoints",
    "write_checkpoint",
]
