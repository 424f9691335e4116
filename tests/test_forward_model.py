"""ForwardModel: shapes, losses in normalised space, learning on fixed transitions, and novelty."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from techniques.rl_navigation.forward_model import ForwardModel, normalise_features, prediction_error
from techniques.rl_navigation.intrinsic_reward import IntrinsicRewardNormalizer


def _transitions(n: int = 256, d: int = 16, n_actions: int = 4, seed: int = 0):
    """Fixed transitions with a learnable rule: the action adds a fixed vector to the features."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g)
    a = torch.randint(0, n_actions, (n,), generator=g)
    shifts = torch.randn(n_actions, d, generator=g)
    return z, a, z + shifts[a]


def test_shapes_and_identity_start():
    fm = ForwardModel(16, 4, hidden_dim=32)
    z, a, _ = _transitions(8)
    pred = fm(z, a)
    assert pred.shape == (8, 16)
    torch.testing.assert_close(pred, normalise_features(z))  # residual model starts as the identity
    assert fm.errors(z, a, z).abs().max() < 1e-10


def test_losses_closed_form():
    pred = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    target = torch.tensor([[3.0, 1.0, 3.0, 1.0]])  # layer norm -> [1, -1, 1, -1]
    assert prediction_error(pred, target, "mse_ln").item() == pytest.approx(0.0, abs=1e-5)
    assert prediction_error(pred, -pred, "cosine").item() == pytest.approx(2.0)
    assert prediction_error(pred, 5 * pred, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="choose one of"):
        prediction_error(pred, target, "l1")  # type: ignore[arg-type]


def test_target_is_detached():
    fm = ForwardModel(16, 4, hidden_dim=32)
    z, a, nxt = _transitions(8)
    nxt = nxt.clone().requires_grad_(True)
    fm.loss(z, a, nxt).backward()
    assert nxt.grad is None


@pytest.mark.parametrize("loss", ["mse_ln", "cosine"])
def test_forward_loss_falls_on_fixed_transitions(loss):
    torch.manual_seed(0)
    fm = ForwardModel(16, 4, hidden_dim=64, loss=loss)
    z, a, nxt = _transitions()
    opt = torch.optim.Adam(fm.parameters(), lr=3e-3)
    with torch.no_grad():
        first = fm.loss(z, a, nxt).item()
    for _ in range(200):
        opt.zero_grad()
        fm.loss(z, a, nxt).backward()
        opt.step()
    with torch.no_grad():
        last = fm.loss(z, a, nxt).item()
    assert last < 0.2 * first, (first, last)


def test_action_and_cond_matter():
    fm = ForwardModel(8, 3, hidden_dim=16, cond_dim=4, residual=False)
    z = torch.randn(5, 8)
    cond = F.one_hot(torch.tensor([0, 1, 2, 3, 0]), 4).float()
    p0 = fm(z, torch.zeros(5, dtype=torch.long), cond)
    p1 = fm(z, torch.ones(5, dtype=torch.long), cond)
    assert not torch.allclose(p0, p1)
    with pytest.raises(ValueError, match="cond of width 4"):
        fm(z, torch.zeros(5, dtype=torch.long))


def test_novel_transition_gets_more_intrinsic_reward():
    """Train on a well-known set; a transition from elsewhere in feature space is more surprising."""
    torch.manual_seed(0)
    d, n_actions = 16, 4
    fm = ForwardModel(d, n_actions, hidden_dim=64)
    z, a, nxt = _transitions(64, d, n_actions, seed=1)
    opt = torch.optim.Adam(fm.parameters(), lr=3e-3)
    for _ in range(300):
        opt.zero_grad()
        fm.loss(z, a, nxt).backward()
        opt.step()
    known = (z[:4], a[:4], nxt[:4])
    g = torch.Generator().manual_seed(99)
    novel_z = torch.randn(4, d, generator=g) * 3
    novel = (novel_z, a[:4], torch.randn(4, d, generator=g))  # unseen state, unpredictable outcome
    with torch.no_grad():
        raw = torch.stack([fm.errors(*known), fm.errors(*novel)], dim=1).numpy()  # (T=4, N=2 "envs")
    norm = IntrinsicRewardNormalizer(n_envs=2, warmup_rollouts=0)
    reward = norm(raw)
    assert (reward[:, 1] > 5 * reward[:, 0]).all(), reward
    assert np.isfinite(reward).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown forward loss"):
        ForwardModel(8, 4, loss="huber")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive sizes"):
        ForwardModel(8, 0)
