"""Linear probe on cached frozen features, with a learning-rate sweep on a held-out part of the training set.

Features are standardised with the training set's per-dimension mean and std, then a single linear layer
is trained with cross-entropy (AdamW or SGD with momentum 0.9, cosine learning-rate decay, minibatches).
For every learning rate in the sweep a probe is fitted on the training split minus a stratified hold-out
and scored on the hold-out; the best rate is then refitted on the whole training split and evaluated on
the validation set (which is never used for selection).

Reference: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers" (linear
evaluation on frozen features); Oquab et al. 2023, "DINOv2" (cls + average-pooled patch tokens, lr grid).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from encoders.eval.knn import topk_accuracy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinearProbeConfig:
    """Training settings of the probe."""

    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2)
    """learning rates swept on the hold-out (a single value skips the sweep)"""
    epochs: int = 100
    """passes over the training features"""
    batch_size: int = 256
    """features per step"""
    weight_decay: float = 1e-4
    """decoupled (AdamW) or L2 (SGD) weight decay of the linear weights"""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """optimiser (SGD uses momentum 0.9)"""
    holdout_fraction: float = 0.2
    """fraction of each training class held out to choose the learning rate"""
    seed: int = 0
    """seed of the hold-out split, the initialisation and the minibatch order"""


@dataclass
class LinearProbe:
    """A fitted probe: ``logits = classifier((x - mean) / std)``."""

    classifier: nn.Linear
    mean: torch.Tensor
    std: torch.Tensor

    @torch.no_grad()
    def predict_scores(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, C)`` of raw features ``(N, D)``."""
        x = (features.float().to(self.mean.device) - self.mean) / self.std
        return self.classifier(x)


@dataclass
class LinearProbeResult:
    """Validation accuracy of the refitted probe, the chosen learning rate and the sweep's hold-out accuracies."""

    top1: float
    top5: float
    best_lr: float
    sweep: dict[float, float] = field(default_factory=dict)
    probe: LinearProbe | None = None


def stratified_holdout(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Boolean mask ``(N,)``: ``round(fraction * n_c)`` random samples of each class ``c`` (at least one if the
    class has two or more samples, never all of them)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        n = idx.numel()
        take = min(n - 1, max(1 if n >= 2 else 0, round(fraction * n)))
        if take > 0:
            mask[idx[torch.randperm(n, generator=g)[:take]]] = True
    return mask


def fit_linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    lr: float,
    config: LinearProbeConfig = LinearProbeConfig(),
) -> LinearProbe:
    """Train one probe on ``features`` ``(N, D)`` and ``labels`` ``(N,)`` with learning rate ``lr``."""
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(
            f"expected features (N, D) and labels (N,), got {tuple(features.shape)}, {tuple(labels.shape)}"
        )
    if features.shape[0] == 0:
        raise ValueError("no training features for the linear probe")
    g = torch.Generator().manual_seed(config.seed)
    x = features.float()
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False).clamp_min(1e-6)
    x = (x - mean) / std  # (N, D)
    y = labels.long()
    classifier = nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        classifier.weight.copy_(torch.randn(classifier.weight.shape, generator=g) * 0.01)
        classifier.bias.zero_()
    if config.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=config.weight_decay)
    elif config.optimizer == "sgd":
        opt = torch.optim.SGD(classifier.parameters(), lr=lr, momentum=0.9, weight_decay=config.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose 'adamw' or 'sgd'")
    n = x.shape[0]
    batch = min(config.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    total = max(1, config.epochs * steps_per_epoch)
    step = 0
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))  # cosine decay to 0
            loss = F.cross_entropy(classifier(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    classifier.eval()
    return LinearProbe(classifier, mean, std)


def linear_probe_evaluate(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    config: LinearProbeConfig = LinearProbeConfig(),
    num_classes: int | None = None,
) -> LinearProbeResult:
    """Sweep ``config.lrs`` on a hold-out of the training set, refit the best on all of it, score on val.

    Args:
        train_features, val_features: ``(N, D)`` and ``(M, D)`` frozen features.
        train_labels, val_labels: ``(N,)`` and ``(M,)`` class indices.
        num_classes: ``C`` (default ``1 + the largest label``).
    """
    if not config.lrs:
        raise ValueError("LinearProbeConfig.lrs is empty; give at least one learning rate")
    if val_labels.shape != (val_features.shape[0],) or val_features.shape[0] == 0:
        raise ValueError(f"expected val features (M, D), M > 0, and labels (M,); got {tuple(val_features.shape)}")
    if num_classes is None:
        num_classes = int(max(train_labels.max(), val_labels.max())) + 1
    sweep: dict[float, float] = {}
    if len(config.lrs) == 1:
        best_lr = config.lrs[0]
    else:
        held = stratified_holdout(train_labels, config.holdout_fraction, config.seed)
        if held.all() or not held.any():
            raise ValueError("the training set is too small for a hold-out; pass a single learning rate")
        for lr in config.lrs:
            probe = fit_linear_probe(train_features[~held], train_labels[~held], num_classes, lr, config)
            sweep[lr] = topk_accuracy(probe.predict_scores(train_features[held]), train_labels[held], 1)
            logger.debug("linear probe lr=%g: hold-out top-1 %.4f", lr, sweep[lr])
        best_lr = max(sweep, key=lambda lr: (sweep[lr], -lr))  # ties: the smaller rate
    probe = fit_linear_probe(train_features, train_labels, num_classes, best_lr, config)
    scores = probe.predict_scores(val_features)
    return LinearProbeResult(
        top1=topk_accuracy(scores, val_labels, 1),
        top5=topk_accuracy(scores, val_labels, 5),
        best_lr=best_lr,
        sweep=sweep,
        probe=probe,
    )


__all__ = [
    "LinearProbe",
    "LinearProbeConfig",
    "LinearProbeResult",
    "fit_linear_probe",
    "linear_probe_evaluate",
    "stratified_holdout",
]
