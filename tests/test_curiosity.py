"""Curiosity and CuriosityPPO: the advantage arithmetic, the episodic GAE variant, the warm-up, the phase switch,
progress over the whole run, and no writes to SB3's private attributes from the trainer."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from encoders.utils.config import replace_nested
from techniques.rl_navigation.config import PRESETS, TwoPhaseConfig
from techniques.rl_navigation.curiosity import Curiosity, Transitions
from techniques.rl_navigation.feature_sources import AgentStates
from techniques.rl_navigation.intrinsic_critic import IntrinsicCritic
from techniques.rl_navigation.intrinsic_reward import IntrinsicRewardNormalizer, compute_gae
from techniques.rl_navigation.trainer import TwoPhaseTrainer

ROOT = Path(__file__).resolve().parents[1]


def smoke(**overrides) -> TwoPhaseConfig:
    return replace_nested(
        TwoPhaseConfig(), {**PRESETS["smoke"], "eval_episodes": 0, "trajectory_every": 0, **overrides}
    )


class _TableSource:
    """Features of a state: a fixed random vector per (row, col)."""

    dim = 6
    trainable = False

    def __init__(self):
        self.table = torch.randn(4, 4, self.dim, generator=torch.Generator().manual_seed(0))

    def features(self, states: AgentStates) -> torch.Tensor:
        s = states.reshape(-1)
        return self.table[torch.from_numpy(s.row), torch.from_numpy(s.col)]

    targets = features


class _FixedLearner:
    """Errors given in advance; counts its updates."""

    def __init__(self, errors: np.ndarray):
        self.source = _TableSource()
        self._errors = errors
        self.updates = 0

    def errors(self, states, actions, next_states) -> np.ndarray:
        return self._errors

    def update(self, states, actions, next_states, generator) -> dict[str, float]:
        self.updates += 1
        return {"forward_loss": 0.0}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


def _batch(t_len: int = 6, n: int = 3, seed: int = 0) -> Transitions:
    rng = np.random.default_rng(seed)

    def states(shape):
        z = np.zeros(shape, np.int64)
        return AgentStates(z, z.copy(), rng.integers(4, size=shape), rng.integers(4, size=shape), z.copy())

    dones = np.zeros((t_len, n), bool)
    dones[2, 0] = dones[4, 2] = True
    return Transitions(states((t_len, n)), rng.integers(4, size=(t_len, n)), states((t_len, n)), dones, states((n,)))


def _curiosity(errors: np.ndarray, episodic: bool = False, warmup: int = 0, coef: float = 0.5) -> Curiosity:
    torch.manual_seed(0)
    learner = _FixedLearner(errors)
    normalizer = IntrinsicRewardNormalizer(errors.shape[1], gamma=0.9, episodic=episodic, warmup_rollouts=warmup)
    critic = IntrinsicCritic(learner.source.dim, 8)
    return Curiosity(learner, normalizer, critic, coef, critic_epochs=3, critic_batch_size=4, gamma=0.9, gae_lambda=0.8)


@pytest.mark.parametrize("episodic", [False, True])
def test_intrinsic_advantages_are_the_gae_of_the_normalised_reward(episodic):
    batch = _batch()
    errors = np.random.default_rng(1).random((6, 3))
    cur = _curiosity(errors, episodic=episodic)
    adv = cur.rollout_advantages(batch)
    normalised = cur.normalizer.normalize(errors)
    with torch.no_grad():
        values = cur.critic(cur.source.features(batch.states)).reshape(6, 3).numpy()
        last = cur.critic(cur.source.features(batch.final_states)).numpy()
    expected, _ = compute_gae(normalised, values, last, batch.dones if episodic else None, 0.9, 0.8)
    np.testing.assert_allclose(adv, 0.5 * expected, rtol=1e-5, atol=1e-6)
    # the episodic variant does not bootstrap across an episode end, the non-episodic one does
    other, _ = compute_gae(normalised, values, last, None if episodic else batch.dones, 0.9, 0.8)
    assert not np.allclose(adv[2, 0], 0.5 * other[2, 0])
    np.testing.assert_allclose(adv[5], 0.5 * other[5], rtol=1e-5)  # after the last done of agents 0, 2: equal


def test_no_intrinsic_advantage_during_warmup_but_the_critic_fits():
    batch = _batch()
    errors = np.random.default_rng(1).random((6, 3)) + 1.0
    cur = _curiosity(errors, warmup=1)
    before = [p.detach().clone() for p in cur.critic.parameters()]
    adv = cur.rollout_advantages(batch)
    assert not adv.any() and cur.last_stats["intrinsic_mean"] == 0.0 and cur.last_stats["intrinsic_warming_up"] == 1
    stats = cur.update(batch)
    assert np.isfinite(stats["intrinsic_value_loss"]) and cur.learner.updates == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, cur.critic.parameters()))  # fit during the warm-up
    assert cur.rollout_advantages(batch).any()  # the reward is on after the warm-up


def test_reset_forgets_the_return_scale_and_the_critic():
    batch = _batch()
    cur = _curiosity(np.random.default_rng(1).random((6, 3)))
    for _ in range(2):
        cur.rollout_advantages(batch)
        cur.update(batch)
    trained = [p.detach().clone() for p in cur.critic.parameters()]
    assert cur.critic_optimizer.state and cur.normalizer.return_rms.count > 1
    cur.reset()
    assert not cur.critic_optimizer.state and cur.normalizer.return_rms.count < 1e-3
    assert all(not torch.equal(a, b) for a, b in zip(trained, cur.critic.parameters()))
    fresh = IntrinsicCritic(cur.source.dim, 8)
    fresh.reset_parameters(cur.seed + 1)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), cur.critic.parameters()))


def test_ppo_advantages_are_extrinsic_plus_scaled_intrinsic_and_returns_stay_extrinsic(tmp_path):
    trainer = TwoPhaseTrainer(smoke(phase2_episodes=0, extrinsic_coef=0.25), tmp_path / "run")
    model, buffer = trainer.model, trainer.model.rollout_buffer
    captured = {}
    sb3_compute = buffer.compute_returns_and_advantage

    def spy(last_values, dones):  # SB3's extrinsic GAE, at the end of its collect loop
        sb3_compute(last_values, dones)
        captured["adv"], captured["returns"] = buffer.advantages.copy(), buffer.returns.copy()

    buffer.compute_returns_and_advantage = spy
    ppo_train = model.train

    def before_update():  # what PPO's update gets, before SB3 flattens the buffer
        captured["final_adv"], captured["final_returns"] = buffer.advantages.copy(), buffer.returns.copy()
        captured["values"] = buffer.values.copy()
        ppo_train()

    model.train = before_update
    intrinsic = np.random.default_rng(0).standard_normal((trainer.cfg.ppo.n_steps, trainer.cfg.n_envs))
    trainer.curiosity.rollout_advantages = lambda batch: intrinsic.astype(np.float32)
    model.learn_rollouts(1)
    trainer.close()
    adv, returns = captured["final_adv"], captured["final_returns"]
    np.testing.assert_allclose(adv, 0.25 * captured["adv"] + intrinsic, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(returns, captured["returns"])  # PPO's critic regresses extrinsic returns
    np.testing.assert_allclose(returns, captured["adv"] + captured["values"], rtol=1e-6, atol=1e-6)


def test_schedules_see_the_progress_of_the_whole_run(tmp_path):
    trainer = TwoPhaseTrainer(smoke(phase1_episodes=16, phase2_episodes=16), tmp_path / "run")
    seen: list[float] = []
    schedule = trainer.model.lr_schedule
    trainer.model.lr_schedule = lambda progress: seen.append(progress) or schedule(progress)
    result = trainer.train()
    trainer.close()
    # SB3 reads the schedule twice per update (to set and to log the lr), one update per rollout, both phases
    assert len(seen) == 2 * result.counters.rollouts >= 8
    assert all(b <= a for a, b in itertools.pairwise(seen))  # never jumps back (it did at every learn() call)
    assert seen[0] > 0.5 and seen[-1] == pytest.approx(1 - result.counters.episodes / 32)


def test_the_trainer_writes_no_private_attribute_of_sb3():
    source = (ROOT / "techniques" / "rl_navigation" / "trainer.py").read_text()
    assert not re.findall(r"\bmodel\._\w+\s*=", source)
    assert "self.locals" not in (ROOT / "techniques" / "rl_navigation" / "curiosity.py").read_text()
