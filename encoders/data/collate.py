"""Collate multi-crop samples into a training batch with iBOT masks (the official output format).

Reference: Oquab et al. 2023, "DINOv2" (``dinov2/data/collate.py``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from encoders.data.masking import MaskingGenerator


def collate_data_and_cast(
    samples_list: Sequence[tuple[dict[str, Any], Any]],
    mask_ratio_tuple: tuple[float, float],
    mask_probability: float,
    dtype: torch.dtype,
    n_tokens: int | None = None,
    mask_generator: MaskingGenerator | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Stack the crops of ``B`` samples and draw block masks for a fraction of the global crops.

    ``samples_list``: ``(crops, target)`` pairs where ``crops`` has ``global_crops`` (G tensors ``(3, S, S)``)
    and ``local_crops`` (L tensors ``(3, s, s)``). Crops are grouped crop-major: all first global crops,
    then all second ones.

    ``int(G * B * mask_probability)`` global crops get a mask; their ratios are spread over
    ``mask_ratio_tuple`` in equal strata (the i-th masked crop draws its ratio in the i-th stratum of
    ``linspace(lo, hi, n + 1)``); the masks are then shuffled over the crops.

    Returns (official keys):
        ``collated_global_crops`` ``(G*B, 3, S, S)``, ``collated_local_crops`` ``(L*B, 3, s, s)`` (in ``dtype``),
        ``collated_masks`` ``(G*B, N)`` bool, ``mask_indices_list`` ``(M,)`` flat indices of the masked
        patches in ``collated_masks.flatten()``, ``masks_weight`` ``(M,)`` = 1 / (masked patches of that
        crop), ``upperbound`` (int, an upper bound of ``M`` for fixed-size buffers), ``n_masked_patches``
        ``(1,)`` long = ``M``.
    """
    rng = rng or random
    if not samples_list:
        raise ValueError("cannot collate an empty batch")
    if mask_generator is None:
        raise ValueError("collate_data_and_cast needs a mask_generator (a MaskingGenerator for the patch grid)")
    n_tokens = n_tokens if n_tokens is not None else mask_generator.num_patches
    n_global_crops = len(samples_list[0][0]["global_crops"])
    n_local_crops = len(samples_list[0][0]["local_crops"])
    collated_global_crops = torch.stack(
        [s[0]["global_crops"][i] for i in range(n_global_crops) for s in samples_list]
    )  # (G*B, 3, S, S)
    if n_local_crops:
        collated_local_crops = torch.stack(
            [s[0]["local_crops"][i] for i in range(n_local_crops) for s in samples_list]
        )  # (L*B, 3, s, s)
    else:
        collated_local_crops = collated_global_crops.new_zeros((0, *collated_global_crops.shape[1:]))

    b = len(collated_global_crops)
    n = n_tokens
    n_samples_masked = int(b * mask_probability)
    probs = torch.linspace(*mask_ratio_tuple, n_samples_masked + 1)
    upperbound = 0
    masks_list = []
    for i in range(n_samples_masked):
        prob_min, prob_max = float(probs[i]), float(probs[i + 1])
        masks_list.append(torch.from_numpy(mask_generator(int(n * rng.uniform(prob_min, prob_max)), rng=rng)))
        upperbound += int(n * prob_max)
    for _ in range(n_samples_masked, b):
        masks_list.append(torch.from_numpy(mask_generator(0, rng=rng)))
    rng.shuffle(masks_list)

    collated_masks = torch.stack(masks_list).flatten(1)  # (G*B, N)
    return {
        "collated_global_crops": collated_global_crops.to(dtype),
        "collated_local_crops": collated_local_crops.to(dtype),
        **pack_masks(collated_masks, upperbound),
    }


def pack_masks(collated_masks: torch.Tensor, upperbound: int | None = None) -> dict[str, Any]:
    """The mask entries of a batch from boolean masks ``(B, N)``: ``collated_masks``, ``mask_indices_list``
    ``(M,)``, ``masks_weight`` ``(M,)``, ``upperbound`` (default ``M``) and ``n_masked_patches`` ``(1,)``."""
    collated_masks = collated_masks.bool()
    mask_indices_list = collated_masks.flatten().nonzero().flatten()
    masks_weight = (1 / collated_masks.sum(-1).clamp(min=1.0)).unsqueeze(-1).expand_as(collated_masks)[collated_masks]
    n_masked = mask_indices_list.shape[0]
    return {
        "collated_masks": collated_masks,
        "mask_indices_list": mask_indices_list,
        "masks_weight": masks_weight,
        "upperbound": max(int(upperbound if upperbound is not None else n_masked), n_masked),
        "n_masked_patches": torch.full((1,), fill_value=n_masked, dtype=torch.long),
    }


class MaskedMultiCropCollate:
    """A picklable collate function for ``DataLoader`` workers: stacks multi-crop samples and draws masks.

    The patch grid is read from the global crops (so a change of crop size, e.g. high-resolution
    adaptation, needs no new collate), with one :class:`MaskingGenerator` per grid (max rectangle area
    half the grid, as in the official training script).

    Randomness is reproducible and independent of worker scheduling: when the samples' targets are
    integer stream positions (see ``encoders.train.data``), the masks of a batch are drawn from
    ``random.Random((seed, first position))``; otherwise from the global ``random`` module.

    Args:
        patch_size: backbone patch size in pixels.
        mask_ratio_tuple: ``(min, max)`` fraction of masked patches per masked crop (0.1, 0.5).
        mask_probability: fraction of global crops that get a mask (0.5).
        dtype: dtype of the collated images.
        seed: seed of the mask stream.
    """

    def __init__(
        self,
        patch_size: int,
        mask_ratio_tuple: tuple[float, float] = (0.1, 0.5),
        mask_probability: float = 0.5,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ):
        lo, hi = mask_ratio_tuple
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"mask_ratio_tuple must satisfy 0 <= min <= max <= 1, got {mask_ratio_tuple}")
        if not 0.0 <= mask_probability <= 1.0:
            raise ValueError(f"mask_probability must be in [0, 1], got {mask_probability}")
        self.patch_size = patch_size
        self.mask_ratio_tuple = (float(lo), float(hi))
        self.mask_probability = mask_probability
        self.dtype = dtype
        self.seed = seed
        self._generators: dict[tuple[int, int], MaskingGenerator] = {}

    def mask_generator(self, grid: tuple[int, int]) -> MaskingGenerator:
        """The (cached) generator for a ``(H, W)`` patch grid."""
        if grid not in self._generators:
            self._generators[grid] = MaskingGenerator(input_size=grid, max_num_patches=0.5 * grid[0] * grid[1])
        return self._generators[grid]

    def __call__(self, samples_list: Sequence[tuple[dict[str, Any], Any]]) -> dict[str, Any]:
        first = samples_list[0][0]["global_crops"][0]
        h, w = first.shape[-2] // self.patch_size, first.shape[-1] // self.patch_size
        position = samples_list[0][1]
        rng = random.Random(f"{self.seed}:{position}") if isinstance(position, int) and position >= 0 else None
        return collate_data_and_cast(
            samples_list,
            mask_ratio_tuple=self.mask_ratio_tuple,
            mask_probability=self.mask_probability,
            dtype=self.dtype,
            n_tokens=h * w,
            mask_generator=self.mask_generator((h, w)),
            rng=rng,
        )
