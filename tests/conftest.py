"""Shared test fixtures: the vendored DINOv2 reference outputs and deterministic torch settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "dinov2"
FULL_WIDTH_FILES = ("vits14_depth2_weights.pt", "vits14_depth2_io.pt")


@pytest.fixture(scope="session")
def dinov2_fixtures() -> Path:
    """Folder of the vendored official DINOv2 reference outputs (``tests/fixtures/dinov2``, see its README)."""
    return FIXTURES


@pytest.fixture(scope="session")
def full_width_fixtures() -> Path:
    """Folder named by ``SEMNAV_FIXTURES`` holding the optional 25 MB full-width ViT-S/14 pair; skips without it."""
    folder = os.environ.get("SEMNAV_FIXTURES")
    if not folder:
        pytest.skip(
            "optional full-width ViT-S/14 fixtures: set SEMNAV_FIXTURES to the folder holding " + FULL_WIDTH_FILES[0]
        )
    missing = [name for name in FULL_WIDTH_FILES if not (Path(folder) / name).exists()]
    if missing:
        pytest.fail(f"SEMNAV_FIXTURES={folder} lacks {missing}; point it at the folder that holds them or unset it")
    return Path(folder)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
