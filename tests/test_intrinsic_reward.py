"""Running statistics, RND reward normalisation (episodic and not), re-warming, and GAE in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.running_mean_std import RunningMeanStd

from techniques.rl_navigation.intrinsic_reward import IntrinsicRewardNormalizer, compute_gae
from techniques.rl_navigation.running_stats import RewardForwardFilter


def test_normaliser_state_round_trips_exactly():
    rng = np.random.default_rng(0)
    norm = IntrinsicRewardNormalizer(n_envs=3, gamma=0.9, warmup_rollouts=0)
    for n in (5, 17, 1):
        norm(rng.normal(3.0, 2.0, size=(n, 3)))
    other = IntrinsicRewardNormalizer(n_envs=3, gamma=0.9, warmup_rollouts=0)
    other.load_state_dict(norm.state_dict())
    raw = rng.normal(size=(4, 3))
    np.testing.assert_array_equal(other(raw.copy()), norm(raw.copy()))
    assert other.return_std == norm.return_std


def test_reward_forward_filter_closed_form():
    f = RewardForwardFilter(gamma=0.5, n_envs=2)
    out = [f.update(np.array([1.0, 2.0])) for _ in range(3)]
    np.testing.assert_allclose(out[-1], [1 + 0.5 + 0.25, 2 * (1 + 0.5 + 0.25)])
    # episodic: the sum restarts after a done (the done step itself still includes its reward)
    f.reset()
    assert f.update(np.array([1.0, 1.0]), dones=np.array([True, False])).tolist() == [1.0, 1.0]
    assert f.update(np.array([1.0, 1.0]), dones=np.array([False, False])).tolist() == [1.0, 1.5]
    with pytest.raises(ValueError, match="gamma"):
        RewardForwardFilter(1.5, 2)


def test_normaliser_divides_by_return_std():
    norm = IntrinsicRewardNormalizer(n_envs=1, gamma=0.5, warmup_rollouts=0, epsilon=0.0)
    raw = np.ones((4, 1))
    out = norm(raw)
    returns = np.array([1.0, 1.5, 1.75, 1.875])  # filtered returns of constant rewards
    rms = RunningMeanStd(shape=())
    rms.update(returns)
    np.testing.assert_allclose(out, raw / np.sqrt(rms.var), rtol=1e-6)


def test_episodic_and_non_episodic_differ_only_after_dones():
    raw = np.ones((6, 2))
    dones = np.zeros((6, 2), dtype=bool)
    dones[1, 0] = True
    a = IntrinsicRewardNormalizer(2, gamma=0.9, episodic=False, warmup_rollouts=0)
    b = IntrinsicRewardNormalizer(2, gamma=0.9, episodic=True, warmup_rollouts=0)
    a.update(raw, dones)
    b.update(raw, dones)
    assert a.filter.rewems[1] == pytest.approx(b.filter.rewems[1])  # env 1 had no episode end
    assert a.filter.rewems[0] > b.filter.rewems[0]  # env 0's episodic sum restarted


def test_warmup_and_rewarm():
    norm = IntrinsicRewardNormalizer(n_envs=2, warmup_rollouts=2)
    raw = np.abs(np.random.default_rng(0).normal(size=(8, 2))) + 0.1
    assert norm.warming_up
    assert (norm(raw) == 0).all() and (norm(raw) == 0).all()
    assert not norm.warming_up and (norm(raw) > 0).all()
    count_before = norm.return_rms.count
    norm.reset()
    assert norm.warming_up and norm.return_rms.count < count_before
    assert (norm(raw * 100) == 0).all()
    assert norm.return_rms.count == pytest.approx(16 + 1e-4)  # only the re-warm rollout counts now
    state = norm.state_dict()
    other = IntrinsicRewardNormalizer(n_envs=2, warmup_rollouts=2)
    other.load_state_dict(state)
    assert other.rollouts_since_reset == 1 and other.return_rms.var == pytest.approx(norm.return_rms.var)


def _naive_returns(rewards, last_values, dones, gamma):
    t_len, n = rewards.shape
    out = np.zeros_like(rewards)
    for e in range(n):
        ret = last_values[e]
        for t in reversed(range(t_len)):
            ret = rewards[t, e] + gamma * ret * (0.0 if dones is not None and dones[t, e] else 1.0)
            out[t, e] = ret
    return out


@pytest.mark.parametrize("episodic", [False, True])
def test_gae_closed_form(episodic):
    rng = np.random.default_rng(1)
    rewards = rng.normal(size=(7, 3))
    values = rng.normal(size=(7, 3))
    last = rng.normal(size=3)
    dones = rng.random((7, 3)) < 0.3 if episodic else None
    # lambda = 1: advantages are discounted Monte-Carlo returns (bootstrapped at the end) minus values
    adv, ret = compute_gae(rewards, values, last, dones, gamma=0.9, gae_lambda=1.0)
    np.testing.assert_allclose(ret, _naive_returns(rewards, last, dones, 0.9), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adv, ret - values, rtol=1e-5, atol=1e-5)
    # lambda = 0: one-step TD errors
    adv0, _ = compute_gae(rewards, values, last, dones, gamma=0.9, gae_lambda=0.0)
    nxt = np.concatenate([values[1:], last[None]])
    nd = 1.0 if dones is None else 1.0 - dones
    np.testing.assert_allclose(adv0, rewards + 0.9 * nxt * nd - values, rtol=1e-5, atol=1e-6)
