"""AdamW parameter groups with layer-wise learning-rate decay, a patch-embedding lr multiplier and no
weight decay on biases, norms and LayerScale gammas (the official rules).

Note: as in the official code (and ``param_groups.json`` fixture), ``cls_token``, ``pos_embed``,
``mask_token`` and ``register_tokens`` *do* get weight decay (multiplier 1.0).

Reference: Oquab et al. 2023, "DINOv2" (``dinov2/utils/param_groups.py``); Clark et al. 2020, "ELECTRA"
(layer-wise lr decay).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)

_EMBEDDING_NAMES = ("pos_embed", "patch_embed", "mask_token", "cls_token", "register_tokens")
_CHUNKED_BLOCK = re.compile(r"(?:^|\.)blocks\.\d+\.(\d+)\.")
_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.")


def get_vit_layer_id(name: str, num_layers: int) -> int:
    """Depth index of a backbone parameter: 0 for the embeddings (patch / position / cls / mask / register
    tokens, as the official ``get_vit_lr_decay_rate``), ``i + 1`` for block ``i`` (``blocks.i.*`` or chunked
    ``blocks.c.i.*``), ``num_layers + 1`` otherwise (final norm, heads)."""
    if any(token in name for token in _EMBEDDING_NAMES):
        return 0
    if ".residual." not in name:
        m = _CHUNKED_BLOCK.search(name) or _BLOCK.search(name)
        if m:
            return int(m.group(1)) + 1
    return num_layers + 1


def get_vit_lr_decay_rate(name: str, lr_decay_rate: float = 1.0, num_layers: int = 12) -> float:
    """``lr_decay_rate ** (num_layers + 1 - layer_id)``: 1 at the top, smallest at the embeddings."""
    return lr_decay_rate ** (num_layers + 1 - get_vit_layer_id(name, num_layers))


def _num_blocks(model: nn.Module) -> int:
    if hasattr(model, "n_blocks"):
        return int(model.n_blocks)
    if hasattr(model, "blocks"):
        return len(model.blocks)
    if hasattr(model, "backbone") and hasattr(model.backbone, "blocks"):
        return len(model.backbone.blocks)
    return 0


def get_params_groups_with_decay(
    model: nn.Module, lr_decay_rate: float = 1.0, patch_embed_lr_mult: float = 1.0
) -> list[dict[str, Any]]:
    """One group per trainable parameter: ``{"params", "name", "lr_multiplier", "wd_multiplier", "is_last_layer"}``.

    For a backbone (a module with ``blocks``) the lr multiplier decays with depth; for heads (no blocks)
    it is 1. Biases, norms and ``gamma`` get ``wd_multiplier`` 0; names containing ``last_layer`` are
    flagged ``is_last_layer`` (frozen during the first epochs); ``patch_embed`` gets ``patch_embed_lr_mult``.
    """
    n_blocks = _num_blocks(model)
    groups = []
    for name, param in model.named_parameters():
        name = name.replace("_fsdp_wrapped_module.", "").replace("_orig_mod.", "")
        if not param.requires_grad:
            continue
        lr_mult = get_vit_lr_decay_rate(name, lr_decay_rate, n_blocks) if n_blocks > 0 else 1.0
        d = {"params": param, "name": name, "lr_multiplier": lr_mult, "wd_multiplier": 1.0, "is_last_layer": False}
        if "last_layer" in name:
            d["is_last_layer"] = True
        if name.endswith(".bias") or "norm" in name or "gamma" in name:
            d["wd_multiplier"] = 0.0
        if "patch_embed" in name:
            d["lr_multiplier"] *= patch_embed_lr_mult
        groups.append(d)
        logger.debug("%s: lr_multiplier %s, wd_multiplier %s", name, d["lr_multiplier"], d["wd_multiplier"])
    return groups


def fuse_params_groups(
    all_params_groups: Iterable[dict[str, Any]],
    keys: tuple[str, ...] = ("lr_multiplier", "wd_multiplier", "is_last_layer"),
) -> list[dict[str, Any]]:
    """Merge per-parameter groups with identical ``keys`` into one optimizer group each (order preserved)."""
    fused: dict[tuple, dict[str, Any]] = {}
    for d in all_params_groups:
        identifier = tuple(d[k] for k in keys)
        if identifier not in fused:
            fused[identifier] = {**{k: d[k] for k in keys}, "params": []}
        fused[identifier]["params"].append(d["params"])
    return list(fused.values())
