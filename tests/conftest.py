"""Shared test fixtures: the DINOv2 reference fixtures folder and deterministic torch settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = Path(os.environ.get("SEMNAV_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures" / "dinov2"))


@pytest.fixture(scope="session")
def dinov2_fixtures() -> Path:
    """Folder of the official DINOv2 reference outputs (``../shared/fixtures/dinov2``)."""
    if not SHARED_FIXTURES.exists():
        pytest.fail(f"reference fixtures not found at {SHARED_FIXTURES}; set SEMNAV_FIXTURES to their folder")
    return SHARED_FIXTURES


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
