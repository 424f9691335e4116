"""k-NN evaluation: the weighted vote of DINO, checked against a direct implementation and closed-form cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from encoders.eval.features import pixel_feature_fn, pixel_features, pooled
from encoders.eval.knn import knn_class_scores, knn_evaluate, topk_accuracy


def _reference_scores(train, labels, test, k, t, c):
    """Per-sample loop in numpy: cosine similarity, k largest, sum exp(sim / T) per class."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    out = np.zeros((len(test), c))
    for i, q in enumerate(test):
        sims = train @ q
        for j in np.argsort(-sims, kind="stable")[:k]:
            out[i, labels[j]] += math.exp(sims[j] / t)
    return out


def test_scores_match_a_direct_implementation():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(300, 16, generator=g), torch.randn(40, 16, generator=g)
    labels = torch.randint(0, 7, (300,), generator=g)
    ours = knn_class_scores(train, labels, test, k=20, temperature=0.07, num_classes=7, chunk_size=16)
    ref = _reference_scores(train.double().numpy(), labels.numpy(), test.double().numpy(), 20, 0.07, 7)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-4)


def test_weighted_vote_lets_one_close_neighbour_beat_two_far_ones():
    # query along e0; class 1 has one neighbour at cos 0.99, class 0 two at cos 0.5 (k=3 takes all three)
    q = torch.tensor([[1.0, 0.0]])
    far = [0.5, math.sqrt(1 - 0.25)]
    train = torch.tensor([[0.99, math.sqrt(1 - 0.99**2)], far, far])
    labels = torch.tensor([1, 0, 0])
    scores = knn_class_scores(train, labels, q, k=3, temperature=0.07, num_classes=2)
    assert scores.argmax(dim=1).item() == 1  # exp(0.99/0.07) > 2 exp(0.5/0.07)
    np.testing.assert_allclose(scores[0].numpy(), [2 * math.exp(0.5 / 0.07), math.exp(0.99 / 0.07)], rtol=1e-5)
    # with a very high temperature the vote is a plain majority
    assert knn_class_scores(train, labels, q, k=3, temperature=100.0, num_classes=2).argmax().item() == 0


def test_k_limits_the_neighbours_and_is_clamped_to_the_training_set():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    q = torch.tensor([[0.1, 1.0]])
    assert knn_class_scores(train, labels, q, k=1, num_classes=2).argmax().item() == 1
    scores = knn_class_scores(train, labels, q, k=50, num_classes=2)  # k > N: all three vote
    assert (scores > 0).all()


def test_accuracy_is_scale_invariant_and_perfect_on_separated_clusters():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(5, 32, generator=g) * 5
    train_y, test_y = torch.arange(5).repeat(20), torch.arange(5).repeat(4)
    train = centres[train_y] + 0.1 * torch.randn(100, 32, generator=g)
    test = centres[test_y] + 0.1 * torch.randn(20, 32, generator=g)
    result = knn_evaluate(train, train_y, test * 1000.0, test_y)  # cosine: the test scale does not matter
    assert result.top1 == 1.0 and result.top5 == 1.0 and result.k == 20
    shuffled = knn_evaluate(train, train_y[torch.randperm(100, generator=g)], test, test_y)
    assert shuffled.top1 < 0.6  # labels unrelated to the features -> no longer perfect


def test_topk_accuracy_closed_form():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    assert topk_accuracy(scores, labels, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(scores, labels, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(scores, labels, 10) == 1.0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="differ in width"):
        knn_class_scores(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 5))
    with pytest.raises(ValueError, match="k must be"):
        knn_class_scores(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 3), k=0)
    with pytest.raises(ValueError, match="temperature"):
        knn_class_scores(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 3), temperature=0)


def test_pixel_features_are_area_averages_and_pooling_concatenates():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    feats = pixel_features(images, size=2)
    assert feats.shape == (2, 12)
    assert feats[0, 0].item() == pytest.approx(images[0, 0, :2, :2].mean().item())
    assert pixel_feature_fn(1)(images)["pixels"].shape == (2, 3)
    cls, mean = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(pooled({"cls": cls, "patch_mean": mean}, "cls+avgpool"), torch.cat([cls, mean], 1))
    with pytest.raises(ValueError, match="unknown pooling"):
        pooled({"cls": cls}, "mean")  # type: ignore[arg-type]
