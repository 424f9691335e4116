"""Prediction targets for phase 2: where the forward model's *next-step* features come from.

When the encoder is trained by the forward model's loss, the cheapest way to lower the loss is to make the
features easy to predict — ultimately constant (collapse). The target side therefore never passes gradients,
and by default it comes from a slowly moving copy of the fine-tuned blocks:

- ``"ema"`` (default): an exponential moving average of the top blocks and the final norm, updated once per
  rollout after the encoder's update (BYOL / DINO-style teacher). The online blocks must chase a target that
  moves only slowly, which removes the immediate reward for shrinking the features.
- ``"frozen"``: the phase-1 copy of the top blocks, never updated (targets fixed in the pretrained space).
- ``"online"``: the live online encoder under stop-gradient (SimSiam-style; least protected): the targets are the
  online features themselves (the environments' cache, which holds the current weights' features whenever the
  forward model trains: the encoder steps once per rollout, after the forward model's minibatches, and the cache
  is refreshed right after).

Only the top ``n`` blocks and the final norm are copied (:class:`TopBlocks`): the targets are recomputed from
the same cached boundary tokens as the online features, so the lower blocks are never duplicated.

Reference: Grill et al. 2020, "Bootstrap Your Own Latent" (EMA target); Chen & He 2021, "Exploring Simple
Siamese Representation Learning" (stop-gradient).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import nn

from encoders.vision_transformer import DinoVisionTransformer, FeatureDict, features_dict, run_blocks

TargetMode = Literal["ema", "frozen", "online"]
TARGET_MODES: tuple[str, ...] = ("ema", "frozen", "online")


class TopBlocks(nn.Module):
    """A frozen copy of blocks ``start..depth-1`` and the final norm of a backbone, with the backbone's
    ``forward_from_block`` contract (so :class:`envs.features.SceneFeatures` can run it on boundary tokens).

    Args:
        backbone: the source backbone (copied, not shared).
        start: the first copied block (``depth - n`` for the top ``n`` blocks).
    """

    def __init__(self, backbone: DinoVisionTransformer, start: int):
        super().__init__()
        if not 0 <= start <= backbone.n_blocks:
            raise ValueError(f"start must be in [0, {backbone.n_blocks}], got {start}")
        self.start = int(start)
        self.n_blocks = int(backbone.n_blocks)
        self.embed_dim = int(backbone.embed_dim)
        self.patch_size = int(backbone.patch_size)
        self.num_register_tokens = int(backbone.num_register_tokens)
        self.blocks = copy.deepcopy(backbone.blocks[self.start :])
        self.norm = copy.deepcopy(backbone.norm)
        self.requires_grad_(False)
        self.eval()

    @property
    def first_trainable_block(self) -> int:
        """Nothing here trains: ``depth``."""
        return self.n_blocks

    def source_parameters(self, backbone: DinoVisionTransformer) -> list[nn.Parameter]:
        """The backbone parameters mirrored by :meth:`parameters`, in the same order."""
        return [*backbone.blocks[self.start :].parameters(), *backbone.norm.parameters()]

    def forward_from_block(
        self, tokens: torch.Tensor, block_index: int, masks: torch.Tensor | None = None
    ) -> FeatureDict:
        """Tokens entering block ``start`` ``(B, T, D)`` -> the backbone's feature dict (normalised tokens)."""
        if block_index != self.start:
            raise ValueError(f"these top blocks start at block {self.start}, got tokens for block {block_index}")
        return features_dict(self.norm, run_blocks(self.blocks, tokens), self.num_register_tokens, masks)


class TargetEncoder:
    """The network that produces stop-gradient prediction targets (see the module docstring).

    Args:
        online: the backbone being fine-tuned.
        n_top: number of fine-tuned top blocks.
        mode: ``"ema"``, ``"frozen"`` or ``"online"``.
        momentum: EMA momentum per :meth:`update` (``target = m * target + (1 - m) * online``).
    """

    def __init__(self, online: DinoVisionTransformer, n_top: int, mode: TargetMode = "ema", momentum: float = 0.95):
        if mode not in TARGET_MODES:
            raise ValueError(f"unknown target mode {mode!r}; choose one of {', '.join(TARGET_MODES)}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"target momentum must be in [0, 1], got {momentum}")
        self.mode: TargetMode = mode
        self.momentum = float(momentum)
        self.online = online
        self.start = int(online.n_blocks) - int(n_top)
        self.copy = None if mode == "online" else TopBlocks(online, self.start)

    @property
    def network(self) -> nn.Module:
        """What to run on boundary tokens for targets: the copy, or the online backbone (``"online"``)."""
        return self.online if self.copy is None else self.copy

    @property
    def separate(self) -> bool:
        """Whether targets differ from the online features (``False`` for ``"online"``)."""
        return self.copy is not None

    @torch.no_grad()
    def update(self) -> bool:
        """EMA step from the online weights (``"ema"`` only). Returns whether the target changed."""
        if self.mode != "ema" or self.copy is None:
            return False
        src = self.copy.source_parameters(self.online)
        dst = list(self.copy.parameters())
        torch._foreach_mul_(dst, self.momentum)
        torch._foreach_add_(dst, [p.detach() for p in src], alpha=1.0 - self.momentum)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "momentum": self.momentum,
            "start": self.start,
            "copy": None if self.copy is None else self.copy.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["mode"] != self.mode or int(state["start"]) != self.start:
            raise ValueError(
                f"saved target ({state['mode']}, top blocks from {state['start']}) does not match this run "
                f"({self.mode}, from {self.start}); resume with the same --target-mode and --unfreeze-layers"
            )
        if self.copy is not None and state["copy"] is not None:
            self.copy.load_state_dict(state["copy"])


__all__ = ["TARGET_MODES", "TargetEncoder", "TargetMode", "TopBlocks"]
