"""The code base passes ruff (lint + format) with the settings in pyproject.toml."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def _ruff() -> list[str]:
    # Run ruff from the interpreter running the tests: the venv's bin/ is not necessarily on PATH
    # (CI calls `.venv/bin/python -m pytest` without activating the environment).
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff is not installed; install the dev extras: pip install -e '.[dev]'")
    return [sys.executable, "-m", "ruff"]


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff(args):
    result = subprocess.run([*_ruff(), *args], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
