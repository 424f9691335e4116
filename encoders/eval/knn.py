"""Weighted k-nearest-neighbour classification on frozen features (the DINO k-NN protocol).

Features are L2-normalised; each test sample takes its ``k`` most cosine-similar training samples, and
each neighbour votes for its class with weight ``exp(similarity / T)``. The predicted class is the one
with the largest summed weight. Defaults ``k=20``, ``T=0.07`` as in DINO.

Reference: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers", Sec. 4.1 and
``eval_knn.py``; Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance Discrimination".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _check(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor, k: int) -> None:
    if train_features.ndim != 2 or test_features.ndim != 2:
        raise ValueError(
            f"features must be 2-D (N, D); got train {tuple(train_features.shape)}, test {tuple(test_features.shape)}"
        )
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train and test features differ in width ({train_features.shape[1]} vs {test_features.shape[1]}); "
            "extract both with the same encoder and pooling"
        )
    if train_labels.shape != (train_features.shape[0],):
        raise ValueError(f"train_labels must be ({train_features.shape[0]},), got {tuple(train_labels.shape)}")
    if train_features.shape[0] == 0:
        raise ValueError("no training samples for k-NN")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


@torch.no_grad()
def knn_class_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Summed neighbour weights per class: ``(N_test, C)``.

    Args:
        train_features: ``(N_train, D)`` (normalised here).
        train_labels: ``(N_train,)`` int class indices in ``[0, C)``.
        test_features: ``(N_test, D)``.
        k: neighbours per test sample (clamped to ``N_train``).
        temperature: ``T`` of the vote weights ``exp(sim / T)``.
        num_classes: ``C`` (default ``max(train_labels) + 1``).
        chunk_size: test samples per similarity block (memory ``chunk_size x N_train``).
    """
    _check(train_features, train_labels, test_features, k)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    num_classes = int(train_labels.max()) + 1 if num_classes is None else num_classes
    k = min(k, train_features.shape[0])
    train = F.normalize(train_features.float(), dim=1)  # (N_train, D)
    labels = train_labels.to(train.device, torch.long)
    scores = []
    for start in range(0, test_features.shape[0], chunk_size):
        test = F.normalize(test_features[start : start + chunk_size].float().to(train.device), dim=1)  # (b, D)
        sim, idx = (test @ train.T).topk(k, dim=1)  # (b, k)
        weights = (sim / temperature).exp()  # (b, k)
        votes = torch.zeros(test.shape[0], num_classes, device=train.device)
        votes.scatter_add_(1, labels[idx], weights)  # (b, C)
        scores.append(votes)
    if not scores:
        return torch.zeros(0, num_classes)
    return torch.cat(scores)


@dataclass(frozen=True)
class KNNResult:
    """Top-1 / top-5 accuracy (fractions in ``[0, 1]``) of a k-NN evaluation and its settings."""

    top1: float
    top5: float
    k: int
    temperature: float


def knn_evaluate(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
) -> KNNResult:
    """Accuracy of :func:`knn_class_scores` predictions against ``test_labels`` ``(N_test,)``."""
    if test_labels.shape != (test_features.shape[0],):
        raise ValueError(f"test_labels must be ({test_features.shape[0]},), got {tuple(test_labels.shape)}")
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    scores = knn_class_scores(train_features, train_labels, test_features, k, temperature, num_classes)
    return KNNResult(
        top1=topk_accuracy(scores, test_labels, 1),
        top5=topk_accuracy(scores, test_labels, 5),
        k=min(k, train_features.shape[0]),
        temperature=temperature,
    )


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of rows of ``scores`` ``(N, C)`` whose ``k`` largest entries include ``labels`` ``(N,)``."""
    if scores.shape[0] == 0:
        raise ValueError("no test samples to score")
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices  # (N, k)
    return float((top == labels.to(top.device)[:, None]).any(dim=1).float().mean())


__all__ = ["KNNResult", "knn_class_scores", "knn_evaluate", "topk_accuracy"]
