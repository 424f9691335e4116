"""Navigation metrics: success weighted by path length (SPL), soft-SPL and coverage.

Reference: Anderson et al. 2018, "On Evaluation of Embodied Navigation Agents" (SPL);
soft-SPL as implemented in Habitat-Lab (``habitat/tasks/nav/nav.py``, ``SoftSPL``).

All functions are vectorised: scalars or numpy arrays in, numpy float64 out (0-d for scalars).
Distances and path lengths are in grid cells; on the environments' open grid the geodesic distance is
the Manhattan distance.

SPL's shortest path ends where success begins, as habitat-lab measures SPL to the goal's nearest view point: an
episode succeeds within ``success_radius`` cells of the goal, so the shortest successful path from a start ``d0``
cells away is :func:`success_path_length` ``= max(d0 - success_radius, 0)`` moves (on the open grid the region
``{d <= R}`` is reached in ``d0 - R`` moves). Measuring it to the goal itself instead would let a path up to ``R``
moves longer than the shortest still score 1. Soft-SPL stays as habitat defines it, with the distance to the goal.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def spl(success: ArrayLike, shortest_path_length: ArrayLike, path_length: ArrayLike) -> np.ndarray:
    """Success weighted by (normalised inverse) path length: ``S * l / max(p, l)``.

    Args:
        success: ``S``, whether the episode succeeded (bool or 0/1).
        shortest_path_length: ``l``, the length of the shortest successful path: the geodesic distance from the
            start to the success region (:func:`success_path_length`; the distance to the goal when the
            success radius is 0).
        path_length: ``p``, length of the path the agent actually took.

    Returns:
        SPL in ``[0, 1]``; ``1`` for a successful episode with ``p <= l``, ``l / p`` for a successful detour,
        ``0`` for a failure. If ``l = p = 0`` (started on the goal) a success counts as 1.
    """
    s = np.asarray(success, dtype=np.float64)
    l = np.asarray(shortest_path_length, dtype=np.float64)
    p = np.asarray(path_length, dtype=np.float64)
    denom = np.maximum(p, l)
    ratio = np.where(denom > 0, l / np.where(denom > 0, denom, 1.0), 1.0)
    return s * ratio


def success_path_length(start_distance: ArrayLike, success_radius: ArrayLike) -> np.ndarray:
    """Moves of the shortest successful path, SPL's ``l``: ``max(d0 - R, 0)`` for a start ``d0`` cells (geodesic)
    from the goal and success within ``R`` cells of it (on the open grid every move can close one cell)."""
    d0 = np.asarray(start_distance, dtype=np.float64)
    return np.maximum(d0 - np.asarray(success_radius, dtype=np.float64), 0.0)


def soft_spl(distance_to_goal: ArrayLike, start_distance: ArrayLike, path_length: ArrayLike) -> np.ndarray:
    """Habitat's soft-SPL: ``max(0, 1 - d / d0) * d0 / max(d0, p)``.

    Success is replaced by the fraction of the start distance ``d0`` that was closed (``d`` is the current
    distance to the goal), so failed episodes that got closer still score. ``d0 = 0`` scores 1 if ``d = 0``.

    Args:
        distance_to_goal: ``d``, geodesic distance to the goal now (at the episode's end).
        start_distance: ``d0``, geodesic distance to the goal at the start.
        path_length: ``p``, length of the path taken.
    """
    d = np.asarray(distance_to_goal, dtype=np.float64)
    d0 = np.asarray(start_distance, dtype=np.float64)
    p = np.asarray(path_length, dtype=np.float64)
    progress = np.where(d0 > 0, d / np.where(d0 > 0, d0, 1.0), np.where(d > 0, 1.0, 0.0))
    soft_success = np.maximum(0.0, 1.0 - progress)
    denom = np.maximum(d0, p)
    efficiency = np.where(denom > 0, d0 / np.where(denom > 0, denom, 1.0), 1.0)
    return soft_success * efficiency


def coverage(visited_cells: ArrayLike, total_cells: ArrayLike) -> np.ndarray:
    """Fraction of the grid visited: ``visited_cells / total_cells`` (the start cell counts as visited)."""
    return np.asarray(visited_cells, dtype=np.float64) / np.asarray(total_cells, dtype=np.float64)


__all__ = ["coverage", "soft_spl", "spl", "success_path_length"]
