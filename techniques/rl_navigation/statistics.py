"""The statistics of RL results, in one place: the mean with its 95% t-interval, and rliable's aggregates.

- :func:`mean_ci`: mean and half-width of the 95% Student-t interval (episodes of one evaluation, seeds of a
  study); the codebase's one interval helper.
- :func:`iqm_ci`: the interquartile mean of a ``(runs, tasks)`` score matrix with a stratified-bootstrap 95%
  interval (runs resampled within each task), as recommended by Agarwal et al. 2021.
- :func:`probability_of_improvement`: ``P(X > Y)`` of an arm's runs over another's (Mann-Whitney, averaged over
  tasks), with its stratified-bootstrap 95% interval.

A run's score is its mean over its evaluation episodes (e.g. the success rate of one seed on one task).

Reference: Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (rliable).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

#: Bootstrap replications of the rliable intervals (rliable's default is 50,000; fewer keep a study's
#: aggregation quick; pass ``reps`` for more).
BOOTSTRAP_REPS = 5000


def t_quantile(df: int) -> float:
    """Two-sided 95% Student-t quantile for ``df`` degrees of freedom (NaN for ``df < 1``)."""
    return float(scipy_stats.t.ppf(0.975, df)) if df >= 1 else float("nan")


def mean_ci(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``{"mean", "ci95", "n", "std"}``: mean and the half-width of the 95% t-interval ``t * s / sqrt(n)``.

    NaNs (and ``None``) are dropped; with one value the half-width is NaN (no interval from one sample).
    """
    x = np.asarray([float(v) for v in values if v is not None and not math.isnan(float(v))], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"mean": float("nan"), "ci95": float("nan"), "n": 0, "std": float("nan")}
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    half = t_quantile(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": float(x.mean()), "ci95": float(half), "n": int(n), "std": std}


def fmt_ci(summary: Mapping[str, float], digits: int = 3) -> str:
    """``"0.123 ± 0.045"`` (or just the mean when there is no interval; ``"n/a"`` without a mean)."""
    m, h = summary["mean"], summary["ci95"]
    if m is None or math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f}" if h is None or math.isnan(h) else f"{m:.{digits}f} ± {h:.{digits}f}"


def _rliable(module: str) -> Any:
    """``rliable.<module>``, or an ImportError that names the extra to install (rliable is a ``studies`` extra)."""
    import importlib

    try:
        return importlib.import_module(f"rliable.{module}")
    except ImportError as e:
        raise ImportError(
            "the studies' aggregates over seeds need rliable: pip install -e '.[studies]' (or '.[dev]')"
        ) from e


def _scores(scores: np.ndarray | Sequence) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"scores must be (runs, tasks) or (runs,), got shape {np.shape(scores)}")
    return x


def _bootstrap(scores: dict, func: Callable, seed: int, reps: int) -> tuple[float, float]:
    """rliable's stratified-bootstrap 95% percentile interval of ``func`` over one entry of ``scores``."""
    rly = _rliable("library")

    with warnings.catch_warnings():  # rliable hands arch a RandomState, which arch 7 deprecates
        warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
        _, intervals = rly.get_interval_estimates(scores, func, reps=reps, random_state=np.random.RandomState(seed))
    low, high = next(iter(intervals.values()))[:, 0]
    return float(low), float(high)


def iqm_ci(scores: np.ndarray | Sequence, seed: int = 0, reps: int = BOOTSTRAP_REPS) -> dict[str, float]:
    """IQM of ``(runs, tasks)`` scores (or ``(runs,)``) and its stratified-bootstrap 95% interval.

    Returns ``{"iqm", "low", "high", "n"}`` (``n`` runs); one run has no interval (``low = high = NaN``).
    """
    metrics = _rliable("metrics")

    x = _scores(scores)
    iqm = float(metrics.aggregate_iqm(x))
    if x.shape[0] < 2:
        return {"iqm": iqm, "low": float("nan"), "high": float("nan"), "n": int(x.shape[0])}
    low, high = _bootstrap({"arm": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), seed, reps)
    return {"iqm": iqm, "low": low, "high": high, "n": int(x.shape[0])}


def probability_of_improvement(
    scores_x: np.ndarray | Sequence, scores_y: np.ndarray | Sequence, seed: int = 0, reps: int = BOOTSTRAP_REPS
) -> dict[str, float]:
    """``P(X > Y)`` of ``(runs, tasks)`` scores (ties count half) and its stratified-bootstrap 95% interval.

    Returns ``{"p", "low", "high"}``.
    """
    metrics = _rliable("metrics")

    x, y = _scores(scores_x), _scores(scores_y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"scores_x and scores_y need the same tasks, got {x.shape} and {y.shape}")
    p = float(metrics.probability_of_improvement(x, y))
    if min(len(x), len(y)) < 2:
        return {"p": p, "low": float("nan"), "high": float("nan")}
    low, high = _bootstrap(
        {"pair": [x, y]}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), seed, reps
    )
    return {"p": p, "low": low, "high": high}


def fmt_interval(value: float, low: float, high: float, digits: int = 3) -> str:
    """``"0.123 [0.100, 0.150]"`` (just the value without an interval)."""
    if math.isnan(value):
        return "n/a"
    if math.isnan(low) or math.isnan(high):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


__all__ = [
    "BOOTSTRAP_REPS",
    "fmt_ci",
    "fmt_interval",
    "iqm_ci",
    "mean_ci",
    "probability_of_improvement",
    "t_quantile",
]
