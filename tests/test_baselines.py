"""The baselines and options reviewers ask for: ICM (``inverse``), a random-init encoder (``random``), RND, the
goal-distance reward, pure curiosity (``--extrinsic-coef 0``) and the LSTM policy (``--policy lstm``): each
unit in a closed or hand-made case, and each option in a smoke run of the CLI with its held-out evaluation."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments import two_phase
from techniques.rl_navigation.feature_sources import AgentStates
from techniques.rl_navigation.forward_model import ForwardModel, normalise_features
from techniques.rl_navigation.forward_trainer import ForwardModelTrainer
from techniques.rl_navigation.inverse_dynamics import ICMLearner
from techniques.rl_navigation.rewards import GoalDistanceReward, goal_feature_distance
from techniques.rl_navigation.rnd import RNDTrainer
from tests.test_curiosity import _TableSource


def _states(rows, cols) -> AgentStates:
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    z = np.zeros_like(rows)
    return AgentStates(z, z.copy(), rows, cols, z.copy())


def test_rnd_bonus_falls_on_visited_states_and_stays_on_new_ones():
    learner = RNDTrainer(_TableSource(), out_dim=16, hidden_dim=32, lr=1e-2, epochs=30, batch_size=16, seed=0)
    seen = _states([0, 0, 1, 1] * 8, [0, 1, 0, 1] * 8)
    new = _states([3, 3, 2, 2], [3, 2, 3, 2])
    actions = np.zeros(32, np.int64)
    before_seen = learner.errors(seen, actions, seen).mean()
    stats = learner.update(seen, actions, seen, np.random.default_rng(0))
    assert stats["steps"] == 30 * 2 and not any(p.requires_grad for p in learner.target.parameters())
    after_seen, after_new = learner.errors(seen, actions, seen).mean(), learner.errors(new, actions[:4], new).mean()
    assert after_seen < 0.2 * before_seen and after_new > 3 * after_seen
    # the bonus is the novelty of the state reached, whatever the action
    np.testing.assert_allclose(learner.errors(seen, actions + 1, seen), learner.errors(seen, actions, seen))


@pytest.fixture
def one_thread():
    """Tiny MLPs, many steps: one torch thread (two spin-wait badly on a loaded 2-core machine: 33 s vs 0.8 s
    for one ICM update, measured under load 12)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_icm_inverse_model_learns_the_action_and_the_forward_model_its_embedding(one_thread):
    torch.manual_seed(0)
    source = _TableSource()
    learner = ICMLearner(
        source, n_actions=4, embed_dim=8, hidden_dim=32, forward_hidden=32, lr=3e-3, epochs=1, batch_size=32
    )
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(1, 3, size=256), rng.integers(1, 3, size=256)
    actions = rng.integers(4, size=256)
    dr, dc = np.array([-1, 1, 0, 0])[actions], np.array([0, 0, -1, 1])[actions]
    s, nxt = _states(rows, cols), _states(rows + dr, cols + dc)
    first = learner.update(s, actions, nxt, rng)
    for _ in range(40):
        last = learner.update(s, actions, nxt, rng)
    assert first["inverse_accuracy"] < 0.5 < 0.9 < last["inverse_accuracy"]
    assert last["forward_loss"] < first["forward_loss"]
    assert learner.errors(s, actions, nxt).shape == (256,)
    # the forward loss does not train the embedding (Burda et al.'s IDF): only the inverse loss reaches phi
    phi = [p.detach().clone() for p in learner.inverse.phi.parameters()]
    learner.forward.update(s, actions, nxt, rng)
    assert all(torch.equal(a, b) for a, b in zip(phi, learner.inverse.phi.parameters()))


class _ScriptedEnv:
    """A two-agent feature env whose observations follow a script (for the reward wrapper)."""

    def __init__(self, script):
        import gymnasium as gym

        self.script = script
        self.t = 0
        self.num_envs = 2
        box = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.observation_space = gym.spaces.Dict({"features": box, "goal": box})
        self.action_space = gym.spaces.Discrete(4)
        self.render_mode = None

    def _obs(self, t):
        view, goal = self.script[t]
        return {"features": np.asarray(view, np.float32), "goal": np.asarray(goal, np.float32)}

    def reset(self):
        self.t = 0
        return self._obs(0)

    def step_async(self, actions):
        pass

    def step_wait(self):
        self.t += 1
        dones = np.array([self.t == 2, False])
        infos = [{}, {}]
        if dones[0]:
            infos[0]["terminal_observation"] = {"features": np.array([0.0, 1.0]), "goal": np.array([0.0, 1.0])}
        return self._obs(self.t), np.zeros(2, np.float32), dones, infos


