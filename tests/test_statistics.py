"""techniques.rl_navigation.statistics: the one interval helper (hand cases) and the rliable aggregates."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from techniques.rl_navigation import evaluation, statistics
from techniques.rl_navigation.statistics import fmt_ci, iqm_ci, mean_ci, probability_of_improvement, t_quantile

ROOT = Path(__file__).resolve().parents[1]


def test_mean_ci_hand_case():
    s = mean_ci([1.0, 2.0, 3.0])  # std 1, t(0.975, 2) = 4.303
    assert s["mean"] == pytest.approx(2.0) and s["n"] == 3 and s["std"] == pytest.approx(1.0)
    assert s["ci95"] == pytest.approx(4.303 / math.sqrt(3), rel=1e-4)
    two = mean_ci([0.0, 1.0, float("nan")])  # NaN dropped: n = 2, t = 12.706, s = 0.7071
    assert two["n"] == 2 and two["ci95"] == pytest.approx(12.706 * math.sqrt(0.5) / math.sqrt(2), rel=1e-4)
    one = mean_ci([5.0])
    assert one["mean"] == 5.0 and math.isnan(one["ci95"]) and fmt_ci(one) == "5.000"
    assert t_quantile(1000) == pytest.approx(1.962, abs=1e-3) and fmt_ci(s) == "2.000 ± 2.484"


def test_iqm_and_its_stratified_bootstrap_interval():
    scores = np.arange(1.0, 9.0)[:, None]  # 8 runs, 1 task: the IQM averages the middle four
    out = iqm_ci(scores, reps=500)
    assert out["iqm"] == pytest.approx(4.5) and out["n"] == 8
    assert out["low"] < 4.5 < out["high"] and out["high"] - out["low"] < 7
    assert math.isnan(iqm_ci([3.0])["low"])  # one run: no interval
    with pytest.raises(ValueError, match="runs, tasks"):
        iqm_ci(np.zeros((2, 2, 2)))


def test_probability_of_improvement_hand_cases():
    better, worse = np.array([[3.0], [4.0], [5.0]]), np.array([[0.0], [1.0], [2.0]])
    assert probability_of_improvement(better, worse, reps=200)["p"] == pytest.approx(1.0)
    assert probability_of_improvement(worse, better, reps=200)["p"] == pytest.approx(0.0)
    tie = probability_of_improvement(better, better, reps=200)
    assert tie["p"] == pytest.approx(0.5)
    mixed = probability_of_improvement(np.array([[1.0], [3.0]]), np.array([[2.0], [0.0]]), reps=500)
    assert mixed["p"] == pytest.approx(0.75) and mixed["low"] <= 0.75 <= mixed["high"]  # 3 of 4 pairs


def test_one_interval_helper_in_the_codebase():
    from experiments.studies import navigation

    assert navigation.mean_ci is statistics.mean_ci and navigation.fmt_ci is statistics.fmt_ci
    summary = evaluation.summarize(
        evaluation.EpisodeResults(*(np.array([0.0, 1.0, 1.0]) for _ in range(13)))  # every metric
    )
    assert summary["success"] == mean_ci([0.0, 1.0, 1.0])
    pattern = re.compile(r"1\.96\s*\*|T_975|def mean_ci|def t_quantile")
    hits = [
        str(p.relative_to(ROOT))
        for folder in ("techniques", "experiments", "envs", "benchmarks")
        for p in (ROOT / folder).rglob("*.py")
        if pattern.search(p.read_text()) and p.name != "statistics.py"
    ]
    assert not hits, f"interval arithmetic outside techniques/rl_navigation/statistics.py: {hits}"
