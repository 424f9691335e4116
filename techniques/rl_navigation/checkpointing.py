"""Layout of a two-phase run's checkpoints and the crash-safe way they are written.

``<run_dir>/checkpoints/<name>/`` holds ``policy.zip`` (SB3), ``encoder.pth`` (+ ``.json``; official DINOv2 key
format) and ``state.pt`` (forward model, optimisers, normaliser statistics, target network, counters, RNG);
``<run_dir>/checkpoints/latest`` names the most recent one. A checkpoint folder is written under a temporary
name and renamed into place, then the pointer file is replaced atomically, so a crash leaves either the old
or the new checkpoint, never a mix. A checkpoint damaged later (a truncated copy, a disk error) is skipped by
:func:`load_newest_checkpoint`, which falls back to the newest intact one with a warning naming both.
"""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders.utils.io import (
    CheckpointError,
    atomic_write_text,
    disk_full_error,
    file_versions,
    load_file,
    load_newest_intact,
)

CHECKPOINT_DIR = "checkpoints"
LATEST_POINTER = "latest"
POLICY_FILE = "policy.zip"
ENCODER_FILE = "encoder.pth"
STATE_FILE = "state.pt"

logger = logging.getLogger(__name__)

#: What an SB3 ``save`` archive always holds
_POLICY_MEMBERS = ("data", "policy.pth")


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


def check_policy_file(path: str | os.PathLike) -> Path:
    """``path`` (a ``policy.zip``) after checking that it is a complete SB3 archive (SB3 would otherwise report a
    truncated file as "Names of parameters do not match"); :class:`CheckpointError` names the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"policy file not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            # a truncated archive can still open: the nested policy.pth is itself a zip, whose directory is found
            missing = sorted(set(_POLICY_MEMBERS) - set(archive.namelist()))
            bad = archive.testzip() if not missing else None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"could not read {path}: the policy file is corrupt or truncated ({e})") from e
    if missing or bad is not None:
        what = f"it lacks {', '.join(missing)}" if missing else f"member {bad} fails its CRC check"
        raise CheckpointError(f"could not read {path}: the policy file is corrupt or truncated ({what})")
    return path


def read_checkpoint(folder: str | os.PathLike) -> dict[str, Any]:
    """``state.pt`` of a checkpoint folder after checking that all its files are readable (policy archive,
    encoder weights); :class:`CheckpointError` names the damaged file."""
    folder = Path(folder)
    state = load_file(folder / STATE_FILE)
    check_policy_file(folder / POLICY_FILE)
    load_file(folder / ENCODER_FILE)
    return state


def load_newest_checkpoint(run_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """The checkpoint a resume continues from, ``(folder, state)``: the one ``latest`` names, or, if it is damaged
    or missing, the newest intact one (by the time its state was written), with a warning that names both."""
    root = Path(run_dir) / CHECKPOINT_DIR
    pointer = root / LATEST_POINTER
    candidates = sorted(
        (root / name for name in list_checkpoints(run_dir)),
        key=lambda p: (p / STATE_FILE).stat().st_mtime,
        reverse=True,
    )
    if pointer.exists():
        latest = root / pointer.read_text().strip()
        candidates = [latest] + [c for c in candidates if c != latest]
        if not (latest / STATE_FILE).exists():
            logger.warning("%s names %s, which is missing; looking for the newest intact checkpoint", pointer, latest)
            candidates = candidates[1:]
    if not candidates:
        raise FileNotFoundError(f"no checkpoint in {run_dir} ({root} holds none); is this a two_phase run folder?")
    folder, state, _ = load_newest_intact(candidates, read_checkpoint, what="checkpoint")
    return folder, state


def check_run_folder(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` as a two-phase run folder to resume, or an error that says what the folder is instead.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: a pretraining or distillation run (``experiments.pretrain`` / ``distill``), the ``pretrain``
            subfolder of a two-phase run, or a folder with neither ``config.json`` nor ``checkpoints/``.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume {path}: no such run folder")
    kind = _encoder_run_kind(path)
    if kind is not None:
        cli, backbone = kind
        owner = path.parent.parent if path.name == "run" and path.parent.name == "pretrain" else None
        hint = f"; to continue the two_phase run it belongs to, pass --resume {owner}" if owner else ""
        raise ValueError(
            f"--resume {path} is an encoder {cli} run (experiments.{cli}), not a two_phase run: continue it with "
            f"python -m experiments.{cli} <its flags> --output {path} --resume, or train on its encoder with "
            f"--encoder-weights {path / backbone}{hint}"
        )
    if _encoder_run_kind(path / "run") is not None:
        raise ValueError(
            f"--resume {path} is the pretraining folder of the two_phase run {path.parent}; pass --resume {path.parent}"
        )
    if not (path / "config.json").exists():
        raise ValueError(f"--resume {path} is not a two_phase run folder (it has no config.json)")
    return path


def _encoder_run_kind(path: Path) -> tuple[str, str] | None:
    """``("pretrain", backbone file)`` or ``("distill", ...)`` when ``path`` is an encoder training run folder."""
    if not file_versions(path / "checkpoint.pth"):  # the kept versions of an encoder run's checkpoint
        return None
    if (path / "student_backbone.pth").exists() or '"teacher_weights"' in _read_text(path / "config.json"):
        return "distill", "student_backbone.pth"
    return "pretrain", "teacher_backbone.pth"


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def list_checkpoints(run_dir: str | os.PathLike) -> list[str]:
    """Names of the complete checkpoints of a run."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / STATE_FILE).exists())


def arrays_to_tensors(obj: Any) -> Any:
    """``obj`` with every numpy array turned into a tensor (``state.pt`` is read with ``weights_only=True``, which
    refuses numpy arrays); :func:`tensors_to_arrays` inverts it, dtypes included."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: arrays_to_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(arrays_to_tensors(v) for v in obj)
    return obj


def tensors_to_arrays(obj: Any) -> Any:
    """Inverse of :func:`arrays_to_tensors`."""
    if torch.is_tensor(obj):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: tensors_to_arrays(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(tensors_to_arrays(v) for v in obj)
    return obj


def write_checkpoint(run_dir: str | os.PathLike, name: str, write_files: Callable[[Path], None]) -> Path:
    """Create ``checkpoints/<name>/`` with ``write_files(tmp_folder)``, swap it into place, point ``latest`` at it."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final, tmp, old = root / name, root / f".{name}.tmp", root / f".{name}.old"
    for stale in (tmp, old):
        if stale.exists():
            shutil.rmtree(stale)
    for stale in root.glob(f".{LATEST_POINTER}.*.tmp"):  # a pointer update cut short (SIGKILL)
        stale.unlink(missing_ok=True)
    tmp.mkdir()
    try:
        write_files(tmp)
    except BaseException as e:
        full = disk_full_error(e, final)
        shutil.rmtree(tmp, ignore_errors=True)
        if full is not None:
            raise full from e
        raise
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
    "arrays_to_tensors",
    "check_policy_file",
    "check_run_folder",
    "checkpoint_dir",
    "list_checkpoints",
    "load_newest_checkpoint",
    "read_checkpoint",
    "tensors_to_arrays",
    "write_checkpoint",
]
