"""TwoPhaseTrainer: the encoder is untouched by PPO and phase 1, phase 2 trains exactly the top blocks + norm,
the curiosity glue records the right transitions, and resume continues counters and phase."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from encoders.utils.config import replace_nested
from techniques.rl_navigation import trainer as trainer_module
from techniques.rl_navigation.checkpointing import checkpoint_dir, list_checkpoints
from techniques.rl_navigation.config import PRESETS, TwoPhaseConfig, check_config
from techniques.rl_navigation.feature_sources import AgentStates
from techniques.rl_navigation.trainer import TwoPhaseTrainer


def smoke(**overrides) -> TwoPhaseConfig:
    return replace_nested(TwoPhaseConfig(), {**PRESETS["smoke"], "eval_episodes": 0, **overrides})


def _encoder_state(trainer: TwoPhaseTrainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.encoder.backbone.state_dict().items()}


def _assert_no_encoder_param_in_ppo(trainer: TwoPhaseTrainer) -> None:
    encoder_ids = {id(p) for p in trainer.encoder.parameters()}
    ppo_ids = {id(p) for group in trainer.model.policy.optimizer.param_groups for p in group["params"]}
    assert ppo_ids and not encoder_ids & ppo_ids
    assert not encoder_ids & {id(p) for p in trainer.model.policy.parameters()}


def test_ppo_and_phase1_leave_the_encoder_untouched(tmp_path):
    trainer = TwoPhaseTrainer(smoke(phase1_episodes=8, phase2_episodes=0, trajectory_every=0), tmp_path / "run")
    before = _encoder_state(trainer)
    grids_before = trainer.env.scene_features.grids.clone()
    result = trainer.train()
    trainer.close()
    assert result.counters.phase == 1 and result.counters.ppo_updates >= 2 and result.counters.episodes >= 8
    after = trainer.encoder.backbone.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key  # bit-identical
    assert all(p.grad is None for p in trainer.encoder.parameters())
    assert not any(p.requires_grad for p in trainer.encoder.parameters())
    torch.testing.assert_close(trainer.env.scene_features.grids, grids_before, rtol=0, atol=0)
    _assert_no_encoder_param_in_ppo(trainer)
    # the forward model did train on the rollouts
    assert np.isfinite(trainer.curiosity.last_stats["forward_loss"])


def test_phase2_trains_exactly_the_top_blocks_and_norm(tmp_path):
    cfg = smoke(encoder_lr=1e-2, trajectory_every=0)  # a large lr so that every trained value moves
    trainer = TwoPhaseTrainer(cfg, tmp_path / "run")
    before = _encoder_state(trainer)
    result = trainer.train()
    assert result.counters.phase == 2
    depth, n = trainer.encoder.n_blocks, cfg.unfreeze_layers
    trained_prefixes = (*(f"blocks.{i}." for i in range(depth - n, depth)), "norm.")
    after = trainer.encoder.backbone.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    expected = {k for k in before if k.startswith(trained_prefixes)}
    assert changed == expected
    _assert_no_encoder_param_in_ppo(trainer)
    # the environments' cache was refreshed to the new encoder (top blocks only, in place)
    fresh = trainer.encoder.build_cache(trainer.env.world.images)
    torch.testing.assert_close(trainer.env.scene_features.grids, fresh.grids, rtol=1e-4, atol=1e-5)
    # the EMA target lags behind the online blocks
    target_block = trainer.target.network.blocks[-1].attn.qkv.weight
    online_block = trainer.encoder.backbone.blocks[-1].attn.qkv.weight
    assert not torch.equal(target_block, online_block)
    assert list_checkpoints(tmp_path / "run") == ["final", "phase1_end", "rollout_000002"]
    assert trainer.curiosity.resets == 1  # the phase switch re-initialised the intrinsic critic and the normaliser
    trainer.close()


class _TerminalObservations(BaseCallback):
    def __init__(self):
        super().__init__()
        self.rows: list[tuple[int, int, np.ndarray]] = []
        self.t = 0

    def _on_rollout_start(self) -> None:
        self.t = 0

    def _on_step(self) -> bool:
        for i in np.flatnonzero(self.locals["dones"]):
            self.rows.append((self.t, int(i), self.locals["infos"][i]["terminal_observation"]["features"]))
        self.t += 1
        return True


def test_recorded_transitions_match_observations(tmp_path):
    trainer = TwoPhaseTrainer(smoke(phase1_episodes=4, phase2_episodes=0, trajectory_every=0), tmp_path / "run")
    spy = _TerminalObservations()
    trainer.model.learn_rollouts(1, callback=spy)
    batch = trainer.recorder.batch()
    states, next_states, dones = batch.states, batch.next_states, batch.dones
    assert dones.any() and spy.rows
    # within an episode, the next state of step t is the state of step t + 1
    cont = ~dones[:-1]
    for a, b in zip(states[1:].arrays(), next_states[:-1].arrays()):
        np.testing.assert_array_equal(a[cont], b[cont])
    # the terminal state recorded for a finished episode is where its last observation was taken
    source = trainer.curiosity.source
    for t, i, obs in spy.rows:
        state = AgentStates(*(np.asarray([a[t, i]]) for a in next_states.arrays()))
        np.testing.assert_allclose(source.features(state)[0].numpy(), obs, rtol=1e-6)
    # the observations PPO stored are the (detached) cached features of the recorded states
    buffer_obs = trainer.model.rollout_buffer.observations["features"]  # (N*T, D): SB3 flattened it env-major
    env_major = AgentStates(*(np.ascontiguousarray(a.T) for a in states.arrays()))
    np.testing.assert_allclose(source.features(env_major).numpy(), buffer_obs)
    trainer.close()


def test_resume_continues_counters_and_phase(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = TwoPhaseTrainer(smoke(trajectory_every=0, phase2_episodes=12), run)
    calls = {"n": 0}
    original = trainer.curiosity.update

    def interrupt_third(batch):  # Ctrl-C during phase 2, after the updates of its first rollout
        calls["n"] += 1
        stats = original(batch)
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return stats

    trainer.curiosity.update = interrupt_third
    first = trainer.train()
    trainer.close()
    assert first.interrupted and first.counters.phase == 2
    assert checkpoint_dir(run).name == "interrupted"
    stats_count = trainer.curiosity.normalizer.return_rms.count
    encoder_at_stop = _encoder_state(trainer)

    checks = []
    monkeypatch.setattr(trainer_module, "check_config", lambda cfg: checks.append(cfg) or check_config(cfg))
    resumed = TwoPhaseTrainer.resume(run, {"phase2_episodes": 16})
    assert len(checks) == 1  # the config is checked once (by the constructor), before any work
    c = resumed.counters
    assert (c.phase, c.episodes, c.rollouts, c.steps) == (2, first.counters.episodes, 3, first.counters.steps)
    assert resumed.model.num_timesteps == c.steps
    assert resumed.curiosity.normalizer.return_rms.count == pytest.approx(stats_count)
    assert resumed.curiosity.learner.encoder_optimizer is not None  # phase 2 wiring restored
    for key, value in _encoder_state(resumed).items():
        assert torch.equal(value, encoder_at_stop[key]), key
    result = resumed.train()
    resumed.close()
    assert not result.interrupted and result.counters.phase == 2
    assert result.counters.episodes >= 8 + 16 and result.counters.rollouts > 3
    assert result.counters.steps == result.counters.rollouts * 16 * 4
    assert "phase1_end" in list_checkpoints(run) and checkpoint_dir(run).name == "final"
    with pytest.raises(ValueError, match="cannot change --encoder"):
        TwoPhaseTrainer.resume(run, {"encoder": "vit_tiny_patch14"})


@pytest.mark.parametrize(("phase1", "phase2"), [(100, 0), (64, 65)])
def test_step_budgets_are_met_to_the_rollout(tmp_path, phase1, phase2):
    # smoke rollouts: 4 agents x 16 steps = 64 transitions; each phase ends at the first rollout boundary at or past
    # its budget, counted over the run, whatever the episodes' lengths
    cfg = smoke(phase1_steps=phase1, phase2_steps=phase2, trajectory_every=0, checkpoint_every=0)
    trainer = TwoPhaseTrainer(cfg, tmp_path / "run")
    result = trainer.train()
    trainer.close()
    rollout = cfg.n_envs * cfg.ppo.n_steps
    assert result.counters.steps == -(-(phase1 + phase2) // rollout) * rollout
    assert result.counters.phase == (2 if phase2 else 1) and not result.interrupted
    if phase2:
        state = torch.load(result.checkpoints["phase1_end"] / "state.pt", weights_only=False)
        assert state["counters"]["steps"] == -(-phase1 // rollout) * rollout  # the phase switch
    assert "final" in result.checkpoints


def test_a_step_budget_needs_phase_1_steps():
    with pytest.raises(ValueError, match="--phase2-steps needs --phase1-steps"):
        check_config(smoke(phase2_steps=64))
