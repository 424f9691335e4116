"""SPL, soft-SPL and coverage on hand-built cases (Anderson et al. 2018; Habitat's soft-SPL)."""

from __future__ import annotations

import numpy as np
import pytest

from envs.metrics import coverage, soft_spl, spl, success_path_length


def test_spl_shortest_path_detour_and_failure():
    assert spl(True, 10, 10) == pytest.approx(1.0)  # the shortest path
    assert spl(True, 10, 8) == pytest.approx(1.0)  # stopping inside the success radius: capped at 1
    assert spl(True, 10, 16) == pytest.approx(10 / 16)  # a detour of 6 cells
    assert spl(False, 10, 10) == 0.0  # failure scores 0 whatever the path
    assert spl(True, 0, 0) == pytest.approx(1.0)  # started on the goal
    np.testing.assert_allclose(spl([1, 1, 0], [4, 4, 4], [4, 8, 4]), [1.0, 0.5, 0.0])


def test_spl_measures_the_shortest_path_to_the_success_region():
    # start 6 cells from the goal, success within 1 cell: the shortest successful path is 5 moves
    shortest = success_path_length(6, 1)
    assert shortest == pytest.approx(5.0)
    assert spl(True, shortest, 5) == pytest.approx(1.0)  # the optimal path
    assert spl(True, shortest, 6) == pytest.approx(5 / 6)  # one move longer (the goal itself): no longer 1
    assert spl(True, 6, 6) == pytest.approx(1.0)  # what measuring to the goal gave that path (inflated)
    assert success_path_length(6, 0) == pytest.approx(6.0)  # radius 0: the distance to the goal
    assert success_path_length(1, 2) == 0.0  # never negative
    np.testing.assert_allclose(success_path_length([5, 8, 2], [1, 2, 2]), [4.0, 6.0, 0.0])


def test_soft_spl_closed_form():
    # (1 - d / d0) * d0 / max(d0, p)
    assert soft_spl(4, 10, 12) == pytest.approx((1 - 4 / 10) * 10 / 12)
    assert soft_spl(0, 10, 10) == pytest.approx(1.0)
    assert soft_spl(12, 10, 5) == 0.0  # ended farther than it started
    assert soft_spl(5, 10, 5) == pytest.approx(0.5)  # short path: efficiency term capped at 1
    assert soft_spl(0, 0, 0) == pytest.approx(1.0) and soft_spl(1, 0, 3) == 0.0
    np.testing.assert_allclose(soft_spl([0, 5], [10, 10], [20, 10]), [0.5, 0.5])


def test_coverage():
    assert coverage(16, 64) == pytest.approx(0.25)
    np.testing.assert_allclose(coverage(np.array([1, 64]), 64), [1 / 64, 1.0])