def test_prediction_targets_are_the_space_each_learner_rewards_in(one_thread):
    """What each learner predicts for a state (the space in which a noisy TV is loud or quiet): the forward model's
    targets, ICM's ``phi`` of the features, RND's fixed random target of the normalised features."""
    torch.manual_seed(0)
    source, states = _TableSource(), _states([0, 1, 2, 3], [3, 2, 1, 0])
    forward = ForwardModelTrainer(ForwardModel(source.dim, 4, hidden_dim=16), source)
    torch.testing.assert_close(forward.prediction_targets(states), source.targets(states))
    icm = ICMLearner(source, n_actions=4, embed_dim=5, hidden_dim=16, forward_hidden=16)
    with torch.no_grad():
        torch.testing.assert_close(icm.prediction_targets(states), icm.inverse.embed(source.features(states)))
    rnd = RNDTrainer(source, out_dim=7, hidden_dim=16, seed=0)
    with torch.no_grad():
        expected = rnd.target(normalise_features(source.targets(states)))
    torch.testing.assert_close(rnd.prediction_targets(states), expected)
    # RND's bonus is the predictor's distance to exactly these targets
    with torch.no_grad():
        bonus = (rnd.predictor(normalise_features(source.targets(states))) - expected).pow(2).mean(-1)
    np.testing.assert_allclose(rnd.errors(states, np.zeros(4, np.int64), states), bonus.double().numpy(), rtol=1e-6)


def test_goal_distance_reward_pays_the_decrease_of_the_cosine_distance():
    goal = [[0.0, 1.0], [0.0, 1.0]]
    script = [
        ([[1.0, 0.0], [1.0, 0.0]], goal),  # both orthogonal to the goal: distance 1
        ([[1.0, 1.0], [1.0, 0.0]], goal),  # agent 0 halfway (45 degrees)
        ([[1.0, 0.0], [0.0, 1.0]], goal),  # agent 0's episode ended on the goal (terminal obs), then reset
    ]
    env = GoalDistanceReward(_ScriptedEnv(script), scale=2.0)
    env.reset()
    _, r1, _, _ = env.step(np.zeros(2))
    np.testing.assert_allclose(r1, [2.0 * (1 - (1 - np.sqrt(0.5))), 0.0], atol=1e-6)
    _, r2, _, _ = env.step(np.zeros(2))
    np.testing.assert_allclose(r2, [2.0 * (1 - np.sqrt(0.5)), 2.0], atol=1e-6)  # to the terminal obs; agent 1 on goal
    window = {"features": np.zeros((1, 3, 3, 2)), "goal": np.array([[0.0, 1.0]])}
    window["features"][0, 1, 1] = [0.0, 3.0]  # cells outside the scene are zeros: only the direction counts
    assert goal_feature_distance(window)[0] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="needs feature observations"):
        env_pixels = _ScriptedEnv(script)
        import gymnasium as gym

        env_pixels.observation_space = gym.spaces.Dict({"pixels": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8)})
        GoalDistanceReward(env_pixels, 1.0)


# ------------------------------------------------------------------------------------------ CLI smoke runs
OPTIONS = {
    "inverse": ["--curiosity.space", "inverse", "--phase2-episodes", "0"],
    "random": ["--curiosity.space", "random", "--phase2-episodes", "0"],
    "rnd": ["--curiosity.space", "rnd", "--phase2-episodes", "0"],
    "goal-distance": ["--goal-distance-reward", "1.0", "--curiosity.space", "none", "--phase2-episodes", "0"],
    "pure-curiosity": ["--extrinsic-coef", "0"],
    "lstm": ["--policy", "lstm"],
    "lstm-v1": ["--policy", "lstm", "--task", "ObjectNav-v1"],
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_every_new_option_trains_and_evaluates(tmp_path: Path, name: str):
    out = io.StringIO()
    argv = ["--preset", "smoke", "--logdir", str(tmp_path), "--eval-episodes", "4", *OPTIONS[name]]
    with contextlib.redirect_stdout(out):
        rc = two_phase.main(argv)
    assert rc == 0, out.getvalue()
    (run_dir,) = tmp_path.iterdir()
    report = json.loads((run_dir / "eval" / "summary_test.json").read_text())["results"]
    assert "random walk" in report and len(report) >= 2
    for summary in report.values():
        assert summary["success"]["n"] == 4 and 0 <= summary["success_within_2"]["mean"] <= 1
        assert summary["success_within_0"]["mean"] <= summary["success_within_2"]["mean"]


def test_pure_curiosity_needs_an_intrinsic_reward(capsys):
    rc = two_phase.main(["--preset", "smoke", "--extrinsic-coef", "0", "--curiosity.space", "none"])
    assert rc == 2 and "--extrinsic-coef 0" in capsys.readouterr().err


def test_policy_actor_carries_the_recurrent_state_and_resets_it_at_episode_starts():
    from techniques.rl_navigation.evaluation import policy_actor

    calls = []

    class Recurrent:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            calls.append((state, np.asarray(episode_start).copy()))
            return np.zeros(2, np.int64), ("lstm state", len(calls))

    act = policy_actor(Recurrent())
    act({}, np.array([True, True]))
    act({}, np.array([False, True]))
    assert calls[0][0] is None and calls[1][0] == ("lstm state", 1)
    assert calls[0][1].tolist() == [True, True] and calls[1][1].tolist() == [False, True]
