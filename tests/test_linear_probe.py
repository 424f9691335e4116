"""Linear probe: learns linearly separable labels, cannot learn what is not linear, picks lrs on a hold-out only."""

from __future__ import annotations

import pytest
import torch

from encoders.eval.linear_probe import (
    LinearProbeConfig,
    fit_linear_probe,
    linear_probe_evaluate,
    stratified_holdout,
)

FAST = LinearProbeConfig(lrs=(1e-3, 3e-2), epochs=30, batch_size=64)


def _linear_task(n: int, seed: int, noise_dims: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Label = argmax of 4 random projections; extra dimensions are large-scale noise (standardisation needed)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8 + noise_dims, generator=g)
    x[:, 8:] *= 100.0
    w = torch.randn(8, 4, generator=torch.Generator().manual_seed(123))
    return x, (x[:, :8] @ w).argmax(dim=1)


def test_probe_learns_a_linear_rule_and_generalises():
    x_train, y_train = _linear_task(800, 0)
    x_val, y_val = _linear_task(400, 1)
    result = linear_probe_evaluate(x_train, y_train, x_val, y_val, FAST)
    assert result.top1 > 0.9
    assert set(result.sweep) == {1e-3, 3e-2} and result.best_lr in result.sweep
    assert result.top5 == 1.0  # 4 classes


def test_probe_cannot_fit_xor_but_knows_it():
    # XOR of the signs of two coordinates: no linear classifier beats chance by much
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1200, 2, generator=g)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    result = linear_probe_evaluate(x[:800], y[:800], x[800:], y[800:], FAST)
    assert result.top1 < 0.65


def test_the_sweep_never_sees_the_validation_set():
    x_train, y_train = _linear_task(600, 0)
    x_val, y_val = _linear_task(200, 1)
    a = linear_probe_evaluate(x_train, y_train, x_val, y_val, FAST)
    b = linear_probe_evaluate(x_train, y_train, x_val, (y_val + 1) % 4, FAST)  # same val features, other labels
    assert a.sweep == b.sweep and a.best_lr == b.best_lr


def test_fitting_is_deterministic_given_the_seed():
    x, y = _linear_task(200, 0)
    p1 = fit_linear_probe(x, y, 4, 1e-2, FAST)
    p2 = fit_linear_probe(x, y, 4, 1e-2, FAST)
    assert torch.equal(p1.classifier.weight, p2.classifier.weight)
    p3 = fit_linear_probe(x, y, 4, 1e-2, LinearProbeConfig(epochs=30, batch_size=64, seed=1))
    assert not torch.equal(p1.classifier.weight, p3.classifier.weight)


def test_sgd_option_also_trains():
    x_train, y_train = _linear_task(600, 0)
    x_val, y_val = _linear_task(200, 1)
    cfg = LinearProbeConfig(lrs=(0.1,), epochs=30, batch_size=64, optimizer="sgd")
    result = linear_probe_evaluate(x_train, y_train, x_val, y_val, cfg)
    assert result.top1 > 0.85 and result.sweep == {}


def test_stratified_holdout_takes_each_class_and_never_all():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 2 + [3])
    held = stratified_holdout(labels, 0.2, seed=0)
    assert [int(held[labels == c].sum()) for c in range(4)] == [2, 1, 1, 0]
    assert torch.equal(held, stratified_holdout(labels, 0.2, seed=0))
    with pytest.raises(ValueError, match="holdout_fraction"):
        stratified_holdout(labels, 1.0)


def test_bad_config_is_reported():
    x, y = _linear_task(50, 0)
    with pytest.raises(ValueError, match="optimizer"):
        fit_linear_probe(x, y, 4, 1e-2, LinearProbeConfig(optimizer="lbfgs"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lrs is empty"):
        linear_probe_evaluate(x, y, x, y, LinearProbeConfig(lrs=()))
