"""The frozen-feature protocol on one encoder: k-NN and a linear probe from cached train/val features."""

from __future__ import annotations

import logging

import torch

from encoders.eval.features import FeatureSet, pooled
from encoders.eval.knn import knn_evaluate
from encoders.eval.linear_probe import LinearProbeConfig, linear_probe_evaluate
from encoders.eval.report import EncoderScores

logger = logging.getLogger(__name__)


def select_features(features: dict[str, torch.Tensor], spec: str) -> torch.Tensor:
    """``"cls"`` / ``"cls+avgpool"`` (see :func:`~encoders.eval.features.pooled`) or any single feature name
    (e.g. ``"pixels"``) -> ``(N, D)``."""
    if spec == "cls+avgpool":
        return pooled(features, "cls+avgpool")
    if spec not in features:
        raise ValueError(f"no feature {spec!r}; available: {', '.join(sorted(features))} (or cls+avgpool)")
    return features[spec]


def evaluate_frozen(
    label: str,
    train: FeatureSet,
    val: FeatureSet,
    num_classes: int,
    knn_input: str = "cls",
    linear_input: str | None = "cls",
    k: int = 20,
    temperature: float = 0.07,
    probe: LinearProbeConfig | None = None,
) -> EncoderScores:
    """k-NN on ``knn_input`` features and (unless ``linear_input`` is ``None``) a linear probe on ``linear_input``.

    Args:
        label: the row name in the results table.
        train, val: features of the training and validation splits (same feature names).
        num_classes: number of classes ``C``.
        knn_input, linear_input: feature specs for :func:`select_features`.
        k, temperature: k-NN neighbours and vote temperature.
        probe: linear-probe training settings (default :class:`LinearProbeConfig`).
    """
    x_train, x_val = select_features(train.features, knn_input), select_features(val.features, knn_input)
    knn = knn_evaluate(x_train, train.labels, x_val, val.labels, k, temperature, num_classes)
    scores = EncoderScores(encoder=label, knn_top1=knn.top1, knn_top5=knn.top5, feature_dim=int(x_train.shape[1]))
    logger.info("%s: k-NN (k=%d, T=%g) top-1 %.4f", label, knn.k, temperature, knn.top1)
    if linear_input is not None:
        x_train = select_features(train.features, linear_input)
        x_val = select_features(val.features, linear_input)
        lin = linear_probe_evaluate(x_train, train.labels, x_val, val.labels, probe or LinearProbeConfig(), num_classes)
        scores.linear_top1, scores.linear_top5 = lin.top1, lin.top5
        scores.linear_pooling, scores.linear_best_lr = linear_input, lin.best_lr
        scores.linear_sweep = {f"{lr:g}": acc for lr, acc in lin.sweep.items()}
        logger.info("%s: linear probe [%s] top-1 %.4f (lr %g)", label, linear_input, lin.top1, lin.best_lr)
    return scores


__all__ = ["evaluate_frozen", "select_features"]
