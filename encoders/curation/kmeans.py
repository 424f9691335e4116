"""k-means on embeddings in torch (chunked over a memory-mapped matrix) and balanced sampling over its clusters.

:func:`kmeans` runs Lloyd iterations from a k-means++ initialisation; with ``spherical=True`` (the default, for
unit embeddings) points go to the centroid of highest cosine similarity and centroids are re-normalised
(spherical k-means). Every pass streams the data in ``chunk_size`` blocks, so memory holds the centroids,
one block and one int64 assignment per point. Empty clusters are re-seeded with the points farthest from
their centroid. :func:`balanced_sample` then takes at most ``per_cluster`` images from each cluster, so
over-represented modes of the pool are capped.

Reference: Arthur & Vassilvitskii 2007, "k-means++"; Dhillon & Modha 2001 (spherical k-means);
Vo et al. 2024, "Automatic Data Curation for Self-Supervised Learning: A Clustering-Based Approach"
(balanced sampling from k-means clusters, used for DINOv2-style data).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from encoders.curation.embed import iter_chunks

logger = logging.getLogger(__name__)


@dataclass
class KMeansResult:
    """``centroids`` ``(K, D)`` float32; ``assignments`` ``(N,)`` int64 cluster of each row (``-1`` for rows outside
    ``mask``); ``n_iter`` Lloyd iterations run; ``score``: mean similarity (spherical) or mean squared distance."""

    centroids: np.ndarray
    assignments: np.ndarray
    n_iter: int
    score: float

    def sizes(self) -> np.ndarray:
        """``(K,)`` number of rows per cluster."""
        return np.bincount(self.assignments[self.assignments >= 0], minlength=len(self.centroids))


def _scores(block: torch.Tensor, centroids: torch.Tensor, spherical: bool) -> torch.Tensor:
    """Higher is closer: cosine (spherical) or ``2 x.c - |c|^2`` (= ``|x|^2 - |x - c|^2``). ``(b, K)``."""
    dots = block @ centroids.T
    return dots if spherical else 2 * dots - (centroids * centroids).sum(dim=1)[None, :]


def _masked_blocks(vectors: np.ndarray, mask: np.ndarray, chunk_size: int, device: torch.device | str):
    for start, block in iter_chunks(vectors, chunk_size, device):
        rows = np.flatnonzero(mask[start : start + block.shape[0]])
        if len(rows):
            yield start + rows, block[torch.from_numpy(rows).to(block.device)]


def _kmeans_pp(
    vectors: np.ndarray, mask: np.ndarray, k: int, rng: np.random.Generator, chunk_size: int, device, spherical: bool
) -> torch.Tensor:
    """k-means++ seeding: each new centroid drawn with probability proportional to the squared distance to the
    nearest chosen one (``2 - 2 cos`` for unit vectors)."""
    rows = np.flatnonzero(mask)
    first = int(rows[rng.integers(len(rows))])
    chosen = [torch.from_numpy(np.asarray(vectors[first], dtype=np.float32)).to(device)]
    d2 = np.full(vectors.shape[0], np.inf, dtype=np.float64)
    d2[~mask] = 0.0
    for _ in range(1, k):
        c = chosen[-1][None, :]
        for idx, block in _masked_blocks(vectors, mask, chunk_size, device):
            dist = ((block - c) ** 2).sum(dim=1).double().cpu().numpy()
            d2[idx] = np.minimum(d2[idx], dist)
        total = d2.sum()
        nxt = int(rng.choice(len(d2), p=d2 / total)) if total > 0 else int(rows[rng.integers(len(rows))])
        chosen.append(torch.from_numpy(np.asarray(vectors[nxt], dtype=np.float32)).to(device))
    centroids = torch.stack(chosen)
    return F.normalize(centroids, dim=1) if spherical else centroids


@torch.no_grad()
def kmeans(
    vectors: np.ndarray,
    n_clusters: int,
    n_iters: int = 20,
    mask: np.ndarray | None = None,
    seed: int = 0,
    spherical: bool = True,
    init: Literal["k-means++", "random"] = "k-means++",
    n_init: int = 1,
    tol: float = 1e-4,
    chunk_size: int = 8192,
    device: torch.device | str = "cpu",
) -> KMeansResult:
    """Cluster the rows of ``vectors`` ``(N, D)`` selected by ``mask`` ``(N,)`` bool (default all).

    Each of ``n_init`` runs (different initialisations drawn from ``seed``) stops after ``n_iters`` Lloyd
    iterations or when fewer than ``tol * N`` assignments change; the run with the best score is returned
    (highest mean cosine to the centroid when ``spherical``, else lowest mean squared distance).
    """
    n = vectors.shape[0]
    mask = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    m = int(mask.sum())
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    if m < n_clusters:
        raise ValueError(f"cannot make {n_clusters} clusters of {m} points; lower --kmeans-clusters to at most {m}")
    if init not in ("k-means++", "random"):
        raise ValueError(f"unknown init {init!r}; choose 'k-means++' or 'random'")
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    best: KMeansResult | None = None
    for run_seed in np.random.SeedSequence(seed).spawn(n_init):
        rng = np.random.default_rng(run_seed)
        result = _lloyd(vectors, mask, n_clusters, n_iters, rng, spherical, init, tol, chunk_size, device)
        better = best is None or (result.score > best.score if spherical else result.score < best.score)
        if better:
            best = result
    assert best is not None  # n_init >= 1
    return best


def _lloyd(
    vectors: np.ndarray,
    mask: np.ndarray,
    n_clusters: int,
    n_iters: int,
    rng: np.random.Generator,
    spherical: bool,
    init: str,
    tol: float,
    chunk_size: int,
    device: torch.device | str,
) -> KMeansResult:
    """One k-means run from one initialisation."""
    n, m = vectors.shape[0], int(mask.sum())
    if init == "k-means++":
        centroids = _kmeans_pp(vectors, mask, n_clusters, rng, chunk_size, device, spherical)
    else:
        picks = rng.choice(np.flatnonzero(mask), size=n_clusters, replace=False)
        centroids = torch.from_numpy(np.asarray(vectors[np.sort(picks)], dtype=np.float32)).to(device)
    assignments = np.full(n, -1, dtype=np.int64)
    it = 0
    for it in range(1, n_iters + 1):
        sums = torch.zeros_like(centroids)
        counts = torch.zeros(n_clusters, device=centroids.device)
        changed = 0
        worst: list[tuple[float, int]] = []  # (closeness, row): the farthest points, to re-seed empty clusters
        for idx, block in _masked_blocks(vectors, mask, chunk_size, device):
            best, label = _scores(block, centroids, spherical).max(dim=1)  # (b,)
            label_np = label.cpu().numpy()
            changed += int((assignments[idx] != label_np).sum())
            assignments[idx] = label_np
            sums.index_add_(0, label, block)
            counts.index_add_(0, label, torch.ones_like(best))
            far = best.topk(min(n_clusters, best.shape[0]), largest=False)
            worst.extend(zip(far.values.tolist(), idx[far.indices.cpu().numpy()].tolist()))
        empty = (counts == 0).nonzero().flatten().tolist()
        new = sums / counts.clamp_min(1)[:, None]
        worst.sort()
        for c, (_, row) in zip(empty, worst):
            new[c] = torch.from_numpy(np.asarray(vectors[row], dtype=np.float32)).to(new.device)
        centroids = F.normalize(new, dim=1) if spherical else new
        logger.debug("k-means iteration %d: %d changed, %d empty", it, changed, len(empty))
        if changed <= tol * m and not empty:
            break
    # final assignment to the final centroids, and the score of that assignment
    total = 0.0
    for idx, block in _masked_blocks(vectors, mask, chunk_size, device):
        best, label = _scores(block, centroids, spherical).max(dim=1)
        assignments[idx] = label.cpu().numpy()
        total += float(best.sum()) if spherical else float(((block - centroids[label]) ** 2).sum())
    return KMeansResult(centroids.cpu().numpy(), assignments, it, total / m)


def balanced_sample(
    assignments: np.ndarray,
    per_cluster: int,
    rows: np.ndarray | None = None,
    priority: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """At most ``per_cluster`` rows from every cluster -> sorted row indices.

    Args:
        assignments: ``(N,)`` cluster per row (``-1``: none).
        per_cluster: cap per cluster.
        rows: candidate rows (default: every assigned row).
        priority: ``(N,)`` scores; when given, each cluster keeps its highest-priority rows, else a random subset
            drawn with ``seed``.
    """
    if per_cluster < 1:
        raise ValueError(f"per_cluster must be >= 1, got {per_cluster}")
    rows = np.flatnonzero(assignments >= 0) if rows is None else np.asarray(rows, dtype=np.int64)
    rows = rows[assignments[rows] >= 0]
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    for c in np.unique(assignments[rows]):
        members = rows[assignments[rows] == c]
        if len(members) <= per_cluster:
            picked.append(members)
        elif priority is not None:
            order = np.argsort(-priority[members], kind="stable")
            picked.append(members[order[:per_cluster]])
        else:
            picked.append(rng.choice(members, size=per_cluster, replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


__all__ = ["KMeansResult", "balanced_sample", "kmeans"]
