"""Matplotlib figures of the studies (Agg backend, PNG): mean curves with 95% bands, grouped bars with 95% error
bars."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def new_figure(ncols: int = 1, width: float = 4.2, height: float = 3.0) -> tuple[Any, Any]:
    """A matplotlib figure (Agg backend) with ``ncols`` axes side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Save ``fig`` as PNG (tight layout) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_band(ax: Any, x: np.ndarray, mean: np.ndarray, half: np.ndarray, label: str) -> None:
    """A mean curve with its 95% band (NaN half-widths draw no band)."""
    line = ax.plot(x, mean, label=label, lw=1.5)[0]
    lo, hi = mean - np.nan_to_num(half), mean + np.nan_to_num(half)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)


def bar_chart(ax: Any, groups: Sequence[str], series: Mapping[str, Sequence[Mapping[str, float]]], ylabel: str) -> None:
    """Grouped bars with 95% error bars: ``series[name][i]`` is the summary of ``groups[i]``."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(groups))
    for k, (name, summaries) in enumerate(series.items()):
        means = [s["mean"] for s in summaries]
        errs = [0.0 if math.isnan(s["ci95"]) else s["ci95"] for s in summaries]
        ax.bar(x + (k - (n - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=name)
    ax.set_xticks(x, groups, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)


__all__ = ["bar_chart", "new_figure", "plot_band", "save_figure"]
