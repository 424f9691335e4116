"""Files written atomically, kept in versions, and read back with errors that name the file: the foundation every
layer writes through (checkpoints, configs, reports, scene exports).

- :func:`atomic_save` / :func:`atomic_write_text`: temporary file in the same folder, fsync, rename; a crash leaves
  the old file or the new one, never a truncated one; a full disk raises :class:`DiskFullError` naming the file.
- :func:`versioned_path` / :func:`file_versions`: the previous versions an ``atomic_save(..., keep_previous=k)``
  keeps.
- :func:`load_file` / :func:`load_newest_intact`: ``torch.load`` with :class:`CheckpointError` for a missing,
  corrupt or truncated file, and the fallback to the newest intact one of several.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not fit the model it is loaded into."""


class DiskFullError(OSError):
    """Writing a file failed because its file system is full (or the user's quota is used up)."""

    def __str__(self) -> str:
        return str(self.strerror)


#: Free bytes below which a failed write is taken as a full disk even without an ``ENOSPC`` in the chain
_NEARLY_FULL_BYTES = 1 << 20


def _current_umask() -> int:
    """The process umask (Python has no getter: set and restore it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _is_disk_full(error: BaseException, folder: Path) -> bool:
    """True when ``error`` (or an exception it wraps) is ``ENOSPC`` / ``EDQUOT``, or ``folder`` has ~no space left.

    ``torch.save`` reports a full disk as ``RuntimeError("[enforce fail at inline_container.cc:...]")`` with the
    ``OSError`` only in ``__context__``; writes by path report no errno at all, hence the free-space check.
    """
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        e = e.__cause__ or e.__context__
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def disk_full_error(error: BaseException, path: str | os.PathLike) -> DiskFullError | None:
    """The :class:`DiskFullError` to raise instead of ``error`` if writing ``path`` failed for lack of space
    (``None`` otherwise); call it before deleting the partial file, while the space is still used."""
    path = Path(path)
    if not isinstance(error, Exception) or isinstance(error, DiskFullError) or not _is_disk_full(error, path.parent):
        return None
    return DiskFullError(
        errno.ENOSPC,
        f"no space left on the device of {path.parent} ({_free_mib(path.parent)} free) while writing {path.name}; "
        "free some space or write the run elsewhere (the previous file, if any, is intact)",
    )


def _free_mib(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB"
    except OSError:
        return "unknown space"


def _atomic_write(path: str | os.PathLike, mode: str, write: Callable[[IO], None], keep_previous: int = 0) -> Path:
    """Write ``path`` through ``write(file)`` into a temporary file of the same folder, fsync, rename over ``path``.

    The file gets the permissions a plain ``open()`` would give (``0o666`` minus the umask), not ``mkstemp``'s
    ``0o600``. A full disk raises :class:`DiskFullError` naming the file and the free space. With
    ``keep_previous = k`` the replaced file moves to version 1, version 1 to 2, ... (see :func:`versioned_path`),
    once the new file is complete; versions above ``k`` are deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _shift_versions(path, keep_previous)
        os.replace(tmp, path)
    except BaseException as e:
        full = disk_full_error(e, path)
        if os.path.exists(tmp):
            os.unlink(tmp)
        if full is not None:
            raise full from e
        raise
    return path


def versioned_path(path: str | os.PathLike, version: int) -> Path:
    """Version ``k`` of a file kept by ``atomic_save(..., keep_previous)``: ``checkpoint.pth`` (0, the newest),
    ``checkpoint.1.pth`` (the one it replaced), ``checkpoint.2.pth``, ..."""
    path = Path(path)
    return path if version == 0 else path.with_name(f"{path.stem}.{version}{path.suffix}")


def _versions(path: Path) -> dict[int, Path]:
    found = {0: path} if path.exists() else {}
    if path.parent.is_dir():
        for p in path.parent.glob(f"{path.stem}.*{path.suffix}"):
            k = p.name[len(path.stem) + 1 : len(p.name) - len(path.suffix)]
            if k.isdigit() and int(k) > 0:
                found[int(k)] = p
    return dict(sorted(found.items()))


def file_versions(path: str | os.PathLike) -> list[Path]:
    """The existing versions of ``path`` (itself and ``<stem>.<k><suffix>``), newest first."""
    return list(_versions(Path(path)).values())


def _shift_versions(path: Path, keep: int) -> None:
    """Make room for a new ``path``: version ``k`` -> ``k + 1`` for ``k < keep``; delete versions above ``keep``."""
    for k, old in _versions(path).items():
        if k > keep:
            old.unlink()
    for k in range(keep, 0, -1):
        src = versioned_path(path, k - 1)
        if src.exists():
            os.replace(src, versioned_path(path, k))


def atomic_save(obj: Any, path: str | os.PathLike, keep_previous: int = 0) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash mid-write leaves either the old file or the new one, never a truncated checkpoint. With
    ``keep_previous = k`` the last ``k`` replaced files stay as ``<stem>.1<suffix>`` ... ``<stem>.<k><suffix>``
    (:func:`file_versions` lists them), a fallback should the newest file be damaged later.
    """
    return _atomic_write(path, "wb", lambda f: torch.save(obj, f), keep_previous)


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically (temporary file + rename)."""
    return _atomic_write(path, "w", lambda f: f.write(text))


def load_file(path: str | os.PathLike, map_location: str | torch.device = "cpu", weights_only: bool = True) -> Any:
    """``torch.load`` with errors that name the file and the fix (missing, corrupt, not a checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}; check the path (or pass pretrained=False)")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass the checkpoint file inside it")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as e:  # torch raises many types for truncated/corrupt/non-torch files
        raise CheckpointError(
            f"could not read checkpoint {path}: the file is corrupt, truncated or not a PyTorch checkpoint "
            f"({type(e).__name__}: {e}). Re-download or re-export it."
        ) from e


def load_newest_intact(
    candidates: Sequence[Path], load: Callable[[Path], T], what: str = "checkpoint", warn: bool = True
) -> tuple[Path, T, list[Path]]:
    """Load the newest readable of ``candidates`` (ordered newest first) with ``load``.

    A candidate that ``load`` rejects with :class:`CheckpointError` (truncated, corrupt) is skipped with a warning
    (unless ``warn`` is False) that names it and the one used instead. Returns ``(path, loaded, skipped)``; raises
    :class:`CheckpointError` naming every candidate when none is readable, ``FileNotFoundError`` when there is none.
    """
    if not candidates:
        raise FileNotFoundError(f"no {what} to load")
    skipped: list[tuple[Path, CheckpointError]] = []
    for path in candidates:
        try:
            loaded = load(path)
        except CheckpointError as e:
            skipped.append((path, e))
            continue
        for bad, error in skipped if warn else ():
            logger.warning(
                "%s %s is unreadable (%s); falling back to %s, the newest intact %s",
                what,
                bad,
                _short_reason(error),
                path,
                what,
            )
        return path, loaded, [bad for bad, _ in skipped]
    raise CheckpointError(
        f"no intact {what}: " + "; ".join(f"{bad} is unreadable ({_short_reason(e)})" for bad, e in skipped)
    )


def _short_reason(error: CheckpointError) -> str:
    """The first sentence of the error, which names the damaged file (``torch.load``'s messages run to a paragraph)."""
    text = str(error).strip()
    return text.split(". ")[0].splitlines()[0] if text else type(error).__name__


__all__ = [
    "CheckpointError",
    "DiskFullError",
    "atomic_save",
    "atomic_write_text",
    "disk_full_error",
    "file_versions",
    "load_file",
    "load_newest_intact",
    "versioned_path",
]
