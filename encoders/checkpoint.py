"""Backbone checkpoints: official-format export and strict loading (files written and read through
:mod:`encoders.utils.io`).

The on-disk backbone format is the official DINOv2 one: a flat ``state_dict`` with keys such as
``cls_token``, ``pos_embed``, ``blocks.0.attn.qkv.weight`` (``block_chunks=0``), so files written
here load in the official code and official ``*_pretrain.pth`` files load here. An optional JSON
sidecar (``<file>.json``) records the registry name and constructor overrides.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from encoders.utils.io import CheckpointError, atomic_save, atomic_write_text

logger = logging.getLogger(__name__)

# Prefixes stripped when a backbone is wrapped (training checkpoints, DDP, torch.compile).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "teacher.backbone.", "student.backbone.", "backbone.")
# Keys under which training checkpoints keep a backbone (tried in this order).
_NESTED_KEYS = ("teacher", "model", "state_dict", "backbone", "student")


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
