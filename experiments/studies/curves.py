"""Learning curves of the sub-runs: TensorBoard scalars of a run folder, a scalar against environment steps, and
per-seed curves binned and averaged over seeds (mean and 95% t-interval)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from techniques.rl_navigation.statistics import mean_ci


def read_scalars(run_dir: Path, tags: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """TensorBoard scalars of a run: ``{tag: (steps, values)}`` for the tags present (event files under
    ``run_dir``, the pretraining sub-folder excluded)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, tuple[list[int], list[float]]] = {}
    files = sorted(p for p in run_dir.rglob("events.out.tfevents*") if "pretrain" not in p.relative_to(run_dir).parts)
    for folder in sorted({p.parent for p in files}):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        available = set(acc.Tags().get("scalars", []))
        for tag in tags:
            if tag in available:
                steps, values = out.setdefault(tag, ([], []))
                for event in acc.Scalars(tag):
                    steps.append(int(event.step))
                    values.append(float(event.value))
    result = {}
    for tag, (steps, values) in out.items():
        order = np.argsort(steps, kind="stable")
        result[tag] = (np.asarray(steps)[order], np.asarray(values)[order])
    return result


def curve_by_steps(run_dir: Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """A scalar against environment steps (the trainer logs every scalar at its ``num_timesteps``)."""
    s = read_scalars(run_dir, [tag])
    if tag not in s:
        return np.zeros(0), np.zeros(0)
    steps, values = s[tag]
    return steps.astype(np.float64), values


def binned_curves(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-seed curves ``(x, y)`` averaged in the bins ``grid[i]..grid[i+1]``, then mean and 95% t-interval over
    seeds: ``(bin centres, mean, half-width)`` (bins empty in a seed are skipped for it)."""
    centres = (grid[:-1] + grid[1:]) / 2
    per_seed = np.full((len(curves), len(centres)), np.nan)
    for k, (x, y) in enumerate(curves):
        idx = np.digitize(x, grid) - 1
        for b in range(len(centres)):
            sel = idx == b
            if sel.any():
                per_seed[k, b] = float(np.mean(y[sel]))
    stats = [mean_ci(per_seed[:, b].tolist()) for b in range(len(centres))]
    return centres, np.asarray([s["mean"] for s in stats]), np.asarray([s["ci95"] for s in stats])


__all__ = ["binned_curves", "curve_by_steps", "read_scalars"]
