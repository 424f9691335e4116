"""Near-duplicate removal by cosine similarity: connected components of the "similarity >= threshold" graph.

Every pair of images whose embeddings have cosine similarity at least ``threshold`` is linked; each connected
component keeps one image (its lowest index, i.e. the first in file order) and drops the others. This is the
copy-detection step of the DINOv2 data pipeline. Pairs are found block by block (``chunk_size^2``
similarities at a time, only the upper triangle), so memory stays bounded for any number of images.

Reference: Oquab et al. 2023, "DINOv2", Sec. 3 (de-duplication with a copy-detection embedding and
connected components); Pizzi et al. 2022, "A Self-Supervised Descriptor for Image Copy Detection".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from encoders.curation.embed import iter_chunks
from encoders.utils.progress import Progress

logger = logging.getLogger(__name__)


@dataclass
class DedupResult:
    """``keep`` ``(N,)`` bool; ``representative`` ``(N,)`` int64: the kept image each image duplicates (itself if
    kept, ``-1`` for invalid rows); ``n_pairs``: linked pairs found."""

    keep: np.ndarray
    representative: np.ndarray
    n_pairs: int

    @property
    def n_removed(self) -> int:
        return int((self.representative >= 0).sum() - self.keep.sum())


class _UnionFind:
    """Disjoint sets over ``0..n-1`` whose root is always the smallest member."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = int(self.parent[root])
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, int(self.parent[i])
        return root

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


@torch.no_grad()
def iter_near_duplicate_pairs(
    vectors: np.ndarray,
    threshold: float = 0.95,
    valid: np.ndarray | None = None,
    chunk_size: int = 4096,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Iterator[np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, of valid rows with ``cos(v_i, v_j) >= threshold``, one ``(P_b, 2)`` int64 array
    per block of the similarity matrix (so memory is bounded by one block's pairs).

    ``vectors`` ``(N, D)`` are unit rows (as written by :func:`~encoders.curation.embed.embed_images`).
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}; e.g. 0.95")
    n = vectors.shape[0]
    valid_t = torch.ones(n, dtype=torch.bool) if valid is None else torch.from_numpy(np.asarray(valid, dtype=bool))
    n_blocks = -(-n // chunk_size)
    bar = Progress(n_blocks * (n_blocks + 1) // 2, desc="dedup", unit="block", disable=not progress)
    for start_i, block_i in iter_chunks(vectors, chunk_size, device):
        for start_j, block_j in iter_chunks(vectors[start_i:], chunk_size, device):
            start_j += start_i
            sim = block_i @ block_j.T  # (bi, bj)
            rows = torch.arange(start_i, start_i + block_i.shape[0], device=sim.device)[:, None]
            cols = torch.arange(start_j, start_j + block_j.shape[0], device=sim.device)[None, :]
            hit = (sim >= threshold) & (cols > rows)
            hit &= valid_t[start_i : start_i + block_i.shape[0]].to(sim.device)[:, None]
            hit &= valid_t[start_j : start_j + block_j.shape[0]].to(sim.device)[None, :]
            ii, jj = hit.nonzero(as_tuple=True)
            bar.update()
            yield torch.stack([ii + start_i, jj + start_j], dim=1).cpu().numpy()
    bar.close()


def near_duplicate_pairs(
    vectors: np.ndarray,
    threshold: float = 0.95,
    valid: np.ndarray | None = None,
    chunk_size: int = 4096,
) -> np.ndarray:
    """All pairs of :func:`iter_near_duplicate_pairs` as one ``(P, 2)`` int64 array (small inputs, tests)."""
    blocks = list(iter_near_duplicate_pairs(vectors, threshold, valid, chunk_size))
    return np.concatenate(blocks) if blocks else np.zeros((0, 2), dtype=np.int64)


def deduplicate(
    vectors: np.ndarray,
    threshold: float = 0.95,
    valid: np.ndarray | None = None,
    chunk_size: int = 4096,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> DedupResult:
    """Keep one image per connected component of near-duplicates (see the module docstring).

    Args:
        vectors: ``(N, D)`` unit embeddings (a memmap is fine; read in ``chunk_size`` blocks).
        threshold: cosine similarity at or above which two images count as duplicates.
        valid: ``(N,)`` bool, rows to consider (invalid rows are neither kept nor linked).
    """
    n = vectors.shape[0]
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    sets = _UnionFind(n)
    n_pairs = 0
    for pairs in iter_near_duplicate_pairs(vectors, threshold, valid, chunk_size, device, progress):
        n_pairs += len(pairs)
        for i, j in pairs.tolist():
            sets.union(i, j)
    representative = np.array([sets.find(i) for i in range(n)], dtype=np.int64)
    representative[~valid] = -1
    keep = valid & (representative == np.arange(n))
    result = DedupResult(keep, representative, n_pairs)
    logger.info("dedup (cos >= %g): %d pairs, %d of %d images removed", threshold, n_pairs, result.n_removed, n)
    return result


__all__ = ["DedupResult", "deduplicate", "iter_near_duplicate_pairs", "near_duplicate_pairs"]
