"""The evaluate CLI: metrics JSON + text with 95% CIs, a trajectory PNG, the reference policies and the paired
difference to the blind walk, errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from experiments import evaluate
from techniques.rl_navigation.evaluation import EpisodeResults, format_table, summarize, trajectory_grid
from techniques.rl_navigation.trainer import TwoPhaseTrainer
from tests.test_two_phase import smoke


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "run"
    trainer = TwoPhaseTrainer(smoke(phase2_episodes=0, trajectory_every=0), path)
    trainer.train()
    trainer.close()
    return path


def test_evaluate_writes_tables_and_png(run_dir, capsys):
    rc = evaluate.main([str(run_dir), "--episodes", "6", "--split", "test", "--n-envs", "4"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| final |" in out and "| random walk |" in out
    assert "| blind persistent walk |" in out and "| recognition + persistent walk |" in out
    assert "success − blind walk (paired)" in out
    data = json.loads((run_dir / "eval" / "summary_test.json").read_text())
    assert data["split"] == "test" and data["episodes"] == 6
    assert list(data["results"]) == ["final", "random walk", "blind persistent walk", "recognition + persistent walk"]
    assert set(data["success_minus_blind_walk"]) == {"final", "random walk", "recognition + persistent walk"}
    assert data["success_minus_blind_walk"]["final"]["n"] == 6
    for policy in data["results"]:
        for metric in ("success", "spl", "soft_spl", "coverage", "path_length"):
            entry = data["results"][policy][metric]
            assert entry["n"] == 6 and entry["ci95"] >= 0 and np.isfinite(entry["mean"])
        assert 0 <= data["results"][policy]["spl"]["mean"] <= data["results"][policy]["success"]["mean"] + 1e-9
    assert "± " in (run_dir / "eval" / "summary_test.txt").read_text()
    png = cv2.imread(str(run_dir / "eval" / "trajectories_test.png"))
    assert png is not None and png.shape[0] > 100


def test_same_seed_same_episodes(run_dir):
    """Every policy faces the same episodes: two random-walk evaluations with one seed agree exactly."""
    from techniques.rl_navigation.evaluation import evaluate_run

    a = evaluate_run(run_dir, (), episodes=5, n_envs=2, seed=3)
    b = evaluate_run(run_dir, (), episodes=5, n_envs=2, seed=3, random_baseline=False)
    assert list(b) == ["blind persistent walk", "recognition + persistent walk"]
    for label in b:  # the reference policies repeat too (their generators are seeded)
        np.testing.assert_array_equal(a[label].path_length, b[label].path_length)
    c = evaluate_run(run_dir, (), episodes=5, n_envs=2, seed=3, references=False)
    assert list(c) == ["random walk"]
    np.testing.assert_array_equal(a["random walk"].spl, c["random walk"].spl)
    np.testing.assert_array_equal(a["random walk"].path_length, c["random walk"].path_length)


def test_summary_closed_form():
    ones = np.ones(4)
    res = EpisodeResults(
        success=np.array([1.0, 0.0, 1.0, 0.0]), success_within_0=ones * 0, success_within_1=ones * 0.5,
        success_within_2=ones, spl=ones * 0.5, soft_spl=ones, coverage=ones * 0.25,
        path_length=np.array([2.0, 4.0, 6.0, 8.0]), distance_to_goal=ones * 3, tv_fraction=ones * 0,
        remote_presses=ones * 0,
        episode_return=ones, length=ones,
    )  # fmt: skip
    s = summarize(res)
    assert s["success"]["mean"] == 0.5 and s["spl"]["ci95"] == 0.0
    assert s["success"]["ci95"] == pytest.approx(3.182 * np.std([1, 0, 1, 0], ddof=1) / 2, rel=1e-3)  # t(3)
    assert s["path_length"]["mean"] == 5.0 and s["distance_to_goal"]["mean"] == 3.0
    assert "| x | 4 | 0.500 ± 0.919 |" in format_table({"x": s})
    grid = trajectory_grid([np.zeros((10, 12, 3), np.uint8)] * 5, ncols=2, pad=1)
    assert grid.shape == (3 * 11 + 1, 2 * 13 + 1, 3)


def test_bad_run_dir(tmp_path, capsys):
    assert evaluate.main([str(tmp_path / "missing")]) == 2
    assert "no saved config" in capsys.readouterr().err
    assert evaluate.main([str(tmp_path), "--episodes", "0"]) == 2
