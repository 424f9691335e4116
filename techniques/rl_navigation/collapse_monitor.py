"""Representation-collapse monitor: feature spread and effective rank, with a warning when they fall.

Two symptoms of the encoder collapsing to make the forward model's job trivial:

- :func:`feature_std`: the mean per-dimension std of the L2-normalised features (SimSiam's collapse metric);
  about ``1/sqrt(D)`` for well-spread features, 0 when every feature is the same vector.
- :func:`effective_rank`: ``exp`` of the entropy of the normalised singular values of the centred feature
  matrix; ``D`` (or ``B``) for isotropic features, 1 when they vary along a single direction.

:class:`CollapseMonitor` takes the end-of-phase-1 values as the reference and warns (``logging.warning``, once per
fall below the threshold) when either drops below ``fraction`` of it.

Reference: Roy & Vetterli 2007, "The effective rank: a measure of effective dimensionality";
Chen & He 2021, "Exploring Simple Siamese Representation Learning" (std of normalised outputs).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def feature_std(features: torch.Tensor) -> float:
    """Mean over dimensions of the std over samples of L2-normalised ``features (B, D)``."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (B, D) with B >= 2, got {tuple(features.shape)}")
    z = F.normalize(features.float(), dim=-1)
    return float(z.std(dim=0).mean())


def effective_rank(features: torch.Tensor, eps: float = 1e-12) -> float:
    """Effective rank (Roy & Vetterli 2007) of the centred ``features (B, D)``: ``exp(-sum p_i log p_i)``
    with ``p_i = s_i / sum s`` over the singular values ``s``. In ``[1, min(B, D)]``; 0 for all-equal rows."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (B, D) with B >= 2, got {tuple(features.shape)}")
    x = features.double()
    x = x - x.mean(dim=0, keepdim=True)
    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T  # (min(B, D),) square: one GEMM, no SVD of (B, D)
    s = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()  # the singular values of x
    total = s.sum()
    if total <= eps:
        return 0.0
    p = s / total
    p = p[p > eps]
    return float(torch.exp(-(p * p.log()).sum()))


def sample_features(grids: torch.Tensor, max_samples: int = 4096, seed: int = 0) -> torch.Tensor:
    """Up to ``max_samples`` rows ``(B, D)`` drawn (fixed seed) from feature grids ``(..., D)``."""
    flat = grids.reshape(-1, grids.shape[-1])
    if len(flat) <= max_samples:
        return flat.float()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(flat), generator=gen)[:max_samples]
    return flat[idx].float()


class CollapseMonitor:
    """Tracks :func:`feature_std` and :func:`effective_rank` against a reference (end of phase 1).

    Args:
        fraction: warn when a statistic falls below ``fraction * reference``.
    """

    def __init__(self, fraction: float = 0.5):
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"collapse warning fraction must be in (0, 1], got {fraction}")
        self.fraction = float(fraction)
        self.reference: dict[str, float] | None = None
        self._below: dict[str, bool] = {"feature_std": False, "effective_rank": False}

    @staticmethod
    def measure(features: torch.Tensor) -> dict[str, float]:
        """``{"feature_std", "effective_rank"}`` of ``features (B, D)``."""
        return {"feature_std": feature_std(features), "effective_rank": effective_rank(features)}

    def set_reference(self, stats: dict[str, float]) -> None:
        self.reference = dict(stats)
        self._below = {k: False for k in self._below}

    def check(self, stats: dict[str, float], step: int | None = None) -> list[str]:
        """Names of the statistics now below ``fraction`` of the reference; logs a warning when one first falls."""
        if self.reference is None:
            return []
        low = []
        for key, value in stats.items():
            ref = self.reference.get(key)
            if ref is None or ref <= 0:
                continue
            below = value < self.fraction * ref
            if below:
                low.append(key)
                if not self._below.get(key, False):
                    logger.warning(
                        "possible representation collapse%s: encoder %s fell to %.4g (phase-1 value %.4g, "
                        "warning below %.0f%%); consider --target-mode ema, a lower --encoder-lr or fewer "
                        "--unfreeze-layers",
                        "" if step is None else f" at step {step}",
                        key,
                        value,
                        ref,
                        100 * self.fraction,
                    )
            self._below[key] = below
        return low

    def state_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "reference": self.reference, "below": dict(self._below)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reference = state["reference"]
        self._below = dict(state["below"])


__all__ = ["CollapseMonitor", "effective_rank", "feature_std", "sample_features"]
