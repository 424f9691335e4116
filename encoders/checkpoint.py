"""Backbone checkpoints: atomic writes, safe reads, official-format export and strict loading.

The on-disk backbone format is the official DINOv2 one: a flat ``state_dict`` with keys such as
``cls_token``, ``pos_embed``, ``blocks.0.attn.qkv.weight`` (``block_chunks=0``), so files written
here load in the official code and official ``*_pretrain.pth`` files load here. An optional JSON
sidecar (``<file>.json``) records the registry name and constructor overrides.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import torch
from torch import nn

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Prefixes stripped when a backbone is wrapped (training checkpoints, DDP, torch.compile).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "teacher.backbone.", "student.backbone.", "backbone.")
# Keys under which training checkpoints keep a backbone (tried in this order).
_NESTED_KEYS = ("teacher", "model", "state_dict", "backbone", "student")


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


def extract_backbone_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """Find the backbone ``state_dict`` inside a loaded checkpoint and strip wrapper prefixes.

    Accepts a plain official state dict, ``{"state_dict": ...}`` / ``{"model": ...}`` /
    ``{"teacher": ...}`` wrappers, and keys prefixed by ``module.``, ``backbone.``,
    ``teacher.backbone.`` or ``_orig_mod.``. Head weights (``dino_head``, ``ibot_head``) are dropped.
    """
    if isinstance(obj, Mapping) and obj and not all(torch.is_tensor(v) for v in obj.values()):
        for key in _NESTED_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                return extract_backbone_state_dict(obj[key])
        raise CheckpointError(f"no backbone state_dict found in checkpoint with top-level keys {sorted(obj)[:10]}")
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a state_dict (a mapping of tensors), got {type(obj).__name__}")
    has_backbone_prefix = any(k.startswith(("backbone.", "teacher.backbone.")) for k in obj)
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if has_backbone_prefix and not re.match(r"^(module\.|_orig_mod\.)*(teacher\.|student\.)?backbone\.", key):
            continue  # heads or other modules stored beside the backbone
        changed = True
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def infer_backbone_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments that a backbone state dict implies (all but ``num_heads``, not stored).

    Returns ``embed_dim, depth, patch_size, img_size, num_register_tokens, ffn_layer, init_values``
    (``init_values`` is ``1.0`` when LayerScale keys are present, else ``None``) and ``mlp_ratio``.
    """
    try:
        embed_dim = state_dict["cls_token"].shape[-1]
        patch_size = state_dict["patch_embed.proj.weight"].shape[-1]
        n_pos = state_dict["pos_embed"].shape[1] - 1
    except KeyError as e:
        raise CheckpointError(f"not a ViT backbone state_dict: missing key {e}") from e
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k))}
    depth = max(blocks) + 1 if blocks else 0
    regs = state_dict["register_tokens"].shape[1] if "register_tokens" in state_dict else 0
    swiglu = "blocks.0.mlp.w12.weight" in state_dict
    if swiglu:
        mlp_ratio = 4.0  # SwiGLU widths are derived from 4 * D; 4 is the only ratio used by DINOv2
    elif "blocks.0.mlp.fc1.weight" in state_dict:
        mlp_ratio = state_dict["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
    else:
        mlp_ratio = 4.0
    grid = round(n_pos**0.5)
    return {
        "embed_dim": int(embed_dim),
        "depth": depth,
        "patch_size": int(patch_size),
        "img_size": int(grid * patch_size),
        "num_register_tokens": int(regs),
        "ffn_layer": "swiglufused" if swiglu else "mlp",
        "init_values": 1.0 if "blocks.0.ls1.gamma" in state_dict else None,
        "mlp_ratio": float(mlp_ratio),
    }


def describe_mismatch(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, fits: list[str] | None = None
) -> str:
    """A readable report of missing / unexpected / wrongly shaped keys between ``model`` and a file."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shape = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    )

    def _list(title: str, items: list[str]) -> str:
        if not items:
            return ""
        more = f" ... (+{len(items) - 12} more)" if len(items) > 12 else ""
        return f"\n  {title} ({len(items)}): " + ", ".join(items[:12]) + more

    lines = f"checkpoint {source} does not fit this model (strict loading)."
    lines += _list("missing keys", missing) + _list("unexpected keys", unexpected) + _list("shape mismatches", shape)
    try:
        cfg = infer_backbone_config(state_dict)
        lines += "\n  the file holds a ViT with " + ", ".join(f"{k}={v}" for k, v in cfg.items())
    except CheckpointError:
        pass
    if fits:
        lines += f"\n  it fits the registered model(s): {', '.join(fits)}; create that one instead"
    elif fits is not None:
        lines += "\n  it fits no registered model as is; pass the overrides above to encoders.create_model"
    return lines


def load_backbone_weights(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str = "<state_dict>",
    fits: list[str] | None = None,
) -> None:
    """Strictly load a backbone ``state_dict``; on any mismatch raise :class:`CheckpointError` with a report."""
    own = model.state_dict()
    ok = set(own) == set(state_dict) and all(tuple(own[k].shape) == tuple(state_dict[k].shape) for k in own)
    if not ok:
        raise CheckpointError(describe_mismatch(model, state_dict, source, fits))
    model.load_state_dict(state_dict, strict=True)


def save_backbone(
    model: nn.Module, path: str | os.PathLike, name: str | None = None, overrides: Mapping | None = None
) -> Path:
    """Export a backbone in the official key format (atomically), plus a ``<path>.json`` sidecar.

    The ``.pth`` is a plain ``state_dict`` (loadable by the official DINOv2 code); the sidecar records
    ``name`` and ``overrides`` so ``encoders.create_model_from_checkpoint(path)`` can rebuild it.
    """
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = atomic_save(sd, path)
    if name is not None:
        meta = {"name": name, "overrides": dict(overrides or {}), "format": "dinov2-backbone-state-dict"}
        atomic_write_text(json.dumps(meta, indent=2, sort_keys=True), sidecar_path(path))
    return path


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON file that describes a backbone checkpoint: ``weights.pth -> weights.pth.json``."""
    return Path(f"{path}.json")
