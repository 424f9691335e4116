"""Infinite, deterministic, resumable sampling of dataset indices, sharded across distributed ranks.

The global stream is the concatenation of one permutation of ``range(dataset_size)`` per epoch
(permutation ``e`` drawn with a ``torch.Generator`` seeded ``seed + e``; the identity when
``shuffle=False``). Rank ``r`` of ``W`` takes the stream positions ``r, r + W, r + 2W, ...``, so:

- within an epoch, ranks get disjoint indices and together cover the dataset;
- the ``k``-th batch of ``b`` samples on every rank together are exactly stream positions
  ``[k W b, (k + 1) W b)``: ``W`` ranks with batch ``b`` see the same samples per step as 1 rank with
  batch ``W b`` (in a different order);
- resuming with ``start_index = n`` (samples this rank already consumed) continues the same stream.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ShardedInfiniteSampler(Sampler[int]):
    """Endless stream of dataset indices for one rank (see the module docstring for the exact order).

    Args:
        dataset_size: number of samples in the dataset.
        rank: this process's rank, ``0 <= rank < world_size``.
        world_size: number of ranks sharing the stream.
        seed: permutation of epoch ``e`` is seeded with ``seed + e``.
        shuffle: ``False`` yields the indices in order (epoch after epoch).
        start_index: number of samples this rank already consumed (resume: iterations done x per-rank
            batch size, counted from what the trainer used, not what the DataLoader prefetched).

    The sampler has no length; use it with ``DataLoader(..., sampler=sampler)`` and stop after the wanted
    number of iterations.
    """

    def __init__(
        self,
        dataset_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        start_index: int = 0,
    ):
        if dataset_size < 1:
            raise ValueError(f"dataset_size must be >= 1, got {dataset_size}; is the dataset empty?")
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}.")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must satisfy 0 <= rank < world_size={world_size}, got {rank}.")
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0 (samples already consumed by this rank), got {start_index}.")
        self.dataset_size = int(dataset_size)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.start_index = int(start_index)

    def epoch_permutation(self, epoch: int) -> torch.Tensor:
        """The order of epoch ``epoch`` in the global stream: ``(dataset_size,)`` int64."""
        if not self.shuffle:
            return torch.arange(self.dataset_size)
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.dataset_size, generator=generator)

    def __iter__(self) -> Iterator[int]:
        n, step = self.dataset_size, self.world_size
        position = self.rank + self.start_index * step  # position of the next sample in the global stream
        while True:
            epoch, offset = divmod(position, n)
            chunk = self.epoch_permutation(epoch)[offset::step]
            yield from chunk.tolist()
            position += len(chunk) * step

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dataset_size={self.dataset_size}, rank={self.rank}, world_size={self.world_size}, "
            f"seed={self.seed}, shuffle={self.shuffle}, start_index={self.start_index})"
        )


__all__ = ["ShardedInfiniteSampler"]
