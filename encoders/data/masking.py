"""Block-wise masking of a patch grid for masked image modelling (iBOT / DINOv2).

Reference: Bao et al. 2022, "BEiT" (block-wise masking); Oquab et al. 2023, "DINOv2"
(``dinov2/data/masking.py``).
"""

from __future__ import annotations

import math
import random

import numpy as np


class MaskingGenerator:
    """Draw a boolean ``(H, W)`` mask made of random rectangles until ``num_masking_patches`` are masked.

    Each rectangle has an area in ``[min_num_patches, remaining budget]`` (capped by ``max_num_patches``)
    and a log-uniform aspect ratio in ``[min_aspect, max_aspect]``; rectangles may overlap. Same algorithm
    and random-call sequence as the official generator (so a seeded ``random.Random`` reproduces it).

    Args:
        input_size: patch grid ``(H, W)`` or a side ``S`` for ``(S, S)``.
        num_masking_patches: default budget (kept for API parity; :meth:`__call__` takes the budget).
        min_num_patches: smallest rectangle area.
        max_num_patches: largest rectangle area (default ``num_masking_patches``).
        min_aspect: smallest aspect ratio ``h / w``; ``max_aspect`` defaults to ``1 / min_aspect``.
        rng: random source (default: the global ``random`` module).
    """

    def __init__(
        self,
        input_size: int | tuple[int, int],
        num_masking_patches: int | None = None,
        min_num_patches: int = 4,
        max_num_patches: float | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
        rng: random.Random | None = None,
    ):
        if not isinstance(input_size, tuple):
            input_size = (int(input_size),) * 2
        self.height, self.width = input_size
        if self.height < 1 or self.width < 1:
            raise ValueError(f"input_size must be positive, got {input_size}")
        if min_aspect <= 0:
            raise ValueError(f"min_aspect must be > 0, got {min_aspect}")
        self.num_patches = self.height * self.width
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.rng = rng

    def __repr__(self) -> str:
        return (
            f"MaskingGenerator({self.height}, {self.width} -> [{self.min_num_patches} ~ {self.max_num_patches}], "
            f"max = {self.num_masking_patches}, {self.log_aspect_ratio[0]:.3f} ~ {self.log_aspect_ratio[1]:.3f})"
        )

    def get_shape(self) -> tuple[int, int]:
        return self.height, self.width

    def _mask(self, mask: np.ndarray, max_mask_patches: float, rng) -> int:
        """Add one rectangle (10 attempts); returns the number of newly masked patches."""
        delta = 0
        for _ in range(10):
            target_area = rng.uniform(self.min_num_patches, max_mask_patches)
            aspect_ratio = math.exp(rng.uniform(*self.log_aspect_ratio))
            h = round(math.sqrt(target_area * aspect_ratio))
            w = round(math.sqrt(target_area / aspect_ratio))
            if w < self.width and h < self.height:
                top = rng.randint(0, self.height - h)
                left = rng.randint(0, self.width - w)
                region = mask[top : top + h, left : left + w]
                num_masked = int(region.sum())
                if 0 < h * w - num_masked <= max_mask_patches:
                    delta += h * w - num_masked
                    region[...] = True
                if delta > 0:
                    break
        return delta

    def __call__(self, num_masking_patches: int = 0, rng: random.Random | None = None) -> np.ndarray:
        """A boolean mask ``(H, W)`` with about ``num_masking_patches`` masked patches (at most that many)."""
        rng = rng or self.rng or random
        mask = np.zeros(shape=self.get_shape(), dtype=bool)
        mask_count = 0
        while mask_count < num_masking_patches:
            max_mask_patches = min(num_masking_patches - mask_count, self.max_num_patches)
            delta = self._mask(mask, max_mask_patches, rng)
            if delta == 0:
                break
            mask_count += delta
        return mask
