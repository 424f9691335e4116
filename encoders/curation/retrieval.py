"""Retrieval of the pool images nearest to curated seed images (cosine similarity, ``k`` per seed).

The pool is streamed in blocks and a running top-``k`` per seed is merged block by block, so memory holds
``S x (k + chunk_size)`` similarities, never the whole ``S x N`` matrix.

Reference: Oquab et al. 2023, "DINOv2", Sec. 3 (sample-based retrieval: the ``k`` nearest uncurated images of
each curated query image).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from encoders.curation.embed import iter_chunks
from encoders.utils.progress import Progress

logger = logging.getLogger(__name__)


@dataclass
class RetrievalResult:
    """``indices`` ``(S, k)`` pool rows nearest to each seed (best first, ``-1`` padding when the pool has fewer than
    ``k`` candidates), ``similarities`` ``(S, k)`` (``-inf`` for padding)."""

    indices: np.ndarray
    similarities: np.ndarray

    def selected(self) -> np.ndarray:
        """Sorted unique pool rows retrieved by any seed."""
        return np.unique(self.indices[self.indices >= 0])

    def best_similarity(self, n_pool: int) -> np.ndarray:
        """``(n_pool,)`` the highest similarity of each pool row to a seed that retrieved it (``-inf`` if none)."""
        best = np.full(n_pool, -np.inf, dtype=np.float32)
        ok = self.indices >= 0
        np.maximum.at(best, self.indices[ok], self.similarities[ok])
        return best


@torch.no_grad()
def retrieve_nearest(
    pool: np.ndarray,
    seeds: np.ndarray,
    k: int,
    candidates: np.ndarray | None = None,
    chunk_size: int = 8192,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> RetrievalResult:
    """The ``k`` candidate pool rows most cosine-similar to each seed.

    Args:
        pool: ``(N, D)`` unit embeddings (a memmap is fine).
        seeds: ``(S, D)`` unit embeddings.
        k: neighbours per seed.
        candidates: ``(N,)`` bool, pool rows allowed (e.g. the de-duplicated, readable ones); default all.
    """
    if k < 1:
        raise ValueError(f"k (images per seed) must be >= 1, got {k}")
    if seeds.ndim != 2 or pool.ndim != 2 or seeds.shape[1] != pool.shape[1]:
        raise ValueError(
            f"pool {pool.shape} and seeds {seeds.shape} must be (N, D) and (S, D) with the same D; "
            "embed both with the same encoder"
        )
    n = pool.shape[0]
    allowed = torch.ones(n, dtype=torch.bool) if candidates is None else torch.from_numpy(np.asarray(candidates, bool))
    queries = torch.from_numpy(np.asarray(seeds, dtype=np.float32)).to(device)  # (S, D)
    best_sim = torch.full((queries.shape[0], 0), -torch.inf, device=device)
    best_idx = torch.zeros((queries.shape[0], 0), dtype=torch.long, device=device)
    bar = Progress(n, desc="retrieve", unit="img", disable=not progress)
    for start, block in iter_chunks(pool, chunk_size, device):
        sim = queries @ block.T  # (S, b)
        sim[:, ~allowed[start : start + block.shape[0]].to(device)] = -torch.inf
        idx = torch.arange(start, start + block.shape[0], device=device).expand_as(sim)
        sim, idx = torch.cat([best_sim, sim], dim=1), torch.cat([best_idx, idx], dim=1)
        top = sim.topk(min(k, sim.shape[1]), dim=1)
        best_sim, best_idx = top.values, idx.gather(1, top.indices)
        bar.update(block.shape[0])
    bar.close()
    best_idx[torch.isinf(best_sim)] = -1
    indices = np.full((queries.shape[0], k), -1, dtype=np.int64)
    sims = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
    indices[:, : best_idx.shape[1]] = best_idx.cpu().numpy()
    sims[:, : best_sim.shape[1]] = best_sim.cpu().numpy()
    result = RetrievalResult(indices, sims)
    logger.info("retrieval: %d seeds x k=%d -> %d distinct pool images", len(seeds), k, len(result.selected()))
    return result


__all__ = ["RetrievalResult", "retrieve_nearest"]
